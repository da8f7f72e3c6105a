//! Replicas share a PostgreSQL journal; one is SIGKILLed at a seeded moment
//! in the middle of a burst of Starts — some callers already gone, some of
//! their cancels hung or backing off. Reapers in two other processes (two
//! each, on their own connections), running all along beside a live
//! replica, cancel what it left running exactly once, and nothing of the
//! live one; only operations inside the loss window may be missed or get
//! an extra cancel (`common/crash_verdict.rs` has the rules).
//!
//! The processes are this binary (`crash_child`). The server comes from
//! `TOWER_LRO_PG` (a libpq connection string; `.ci/run` starts one). The
//! tests are `#[ignore]`d (listed as such by `cargo test`); run them with
//! `-- --ignored --skip crash_child`, which fails without `TOWER_LRO_PG`.

mod common;
#[path = "common/crash.rs"]
mod crash;
#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/store_probe.rs"]
mod store_probe;
#[path = "common/crash_verdict.rs"]
mod verdict;

use std::sync::Arc;

use tower_lro::journal::{Journal, PostgresJournal};

#[test]
#[ignore = "the crash tests' child process; started by them"]
fn crash_child() {
    crash::run_child(|config| async move {
        Arc::new(
            PostgresJournal::connect(&config)
                .await
                .expect("connect to PostgreSQL"),
        ) as Arc<dyn Journal>
    });
}

async fn kill_mid_burst(seed: u64) {
    let db = pg::fresh_database("tower_lro_crash").await;
    let parent = Arc::new(PostgresJournal::connect(&db).await.unwrap());
    let s = verdict::kill_mid_burst(&db, parent, seed).await;
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
    let db = pg::fresh_database("tower_lro_fleet").await;
    let parent = Arc::new(PostgresJournal::connect(&db).await.unwrap());
    let r = fleet::run_fleet(&db, parent, replicas, kills, 11).await;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    println!(
        "fleet: {} replicas on one PostgreSQL, {} killed and replaced; {} operations started by the killed ones, \
         {} reaped each exactly once, {} missed and {} cancelled twice inside W = {:?} (0 outside it); \
         kill -> reaper cancel p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (lease {:?}, reaper interval {:?})",
        r.replicas, r.kills, r.started, r.reaped, r.missed_inside_w, r.extra_inside_w, fleet::WINDOW,
        ms(r.kill_to_cancel[0]), ms(r.kill_to_cancel[1]), ms(r.kill_to_cancel[2]),
        crash::LEASE, crash::REAPER_INTERVAL
    );
}

/// Eight replicas under load, three killed at random and replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn fleet_of_8_replicas_3_killed_and_replaced() {
    fleet_run(8, 3).await;
}

/// The long fleet run: 20 kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the long fleet run (PostgreSQL): --ignored --exact fleet_long_8_replicas_20_killed_and_replaced --nocapture"]
async fn fleet_long_8_replicas_20_killed_and_replaced() {
    fleet_run(8, 20).await;
}
