//! Fault injection: [`Fault`], [`FaultKind`] and the AIP-193 error bodies.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

/// A fault injected into one [`Endpoint`](super::Endpoint) with
/// [`OperationsServer::inject`](super::OperationsServer::inject): which
/// requests to that endpoint are faulted, and how ([`FaultKind`]).
///
/// A fault is decided when a request *arrives* (after it has been recorded
/// in the log), and [`RecordedRequest::fault`](super::RecordedRequest::fault)
/// says which one was applied. A fault that answers an error status, hangs
/// or disconnects never touches the operation: a faulted Start creates
/// nothing, a faulted Cancel cancels nothing, a faulted Delete deletes
/// nothing. Only [`FaultKind::LateAnswer`] does the work, and then holds the
/// answer back.
///
/// | variant | which requests | how |
/// |---|---|---|
/// | [`Status`](Self::Status), [`Latency`](Self::Latency), [`Disconnect`](Self::Disconnect), [`Hang`](Self::Hang) | every one | that status / delay / dropped connection / no answer |
/// | [`Always`](Self::Always) | every one | any [`FaultKind`] |
/// | [`Script`](Self::Script), [`Sequence`](Self::Sequence) | the next `len()`, then the fault is removed | one step each, in order |
/// | [`Random`](Self::Random) | each one with probability `rate`, from a seeded generator | one of `faults`, chosen uniformly |
///
/// Error bodies follow AIP-193:
/// `{"error": {"code": 503, "message": "...", "status": "UNAVAILABLE"}}`, with
/// `status` chosen from the HTTP status: 400 `INVALID_ARGUMENT`,
/// 401 `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`, 404 `NOT_FOUND`,
/// 405 `UNIMPLEMENTED`, 409 `ABORTED`, 412 `FAILED_PRECONDITION`,
/// 429 `RESOURCE_EXHAUSTED` (plus a `retry-after: 1` header, in seconds,
/// unless [`FaultKind::RetryAfter`] says otherwise), 499 `CANCELLED`,
/// 500 `INTERNAL`, 501 `UNIMPLEMENTED`, 502 and 503 `UNAVAILABLE`,
/// 504 `DEADLINE_EXCEEDED`; any other 4xx `FAILED_PRECONDITION`, any other
/// 5xx `UNKNOWN`.
///
/// # Example: 30 % of cancels fail, reproducibly
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use tower_lro_testing::{Endpoint, Fault, FaultKind, OperationsServer};
///
/// let server = OperationsServer::new();
/// server.inject(
///     Endpoint::Cancel,
///     Fault::Random {
///         rate: 0.3,
///         faults: vec![
///             FaultKind::Status(StatusCode::SERVICE_UNAVAILABLE),
///             FaultKind::RetryAfter(StatusCode::TOO_MANY_REQUESTS, Duration::from_secs(1)),
///             FaultKind::Disconnect,
///             FaultKind::Hang,
///         ],
///         seed: 7,
///     },
/// );
/// ```
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum Fault {
    /// Every request to the endpoint is answered with this status and an
    /// AIP-193 error body, until the fault is replaced or cleared; the same
    /// as `Always(FaultKind::Status(status))`.
    ///
    /// `200 OK` means "behave normally". Use 4xx and 5xx codes: any other
    /// code below 400 is answered with that status and a `{}` body (no body
    /// for 204 and 304), and 1xx codes cannot end a response at all.
    Status(StatusCode),
    /// The next `len()` requests to the endpoint are answered with these
    /// statuses, in order (`200 OK` = behave normally for that request);
    /// after that the endpoint behaves normally and the fault is removed.
    /// An empty script removes the endpoint's fault. The same as a
    /// [`Sequence`](Self::Sequence) of [`FaultKind::Status`].
    Script(Vec<StatusCode>),
    /// Every request to the endpoint waits this long before it is answered
    /// normally; the same as `Always(FaultKind::Latency(delay))`.
    Latency(Duration),
    /// Every request to the endpoint is dropped without an answer; the same
    /// as `Always(FaultKind::Disconnect)`. See [`FaultKind::Disconnect`].
    Disconnect,
    /// Every request to the endpoint is left unanswered until the caller
    /// gives up; the same as `Always(FaultKind::Hang)`. See
    /// [`FaultKind::Hang`].
    Hang,
    /// Every request to the endpoint gets this fault.
    Always(FaultKind),
    /// The next `len()` requests to the endpoint get these faults, in order
    /// ([`FaultKind::Normal`]: behave normally for that request); after
    /// that the endpoint behaves normally and the fault is removed. An empty
    /// sequence removes the endpoint's fault.
    Sequence(Vec<FaultKind>),
    /// Each request to the endpoint, independently, gets a fault with
    /// probability `rate` (clamped to `0.0..=1.0`; NaN counts as 0): one of
    /// `faults`, chosen uniformly (list a kind twice to make it twice as
    /// likely). The others are answered normally. The fault stays until it
    /// is replaced or cleared; an empty `faults` removes the endpoint's fault.
    ///
    /// Deterministic: the decisions come from
    /// [`fastrand::Rng::with_seed(seed)`](https://docs.rs/fastrand/2/fastrand/struct.Rng.html#method.with_seed),
    /// one draw for "faulted?" and, if it is, one for "which", so the n-th
    /// request to *arrive* at the endpoint after `inject` gets the same
    /// decision in every run with the same seed. (With concurrent callers,
    /// which request arrives n-th may differ from run to run; which of the
    /// first n arrivals are faulted, and how, does not.)
    Random {
        /// The fraction of requests faulted, `0.0..=1.0`.
        rate: f64,
        /// The faults to choose from.
        faults: Vec<FaultKind>,
        /// The seed of the generator.
        seed: u64,
    },
}

