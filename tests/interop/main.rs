//! Interoperability with code no one here wrote: the layer against
//! `tests/ground_truth/operations_server.py` (grpcio and google-api-core's
//! routes), and the googleapis method table the library and
//! tower-lro-testing each compile in.
//!
//! `cargo test --all-features --test interop` runs the table check and lists
//! the ground-truth tests as ignored; with the server running (`.ci/run`
//! starts it) and `TOWER_LRO_GROUND_TRUTH=rest=ADDR,grpc=ADDR`:
//! `cargo test --all-features --test interop -- --ignored ground_truth`.

#[path = "../common/mod.rs"]
mod common;

mod ground_truth;
mod method_table_copies;
