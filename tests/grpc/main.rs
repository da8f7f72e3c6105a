//! The layer over gRPC: a real tonic `Channel` to the embedded server on
//! loopback — calls and cancels (`calls`), explicit cancels, progress
//! metadata, a chaos run of 1,000 operations with faulted cancels
//! (`chaos`), and crafted answers from a raw hyper HTTP/2 server
//! (`hostile`).
//!
//! `cargo test --all-features --test grpc`; nothing here is ignored.

#[path = "../common/mod.rs"]
mod common;
// The gRPC helpers (server, channel, layer), under the name the modules
// here use for them.
use common::grpc as support;

mod calls;
mod chaos;
mod explicit_cancel;
mod hostile;
// What reached the layer, per CancelOperation attempt (used by `chaos`).
mod observe;
mod progress;
