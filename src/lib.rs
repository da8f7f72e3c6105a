//! Wait on Google AIP-151 long-running operations through a Tower HTTP client
//! stack, and cancel them when the caller gives up.
//!
//! Cloud APIs run slow work as long-running operations: a call answers at once
//! with an `Operation` (`{"name": "projects/p/locations/l/operations/op-1", "done": false}`)
//! and the client polls `GET /v1/{name}` until `done` is true. When the client
//! gives up — a timeout fires, a `select!` takes another branch, a server
//! handler is dropped because its own caller went away — the operation keeps
//! running. [`CancelOnDropLayer`] closes that gap: it records the operation's
//! name, polls it until it is done, and when the caller's future is dropped,
//! its deadline passes or polling gives up, it sends one detached, best-effort
//! `POST /v1/{name}:cancel` (AIP-151 `CancelOperation`) through the same inner
//! service, with the original request's credentials.
//!
//! | the response to a call through the layer | what the caller gets | cancel |
//! |---|---|---|
//! | not an Operation, or not inspected (GET, non-JSON, non-2xx) | that response, body untouched | never |
//! | an Operation already `done: true` | that response | never |
//! | an Operation not done | the response of the poll that shows it `done` | when the future is dropped first, the deadline passes, or polling fails |
//!
//! # Example: a hyper-util client
//!
//! ```no_run
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_lro::{CancelOnDropLayer, Operation};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let lro = CancelOnDropLayer::new();
//! let cancels = lro.handle();
//! let mut client = ServiceBuilder::new()
//!     .layer(lro)
//!     .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
//!
//! let request = http::Request::post("http://localhost:8080/v1/projects/p/locations/l/jobs")
//!     .header("content-type", "application/json")
//!     .body(Full::from(r#"{"durationMs": 30000}"#))?;
//! // Give up after 2 s: the layer cancels the operation it saw start.
//! match tokio::time::timeout(Duration::from_secs(2), client.ready().await?.call(request)).await {
//!     Ok(response) => {
//!         let body = response?.into_body().collect().await?.to_bytes();
//!         let operation = Operation::from_json(&body)?;
//!         println!("{} done; cancelled: {}", operation.name, operation.is_cancelled());
//!     }
//!     Err(_elapsed) => println!("gave up; a CancelOperation is on its way"),
//! }
//! // At shutdown, let in-flight cancels finish.
//! cancels.drain(Duration::from_secs(10)).await;
//! # Ok(())
//! # }
//! ```
//!
//! The cancel fires when the [`ResponseFuture`] is *dropped*: awaiting it by
//! value inside `tokio::time::timeout`, `tower::timeout`, or a `select!` branch
//! that loses drops it at once. A future pinned in a variable and awaited by
//! reference (`timeout(d, &mut fut)`) lives until its scope ends, and so does
//! the operation — drop it (or `Box::pin` and drop) when you give up.
//!
//! # Cancelling by name, on either wire
//!
//! [`CancelHandle::cancel`] sends one CancelOperation for an operation held
//! by name — through the layer's policy, counters and an `lro.cancel` span
//! with `reason = "explicit"` — to an [`Origin`]: [`Origin::rest`] (the URI
//! of a request to the API: `POST {prefix}{name}:cancel` on its origin) or
//! [`Origin::grpc`] (the channel's origin: `/google.longrunning.Operations/CancelOperation`
//! through the tonic `Channel` given). It resolves to a [`CancelOutcome`]:
//! `Accepted` (the wire's own success only: a REST 2xx that is not a gRPC
//! answer, or `grpc-status: 0`), `VerifiedCancelled` / `CompletedAnyway`
//! (with [`CancelPolicy::verify`]), `NotFound`, `Unimplemented` /
//! `UnimplementedSkipped`, or `Failed`. [`CancelOnDrop::cancel`] does the
//! same through the service's inner clone.
//!
//! ```no_run
//! # async fn f(channel: tonic::transport::Channel) -> Result<(), Box<dyn std::error::Error>> {
//! use tower_lro::{CancelOnDropLayer, OperationName, Origin};
//!
//! let lro = CancelOnDropLayer::new();
//! let cancels = lro.handle(); // keep it; build the stack with `lro`
//! let name = OperationName::parse("projects/p/locations/l/operations/op-1")?;
//! let outcome = cancels
//!     .cancel(channel, &name, Origin::grpc("https://clouddeploy.googleapis.com".parse()?))
//!     .await?;
//! println!("{outcome:?}");
//! # Ok(()) }
//! ```
//!
//! # Features
//! - `tonic`: [`RequestBody`] for `tonic::body::Body`, so the layer can wrap
//!   a `tonic::transport::Channel` under a generated client. gRPC support
//!   itself (recognition, polling, cancelling: [`GrpcLroMethods`]) is always
//!   built and needs only `prost`.
//! - `journal`: [`journal`], a durable record of tracked operations and a
//!   reaper that cancels what a crashed process left running;
//!   `journal-sqlite` adds the one-file SQLite backend, `journal-postgres`
//!   the PostgreSQL backend for fleets.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
// docs.rs (`--cfg docsrs`, nightly): mark feature-gated items. `doc_cfg` has
// included the automatic marking that `doc_auto_cfg` used to enable since
// nightly 2025-09; the explicit `doc(cfg(..))` attributes below keep older
// nightlies right too. Inert on stable.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod cancel;
mod config;
mod error;
mod explicit;
mod extensions;
mod forwarded;
mod future;
mod inspect;
#[cfg(feature = "journal")]
pub mod journal;
mod journal_hook;
mod layer;
mod metrics;
mod operation;
mod poll;
mod protocol;
mod request_body;
mod retry;
mod service;

