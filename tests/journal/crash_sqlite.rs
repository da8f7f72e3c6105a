//! A process tracking operations with the SQLite journal is SIGKILLed at a
//! seeded moment in the middle of a burst of Starts — some callers already
//! gone, some of their cancels hung or backing off. Reapers in two other
//! processes, running all along beside a live owner, cancel what it left
//! running exactly once; only operations inside the loss window may be
//! missed or get an extra cancel (`verdict.rs` has the rules).
//! `crash_grpc_sqlite.rs` proves the same over gRPC.
//!
//! The processes are this binary (`crash::crash_child`), started by the test.

use crate::crash;
use crate::verdict;

use crash::{store, Wire};

async fn kill_mid_burst(seed: u64) {
    let store = store::sqlite("crash").await;
    let s = verdict::kill_mid_burst(&store.config, store.parent.clone(), seed, Wire::Rest).await;
    println!("sqlite crash, seed {seed}: {s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_seed_1() {
    kill_mid_burst(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_seed_2() {
    kill_mid_burst(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_seed_3() {
    kill_mid_burst(3).await;
}
