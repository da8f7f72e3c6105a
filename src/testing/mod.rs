//! An embedded AIP-151 operations server, for tests, demos and benchmarks.
//!
//! [`OperationsServer`] is an in-process, in-memory implementation of the
//! [AIP-151] `google.longrunning.Operations` HTTP/JSON API, with a request
//! log for assertions and per-endpoint fault injection. It is a
//! [`tower_service::Service`] you can call in memory, and it can also be
//! served over HTTP/1.1 and HTTP/2 on a loopback port with
//! [`OperationsServer::serve`]. Clones share one state, and so does every
//! HTTP server started from it.
//!
//! Available with the `testing` cargo feature.
//!
//! Served over HTTP, the same port also speaks gRPC (HTTP/2 requests with
//! `content-type: application/grpc...`): `google.longrunning.Operations`
//! and a start method, `google.cloud.deploy.v1.CloudDeploy/CreateRelease`,
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
//! use tower_lro::testing::{Endpoint, Fault, OperationsServer};
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

mod fault;
mod filter;
pub mod grpc;
mod json;
mod log;
mod ops;
mod route;
mod server;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

pub use self::fault::{Fault, FaultKind};
pub use self::log::{RecordedRequest, WaitTimeout};
pub use self::server::ServerHandle;

use self::fault::Active;
use self::filter::Filter;
use self::route::Target;

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

use crate::BoxError;

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

/// A response, and whether hyper should drop the connection instead.
pub(crate) struct Handled {
    pub(crate) response: Response<Full<Bytes>>,
    pub(crate) disconnect: bool,
}

/// An error answer: an AIP-193 body.
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn not_found(name: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Operation {name} not found."),
        )
    }

    fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
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

    /// Every request received, in arrival order (including those still
    /// being answered, whose `status` is `102`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.lock().log.clone()
    }

    /// The requests routed to `endpoint`, in arrival order.
    pub fn requests_to(&self, endpoint: Endpoint) -> Vec<RecordedRequest> {
        let state = self.inner.lock();
        state
            .log
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .cloned()
            .collect()
    }

    /// The CancelOperation requests for operation `name` (as in
    /// [`RecordedRequest::operation`], percent-decoded), in arrival order.
    pub fn cancels_for(&self, name: &str) -> Vec<RecordedRequest> {
        let state = self.inner.lock();
        state
            .log
            .iter()
            .filter(|r| r.endpoint == Endpoint::Cancel && r.operation.as_deref() == Some(name))
            .cloned()
            .collect()
    }

    /// Forgets the logged requests (e.g. between benchmark iterations; the
    /// log otherwise grows with every request). Requests still being
    /// answered are not re-added.
    pub fn clear_requests(&self) {
        let mut state = self.inner.lock();
        state.log_base += state.log.len();
        state.log.clear();
        drop(state);
        self.inner.log_changed.send_modify(|v| *v += 1);
    }

    /// Waits until `pred` holds for the request log, and returns the log it
    /// held for.
    ///
    /// `pred` is called with a snapshot of the log (without holding any lock,
    /// so it may call this server) now and after every change to the log:
    /// each request is recorded as it arrives — before any fault delays it —
    /// and changed again when answered. No polling: it sleeps on a
    /// notification between checks. `timeout` is measured on the tokio clock.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_lro::testing::{Endpoint, OperationsServer};
    /// # async fn f(server: OperationsServer) -> Result<(), Box<dyn std::error::Error>> {
    /// let name = "projects/p/locations/l/operations/op-1";
    /// server
    ///     .wait_for(Duration::from_secs(5), |log| {
    ///         log.iter().any(|r| r.endpoint == Endpoint::Cancel
    ///             && r.operation.as_deref() == Some(name))
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`WaitTimeout`], listing the requests seen, if `timeout` passes first.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&[RecordedRequest]) -> bool,
    ) -> Result<Vec<RecordedRequest>, WaitTimeout> {
        let mut changed = self.inner.log_changed.subscribe();
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let log = self.requests();
            if pred(&log) {
                return Ok(log);
            }
            let timed_out = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, changed.changed())
                    .await
                    .is_err(),
                // Practically forever; the sender lives as long as `self`.
                None => changed.changed().await.is_err(),
            };
            if timed_out {
                let log = self.requests();
                if pred(&log) {
                    return Ok(log);
                }
                return Err(WaitTimeout {
                    timeout,
                    requests: log,
                });
            }
        }
    }

    /// Calls `hook` with every later request as it is recorded — on
    /// arrival, before any fault delays it, with `status` `102 Processing`
    /// — replacing any previous hook. It runs on the server's task, outside
    /// the server's lock (so it may call this server), and should be quick.
    ///
    /// For waiting on one request among thousands without re-reading the
    /// whole log on every change, as [`wait_for`](Self::wait_for) does:
    /// e.g. to drop a caller exactly when its request has reached the server.
    pub fn on_request(&self, hook: impl Fn(&RecordedRequest) + Send + Sync + 'static) {
        self.inner.lock().on_request = Some(Arc::new(hook));
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

impl<B> tower_service::Service<Request<B>> for OperationsServer
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    /// Always ready.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let never = std::future::pending::<()>();
            Ok(inner.handle(request, never).await.response)
        })
    }
}

