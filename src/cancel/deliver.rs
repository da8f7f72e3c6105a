//! Delivering one CancelOperation: detached on the runtime captured at
//! `call`, through a clone of the inner service, retried with backoff within
//! the policy's deadline, bounded in flight and queued, counted and traced.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::Body;
use tokio::runtime::Handle;
use tokio::time::Instant;
use tower::ServiceExt;
use tower_service::Service;
use tracing::{Instrument, Span};

use super::bounds::Client;
use super::policy::Reason;
use super::stats::Counters;
use super::verify::verify;
use crate::config::Config;
use crate::error::BoxError;
use crate::inspect::read_to_end;
use crate::journal_hook::JournalSlot;
use crate::protocol::{cancel_span, CancelAnswer, CancelHead, Rpc, Target};
use crate::request_body::RequestBody;
use crate::retry::backoff;
use crate::shared::Shared;

/// Everything a detached cancel needs, taken from the response future.
pub(crate) struct CancelJob<S> {
    pub(crate) svc: S,
    pub(crate) target: Target,
    /// The original request's forwarded headers and the target's own.
    pub(crate) headers: HeaderMap,
    pub(crate) reason: Reason,
    pub(crate) config: Arc<Config>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) runtime: Handle,
    pub(crate) call_span: Span,
    /// The operation's journal entry: removed once the cancel settles.
    pub(crate) journal: JournalSlot,
}

impl<S> CancelJob<S> {
    /// A cancel fired by request (explicit or reaped) rather than by a
    /// tracked call: the layer's `config`, no journal entry of its own.
    pub(crate) fn direct(
        svc: S,
        target: Target,
        headers: HeaderMap,
        reason: Reason,
        config: Arc<Config>,
        runtime: Handle,
    ) -> Self {
        CancelJob {
            svc,
            target,
            headers,
            reason,
            shared: config.shared.clone(),
            config,
            runtime,
            call_span: Span::current(),
            journal: JournalSlot::default(),
        }
    }
}

/// Counts a cancel that never ran (its task dropped by a shutting-down
/// runtime), and keeps `pending` right.
struct PendingGuard {
    shared: Arc<Shared>,
    armed: Option<String>,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.shared
            .pending
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        if let Some(name) = self.armed.take() {
            Counters::bump(&self.shared.counters.lost);
            tracing::warn!(operation.name = %name, "cancel lost: the runtime shut down before it was sent");
        }
    }
}

/// Spawns one detached cancel. Called from the response future (possibly in
/// its `Drop`): never blocks, never panics.
pub(crate) fn spawn_cancel<S, ReqBody, ResBody>(job: CancelJob<S>)
where
    S: Client<ReqBody, ResBody>,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let shared = job.shared.clone();
    Counters::bump(&shared.counters.fired);
    let capacity = shared.capacity;
    let admitted = shared
        .pending
        .fetch_update(
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
            |n| (n < capacity).then_some(n + 1),
        )
        .is_ok();
    if !admitted {
        Counters::bump(&shared.counters.shed);
        tracing::warn!(
            parent: &job.call_span,
            operation.name = %job.target.name(),
            reason = job.reason.as_str(),
            "cancel shed: {capacity} cancels already in flight or queued"
        );
        return;
    }
    let guard = PendingGuard {
        shared: shared.clone(),
        armed: Some(job.target.name().to_string()),
    };
    let span = cancel_span(job.target.name(), job.reason.as_str(), &job.call_span);
    job.target.record_rpc(&span, Rpc::Cancel);
    let runtime = job.runtime.clone();
    let tracker = shared.tracker.clone();
    let task = async move {
        let mut guard = guard;
        settle::<S, ReqBody, ResBody>(job).await;
        guard.armed = None;
    }
    .instrument(span);
    tracker.spawn_on(task, &runtime);
}

