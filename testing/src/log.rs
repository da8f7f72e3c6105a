//! The request log: [`RecordedRequest`] and [`WaitTimeout`], the
//! [`OperationsServer`] methods that read it, and how the server records
//! each request and fills its answer in.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use tokio::time::Instant;

use super::{Endpoint, FaultKind, Inner, OperationsServer};
use crate::BoxError;

/// The `status` of a [`RecordedRequest`] whose answer is still being
/// prepared (during a [`Fault::Latency`](super::Fault::Latency) delay or a
/// WaitOperation): `102 Processing`.
pub(crate) const PENDING: StatusCode = StatusCode::PROCESSING;

/// The `status` of a [`RecordedRequest`] whose caller went away (the
/// service future or the connection was dropped) before it was answered:
/// `499` (nginx's "client closed request").
pub(crate) fn client_closed() -> StatusCode {
    StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
}

/// One request the [`OperationsServer`](super::OperationsServer) received.
///
/// A request is recorded when it *arrives* — after its body has been read,
/// before any [`Fault`](super::Fault) is applied — so that
/// [`wait_for`](super::OperationsServer::wait_for) sees it at once, even
/// while its answer is delayed. `status` is filled in when it is answered.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The request method.
    pub method: Method,
    /// The path and, if there was one, `?` and the query, exactly as
    /// received (still percent-encoded), e.g.
    /// `/v1/projects/p/locations/l/operations/op-1:cancel`.
    pub path: String,
    /// The request headers, as received.
    pub headers: HeaderMap,
    /// The request body (empty if there was none or it could not be read).
    pub body: Bytes,
    /// Which AIP-151 method the request was routed to.
    pub endpoint: Endpoint,
    /// The operation name (percent-decoded, without the `/{version}/` prefix
    /// or `:verb`): for Get, Cancel, Delete and Wait the name addressed
    /// (whether or not it exists); for a Start, the name of the operation it
    /// created, filled in as soon as it is created — before the answer is
    /// sent, so a Start whose caller went away before the answer
    /// ([`FaultKind::LateAnswer`]) still names its operation — (`None` if it
    /// failed or was faulted); `None` otherwise.
    pub operation: Option<String>,
    /// The status the server answered. While the answer is pending it is
    /// `102 Processing` (see [`is_answered`](Self::is_answered)); if the
    /// caller dropped the request before it was answered it is `499`. A
    /// [`FaultKind::Disconnect`] (and a [`FaultKind::Hang`] ended by a
    /// graceful shutdown) is recorded as `502`.
    pub status: StatusCode,
    /// For a gRPC call, the `grpc-status` code it was answered with
    /// (`google.rpc.Code`: 0 `OK`, 14 `UNAVAILABLE`, ...); `None` for REST
    /// requests and for gRPC calls not answered (pending, dropped by the
    /// caller, or reset by a fault). `status` then holds that code's HTTP
    /// status (AIP-193 mapping).
    pub grpc_status: Option<i32>,
    /// The fault injected into this request ([`OperationsServer::inject`](super::OperationsServer::inject)),
    /// or `None` if it was answered normally.
    pub fault: Option<FaultKind>,
    /// When the request arrived (was recorded: its body read, before any
    /// fault), on the tokio clock — so under `tokio::time::pause` it is the
    /// paused time. `examples/load.rs` measures drop→cancel-arrival latency
    /// with it.
    pub received_at: Instant,
    /// When the answer was decided (`status` filled in), on the same clock;
    /// `None` while it is pending. An operation's `done` in an answer is
    /// read between `received_at` and this instant.
    pub answered_at: Option<Instant>,
}

impl RecordedRequest {
    /// Whether the request has been answered (`status` is no longer
    /// `102 Processing`).
    pub fn is_answered(&self) -> bool {
        self.status != PENDING
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// [`OperationsServer::wait_for`](super::OperationsServer::wait_for)'s
/// condition did not hold before its timeout.
///
/// `Display` and `Debug` list every request received (method, path, status,
/// endpoint), so a failing assertion shows what the server saw.
pub struct WaitTimeout {
    pub(crate) timeout: Duration,
    pub(crate) requests: Vec<RecordedRequest>,
}

impl WaitTimeout {
    /// The timeout that passed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The request log when the timeout passed.
    pub fn requests(&self) -> &[RecordedRequest] {
        &self.requests
    }
}

struct Line<'a>(&'a RecordedRequest);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(f, "{} {} -> ", r.method, r.path)?;
        if r.is_answered() {
            write!(f, "{}", r.status.as_u16())?;
        } else {
            f.write_str("(pending)")?;
        }
        write!(f, " [{:?}]", r.endpoint)?;
        if let Some(fault) = &r.fault {
            write!(f, " (fault: {fault:?})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "condition not met within {:?}; {} request(s) received",
            self.timeout,
            self.requests.len()
        )?;
        for (i, r) in self.requests.iter().enumerate() {
            write!(f, "{} {}", if i == 0 { ":" } else { ";" }, Line(r))?;
        }
        Ok(())
    }
}

impl fmt::Debug for WaitTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitTimeout")
            .field("timeout", &self.timeout)
            .field(
                "requests",
                &self.requests.iter().map(Line).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl std::error::Error for WaitTimeout {}

impl OperationsServer {
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
    /// # use tower_lro_testing::{Endpoint, OperationsServer};
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
}

/// Fills in a logged request's status when answered, or `499` if dropped
/// before that.
pub(super) struct Answering<'a> {
    inner: &'a Inner,
    /// The request's index in the log (counting every request ever
    /// recorded).
    pub(super) index: usize,
    answered: bool,
}

impl Answering<'_> {
    pub(super) fn finish(mut self, status: StatusCode) {
        self.answered = true;
        self.inner.set_answer(self.index, status);
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.inner.set_answer(self.index, client_closed());
        }
    }
}

impl Inner {
    /// Fills in the name of the operation a logged Start created.
    pub(super) fn set_created(&self, index: usize, name: String) {
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
            entry.answered_at = Some(Instant::now());
            tracing::debug!(
                method = %entry.method,
                path = %entry.path,
                endpoint = ?entry.endpoint,
                status = status.as_u16(),
                "tower_lro_testing request answered"
            );
        }
        drop(state);
        self.log_changed.send_modify(|v| *v += 1);
    }

    /// Logs a request as it arrives (its body read) and decides its fault:
    /// the guard that fills its answer in (holding its index in the log),
    /// and the fault (`None`: answer normally).
    pub(super) fn record(
        &self,
        parts: &http::request::Parts,
        endpoint: Endpoint,
        operation: Option<String>,
        body: &Result<Bytes, BoxError>,
    ) -> (Answering<'_>, Option<FaultKind>) {
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
                status: PENDING,
                grpc_status: None,
                fault: fault.clone(),
                received_at: Instant::now(),
                answered_at: None,
            });
            let hook = state.on_request.clone().zip(state.log.last().cloned());
            (index, fault, hook)
        };
        self.log_changed.send_modify(|v| *v += 1);
        if let Some((hook, recorded)) = hook {
            hook(&recorded);
        }
        let answering = Answering {
            inner: self,
            index,
            answered: false,
        };
        (answering, fault)
    }
}
