//! Verifying an accepted cancel: wait on the operation with the same state
//! machine as a call — the layer's poll schedule, transient-failure retries
//! and `max_inspect_bytes` — and see whether it ended CANCELLED.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use tokio::runtime::Handle;
use tracing::Span;

use super::bounds::Client;
use super::deliver::spawn_cancel;
use super::outcome::CancelOutcome;
use crate::config::Config;
use crate::error::BoxError;
use crate::forwarded::Forwarded;
use crate::future::{CallContext, ResponseFuture, Track};
use crate::inspect::read_to_end;
use crate::protocol::{PollBody, Target};
use crate::request_body::RequestBody;

/// Polls the cancelled operation until it is done; `None` if it is not done
/// within `timeout` or its polling fails, or outside a tokio runtime.
pub(crate) async fn verify<S, ReqBody, ResBody>(
    svc: S,
    target: Target,
    headers: Forwarded,
    config: Arc<Config>,
    timeout: Duration,
) -> Option<CancelOutcome>
where
    S: Client<ReqBody, ResBody>,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let max_bytes = config.max_inspect_bytes;
    let call = CallContext {
        svc,
        protocol: target.protocol(),
        origin: http::Uri::default(),
        headers,
        shared: config.shared.clone(),
        config,
        runtime: Handle::try_current().ok()?,
        span: Span::current(),
        fire: spawn_cancel::<S, ReqBody, ResBody>,
        // Never cancel again: this only watches.
        cancel_on: crate::extensions::CancelOn::none(),
    };
    let future = ResponseFuture::<S, ReqBody, ResBody>::polling(Track::new(call), target.clone());
    let response = tokio::time::timeout(timeout, future).await.ok()?.ok()?;
    let (data, trailers) = read_to_end(response.into_body(), max_bytes).await?;
    match target.poll_body(&data, trailers.as_ref()) {
        PollBody::Done { cancelled: true } => Some(CancelOutcome::VerifiedCancelled),
        PollBody::Done { cancelled: false } => Some(CancelOutcome::CompletedAnyway),
        _ => None,
    }
}