/// How one CancelOperation ended: what
/// [`CancelOnDrop::cancel`](crate::CancelOnDrop::cancel) resolves to, and the
/// `outcome` of its `lro.cancel` span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// Accepted (2xx; gRPC OK). AIP-151: cancellation is asynchronous, the
    /// operation may still finish.
    Accepted,
    /// Accepted, and with [`CancelPolicy::verify`](crate::CancelPolicy::verify)
    /// GetOperation then showed it ended CANCELLED.
    VerifiedCancelled,
    /// Accepted, but with `verify` the operation was seen to end otherwise.
    CompletedAnyway,
    /// The operation does not exist (404; gRPC NOT_FOUND).
    NotFound,
    /// The server does not implement CancelOperation (501 or an AIP-193
    /// `UNIMPLEMENTED`; gRPC 12).
    Unimplemented,
    /// Not sent: the server answered UNIMPLEMENTED recently.
    UnimplementedSkipped,
    /// A non-retried error, or retries ran out of time (the policy's deadline).
    Failed,
}

impl CancelOutcome {
    /// The outcome's name, as recorded on the `lro.cancel` span.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelOutcome::Accepted => "accepted",
            CancelOutcome::VerifiedCancelled => "verified_cancelled",
            CancelOutcome::CompletedAnyway => "completed_anyway",
            CancelOutcome::NotFound => "not_found",
            CancelOutcome::Unimplemented => "unimplemented",
            CancelOutcome::UnimplementedSkipped => "unimplemented_skipped",
            CancelOutcome::Failed => "failed",
        }
    }

    fn count(self, c: &Counters) {
        let counter = match self {
            CancelOutcome::Accepted => &c.accepted,
            CancelOutcome::VerifiedCancelled => {
                Counters::bump(&c.accepted);
                &c.verified_cancelled
            }
            CancelOutcome::CompletedAnyway => {
                Counters::bump(&c.accepted);
                &c.completed_anyway
            }
            CancelOutcome::NotFound => &c.not_found,
            CancelOutcome::Unimplemented | CancelOutcome::UnimplementedSkipped => &c.unimplemented,
            CancelOutcome::Failed => &c.failed,
        };
        Counters::bump(counter);
    }

    fn log(self, started: Instant, authority: &str) {
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match self {
            CancelOutcome::Accepted => {
                tracing::info!(elapsed_ms, "operation cancelled (CancelOperation accepted)")
            }
            CancelOutcome::VerifiedCancelled => tracing::info!(
                elapsed_ms,
                "operation cancelled: GetOperation shows it ended CANCELLED"
            ),
            CancelOutcome::CompletedAnyway => tracing::warn!(
                elapsed_ms,
                "cancel accepted, but the operation ended without CANCELLED"
            ),
            CancelOutcome::NotFound => tracing::info!(elapsed_ms, "cancel: operation not found"),
            CancelOutcome::Unimplemented | CancelOutcome::UnimplementedSkipped => tracing::warn!(
                authority,
                "cancel not sent: the server does not implement CancelOperation (UNIMPLEMENTED)"
            ),
            CancelOutcome::Failed => tracing::warn!(elapsed_ms, "cancel failed"),
        }
    }
}

/// Delivers one cancel now, in the caller's task (an explicit or reaped
/// cancel): the same policy, slots, memo, counters and `lro.cancel` span as
/// a detached one; resolves to its outcome.
pub(crate) async fn deliver_now<S, ReqBody, ResBody>(job: CancelJob<S>) -> CancelOutcome
where
    S: Client<ReqBody, ResBody>,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    Counters::bump(&job.shared.counters.fired);
    let span = cancel_span(job.target.name(), job.reason.as_str(), &job.call_span);
    settle::<S, ReqBody, ResBody>(job).instrument(span).await
}

/// Delivers, counts the outcome, and removes the operation's journal entry
/// once the cancel settled (a failed cancel's entry stays, for a reaper once
/// this process's lease ends).
async fn settle<S, ReqBody, ResBody>(mut job: CancelJob<S>) -> CancelOutcome
where
    S: Client<ReqBody, ResBody>,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let shared = job.shared.clone();
    let mut journal = std::mem::take(&mut job.journal);
    let outcome = deliver::<S, ReqBody, ResBody>(job).await;
    outcome.count(&shared.counters);
    if outcome != CancelOutcome::Failed {
        journal.remove();
    }
    outcome
}

