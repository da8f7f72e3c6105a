//! [`WireStatus`]: a failed answer's status, whatever the protocol.

use std::fmt;

use http::StatusCode;
use tracing::Span;

/// The status of an answer the layer did not accept: an HTTP status for
/// REST/JSON, a `google.rpc.Code` for gRPC (gRPC over HTTP/2, "Responses":
/// `grpc-status` in the trailers or a trailers-only answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireStatus {
    /// An HTTP status (RFC 9110 §15).
    Http(StatusCode),
    /// A gRPC status code (`google.rpc.Code`: 14 is `UNAVAILABLE`).
    Grpc(i32),
}

impl WireStatus {
    /// The HTTP status, if this is one.
    pub fn http(&self) -> Option<StatusCode> {
        match self {
            WireStatus::Http(status) => Some(*status),
            WireStatus::Grpc(_) => None,
        }
    }

    /// Records the status on a span (`http.response.status_code` or
    /// `rpc.grpc.status_code`).
    pub(crate) fn record(&self, span: &Span) {
        match self {
            WireStatus::Http(status) => span.record("http.response.status_code", status.as_u16()),
            WireStatus::Grpc(code) => span.record("rpc.grpc.status_code", code),
        };
    }
}

impl From<StatusCode> for WireStatus {
    fn from(status: StatusCode) -> Self {
        WireStatus::Http(status)
    }
}

/// `HTTP 503 Service Unavailable`, `gRPC status 14`.
impl fmt::Display for WireStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireStatus::Http(status) => write!(f, "HTTP {status}"),
            WireStatus::Grpc(code) => write!(f, "gRPC status {code}"),
        }
    }
}
