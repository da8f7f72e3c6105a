//! An embedded AIP-151 operations server, for tests, demos and benchmarks:
//! the counterpart of [`tower-lro`](https://docs.rs/tower-lro)'s layer, as
//! `tower-test` is tower's.
//!
//! [`OperationsServer`] is an in-process, in-memory implementation of the
//! [AIP-151] `google.longrunning.Operations` HTTP/JSON API, with a request
//! log for assertions and per-endpoint fault injection. It is a
//! [`tower_service::Service`] you can call in memory, and it can also be
//! served over HTTP/1.1 and HTTP/2 on a loopback port with
//! [`OperationsServer::serve`]. Clones share one state, and so does every
//! HTTP server started from it.
//!
//! Served over HTTP, the same port also speaks gRPC (HTTP/2 requests with
//! `content-type: application/grpc...`): `google.longrunning.Operations`
//! and every start method of the googleapis long-running table (e.g.
//! `google.cloud.deploy.v1.CloudDeploy/CreateRelease`), answered as the
//! real service would (resource names, echoed requests, typed metadata),
//! on the same operations, request log and faults — see [`grpc`]. The
//! in-memory `Service` impl is REST only.
//!
//! # Routes
//!
//! Every path starts with an API version segment (`v\d+[a-z0-9]*`: `v1`,
//! `v1beta1`, `v2alpha`), optionally followed by a *service prefix* of
//! segments before the first `projects` segment (`/v1/admin/projects/...`);
//! the rest of the path, percent-decoded, is the resource name. Operation
//! names are `projects/{p}/locations/{l}/operations/op-{n}`, with `n`
//! counting from 1 per server.
//!
//! | [`Endpoint`] | request | answer |
//! |---|---|---|
//! | `Start` | `POST /v1/projects/{p}/locations/{l}/{collection...}` (any POST under a location that is not an operations path; a `:verb` is allowed) | `200`, a new [Operation](#operations) |
//! | `Get` | `GET /v1/{name}` | `200`, the Operation |
//! | `Cancel` | `POST /v1/{name}:cancel` | `200`, `{}` |
//! | `Delete` | `DELETE /v1/{name}` | `200`, `{}` |
//! | `List` | `GET /v1/{parent}/operations?filter=&pageSize=&pageToken=` | `200`, `{"operations": [...], "nextPageToken": "..."}` |
//! | `Wait` | `POST /v1/{name}:wait` with `{"timeout": "5s"}` | `200`, the Operation once done or at the timeout |
//! | `Other` | anything else | `404` / `405` / `400` |
//!
//! - **Start** — the operation runs for `durationMs` milliseconds: the query
//!   parameter `?durationMs=N` if present, else the JSON body's
//!   `"durationMs"` (a number or a string of digits), else the server's
//!   [`default_duration`](OperationsServer::default_duration) (10 s). A
//!   body, if not empty, must be a JSON object (`400 INVALID_ARGUMENT`
//!   otherwise); its other fields are ignored. With a duration of 0 the
//!   answer is already `done: true`.
//! - **Cancel** (AIP-151 CancelOperation) — a running operation becomes
//!   `done: true` with `error: {"code": 1, "message": "Operation was
//!   cancelled."}` (`google.rpc.Code.CANCELLED`); cancelling a done
//!   operation changes nothing and also answers `{}`.
//! - **Delete** — forgets the operation without cancelling it; later
//!   requests for it answer `404`.
//! - **List** ([AIP-158] paging) — the operations whose name is under the
//!   collection, oldest first. `pageSize` absent or 0 means 50, larger than
//!   1000 means 1000, negative is `400`; `pageToken` is the opaque
//!   `nextPageToken` of the previous page (`400` if it is not one);
//!   `nextPageToken` is absent on the last page; `operations` is always
//!   present (possibly `[]`). `filter` ([AIP-160]) selects on `done`:
//!   `done=true`, `done = false`, `done != true`, a bare `done`, `NOT done`
//!   or `-done`, combined with `AND`, `OR` and parentheses; empty or absent
//!   means all. Any other filter (another field, another comparator) is
//!   `400 INVALID_ARGUMENT`, naming what was not understood.
//! - **Wait** (AIP-151 WaitOperation) — answers as soon as the operation is
//!   done (cancelled included) or `timeout` (a `google.protobuf.Duration`
//!   in JSON: decimal seconds with an `s` suffix, from the body or
//!   `?timeout=`) passes, whichever is first. Without a timeout, and at
//!   most, it waits 60 s. A wait woken by a Delete answers `404`.
//!
//! Unknown operation names answer `404 NOT_FOUND`. Unknown paths answer
//! `404 NOT_FOUND`, and so do methods other than POST on other resources
//! under a location (`GET /v1/projects/p/locations/l/jobs/j`: the server
//! has no such resource). An operations path with the wrong method (`PUT
//! /v1/{name}`, `GET /v1/{name}:cancel`, `POST .../operations`) answers
//! `405 Method Not Allowed` with an `allow` header and status
//! `UNIMPLEMENTED`; a path that does not percent-decode to UTF-8, or an
//! invalid body or parameter, answers `400 INVALID_ARGUMENT`. All are
//! [AIP-193] error bodies:
//! `{"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}`.
//! Every response has `content-type: application/json`.
//!
//! # Operations
//!
//! `metadata` and `response` are `google.protobuf.Any`s holding a
//! `google.protobuf.Struct`, a type every protobuf runtime ships, so Google's
//! client libraries in any language decode them without extra descriptors.
//! In proto3 JSON a well-known type inside an `Any` sits in `value`:
//!
//! ```json
//! {
//!   "name": "projects/p/locations/l/operations/op-1",
//!   "done": false,
//!   "metadata": {
//!     "@type": "type.googleapis.com/google.protobuf.Struct",
//!     "value": {
//!       "progressPercent": 40,
//!       "target": "projects/p/locations/l/jobs",
//!       "createTime": "2024-05-01T12:00:00.000Z"
//!     }
//!   }
//! }
//! ```
//!
//! `progressPercent` is elapsed × 100 / duration (100 when done;
//! frozen at cancellation, when `"requestedCancellation": true` is added).
//! Once done the operation has either the `response` `{"@type":
//! "type.googleapis.com/google.protobuf.Struct", "value": {"target": ...,
//! "state": "SUCCEEDED"}}` or the cancellation `error`. `target` is the
//! start request's resource name without its `:verb`.
//!
//! # Time
//!
//! Operation timing uses [`tokio::time::Instant`], so under
//! `tokio::time::pause()` (`#[tokio::test(start_paused = true)]`) it is
//! deterministic and moved with `tokio::time::advance`. Only `createTime`
//! reads the wall clock.
//!
//! # Request log and faults
//!
//! Every request is recorded as a [`RecordedRequest`] when it arrives (after
//! its body is read, before any fault applies), with `status`
//! `102 Processing`; the status is filled in when it is answered (`499` if
//! the caller went away first). [`OperationsServer::wait_for`] wakes on each
//! of these changes, so a test sees a CancelOperation the moment it arrives.
//! [`OperationsServer::inject`] installs a [`Fault`] per [`Endpoint`]:
//! every request, a scripted sequence, or a seeded random fraction of them
//! answered with a [`FaultKind`] — an error status (with `Retry-After` if
//! asked), latency before the work or a late answer after it, a hang, or a
//! reset connection. [`RecordedRequest::fault`] says which fault each
//! request got.
//!
//! # Calling it in memory
//!
//! The `Service` impl accepts any request body type, so the compiler cannot
//! infer the body from `svc.ready()` alone when a generic layer wraps the
//! server; pass the request at the same time (`svc.clone().oneshot(request)`)
//! or name the type: `ServiceExt::<http::Request<Full<Bytes>>>::ready(&mut svc)`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full};
//! use tower::ServiceExt;
//! use tower_lro_testing::{Endpoint, Fault, OperationsServer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = OperationsServer::new().default_duration(Duration::from_secs(1));
//! server.inject(Endpoint::Cancel, Fault::Status(http::StatusCode::NOT_IMPLEMENTED));
//!
//! let request = http::Request::post("/v1/projects/p/locations/l/jobs")
//!     .body(Full::new(Bytes::from_static(br#"{"durationMs": 0}"#)))
//!     .unwrap();
//! let response = server.clone().oneshot(request).await.unwrap();
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! let op: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(op["name"], "projects/p/locations/l/operations/op-1");
//! assert_eq!(op["done"], true);
//!
//! // Or over HTTP:
//! let handle = server.serve().await.unwrap();
//! println!("GET {}/v1/projects/p/locations/l/operations/op-1", handle.base_url());
//! handle.shutdown().await;
//! # }
//! ```
//!
//! [AIP-151]: https://google.aip.dev/151
//! [AIP-158]: https://google.aip.dev/158
//! [AIP-160]: https://google.aip.dev/160
//! [AIP-193]: https://google.aip.dev/193

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod dispatch;
mod fault;
mod filter;
pub mod grpc;
mod handlers;
mod json;
mod log;
mod ops;
mod route;
mod server;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tower_lro::BoxError;

