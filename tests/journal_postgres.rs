//! The fleet journal on a real PostgreSQL server.
//!
//! The server comes from `TOWER_LRO_PG`, a libpq connection string
//! (`.ci/run` starts a throwaway cluster and sets it). Without it the tests
//! fail under `CI=true` and are skipped, saying so, elsewhere.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/journal.rs"]
mod scenarios;

use std::sync::Arc;

use tower_lro::journal::{Journal, PostgresJournal};

async fn database() -> Option<String> {
    pg::fresh_database("tower_lro").await
}

async fn connect(config: &str) -> Arc<dyn Journal> {
    Arc::new(PostgresJournal::connect(config).await.unwrap())
}

#[tokio::test]
async fn claims_take_only_orphans() {
    let Some(db) = database().await else { return };
    scenarios::claims_take_only_orphans(connect(&db).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_on_separate_connections_are_exclusive() {
    let Some(db) = database().await else { return };
    let mut connections = Vec::new();
    for _ in 0..6 {
        connections.push(connect(&db).await);
    }
    scenarios::concurrent_claims_are_exclusive(connections).await;
}

#[tokio::test]
async fn writer_batches_and_coalesces() {
    let Some(db) = database().await else { return };
    scenarios::writer_batches_and_coalesces(connect(&db).await).await;
}

#[tokio::test]
async fn reaper_cancels_orphans_and_the_table_holds_no_credential() {
    let Some(db) = database().await else { return };
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
