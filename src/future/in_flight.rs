//! A call dropped before its operation's name was known: a detached task
//! waits (within the cancel deadline) for the original response, reads it,
//! and cancels the operation it names, if any.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;
use tracing::Instrument;

use super::{InFlight, Track};
use crate::cancel::{Counters, Delivery, Reason};
use crate::error::BoxError;
use crate::inspect::{split, Collected};
use crate::protocol::Protocol;

/// Detaches the rest of a call whose caller went away before the name was
/// known. Runs on the runtime captured at `call`; never blocks.
pub(crate) fn spawn_in_flight<S, ReqBody, ResBody>(
    in_flight: InFlight<S::Future, ResBody>,
    mut track: Track<S>,
    reason: Reason,
) where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ReqBody: 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    let runtime = track.call.runtime.clone();
    let tracker = track.call.delivery.tracker.clone();
    let span = track.call.span.clone();
    let guard = LostGuard(Some(track.call.delivery.clone()));
    let limit = track.call.config.cancel.deadline;
    let task = async move {
        let max_bytes = track.call.config.max_inspect_bytes();
        let read = finish_in_flight(in_flight, track.call.protocol, max_bytes);
        let body = tokio::time::timeout(limit, read).await;
        guard.disarm();
        let call = &track.call;
        let Ok(body) = body else {
            Counters::bump(&call.delivery.counters.unanswered);
            call.delivery.counters.metrics.unanswered();
            tracing::warn!(
                limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                "the request abandoned in flight was not answered within the cancel deadline; \
                 an operation it started cannot be cancelled"
            );
            return;
        };
        let target = body.and_then(|(data, trailers)| {
            call.protocol.recognise(
                &call.origin,
                &call.config.protocol,
                call.config.timing(),
                &data,
                trailers.as_ref(),
            )
        });
        match target {
            Some(target) => {
                track.adopt(target, true);
                track.give_up(reason);
            }
            None => tracing::debug!("the request abandoned in flight started no operation"),
        }
    }
    .instrument(span);
    tracker.spawn_on(task, &runtime);
}

/// The body (and trailers) of the original response, if it may hold an
/// Operation.
async fn finish_in_flight<F, E, B>(
    in_flight: InFlight<F, B>,
    protocol: Protocol,
    max_bytes: usize,
) -> Option<(Bytes, Option<HeaderMap>)>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes>,
{
    let (_head, mut collect) = match in_flight {
        InFlight::Call(future) => {
            let response = future.await.ok()?;
            if !protocol.inspects(&response) {
                return None;
            }
            split(response, max_bytes)
        }
        InFlight::Body(body) => *body,
    };
    match std::future::poll_fn(|cx| collect.poll_collect(cx))
        .await
        .ok()?
    {
        Collected::Complete { data, trailers } => Some((data, trailers)),
        Collected::Overflow { .. } => None,
    }
}

/// Counts detached work dropped unfinished by a runtime shutting down: a
/// call whose answer never came, like one past the cancel deadline (it was
/// never `fired`, so it is not `lost`).
struct LostGuard(Option<Arc<Delivery>>);

impl LostGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for LostGuard {
    fn drop(&mut self) {
        if let Some(delivery) = self.0.take() {
            Counters::bump(&delivery.counters.unanswered);
            delivery.counters.metrics.unanswered();
            tracing::warn!(
                "a request abandoned in flight was dropped by the runtime shutting down; \
                 an operation it started cannot be cancelled"
            );
        }
    }
}
