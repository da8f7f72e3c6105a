//! Shared invariants for the fuzz targets. They live in the main crate's
//! `tests/fuzz/invariants.rs` (which the `input` test crate also includes),
//! because this directory is its own workspace and is not packaged.

#[path = "../../tests/fuzz/invariants.rs"]
pub mod invariants;
