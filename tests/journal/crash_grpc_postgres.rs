//! gRPC: replicas tracking CloudDeploy operations (`CreateRelease` through
//! `CancelOnDropLayer` over a tonic `Channel`, journaled with
//! `grpc_origin`) share a PostgreSQL journal; one is SIGKILLed at a seeded
//! moment in the middle of a burst — some callers already gone, some of
//! their CancelOperation calls hung or backing off. Reapers in two other
//! processes (two each, on their own connections, `Reaper::per_origin`
//! with a channel for the server's origin), running all along beside a
//! live replica, send each operation it left running exactly one
//! CancelOperation, and nothing to the live one; only operations inside
//! the loss window may be missed or get an extra cancel
//! (`verdict.rs` has the rules, the same as over REST in
//! `crash_postgres.rs`). A fleet of gRPC replicas, killed and replaced,
//! is judged the same way.
//!
//! The processes are this binary (`crash::crash_child`). The server comes from
//! `TOWER_LRO_PG` (a libpq connection string; `.ci/run` starts one). The
//! tests are `#[ignore]`d (listed as such by `cargo test`); run them with
//! `-- --ignored postgres --skip crash_child`, which fails without `TOWER_LRO_PG`.

use crate::crash;
use crate::fleet;
use crate::pg;
use crate::verdict;

use crash::{store, Wire};

async fn kill_mid_burst(seed: u64) {
    let store = store::postgres(pg::fresh_database("tower_lro_crash_grpc").await).await;
    let s = verdict::kill_mid_burst(&store.config, store.parent.clone(), seed, Wire::Grpc).await;
    println!("grpc postgres crash, seed {seed}: {s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn grpc_sigkill_mid_burst_seed_1() {
    kill_mid_burst(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn grpc_sigkill_mid_burst_seed_2() {
    kill_mid_burst(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn grpc_sigkill_mid_burst_seed_3() {
    kill_mid_burst(3).await;
}

/// Eight gRPC replicas under load, three killed at random and replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn grpc_fleet_of_8_replicas_3_killed_and_replaced() {
    let store = store::postgres(pg::fresh_database("tower_lro_fleet_grpc").await).await;
    let r = fleet::run_fleet(&store.config, store.parent.clone(), 8, 3, 11, Wire::Grpc);
    println!("grpc fleet: {}", r.await);
}
