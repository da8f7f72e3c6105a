//! The crash journal: its scenarios on a real SQLite file and on a real
//! PostgreSQL server, and the crash tests — processes (this same binary,
//! `crash::crash_child`) SIGKILLed mid-burst while reapers in other
//! processes cancel what they left running — over REST and gRPC.
//!
//! `cargo test --all-features --test journal` runs the SQLite tests; every
//! PostgreSQL test sits under a module path containing `postgres` and is
//! `#[ignore]`d with its reason. With a server in `TOWER_LRO_PG` (a libpq
//! connection string; `.ci/postgres.sh` starts a throwaway cluster):
//! `cargo test --all-features --test journal -- --ignored postgres --skip crash_child --skip fleet_long --nocapture`.
//! The long fleet run:
//! `cargo test --all-features --test journal -- --ignored fleet_long --nocapture`.

#[path = "../common/mod.rs"]
mod common;

// What the tests share: the journal scenarios run on each backend, the
// PostgreSQL server and a proxy to it, the crash tests' child processes,
// their verdict and fleets, a reaper process killed mid-round, a probe of the journal's store, and the
// disk-full test's child process.
mod crash;
#[cfg(target_os = "linux")]
mod disk_full;
mod fleet;
mod killed_reaper;
mod pg;
mod pg_proxy;
mod scenarios;
mod store_probe;
mod verdict;

mod crash_grpc_postgres;
mod crash_grpc_sqlite;
mod crash_postgres;
mod crash_sqlite;
mod journal_postgres;
mod journal_sqlite;