/// Fills in a logged request's status when answered, or `499` if dropped
/// before that.
struct Answering<'a> {
    inner: &'a Inner,
    index: usize,
    answered: bool,
}

impl Answering<'_> {
    fn finish(mut self, status: StatusCode) {
        self.answered = true;
        self.inner.set_answer(self.index, status);
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.inner.set_answer(self.index, log::client_closed());
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fills in the name of the operation a logged Start created.
    fn set_created(&self, index: usize, name: String) {
        let mut state = self.lock();
        let Some(i) = index.checked_sub(state.log_base) else {
            return; // cleared meanwhile
        };
        if let Some(entry) = state.log.get_mut(i) {
            entry.operation = Some(name);
        }
        drop(state);
        self.log_changed.send_modify(|v| *v += 1);
    }

    fn set_answer(&self, index: usize, status: StatusCode) {
        let mut state = self.lock();
        let Some(i) = index.checked_sub(state.log_base) else {
            return; // cleared meanwhile
        };
        if let Some(entry) = state.log.get_mut(i) {
            entry.status = status;
            tracing::debug!(
                method = %entry.method,
                path = %entry.path,
                endpoint = ?entry.endpoint,
                status = status.as_u16(),
                "tower_lro::testing request answered"
            );
        }
        drop(state);
        self.log_changed.send_modify(|v| *v += 1);
    }

    /// Logs a request as it arrives (its body read) and decides its fault:
    /// its index in the log, and the fault (`None`: answer normally).
    fn record(
        &self,
        parts: &http::request::Parts,
        endpoint: Endpoint,
        operation: Option<String>,
        body: &Result<Bytes, BoxError>,
    ) -> (usize, Option<FaultKind>) {
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
        let (index, fault, hook) = {
            let mut state = self.lock();
            let fault = state.take_fault(endpoint);
            let index = state.log_base + state.log.len();
            state.log.push(RecordedRequest {
                method: parts.method.clone(),
                path,
                headers: parts.headers.clone(),
                body: body.as_ref().ok().cloned().unwrap_or_default(),
                endpoint,
                operation,
                status: log::PENDING,
                grpc_status: None,
                fault: fault.clone(),
                received_at: Instant::now(),
            });
            let hook = state.on_request.clone().zip(state.log.last().cloned());
            (index, fault, hook)
        };
        self.log_changed.send_modify(|v| *v += 1);
        if let Some((hook, recorded)) = hook {
            hook(&recorded);
        }
        (index, fault)
    }

    /// Records, applies faults, dispatches, and fills the answer in.
    ///
    /// A [`FaultKind::Hang`] waits for `release` (never, in memory; the
    /// graceful shutdown of an HTTP server) and then disconnects.
    pub(crate) async fn handle<B, R>(&self, request: Request<B>, release: R) -> Handled
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
        R: Future<Output = ()>,
    {
        let (parts, body) = request.into_parts();
        let routed = route::classify(&parts.method, &parts.uri);
        let body = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map(|collected| collected.to_bytes());
        let operation = routed.operation().map(str::to_owned);
        let (index, fault) = self.record(&parts, routed.endpoint, operation, &body);
        let answering = Answering {
            inner: self,
            index,
            answered: false,
        };

        let mut late = None;
        let (response, disconnect) = match fault {
            Some(FaultKind::Status(status)) => (fault::fault_response(status), false),
            Some(FaultKind::RetryAfter(status, after)) => {
                (fault::retry_after_response(status, after), false)
            }
            Some(FaultKind::Disconnect) => (fault::disconnect_response(), true),
            Some(FaultKind::Hang) => {
                release.await;
                (fault::disconnect_response(), true)
            }
            other => {
                late = before_work(other).await;
                let (response, created) = self.answer(routed.target, &parts.uri, body).await;
                if let Some(name) = created {
                    self.set_created(index, name);
                }
                (response, false)
            }
        };
        if let Some(delay) = late {
            tokio::time::sleep(delay).await;
        }
        answering.finish(response.status());
        Handled {
            response,
            disconnect,
        }
    }

    /// Answers a request normally: the response, and for a Start the name of
    /// the operation it created.
    async fn answer(
        &self,
        target: Target,
        uri: &Uri,
        body: Result<Bytes, BoxError>,
    ) -> (Response<Full<Bytes>>, Option<String>) {
        let body = match body {
            Ok(body) => body,
            Err(error) => {
                let message = format!("Could not read the request body: {error}.");
                return (
                    fault::error_response(StatusCode::BAD_REQUEST, &message),
                    None,
                );
            }
        };
        match self.dispatch(target, uri, &body).await {
            Ok((value, created)) => (fault::json_response(StatusCode::OK, &value), created),
            Err(Answer::Error(e)) => (fault::error_response(e.status, &e.message), None),
            Err(Answer::NotAllowed { allow, message }) => {
                let mut response = fault::error_response(StatusCode::METHOD_NOT_ALLOWED, &message);
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(allow));
                (response, None)
            }
        }
    }

    /// Answers a request that no fault intercepted: the Operation JSON (or
    /// `{}`), and for a Start the name of the operation created.
    async fn dispatch(
        &self,
        target: Target,
        uri: &Uri,
        body: &Bytes,
    ) -> Result<(Value, Option<String>), Answer> {
        match target {
            Target::Start { target, parent } => {
                let duration = start_duration(uri, body)?;
                let mut state = self.lock();
                let duration = duration.unwrap_or(state.default_duration);
                let now = Instant::now();
                let json = state
                    .ops
                    .create(&parent, target, duration, now)
                    .to_json(now);
                let name = json["name"].as_str().map(str::to_owned);
                Ok((json, name))
            }
            Target::Get(name) => {
                let state = self.lock();
                let op = state
                    .ops
                    .get(&name)
                    .ok_or_else(|| ApiError::not_found(&name))?;
                Ok((op.to_json(Instant::now()), None))
            }
            Target::Cancel(name) => {
                let mut state = self.lock();
                let op = state
                    .ops
                    .get_mut(&name)
                    .ok_or_else(|| ApiError::not_found(&name))?;
                let changed = op.cancel(Instant::now());
                drop(state);
                if changed {
                    self.ops_changed.send_modify(|v| *v += 1);
                }
                Ok((json!({}), None))
            }
            Target::Delete(name) => {
                let removed = self.lock().ops.remove(&name);
                if !removed {
                    return Err(ApiError::not_found(&name).into());
                }
                self.ops_changed.send_modify(|v| *v += 1);
                Ok((json!({}), None))
            }
            Target::List(collection) => Ok((self.list(&collection, uri)?, None)),
            Target::Wait(name) => {
                let timeout = wait_timeout(uri, body)?;
                Ok((self.wait(&name, timeout).await?, None))
            }
            Target::NotFound(message) => Err(ApiError::new(StatusCode::NOT_FOUND, message).into()),
            Target::Invalid(message) => Err(ApiError::invalid(message).into()),
            Target::NotAllowed { allow, message } => Err(Answer::NotAllowed { allow, message }),
        }
    }

    /// ListOperations (AIP-158 paging).
    fn list(&self, collection: &str, uri: &Uri) -> Result<Value, ApiError> {
        let page_size = match route::query_param(uri, "pageSize") {
            None => DEFAULT_PAGE_SIZE,
            Some(raw) => match raw.parse::<i64>() {
                Ok(0) => DEFAULT_PAGE_SIZE,
                Ok(n) if n > 0 => usize::try_from(n)
                    .unwrap_or(MAX_PAGE_SIZE)
                    .min(MAX_PAGE_SIZE),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "Invalid pageSize {raw:?}: must be a non-negative integer."
                    )))
                }
            },
        };
        let after = match route::query_param(uri, "pageToken").filter(|t| !t.is_empty()) {
            None => 0,
            Some(token) => token
                .strip_prefix("after-op-")
                .and_then(|seq| seq.parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid(format!("Invalid pageToken {token:?}.")))?,
        };
        let raw_filter = route::query_param(uri, "filter").unwrap_or_default();
        let filter = Filter::parse(&raw_filter)
            .map_err(|e| ApiError::invalid(format!("Invalid filter {raw_filter:?}: {e}.")))?;
        let state = self.lock();
        let now = Instant::now();
        let (page, next) = state.ops.page(collection, after, page_size, |op| {
            filter.matches(op.is_done(now))
        });
        let mut body = json!({
            "operations": page.iter().map(|op| op.to_json(now)).collect::<Vec<_>>(),
        });
        if let Some(next) = next {
            body["nextPageToken"] = json!(format!("after-op-{next}"));
        }
        Ok(body)
    }

    /// WaitOperation: the operation once done, or when `timeout` passes.
    async fn wait(&self, name: &str, timeout: Duration) -> Result<Value, ApiError> {
        // Subscribe before the first look, so no cancel/delete is missed.
        let mut changed = self.ops_changed.subscribe();
        let deadline = Instant::now() + timeout.min(MAX_WAIT);
        loop {
            let wake = {
                let state = self.lock();
                let op = state
                    .ops
                    .get(name)
                    .ok_or_else(|| ApiError::not_found(name))?;
                let now = Instant::now();
                if op.is_done(now) || now >= deadline {
                    return Ok(op.to_json(now));
                }
                op.done_at().map_or(deadline, |at| at.min(deadline))
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                result = changed.changed() => {
                    if result.is_err() {
                        // Cannot happen (we hold the sender); don't spin.
                        tokio::time::sleep_until(wake).await;
                    }
                }
            }
        }
    }
}

