//! The REST layer's behaviour: `CancelOnDropLayer` in memory under paused
//! tokio time and over real loopback sockets — polls, cancels, bodies,
//! routes, explicit cancels, the delivery pool, shutdown, client and server
//! stacks, and the `Send`/`Sync` bounds users rely on.
//!
//! `cargo test --all-features --test layer` runs all of it; nothing here is
//! ignored.

#[path = "../common/mod.rs"]
mod common;

mod bodies;
mod cancel_regressions;
mod client_stack;
mod delivery_pool;
mod explicit_cancel;
mod in_memory;
mod loopback;
mod routes;
mod send_sync;
mod server_timeout;
mod shutdown;
