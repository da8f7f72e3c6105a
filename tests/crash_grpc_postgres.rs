//! gRPC, two replicas sharing a PostgreSQL journal, each tracking CloudDeploy
//! operations through a tonic `Channel`; one is SIGKILLed; the survivor's
//! reapers (two, on separate connections, each with a channel for the
//! journaled origin) cancel each operation the dead one left running exactly
//! once, and nothing else.
//!
//! Needs a PostgreSQL server: `TOWER_LRO_PG` (a libpq connection string;
//! `.ci/postgres.sh` starts one). Ignored by default so that a run without
//! one never shows a green `ok` that tested nothing; run it with
//! `TOWER_LRO_PG=… cargo test --all-features --test crash_grpc_postgres -- --ignored`
//! (it fails if the variable is unset).

mod common;
#[path = "common/crash.rs"]
mod crash;
#[path = "common/crash_grpc.rs"]
mod crash_grpc;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tower_lro::journal::{Entry, Journal, PostgresJournal};
use tower_lro_testing::{Endpoint, OperationsServer};

use crash::ChildProcess;

const OPS_PER_REPLICA: usize = 100;

#[test]
#[ignore = "the crash tests' child process; started by them"]
fn crash_child() {
    crash_grpc::run_child(|config| async move {
        Arc::new(PostgresJournal::connect(&config).await.unwrap()) as Arc<dyn Journal>
    });
}

/// A fresh database on `TOWER_LRO_PG`; fails the test without one.
async fn database() -> String {
    let Ok(base) = std::env::var("TOWER_LRO_PG") else {
        panic!("TOWER_LRO_PG is not set: this test needs a PostgreSQL server (.ci/postgres.sh)");
    };
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("connect to TOWER_LRO_PG");
    tokio::spawn(connection);
    let db = format!("tower_lro_crash_grpc_{:x}", fastrand::u64(..));
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    format!("{base} dbname={db}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: TOWER_LRO_PG=... cargo test --test crash_grpc_postgres -- --ignored"]
async fn a_killed_grpc_replicas_operations_are_reaped_once_by_the_survivor() {
    let db = database().await;
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let replica =
        |tag| ChildProcess::replica(handle.base_url(), OPS_PER_REPLICA, db.clone(), Some(tag));
    let mut a = replica("A").await;
    let b = replica("B").await;
    a.kill();
    assert_eq!(server.operation_names().len(), 2 * OPS_PER_REPLICA);

    // Wait until every operation A left running got a cancel, then until A's
    // entries are gone: after that no claim can send another.
    let dead: BTreeSet<String> = a.ready.long.clone();
    server
        .wait_for(Duration::from_secs(60), |log| {
            let cancelled: BTreeSet<&str> = log
                .iter()
                .filter(|r| r.endpoint == Endpoint::Cancel)
                .filter_map(|r| r.operation.as_deref())
                .collect();
            dead.iter().all(|n| cancelled.contains(n.as_str()))
        })
        .await
        .expect("A's operations were not all cancelled within 60 s");
    let journal = PostgresJournal::connect(&db).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        let of_a = |e: &Entry| e.owner().as_str() == a.ready.owner;
        while !crash::entry_names(&journal, of_a).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("A's entries were not removed within 30 s");

    let mut by_reaper = BTreeMap::<String, usize>::new();
    for name in &dead {
        let op = server.operation(name).unwrap();
        assert_eq!(op["error"]["code"], 1, "{name} not CANCELLED: {op}");
        let cancels = server.cancels_for(name);
        assert_eq!(cancels.len(), 1, "{name} got {} cancels", cancels.len());
        assert_eq!(cancels[0].grpc_status, Some(0));
        let tag = cancels[0].headers["x-reaper"].to_str().unwrap().to_owned();
        assert!(tag.starts_with("B-"), "{name} cancelled by {tag}");
        *by_reaper.entry(tag).or_default() += 1;
    }
    for name in a
        .ready
        .short
        .iter()
        .chain(&b.ready.short)
        .chain(&b.ready.long)
    {
        assert!(server.cancels_for(name).is_empty(), "{name} got a cancel");
    }
    let survivors = crash::entry_names(&journal, |_| true).await;
    assert_eq!(
        survivors, b.ready.long,
        "the live replica's entries must stay"
    );
    println!(
        "grpc postgres crash: 2 replicas x {OPS_PER_REPLICA} operations; A killed with {} running ({} finished before, no cancel); \
         B's reapers cancelled each of A's exactly once {by_reaper:?}; B's {} running operations untouched",
        dead.len(), a.ready.short.len(), b.ready.long.len()
    );
    drop(b);
    handle.shutdown().await;
}