/// Sleeps a [`FaultKind::Latency`] delay before the work; returns a
/// [`FaultKind::LateAnswer`] delay, to sleep after it.
async fn before_work(fault: Option<FaultKind>) -> Option<Duration> {
    match fault {
        Some(FaultKind::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            None
        }
        Some(FaultKind::LateAnswer(delay)) => Some(delay),
        _ => None,
    }
}

/// A non-OK answer from [`Inner::dispatch`].
enum Answer {
    Error(ApiError),
    NotAllowed {
        allow: &'static str,
        message: String,
    },
}

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Self {
        Answer::Error(e)
    }
}

/// A body as a JSON object (`{}` if empty).
fn json_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid(
            "Invalid JSON payload received: expected an object.",
        )),
        Err(e) => Err(ApiError::invalid(format!(
            "Invalid JSON payload received: {e}."
        ))),
    }
}

/// The start request's `durationMs` (query first, then body).
fn start_duration(uri: &Uri, body: &Bytes) -> Result<Option<Duration>, ApiError> {
    let object = json_object(body)?;
    let invalid = |raw: &dyn fmt::Display| {
        ApiError::invalid(format!(
            "Invalid durationMs {raw}: must be a non-negative integer (milliseconds)."
        ))
    };
    if let Some(raw) = route::query_param(uri, "durationMs") {
        let ms = raw.parse::<u64>().map_err(|_| invalid(&raw))?;
        return Ok(Some(Duration::from_millis(ms)));
    }
    match object.get("durationMs") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            let ms = ops::json_u64(value).ok_or_else(|| invalid(value))?;
            Ok(Some(Duration::from_millis(ms)))
        }
    }
}

/// The wait request's `timeout` (query first, then body), at most [`MAX_WAIT`].
fn wait_timeout(uri: &Uri, body: &Bytes) -> Result<Duration, ApiError> {
    let object = json_object(body)?;
    let raw = match route::query_param(uri, "timeout") {
        Some(raw) => Some(raw),
        None => match object.get("timeout") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        },
    };
    match raw {
        None => Ok(MAX_WAIT),
        Some(raw) => ops::parse_duration(&raw)
            .map(|d| d.min(MAX_WAIT))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid timeout {raw:?}: expected a duration in seconds such as \"5s\" or \"1.5s\"."
                ))
            }),
    }
}
