//! `OperationName::parse` + `get_uri`/`cancel_uri` on arbitrary input; see
//! `tower_lro_fuzz::invariants::operation_name` for the input format and the
//! invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tower_lro_fuzz::invariants::operation_name(data);
});
