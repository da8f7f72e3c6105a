//! Sending one journaled operation's CancelOperation.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use tower::ServiceExt;
use tower_service::Service;
use tracing::{field, Instrument, Span};

use super::{Entry, Protocol};
use crate::error::BoxError;
use crate::request_body::RequestBody;

/// How a reaped cancel ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    Accepted,
    NotFound,
    Unimplemented,
    Failed,
}

impl Settled {
    fn as_str(self) -> &'static str {
        match self {
            Settled::Accepted => "accepted",
            Settled::NotFound => "not_found",
            Settled::Unimplemented => "unimplemented",
            Settled::Failed => "failed",
        }
    }
}

/// Sends `entry`'s CancelOperation through `svc`: the route's method to its
/// URI (same origin as the request that started the operation), the
/// journaled headers, an empty body with `content-length: 0` (AIP-151).
pub(crate) async fn cancel_entry<S, B, ResBody>(svc: S, entry: &Entry, timeout: Duration) -> Settled
where
    S: Service<Request<B>, Response = Response<ResBody>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    let span = tracing::info_span!(
        parent: None,
        "lro.cancel",
        operation.name = %entry.name(),
        reason = "reaped",
        attempt = 1,
        http.response.status_code = field::Empty,
        outcome = field::Empty,
    );
    let settled = attempt(svc, entry, timeout).instrument(span.clone()).await;
    span.record("outcome", settled.as_str());
    settled
}

async fn attempt<S, B, ResBody>(svc: S, entry: &Entry, timeout: Duration) -> Settled
where
    S: Service<Request<B>, Response = Response<ResBody>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    if entry.protocol() == Protocol::Grpc {
        tracing::warn!("reaped gRPC cancel not sent: no gRPC delivery in this build");
        return Settled::Failed;
    }
    let (Ok(uri), Ok(method)) = (entry.route().uri(), entry.route().method()) else {
        tracing::warn!("journaled route unreadable; entry kept");
        return Settled::Failed;
    };
    let mut request = Request::new(B::empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = entry.header_map();
    request
        .headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    match tokio::time::timeout(timeout, svc.oneshot(request)).await {
        Ok(Ok(response)) => {
            let status = response.status();
            Span::current().record("http.response.status_code", status.as_u16());
            classify(status)
        }
        Ok(Err(e)) => {
            let e: BoxError = e.into();
            tracing::warn!(error = %e, "reaped cancel failed in transport");
            Settled::Failed
        }
        Err(_) => {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "reaped cancel timed out"
            );
            Settled::Failed
        }
    }
}

fn classify(status: StatusCode) -> Settled {
    if status.is_success() {
        Settled::Accepted
    } else if status == StatusCode::NOT_FOUND {
        Settled::NotFound
    } else if status == StatusCode::NOT_IMPLEMENTED {
        Settled::Unimplemented
    } else {
        Settled::Failed
    }
}
