//! The PostgreSQL server the fleet tests use: `TOWER_LRO_PG`, a libpq
//! connection string (`.ci/run` starts a throwaway cluster and sets it).
#![allow(dead_code)]

/// A fresh database on that server (so tests can run in parallel), as a
/// connection string; `None` (saying so) when `TOWER_LRO_PG` is unset —
/// except under `CI=true`, where that fails the test.
pub async fn fresh_database(prefix: &str) -> Option<String> {
    let Ok(base) = std::env::var("TOWER_LRO_PG") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "TOWER_LRO_PG is not set: CI must run the PostgreSQL tests (.ci/run starts a server)"
        );
        eprintln!("SKIPPED: set TOWER_LRO_PG to a PostgreSQL connection string to run this test");
        return None;
    };
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("connect to TOWER_LRO_PG");
    tokio::spawn(connection);
    let db = format!("{prefix}_{:x}", fastrand::u64(..));
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    Some(format!("{base} dbname={db}"))
}
