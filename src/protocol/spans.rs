//! The layer's spans, with each protocol's attribute names (OpenTelemetry
//! semantic conventions: `url.path` and `http.*` for HTTP, `rpc.*` for RPCs).

use http::Request;
use tracing::{field, Span};

use super::{Protocol, Rpc};
use crate::operation::OperationName;

/// `lro.call`: one call through the layer that may start an operation.
pub(crate) fn call_span<B>(protocol: Protocol, request: &Request<B>) -> Span {
    match protocol {
        Protocol::Rest => tracing::info_span!(
            "lro.call",
            http.request.method = %request.method(),
            url.path = request.uri().path(),
            operation.name = field::Empty,
        ),
    }
}

/// `lro.poll`: one GetOperation or WaitOperation, `delay_ms` after the last.
pub(crate) fn poll_span(attempt: u32, delay_ms: u64, rpc: Rpc) -> Span {
    tracing::info_span!(
        "lro.poll",
        attempt,
        delay_ms,
        rpc.method = rpc.as_str(),
        http.response.status_code = field::Empty,
        rpc.grpc.status_code = field::Empty,
    )
}

/// `lro.cancel`: one cancel with its attempts, a root span that follows
/// from its call's.
pub(crate) fn cancel_span(name: &OperationName, reason: &'static str, call: &Span) -> Span {
    let span = tracing::info_span!(
        parent: None,
        "lro.cancel",
        operation.name = %name,
        reason,
        attempt = field::Empty,
        http.response.status_code = field::Empty,
        rpc.grpc.status_code = field::Empty,
        outcome = field::Empty,
    );
    span.follows_from(call);
    span
}