pub use self::fault::{Fault, FaultKind};
pub use self::log::{RecordedRequest, WaitTimeout};
pub use self::server::ServerHandle;

use self::fault::Active;

/// The default operation duration: 10 s.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// The longest a WaitOperation waits (and how long it waits without a timeout).
const MAX_WAIT: Duration = Duration::from_secs(60);
/// ListOperations page size when none (or 0) is asked for.
const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest ListOperations page.
const MAX_PAGE_SIZE: usize = 1000;
/// Largest request body read (16 MiB); larger bodies answer `400`.
const MAX_BODY_BYTES: usize = 16 << 20;

/// Which AIP-151 method a request was routed to: the key for
/// [`OperationsServer::inject`] and [`OperationsServer::requests_to`], and
/// [`RecordedRequest::endpoint`]. See the [module docs](self) for the routes.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /{version}/projects/{p}/locations/{l}/{collection...}`: starts
    /// an operation.
    Start,
    /// `GET /{version}/{name}`: GetOperation.
    Get,
    /// `POST /{version}/{name}:cancel`: CancelOperation.
    Cancel,
    /// `DELETE /{version}/{name}`: DeleteOperation.
    Delete,
    /// `GET /{version}/{parent}/operations`: ListOperations.
    List,
    /// `POST /{version}/{name}:wait`: WaitOperation.
    Wait,
    /// Anything else: unknown paths and resources (`404`), wrong methods on
    /// operations paths (`405`), paths that are not UTF-8 (`400`).
    Other,
}

