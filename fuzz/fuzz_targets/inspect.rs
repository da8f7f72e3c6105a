//! `Operation::from_json` and the layer's recognition of a response body on
//! arbitrary input; see `tower_lro_fuzz::invariants::inspect`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tower_lro_fuzz::invariants::inspect(data);
});
