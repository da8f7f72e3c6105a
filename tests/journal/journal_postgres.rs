//! The fleet journal on a real PostgreSQL server.
//!
//! The server comes from `TOWER_LRO_PG`, a libpq connection string
//! (`.ci/run` starts a throwaway cluster and sets it). The tests are
//! `#[ignore]`d (listed as such by `cargo test`); run them with
//! `-- --ignored journal_postgres`, which fails without `TOWER_LRO_PG`.

use crate::common;
use crate::pg;
use crate::pg_proxy;
use crate::scenarios;

use std::sync::Arc;

use tower_lro::journal::{Journal, PostgresJournal};

async fn database() -> String {
    pg::fresh_database("tower_lro").await
}

async fn connect(config: &str) -> Arc<dyn Journal> {
    Arc::new(PostgresJournal::connect(config).await.unwrap())
}

#[tokio::test]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn claims_take_only_orphans() {
    let db = database().await;
    scenarios::claims_take_only_orphans(connect(&db).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn concurrent_claims_on_separate_connections_are_exclusive() {
    let db = database().await;
    let mut connections = Vec::new();
    for _ in 0..6 {
        connections.push(connect(&db).await);
    }
    scenarios::concurrent_claims_are_exclusive(connections).await;
}

#[tokio::test]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn writer_batches_and_coalesces() {
    let db = database().await;
    scenarios::writer_batches_and_coalesces(connect(&db).await).await;
}

#[tokio::test]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn reaper_cancels_orphans_and_the_table_holds_no_credential() {
    let db = database().await;
    let journal = connect(&db).await;
    scenarios::reaper_cancels_orphans(journal.clone()).await;
    let (client, connection) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // The rows are gone now; record one more and read the raw row text.
    let owner = tower_lro::journal::OwnerId::random();
    journal
        .record(scenarios::entry(
            &owner,
            0,
            "http://127.0.0.1:9",
            "projects/p/operations/x",
        ))
        .await
        .unwrap();
    let row = client
        .query_one("SELECT t::text FROM tower_lro_operations t", &[])
        .await
        .unwrap();
    let text: String = row.get(0);
    assert!(text.contains("billing-project"), "{text}");
    for secret in ["never-stored", "ya29", "AIza", "SID="] {
        assert!(!text.contains(secret), "{secret} stored: {text}");
    }
}

#[tokio::test]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn a_dead_owners_row_goes_once_its_entries_are_reaped() {
    let db = database().await;
    let (client, connection) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let client = std::sync::Arc::new(client);
    let owners = || {
        let client = client.clone();
        async move {
            let rows = client
                .query("SELECT owner FROM tower_lro_owners", &[])
                .await
                .unwrap();
            rows.iter().map(|row| row.get::<_, String>(0)).collect()
        }
    };
    scenarios::a_dead_owners_row_goes_once_its_entries_are_reaped(connect(&db).await, owners).await;
}

