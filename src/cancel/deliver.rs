//! Firing a cancel: admitted against the policy's in-flight and queue
//! limits (or shed), given its `lro.cancel` span, and queued on the layer's
//! delivery pool — detached for a tracked call, awaited for an explicit or
//! reaped one.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body::Body;
use tokio::sync::oneshot;

use super::bounds::Client;
use super::job::CancelJob;
use super::outcome::CancelOutcome;
use super::pool::Pool;
use super::stats::Counters;
use crate::error::BoxError;
use crate::protocol::{cancel_span, Rpc};
use crate::request_body::RequestBody;

/// Fires one detached cancel. Called from the response future (possibly in
/// its `Drop`): never blocks (but on the queue's lock), never panics.
pub(crate) fn spawn_cancel<S, ReqBody, ResBody>(job: CancelJob<S>)
where
    S: Client<ReqBody, ResBody>,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let delivery = job.delivery.clone();
    Counters::bump(&delivery.counters.fired);
    let metrics = &delivery.counters.metrics;
    let mut job = job;
    if job.metrics.is_none() {
        metrics.cancel_fired(&job.target, job.reason);
    }
    let capacity = delivery.capacity;
    let admitted = delivery
        .pending
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < capacity).then_some(n + 1)
        })
        .is_ok();
    if !admitted {
        Counters::bump(&delivery.counters.shed);
        if let Some(deferred) = job.metrics.take() {
            deferred.record(tokio::time::Instant::now());
        }
        metrics.cancel_shed(&job.target);
        tracing::warn!(
            parent: &job.call_span,
            operation.name = %job.target.name(),
            reason = job.reason.as_str(),
            "cancel shed: {capacity} cancels already in flight or queued"
        );
        return;
    }
    metrics.cancel_queued();
    let span = cancel_span(job.target.name(), job.reason.as_str(), &job.call_span);
    job.target.record_rpc(&span, Rpc::Cancel);
    let runtime = job.runtime.clone();
    Pool::push(&delivery, job.into_job(span, None), &runtime);
}

/// Delivers one cancel fired by request (an explicit or reaped cancel):
/// the same pool, policy, memo, counters and `lro.cancel` span as a
/// detached one, never shed; resolves to its outcome (`Failed` if the
/// runtime shut down first). Dropping the future does not stop the cancel.
pub(crate) async fn deliver_now<S, ReqBody, ResBody>(job: CancelJob<S>) -> CancelOutcome
where
    S: Client<ReqBody, ResBody>,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let delivery = job.delivery.clone();
    Counters::bump(&delivery.counters.fired);
    delivery.pending.fetch_add(1, Ordering::AcqRel);
    let metrics = &delivery.counters.metrics;
    metrics.cancel_fired(&job.target, job.reason);
    metrics.cancel_queued();
    let span = cancel_span(job.target.name(), job.reason.as_str(), &job.call_span);
    job.target.record_rpc(&span, Rpc::Cancel);
    let runtime = job.runtime.clone();
    let (reply, outcome) = oneshot::channel();
    Pool::push(&delivery, job.into_job(span, Some(reply)), &runtime);
    outcome.await.unwrap_or(CancelOutcome::Failed)
}