/// How one request is faulted: a step of a [`Fault`], and what
/// [`RecordedRequest::fault`](super::RecordedRequest::fault) reports.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// No fault: the request is answered normally (a step of a
    /// [`Fault::Sequence`]). Never reported in the log.
    Normal,
    /// Answered with this status and an AIP-193 error body (see [`Fault`]);
    /// nothing is done. `200 OK` behaves normally, like [`Normal`](Self::Normal).
    Status(StatusCode),
    /// Answered with this status (e.g. 429 or 503), an AIP-193 error body
    /// and `retry-after: N` (RFC 9110 §10.2.3 delay-seconds: the duration in
    /// whole seconds, rounded up, so 1 ms gives `1` and zero gives `0`);
    /// nothing is done.
    RetryAfter(StatusCode, Duration),
    /// Waits this long (on the tokio clock, so `tokio::time::pause`
    /// applies), then answers normally: the operation's state is read, and
    /// changed, *after* the delay; a caller that gives up during the delay
    /// changes nothing.
    Latency(Duration),
    /// Does the work at once — the operation is created, cancelled or
    /// deleted, and the log's `operation` is filled in — but holds the
    /// answer back this long, like a slow network on the way back. A caller
    /// that gives up meanwhile never learns the answer (the log shows `499`)
    /// although the work was done: e.g. a Start whose caller went away,
    /// leaving the operation running.
    LateAnswer(Duration),
    /// Never answered, until the caller gives up (drops the request, closes
    /// the connection or resets the stream: the log then shows `499`).
    /// Served over HTTP, a graceful
    /// [`ServerHandle::shutdown`](super::ServerHandle::shutdown) ends a hung
    /// request as a [`Disconnect`](Self::Disconnect) (the log shows `502`),
    /// and dropping the handle aborts it. Nothing is done.
    Hang,
    /// Dropped without an answer; nothing is done.
    ///
    /// Served over HTTP ([`OperationsServer::serve`](super::OperationsServer::serve)),
    /// HTTP/1 connections are reset (an abortive close: the server sends a
    /// TCP `RST`, so the client sees "connection reset", or "connection
    /// closed before message completed"), HTTP/2 streams are reset
    /// (`RST_STREAM` with `INTERNAL_ERROR`; the connection and its other
    /// streams go on). Called in memory (the
    /// [`Service`](tower_service::Service) impl, whose error type is
    /// `Infallible`) it answers what a proxy in front of a dropped
    /// connection would: `502 Bad Gateway` with an `UNAVAILABLE` body. The
    /// request log records `502` either way.
    Disconnect,
}

