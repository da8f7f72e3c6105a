//! The fleet journal on a real PostgreSQL server.
//!
//! The server comes from `TOWER_LRO_PG`, a libpq connection string
//! (`.ci/run` starts a throwaway cluster and sets it). The tests are
//! `#[ignore]`d (listed as such by `cargo test`); run them with
//! `-- --ignored`, which fails without `TOWER_LRO_PG`.

mod common;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/journal.rs"]
mod scenarios;

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
