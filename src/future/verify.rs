//! Verifying an accepted cancel: wait on the operation with the same state
//! machine as a call — the layer's poll schedule, transient-failure retries
//! and `max_inspect_bytes` — and see whether it ended CANCELLED. Handed to
//! the cancel delivery as a [`VerifyFn`] when a cancel is fired.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tokio::runtime::Handle;
use tower_service::Service;
use tracing::Span;

use super::{CallContext, ResponseFuture, Track};
use crate::cancel::{BoxFuture, CancelOutcome, Delivery, VerifyFn};
use crate::config::Config;
use crate::error::BoxError;
use crate::forwarded::Forwarded;
use crate::inspect::read_to_end;
use crate::protocol::{PollBody, Target};
use crate::request_body::RequestBody;

/// [`verify`] for this service's types, as the delivery stores it.
pub(crate) fn verify_fn<S, ReqBody, ResBody>() -> VerifyFn<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    |svc, target, headers, config, delivery, timeout| {
        Box::pin(verify::<S, ReqBody, ResBody>(
            svc, target, headers, config, delivery, timeout,
        )) as BoxFuture<Option<CancelOutcome>>
    }
}

/// Polls the cancelled operation until it is done; `None` if it is not done
/// within `timeout` or its polling fails, or outside a tokio runtime.
async fn verify<S, ReqBody, ResBody>(
    svc: S,
    target: Target,
    headers: Forwarded,
    config: Arc<Config>,
    delivery: Arc<Delivery>,
    timeout: Duration,
) -> Option<CancelOutcome>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let max_bytes = config.max_inspect_bytes();
    let call = CallContext {
        svc,
        protocol: target.protocol(),
        origin: http::Uri::default(),
        headers,
        delivery,
        config,
        runtime: Handle::try_current().ok()?,
        span: Span::current(),
        // Never cancel again: this only watches.
        fire: None,
        verify: None,
        cancel_on: crate::extensions::CancelOn::none(),
    };
    let future = ResponseFuture::<S, ReqBody, ResBody>::polling(Track::new(call), target.clone());
    let response = tokio::time::timeout(timeout, future).await.ok()?.ok()?;
    let (data, trailers) = read_to_end(response.into_body(), max_bytes).await?;
    match target.poll_body(&data, trailers.as_ref()) {
        PollBody::Done {
            code: crate::operation::Status::CANCELLED,
        } => Some(CancelOutcome::VerifiedCancelled),
        PollBody::Done { .. } => Some(CancelOutcome::CompletedAnyway),
        _ => None,
    }
}