/// PostgreSQL unreachable for two seconds in the middle of a run: calls
/// made meanwhile neither fail nor wait for it; once it is back the writer
/// reconnects and commits what it kept; nothing committed before is lost;
/// a reaper then cancels each remaining operation exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn postgres_unreachable_for_seconds_mid_run() {
    use std::collections::BTreeSet;
    use std::time::Duration;
    use tokio::time::Instant;
    use tower::{Layer, ServiceExt};
    use tower_lro::journal::{JournalWriter, Reaper, WriterOptions};
    use tower_lro::CancelOnDropLayer;
    use tower_lro_testing::{Endpoint, OperationsServer};

    const OUTAGE: Duration = Duration::from_secs(2);
    let db = database().await;
    let proxy = pg_proxy::PgProxy::start(&db).await;
    let journal = connect(&proxy.config).await;
    let options = WriterOptions::new().lease(Duration::from_secs(60));
    let writer = JournalWriter::start(journal.clone(), options).unwrap();
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    let svc = CancelOnDropLayer::new()
        .poll_policy(common::fast_polls())
        .journal(writer.clone())
        .layer(common::http_client());
    let mut long = tokio::task::JoinSet::new();
    let start_long = |long: &mut tokio::task::JoinSet<_>| {
        long.spawn(svc.clone().oneshot(common::start(&base, 600_000)));
    };
    for _ in 0..10 {
        start_long(&mut long);
    }
    let mine = |journal: Arc<dyn Journal>, owner: tower_lro::journal::OwnerId| async move {
        let entries = journal.entries().await.expect("read the journal");
        entries
            .into_iter()
            .filter(|e| e.owner() == &owner)
            .map(|e| e.name().to_owned())
            .collect::<BTreeSet<_>>()
    };
    let direct = connect(&db).await;
    let bound = Duration::from_secs(10);
    tokio::time::timeout(bound, async {
        while mine(direct.clone(), writer.owner().clone()).await.len() < 10 {
            writer.flush().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waited {bound:?} for the first 10 records to commit"));
    let before = mine(direct.clone(), writer.owner().clone()).await;

    proxy.cut();
    let cut_at = Instant::now();
    for _ in 0..10 {
        start_long(&mut long);
    }
    // Calls that finish: as fast as without a journal (well under the outage).
    let mut short = BTreeSet::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        let response = svc.clone().oneshot(common::start(&base, 50)).await.unwrap();
        let op = common::body_json(response.into_body()).await;
        assert!(
            t0.elapsed() < OUTAGE / 2,
            "a call waited {:?} on the journal",
            t0.elapsed()
        );
        assert_eq!(op["done"], true, "{op}");
        short.insert(op["name"].as_str().unwrap().to_owned());
    }
    // Calls given up on: their cancels go out and are accepted meanwhile.
    // Each is dropped once the server has answered its Start (so there is
    // an operation to cancel), whether or not the layer has read the answer.
    let answered_starts = |l: &[tower_lro_testing::RecordedRequest]| {
        l.iter()
            .filter(|r| r.endpoint == Endpoint::Start && r.is_answered())
            .count()
    };
    for _ in 0..5 {
        let starts = answered_starts(&server.requests());
        let call = svc.clone().oneshot(common::start(&base, 600_000));
        tokio::select! {
            _ = call => panic!("the operation runs 10 minutes"),
            started = server.wait_for(OUTAGE, |l| answered_starts(l) > starts) => {
                started.expect("a Start answered during the outage");
            }
        }
    }
    let accepted = |l: &[tower_lro_testing::RecordedRequest]| {
        l.iter()
            .filter(|r| r.endpoint == Endpoint::Cancel && r.status == 200)
            .count()
            == 5
    };
    server
        .wait_for(OUTAGE, accepted)
        .await
        .expect("the 5 cancels accepted during the outage");
    assert!(cut_at.elapsed() < OUTAGE, "the calls took the whole outage");
    tokio::time::sleep_until(cut_at + OUTAGE).await;
    proxy.restore();

    let bound = Duration::from_secs(20);
    tokio::time::timeout(bound, writer.flush())
        .await
        .unwrap_or_else(|_| {
            panic!("waited {bound:?} for the writer to commit after PostgreSQL came back")
        })
        .unwrap();
    let stats = writer.stats();
    assert!(
        stats.errors > 0,
        "the failed commits are counted: {stats:?}"
    );
    assert_eq!(stats.dropped, 0, "{stats:?}");
    let after = mine(direct.clone(), writer.owner().clone()).await;
    assert!(before.is_subset(&after), "a committed record was lost");
    let cancelled: BTreeSet<String> = server
        .requests_to(Endpoint::Cancel)
        .into_iter()
        .filter_map(|r| r.operation)
        .collect();
    let running: BTreeSet<String> = server
        .operation_names()
        .into_iter()
        .filter(|n| !short.contains(n) && !cancelled.contains(n))
        .collect();
    assert_eq!(running.len(), 20);
    assert_eq!(
        after, running,
        "the journal holds exactly the running operations"
    );

    // The process ends without cancelling: a reaper takes over.
    writer.retire().await.unwrap();
    let reaper = Reaper::new(direct.clone(), common::http_client());
    let report = reaper.reap_once().await.unwrap();
    assert_eq!(report.accepted, 20, "{report:?}");
    for name in &running {
        assert_eq!(server.cancels_for(name).len(), 1, "{name}");
        assert_eq!(
            server.operation(name).unwrap()["error"]["code"],
            1,
            "{name}"
        );
    }
    for name in short.iter().chain(&cancelled) {
        assert!(
            server.cancels_for(name).len() <= 1,
            "{name} cancelled twice"
        );
    }
    long.abort_all();
}

#[tokio::test]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn a_dead_reapers_claims_are_retaken_once_its_lease_expires() {
    let db = database().await;
    scenarios::a_dead_reapers_claims_are_retaken_once_its_lease_expires(connect(&db).await).await;
}

#[tokio::test]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn a_live_reaper_keeps_its_claims_through_a_long_round() {
    let db = database().await;
    scenarios::a_live_reaper_keeps_its_claims_through_a_long_round(connect(&db).await).await;
}

#[tokio::test]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn a_table_from_before_claimed_at_is_migrated_on_connect() {
    let db = database().await;
    let (client, connection) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(scenarios::OPERATIONS_BEFORE_CLAIMED_AT)
        .await
        .unwrap();
    scenarios::claims_take_only_orphans(connect(&db).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "PostgreSQL: set TOWER_LRO_PG to a libpq connection string and pass --ignored"]
async fn fresh_claimers_racing_never_share_an_entry() {
    let db = database().await;
    let mut connections = Vec::new();
    for _ in 0..8 {
        connections.push(connect(&db).await);
    }
    scenarios::fresh_claimers_racing_never_share_an_entry(connections).await;
}
