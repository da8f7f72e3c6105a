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
            server.address = field::Empty,
            server.port = field::Empty,
            gcp.longrunning.poll_attempt_count = field::Empty,
            gcp.longrunning.done = field::Empty,
            gcp.longrunning.status_code = field::Empty,
        ),
        Protocol::Grpc => {
            let path = request.uri().path().trim_start_matches('/');
            let (service, method) = path.split_once('/').unwrap_or((path, ""));
            tracing::info_span!(
                "lro.call",
                rpc.system = "grpc",
                rpc.service = service,
                rpc.method = method,
                operation.name = field::Empty,
                server.address = field::Empty,
                server.port = field::Empty,
                gcp.longrunning.poll_attempt_count = field::Empty,
                gcp.longrunning.done = field::Empty,
                gcp.longrunning.status_code = field::Empty,
            )
        }
    }
}

/// `lro.poll`: one GetOperation or WaitOperation, `delay_ms` after the last.
pub(crate) fn poll_span(attempt: u32, delay_ms: u64, rpc: Rpc) -> Span {
    tracing::info_span!(
        "lro.poll",
        attempt,
        delay_ms,
        rpc.system = field::Empty,
        rpc.service = field::Empty,
        rpc.method = rpc.as_str(),
        server.address = field::Empty,
        server.port = field::Empty,
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
        rpc.system = field::Empty,
        rpc.service = field::Empty,
        rpc.method = field::Empty,
        server.address = field::Empty,
        server.port = field::Empty,
        attempt = field::Empty,
        http.response.status_code = field::Empty,
        rpc.grpc.status_code = field::Empty,
        outcome = field::Empty,
    );
    span.follows_from(call);
    span
}

/// Records `rpc.system = "grpc"`, `rpc.service` and (for `lro.cancel`)
/// `rpc.method` on a poll or cancel span of a gRPC operation.
pub(crate) fn record_grpc(span: &Span, rpc: Rpc) {
    span.record("rpc.system", "grpc");
    span.record("rpc.service", super::grpc::requests::OPERATIONS_SERVICE);
    span.record("rpc.method", rpc.as_str());
}

/// Records `server.address` and `server.port` (OpenTelemetry) from a
/// `host:port` authority on a call, poll or cancel span.
pub(crate) fn record_server(span: &Span, authority: &str) {
    if authority.is_empty() || span.is_disabled() {
        return;
    }
    let (host, port) = server_address(authority);
    span.record("server.address", host);
    if let Some(port) = port {
        span.record("server.port", i64::from(port));
    }
}

/// An authority (`host:port`, `[v6]:port`, `host`) as OpenTelemetry's
/// `server.address` (without IPv6 brackets) and `server.port`.
pub(crate) fn server_address(authority: &str) -> (&str, Option<u16>) {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            (host, port.parse::<u16>().ok())
        }
        _ => (authority, None),
    };
    (host.trim_start_matches('[').trim_end_matches(']'), port)
}

/// Records how the wait ended on a call span, with the
/// `gcp.longrunning.*` attributes: polls sent, whether the operation was
/// seen done, and (when done) its `google.rpc.Code` (0 for a response).
pub(crate) fn record_end(span: &Span, polls: u32, done: bool, status_code: Option<i32>) {
    span.record("gcp.longrunning.poll_attempt_count", i64::from(polls));
    span.record("gcp.longrunning.done", done);
    if let Some(code) = status_code {
        span.record("gcp.longrunning.status_code", i64::from(code));
    }
}
