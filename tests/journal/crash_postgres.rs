//! Replicas share a PostgreSQL journal; one is SIGKILLed at a seeded moment
//! in the middle of a burst of Starts — some callers already gone, some of
//! their cancels hung or backing off. Reapers in two other processes (two
//! each, on their own connections), running all along beside a live
//! replica, cancel what it left running exactly once, and nothing of the
//! live one; only operations inside the loss window may be missed or get
//! an extra cancel (`verdict.rs` has the rules).
//!
//! A reaper process SIGKILLed mid-round, holding claims, loses them with
//! its lease (`killed_reaper.rs`).
//!
//! The processes are this binary (`crash::crash_child`). The server comes from
//! `TOWER_LRO_PG` (a libpq connection string; `.ci/run` starts one). The
//! tests are `#[ignore]`d (listed as such by `cargo test`); run them with
//! `-- --ignored postgres --skip crash_child`, which fails without `TOWER_LRO_PG`.

use crate::crash;
use crate::fleet;
use crate::killed_reaper;
use crate::pg;
use crate::verdict;

use crash::{store, Wire};

async fn kill_mid_burst(seed: u64) {
    let store = store::postgres(pg::fresh_database("tower_lro_crash").await).await;
    let s = verdict::kill_mid_burst(&store.config, store.parent.clone(), seed, Wire::Rest).await;
    println!("postgres crash, seed {seed}: {s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn sigkill_mid_burst_seed_1() {
    kill_mid_burst(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn sigkill_mid_burst_seed_2() {
    kill_mid_burst(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn sigkill_mid_burst_seed_3() {
    kill_mid_burst(3).await;
}

async fn fleet_run(replicas: usize, kills: usize) {
    let store = store::postgres(pg::fresh_database("tower_lro_fleet").await).await;
    let r = fleet::run_fleet(
        &store.config,
        store.parent.clone(),
        replicas,
        kills,
        11,
        Wire::Rest,
    );
    println!("fleet: {}", r.await);
}

/// Eight replicas under load, three killed at random and replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn fleet_of_8_replicas_3_killed_and_replaced() {
    fleet_run(8, 3).await;
}

/// The long fleet run: 20 kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the long fleet run (PostgreSQL): --ignored --exact crash_postgres::fleet_long_8_replicas_20_killed_and_replaced --nocapture"]
async fn fleet_long_8_replicas_20_killed_and_replaced() {
    fleet_run(8, 20).await;
}

/// A reaper process SIGKILLed mid-round, holding claims: another reaper
/// process cancels those operations exactly once once its lease expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn a_reaper_killed_mid_round_loses_its_claims_with_its_lease() {
    let store = store::postgres(pg::fresh_database("tower_lro_killed_reaper").await).await;
    let retaken =
        killed_reaper::a_killed_reapers_claims_are_retaken(&store.config, store.parent.clone())
            .await;
    println!(
        "a killed reaper's claims retaken {retaken:?} after the kill (lease {:?})",
        crash::REAPER_LEASE
    );
}