impl FaultKind {
    /// `None` for the kinds that mean "behave normally".
    fn applied(self) -> Option<FaultKind> {
        match self {
            FaultKind::Normal => None,
            FaultKind::Status(status) if status == StatusCode::OK => None,
            other => Some(other),
        }
    }
}

/// The installed form of a [`Fault`].
#[derive(Debug)]
pub(crate) enum Active {
    Always(FaultKind),
    Sequence(VecDeque<FaultKind>),
    Random {
        rate: f64,
        faults: Vec<FaultKind>,
        rng: fastrand::Rng,
    },
}

impl Active {
    /// `None` when the fault is a no-op (an empty script or sequence, a
    /// random fault with nothing to choose from).
    pub(crate) fn from_fault(fault: Fault) -> Option<Self> {
        match fault {
            Fault::Status(s) => Some(Active::Always(FaultKind::Status(s))),
            Fault::Latency(d) => Some(Active::Always(FaultKind::Latency(d))),
            Fault::Disconnect => Some(Active::Always(FaultKind::Disconnect)),
            Fault::Hang => Some(Active::Always(FaultKind::Hang)),
            Fault::Always(kind) => Some(Active::Always(kind)),
            Fault::Script(v) => Self::from_fault(Fault::Sequence(
                v.into_iter().map(FaultKind::Status).collect(),
            )),
            Fault::Sequence(v) if v.is_empty() => None,
            Fault::Sequence(v) => Some(Active::Sequence(v.into())),
            Fault::Random { faults, .. } if faults.is_empty() => None,
            Fault::Random { rate, faults, seed } => Some(Active::Random {
                rate: if rate.is_nan() {
                    0.0
                } else {
                    rate.clamp(0.0, 1.0)
                },
                faults,
                rng: fastrand::Rng::with_seed(seed),
            }),
        }
    }

    /// The fault for the next request (`None`: answer normally), and whether
    /// this fault is used up and should be removed.
    pub(crate) fn next(&mut self) -> (Option<FaultKind>, bool) {
        match self {
            Active::Always(kind) => (kind.clone().applied(), false),
            Active::Sequence(steps) => {
                let next = steps.pop_front();
                (next.and_then(FaultKind::applied), steps.is_empty())
            }
            Active::Random { rate, faults, rng } => {
                // `f64()` is in [0, 1): a rate of 1.0 faults every request,
                // 0.0 none.
                if rng.f64() >= *rate {
                    return (None, false);
                }
                let kind = faults[rng.usize(..faults.len())].clone();
                (kind.applied(), false)
            }
        }
    }
}

/// The AIP-193 / google.rpc.Code name for an HTTP status.
pub(crate) fn canonical_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "OK",
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 => "UNIMPLEMENTED",
        409 => "ABORTED",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        502 | 503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ if status.is_client_error() => "FAILED_PRECONDITION",
        _ => "UNKNOWN",
    }
}

/// A response with a JSON body and `content-type: application/json`.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An AIP-193 error response.
pub(crate) fn error_response(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = json!({
        "error": {
            "code": status.as_u16(),
            "message": message,
            "status": canonical_status(status),
        }
    });
    let mut response = json_response(status, &body);
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The answer to a request faulted with [`FaultKind::Status`].
pub(crate) fn fault_response(status: StatusCode) -> Response<Full<Bytes>> {
    if status.as_u16() >= 400 {
        let message = format!("Injected fault: {status} (tower_lro_testing::Fault).");
        return error_response(status, &message);
    }
    let mut response = json_response(status, &json!({}));
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

/// The answer to a request faulted with [`FaultKind::RetryAfter`].
pub(crate) fn retry_after_response(status: StatusCode, after: Duration) -> Response<Full<Bytes>> {
    let mut response = fault_response(status);
    let secs = after
        .as_secs()
        .saturating_add(u64::from(after.subsec_nanos() > 0));
    response.headers_mut().insert(RETRY_AFTER, secs.into());
    response
}

/// The in-memory answer to a request faulted with [`FaultKind::Disconnect`].
pub(crate) fn disconnect_response() -> Response<Full<Bytes>> {
    error_response(
        StatusCode::BAD_GATEWAY,
        "Injected fault: connection dropped (tower_lro_testing::FaultKind::Disconnect).",
    )
}