pub use body::ResponseBody;
pub use cancel::{
    CancelHandle, CancelOutcome, CancelPolicy, CancelStats, DrainReport, NotAccepted,
    ShutdownReport,
};
pub use config::FORWARDED_HEADERS;
pub use error::{BoxError, Error};
pub use extensions::{CancelOn, Detached, Resume, ReturnImmediately};
pub use future::ResponseFuture;
pub use layer::CancelOnDropLayer;
pub use operation::{
    Decoded, InvalidOperationName, MetadataError, Operation, OperationName, RouteError, Status,
};
pub use poll::PollPolicy;
pub use protocol::{
    GrpcLroMethods, InvalidGrpcMethod, Origin, Routes, WireStatus, DEFAULT_MAX_INSPECT_BYTES,
};
pub use request_body::RequestBody;
pub use service::CancelOnDrop;

/// Entry points for the fuzz targets in `fuzz/` and for
/// `tests/input/fuzz_replay.rs`, behind the `__internals` feature. Not part of the
/// API: no stability promise.
#[cfg(feature = "__internals")]
#[doc(hidden)]
pub mod __fuzz {
    use http::{HeaderValue, Uri};

    use crate::OperationName;

    /// What the layer does with a complete JSON response body: the name,
    /// GetOperation URI and CancelOperation URI of the not-done operation
    /// it would wait on; or why it tracks nothing, as logged, and whether
    /// that is a `warn` event. `path_prefix` is the layer's `path_prefix`
    /// override, as stored.
    pub fn recognise(
        body: &[u8],
        request_uri: &Uri,
        path_prefix: Option<&str>,
    ) -> Result<(OperationName, Uri, Uri), (String, bool)> {
        crate::protocol::internals::recognise(body, request_uri, path_prefix)
    }

    /// The `x-goog-request-params` value sent with poll and cancel requests.
    pub fn request_params(name: &OperationName) -> HeaderValue {
        name.request_params()
    }
}

/// Not public API: what `benches/inspect.rs` measures, behind the
/// `__internals` feature. May change or go away in any release.
#[cfg(feature = "__internals")]
#[doc(hidden)]
pub mod __bench {
    /// The layer's recognition of a JSON response body before routing:
    /// `peek` (a borrowed view of `name` and `done`), then an Operation's
    /// fields only, not done, a valid name. `Some(name)` if the layer would
    /// track it.
    pub fn recognise(body: &[u8]) -> Option<crate::OperationName> {
        crate::protocol::internals::read_operation(body)
    }

    /// `peek` alone (no name validation): `Some(done)` if the body is an
    /// object with a `name` and no fields but an Operation's.
    pub fn peek(body: &[u8]) -> Option<bool> {
        crate::protocol::internals::peek(body)
    }
}

// The README's examples are compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
