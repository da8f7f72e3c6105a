//! The PostgreSQL server the fleet tests use: `TOWER_LRO_PG`, a libpq
//! connection string (`.ci/run` starts a throwaway cluster and sets it).
//!
//! Every test that needs it is `#[ignore = "PostgreSQL: set TOWER_LRO_PG to
//! a libpq connection string and pass --ignored"]`, in a module whose path
//! contains `postgres`: a plain `cargo test` lists it as ignored, never as a
//! green `ok` that ran nothing. Run them with a server:
//! `TOWER_LRO_PG='host=... user=...' cargo test --all-features --test journal -- --ignored postgres --skip crash_child --skip fleet_long`;
//! asked to run without `TOWER_LRO_PG`, they fail saying so.

/// `TOWER_LRO_PG`; panics (failing the test) when it is unset.
pub fn server() -> String {
    std::env::var("TOWER_LRO_PG").unwrap_or_else(|_| {
        panic!(
            "TOWER_LRO_PG is not set: this test needs a PostgreSQL server \
             (.ci/postgres.sh starts a throwaway one); without one, do not pass --ignored"
        )
    })
}

/// A fresh database on that server (so tests can run in parallel), as a
/// connection string. Fails the test when `TOWER_LRO_PG` is unset or the
/// server cannot be reached.
pub async fn fresh_database(prefix: &str) -> String {
    let base = server();
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to TOWER_LRO_PG ({base}): {e}"));
    tokio::spawn(connection);
    let db = format!("{prefix}_{:x}", fastrand::u64(..));
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    format!("{base} dbname={db}")
}