/// An in-memory AIP-151 operations server; see the [module docs](self).
///
/// Cheap to clone: clones share the operations, the request log and the
/// faults. Use it in memory as a tower `Service` (always ready; never fails:
/// errors are HTTP responses), or over HTTP with [`serve`](Self::serve).
#[derive(Clone)]
pub struct OperationsServer {
    inner: Arc<Inner>,
}

/// The shared state.
pub(crate) struct Inner {
    state: Mutex<State>,
    /// Bumped on every log change (a request recorded or answered).
    log_changed: watch::Sender<u64>,
    /// Bumped on every operation change that can end a WaitOperation early
    /// (cancel, delete).
    ops_changed: watch::Sender<u64>,
}

struct State {
    default_duration: Duration,
    ops: ops::Store,
    log: Vec<RecordedRequest>,
    /// Index (counting every request ever recorded) of `log[0]`.
    log_base: usize,
    faults: HashMap<Endpoint, Active>,
    /// Operations started over gRPC: the start method's declared types.
    grpc_starts: HashMap<String, grpc::Started>,
    /// Resources created over gRPC: the operation that creates each.
    grpc_creates: HashMap<String, String>,
    /// Called with every request as it is recorded ([`OperationsServer::on_request`]).
    on_request: Option<RequestHook>,
}

/// A callback given each request as it is recorded.
type RequestHook = Arc<dyn Fn(&RecordedRequest) + Send + Sync>;

impl State {
    /// Decides a request's fault (consuming one step of a sequence, or one
    /// draw of a random fault); `None`: answer normally.
    fn take_fault(&mut self, endpoint: Endpoint) -> Option<FaultKind> {
        let active = self.faults.get_mut(&endpoint)?;
        let (fault, used_up) = active.next();
        if used_up {
            self.faults.remove(&endpoint);
        }
        fault
    }
}

impl OperationsServer {
    /// A server with no operations, an empty log, no faults, and a default
    /// operation duration of 10 s.
    pub fn new() -> Self {
        OperationsServer {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    default_duration: DEFAULT_DURATION,
                    ops: ops::Store::default(),
                    log: Vec::new(),
                    log_base: 0,
                    faults: HashMap::new(),
                    grpc_starts: HashMap::new(),
                    grpc_creates: HashMap::new(),
                    on_request: None,
                }),
                log_changed: watch::Sender::new(0),
                ops_changed: watch::Sender::new(0),
            }),
        }
    }

    /// Sets how long operations run when the start request does not say
    /// (`durationMs`). Applies to operations started afterwards, through
    /// this server and all its clones.
    pub fn default_duration(self, duration: Duration) -> Self {
        self.inner.lock().default_duration = duration;
        self
    }

    /// Serves this server over HTTP/1.1 and HTTP/2 on `127.0.0.1`, on a port
    /// the OS picks. Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// If the socket cannot be bound.
    pub async fn serve(&self) -> std::io::Result<ServerHandle> {
        self.serve_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
    }

    /// Serves this server over HTTP/1.1 and HTTP/2 on `addr` (port 0: the
    /// OS picks; see [`ServerHandle::addr`]). Must be called within a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// If the socket cannot be bound (e.g. the port is in use).
    pub async fn serve_on(&self, addr: SocketAddr) -> std::io::Result<ServerHandle> {
        server::serve_on(self, addr).await
    }

    /// Operation `name` as GetOperation would answer it now, or `None` if
    /// there is no such operation. Not logged, and not subject to faults.
    pub fn operation(&self, name: &str) -> Option<Value> {
        let state = self.inner.lock();
        state.ops.get(name).map(|op| op.to_json(Instant::now()))
    }

    /// The names of all operations (not deleted), oldest first.
    pub fn operation_names(&self) -> Vec<String> {
        self.inner.lock().ops.names()
    }

    /// Injects `fault` into every later request routed to `endpoint`,
    /// replacing that endpoint's previous fault. Requests already received
    /// are not affected.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault) {
        let mut state = self.inner.lock();
        match Active::from_fault(fault) {
            Some(active) => state.faults.insert(endpoint, active),
            None => state.faults.remove(&endpoint),
        };
    }

    /// Removes every endpoint's fault.
    pub fn clear_faults(&self) {
        self.inner.lock().faults.clear();
    }
}

impl Default for OperationsServer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for OperationsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("OperationsServer")
            .field("default_duration", &state.default_duration)
            .field("operations", &state.ops.names().len())
            .field("requests", &state.log.len())
            .field("faults", &state.faults)
            .finish()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
