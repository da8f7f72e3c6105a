//! Hostile input: operation names (validation, routes, properties, the fuzz
//! targets' invariants and seeds), the URL builders against real discovery
//! documents' URLs, and a hostile server's names and bodies.
//!
//! `cargo test --all-features --test input`; nothing here is ignored.

#[path = "../common/mod.rs"]
mod common;
// Shared with the fuzz targets (`fuzz/src/lib.rs` includes the same file),
// which live in a workspace of their own: so it stays in `tests/fuzz/`, next
// to their seeds, and is included here by path.
#[path = "../fuzz/invariants.rs"]
#[allow(dead_code)]
mod invariants;

mod corpus;
mod fuzz_replay;
mod hostile;
mod operation_names;