async fn deliver<S, ReqBody, ResBody>(mut job: CancelJob<S>) -> CancelOutcome
where
    S: Client<ReqBody, ResBody>,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let started = Instant::now();
    let authority = job.target.authority().to_owned();
    let outcome = if job.shared.unimplemented_at(&authority) {
        CancelOutcome::UnimplementedSkipped
    } else {
        let deadline = started + job.config.cancel.deadline;
        attempts(&mut job, deadline).await
    };
    let outcome = match (outcome, job.config.cancel.verify) {
        (CancelOutcome::Accepted, Some(timeout)) => verify::<S, ReqBody, ResBody>(job, timeout)
            .await
            .unwrap_or(CancelOutcome::Accepted),
        (outcome, _) => outcome,
    };
    Span::current().record("outcome", outcome.as_str());
    outcome.log(started, &authority);
    outcome
}

/// Sends the cancel until an answer is final, the attempts run out or the
/// deadline passes. A slot is held per attempt: a cancel backing off, or
/// honouring a Retry-After, sends nothing and holds no slot.
// `&mut`: a `&CancelJob` held across an await would need `S: Sync`.
async fn attempts<S, ReqBody, ResBody>(job: &mut CancelJob<S>, deadline: Instant) -> CancelOutcome
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    ReqBody: RequestBody,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let (config, shared) = (job.config.clone(), job.shared.clone());
    let policy = &config.cancel;
    let span = Span::current();
    let mut attempt = 0;
    loop {
        let Ok(Ok(slot)) = tokio::time::timeout_at(deadline, shared.slots.acquire()).await else {
            tracing::warn!(attempt, "no cancel slot free before the cancel deadline");
            return CancelOutcome::Failed;
        };
        if attempt > 0 {
            Counters::bump(&shared.counters.retried);
        }
        attempt += 1;
        span.record("attempt", attempt);
        let budget = policy
            .attempt_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let after = match attempt_once(job, budget, attempt).await {
            CancelAnswer::Accepted => return CancelOutcome::Accepted,
            CancelAnswer::NotFound => return CancelOutcome::NotFound,
            CancelAnswer::Failed(_) => return CancelOutcome::Failed,
            CancelAnswer::Unimplemented => {
                shared
                    .remember_unimplemented(job.target.authority(), policy.remember_unimplemented);
                return CancelOutcome::Unimplemented;
            }
            CancelAnswer::Retry(after) => after,
        };
        let delay = backoff(
            policy.initial_backoff,
            2.0,
            policy.max_backoff,
            attempt - 1,
            true,
        )
        .max(after.unwrap_or_default());
        let next = Instant::now() + delay;
        if attempt >= policy.attempts || next >= deadline {
            return CancelOutcome::Failed;
        }
        drop(slot);
        tokio::time::sleep_until(next).await;
    }
}

/// One attempt within `budget`, reading the answer included: a server that
/// sends a head and then a body that never ends must not hold the cancel
/// (and its slot) forever. A timeout or transport error is retried.
async fn attempt_once<S, ReqBody, ResBody>(
    job: &mut CancelJob<S>,
    budget: Duration,
    attempt: u32,
) -> CancelAnswer
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ReqBody: RequestBody,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let Some(request) = job.target.request::<ReqBody>(Rpc::Cancel, &job.headers) else {
        debug_assert!(false, "every protocol can build a CancelOperation request");
        return CancelAnswer::Failed(None);
    };
    let svc = job.svc.clone();
    let result = tokio::time::timeout(budget, async move {
        let response = svc.oneshot(request).await.map_err(Into::<BoxError>::into)?;
        Ok::<_, BoxError>(classify(&job.target, response).await)
    })
    .await;
    match result {
        Err(_) => {
            tracing::debug!(attempt, "cancel attempt timed out");
            CancelAnswer::Retry(None)
        }
        Ok(Err(e)) => {
            tracing::debug!(attempt, error = %e, "cancel attempt failed in transport");
            CancelAnswer::Retry(None)
        }
        Ok(Ok(answer)) => answer,
    }
}

/// Classifies a cancel answer: the head, then if the protocol asks, the
/// body (bounded) and trailers.
async fn classify<B>(target: &Target, response: Response<B>) -> CancelAnswer
where
    B: Body<Data = Bytes>,
{
    let (parts, body) = response.into_parts();
    let head = Response::from_parts(parts, ());
    let limit = match target.cancel_head(&head) {
        CancelHead::Answer(answer) => return answer,
        CancelHead::Read(limit) => limit,
    };
    let (data, trailers) = read_to_end(body, limit).await.unwrap_or_default();
    target.cancel_body(&head, &data, trailers.as_ref())
}
