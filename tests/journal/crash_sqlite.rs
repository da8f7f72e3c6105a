//! A process tracking operations with the SQLite journal is SIGKILLed at a
//! seeded moment in the middle of a burst of Starts — some callers already
//! gone, some of their cancels hung or backing off. Reapers in two other
//! processes, running all along beside a live owner, cancel what it left
//! running exactly once; only operations inside the loss window may be
//! missed or get an extra cancel (`verdict.rs` has the rules).
//! `crash_grpc_sqlite.rs` proves the same over gRPC.
//!
//! A reaper process SIGKILLed mid-round, holding claims, loses them with
//! its lease (`killed_reaper.rs`).
//!
//! The processes are this binary (`crash::crash_child`), started by the test.

use crate::crash;
use crate::killed_reaper;
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

/// A reaper process SIGKILLed mid-round, holding claims: another reaper
/// process cancels those operations exactly once once its lease expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaper_killed_mid_round_loses_its_claims_with_its_lease() {
    let store = store::sqlite("killed-reaper").await;
    let retaken =
        killed_reaper::a_killed_reapers_claims_are_retaken(&store.config, store.parent.clone())
            .await;
    println!(
        "a killed reaper's claims retaken {retaken:?} after the kill (lease {:?})",
        crash::REAPER_LEASE
    );
}
