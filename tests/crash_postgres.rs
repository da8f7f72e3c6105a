//! Two replicas share a PostgreSQL journal; one is SIGKILLed; the survivor's
//! reapers (two, on separate connections) cancel each operation the dead
//! one left running exactly once, and nothing else.
//!
//! The replicas are this binary (`crash_child`). The server comes from
//! `TOWER_LRO_PG` (a libpq connection string; `.ci/run` starts one): under
//! `CI=true` the test fails without it, elsewhere it is skipped, saying so.

mod common;
#[path = "common/crash.rs"]
mod crash;
#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tower_lro::journal::{Entry, Journal, PostgresJournal};
use tower_lro_testing::{Endpoint, OperationsServer};

use crash::ChildProcess;

const OPS_PER_REPLICA: usize = 100;

#[test]
#[ignore = "the crash tests' child process; started by them"]
fn crash_child() {
    crash::run_child(|config| async move {
        Arc::new(PostgresJournal::connect(&config).await.unwrap()) as Arc<dyn Journal>
    });
}

async fn database() -> Option<String> {
    pg::fresh_database("tower_lro_crash").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_operations_are_reaped_once_by_the_survivor() {
    let Some(db) = database().await else { return };
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

    let mut by_reaper = std::collections::BTreeMap::<String, usize>::new();
    for name in &dead {
        let op = server.operation(name).unwrap();
        assert_eq!(op["error"]["code"], 1, "{name} not CANCELLED: {op}");
        let cancels = server.cancels_for(name);
        assert_eq!(cancels.len(), 1, "{name} got {} cancels", cancels.len());
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
        "postgres crash: 2 replicas x {OPS_PER_REPLICA} operations; A killed with {} running ({} finished before, no cancel); \
         B's reapers cancelled each of A's exactly once {by_reaper:?}; B's {} running operations untouched",
        dead.len(), a.ready.short.len(), b.ready.long.len()
    );
    drop(b);
    handle.shutdown().await;
}
