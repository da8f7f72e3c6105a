//! gRPC: a process tracking CloudDeploy operations (`CreateRelease` through
//! `CancelOnDropLayer` over a tonic `Channel`, journaled with
//! `grpc_origin`) with the SQLite journal is SIGKILLed at a seeded moment
//! in the middle of a burst — some callers already gone, some of their
//! CancelOperation calls hung or backing off. Reapers in two other
//! processes (`Reaper::per_origin`, a channel for the server's origin),
//! running all along beside a live owner, send each operation it left
//! running exactly one CancelOperation; only operations inside the loss
//! window may be missed or get an extra cancel (`verdict.rs`
//! has the rules, the same as over REST in `crash_sqlite.rs`).
//!
//! The processes are this binary (`crash::crash_child`), started by the test.

use crate::crash;
use crate::verdict;

use crash::{store, Wire};

async fn kill_mid_burst(seed: u64) {
    let store = store::sqlite("crash-grpc").await;
    let s = verdict::kill_mid_burst(&store.config, store.parent.clone(), seed, Wire::Grpc).await;
    println!("grpc sqlite crash, seed {seed}: {s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_sigkill_mid_burst_seed_1() {
    kill_mid_burst(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_sigkill_mid_burst_seed_2() {
    kill_mid_burst(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_sigkill_mid_burst_seed_3() {
    kill_mid_burst(3).await;
}
