//! The request log: [`RecordedRequest`] and [`WaitTimeout`].

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use tokio::time::Instant;

use super::{Endpoint, FaultKind};

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
