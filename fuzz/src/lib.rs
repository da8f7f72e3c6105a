//! Shared invariants for the fuzz targets (and, via `#[path]`, for
//! `tests/fuzz_replay.rs` in the main crate).

pub mod invariants;
