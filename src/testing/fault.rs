//! Fault injection: [`Fault`] and the AIP-193 error bodies.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

/// A fault injected into one [`Endpoint`](super::Endpoint) with
/// [`OperationsServer::inject`](super::OperationsServer::inject).
///
/// A fault is decided when a request *arrives* (after it has been recorded
/// in the log). A fault that answers an error status never touches the
/// operation: a faulted Start creates nothing, a faulted Cancel cancels
/// nothing, a faulted Delete deletes nothing.
///
/// Error bodies follow AIP-193:
/// `{"error": {"code": 503, "message": "...", "status": "UNAVAILABLE"}}`, with
/// `status` chosen from the HTTP status: 400 `INVALID_ARGUMENT`,
/// 401 `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`, 404 `NOT_FOUND`,
/// 405 `UNIMPLEMENTED`, 409 `ABORTED`, 412 `FAILED_PRECONDITION`,
/// 429 `RESOURCE_EXHAUSTED` (plus a `retry-after: 1` header, in seconds),
/// 499 `CANCELLED`, 500 `INTERNAL`, 501 `UNIMPLEMENTED`, 502 and 503
/// `UNAVAILABLE`, 504 `DEADLINE_EXCEEDED`; any other 4xx `FAILED_PRECONDITION`,
/// any other 5xx `UNKNOWN`.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum Fault {
    /// Every request to the endpoint is answered with this status and an
    /// AIP-193 error body, until the fault is replaced or cleared.
    ///
    /// `200 OK` means "behave normally". Use 4xx and 5xx codes: any other
    /// code below 400 is answered with that status and a `{}` body (no body
    /// for 204 and 304), and 1xx codes cannot end a response at all.
    Status(StatusCode),
    /// The next `len()` requests to the endpoint are answered with these
    /// statuses, in order (`200 OK` = behave normally for that request);
    /// after that the endpoint behaves normally and the fault is removed.
    /// An empty script removes the endpoint's fault.
    Script(Vec<StatusCode>),
    /// Every request to the endpoint waits this long (on the tokio clock, so
    /// `tokio::time::pause` applies) before it is answered normally. The
    /// operation's state is read *after* the delay.
    Latency(Duration),
    /// Every request to the endpoint is dropped without an answer.
    ///
    /// Served over HTTP ([`OperationsServer::serve`](super::OperationsServer::serve))
    /// the server closes the connection (HTTP/1) or resets the stream
    /// (HTTP/2) instead of answering, so the client sees a transport error.
    /// Called in memory (the [`Service`](tower_service::Service) impl, whose
    /// error type is `Infallible`) it answers what a proxy in front of a
    /// dropped connection would: `502 Bad Gateway` with an `UNAVAILABLE`
    /// body. The request log records `502` either way.
    Disconnect,
}

/// The installed form of a [`Fault`].
#[derive(Debug)]
pub(crate) enum Active {
    Status(StatusCode),
    Script(VecDeque<StatusCode>),
    Latency(Duration),
    Disconnect,
}

impl Active {
    /// `None` when the fault is a no-op (an empty script).
    pub(crate) fn from_fault(fault: Fault) -> Option<Self> {
        match fault {
            Fault::Status(s) => Some(Active::Status(s)),
            Fault::Script(v) if v.is_empty() => None,
            Fault::Script(v) => Some(Active::Script(v.into())),
            Fault::Latency(d) => Some(Active::Latency(d)),
            Fault::Disconnect => Some(Active::Disconnect),
        }
    }
}

/// What to do with one request, decided at arrival.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    Normal,
    Respond(StatusCode),
    Delay(Duration),
    Disconnect,
}

impl Action {
    pub(crate) fn for_status(status: StatusCode) -> Self {
        if status == StatusCode::OK {
            Action::Normal
        } else {
            Action::Respond(status)
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

/// The answer to a request faulted with [`Fault::Status`] / [`Fault::Script`].
pub(crate) fn fault_response(status: StatusCode) -> Response<Full<Bytes>> {
    if status.as_u16() >= 400 {
        let message = format!("Injected fault: {status} (tower_lro::testing::Fault).");
        return error_response(status, &message);
    }
    let mut response = json_response(status, &json!({}));
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

/// The in-memory answer to a request faulted with [`Fault::Disconnect`].
pub(crate) fn disconnect_response() -> Response<Full<Bytes>> {
    error_response(
        StatusCode::BAD_GATEWAY,
        "Injected fault: connection dropped (tower_lro::testing::Fault::Disconnect).",
    )
}
