//! A cancel on its way. [`CancelJob`] is what a call hands over when it
//! gives up; [`Job`] is what the delivery pool queues: a [`Cancel`] (the
//! operation, its route and headers, its span and clock) with the inner
//! service, its types erased so that one pool serves every service a layer
//! builds.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{Instrument, Span};

use super::attempt::send;
use super::bounds::Client;
use super::delivery::Delivery;
use super::outcome::CancelOutcome;
use super::policy::Reason;
use super::stats::Counters;
use crate::config::Config;
use crate::error::BoxError;
use crate::forwarded::Forwarded;
use crate::journal_hook::JournalSlot;
use crate::metrics::GaveUp;
use crate::protocol::{CancelAnswer, Rpc, Target};
use crate::request_body::RequestBody;

/// A boxed, `Send` future: one attempt or one verification.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How an accepted cancel is verified for a service type `S` (see
/// [`CancelPolicy::verify`](crate::CancelPolicy::verify)): waits on the
/// operation through `S` with the layer's settings, at most the duration
/// given; `None` if it is not done by then. Chosen where `S`'s bounds hold.
pub(crate) type VerifyFn<S> = fn(
    S,
    Target,
    Forwarded,
    Arc<Config>,
    Arc<Delivery>,
    Duration,
) -> BoxFuture<Option<CancelOutcome>>;

/// Everything a cancel needs, taken from the response future (or built for
/// an explicit or reaped cancel).
pub(crate) struct CancelJob<S> {
    pub(crate) svc: S,
    pub(crate) target: Target,
    /// The original request's forwarded headers.
    pub(crate) headers: Forwarded,
    pub(crate) reason: Reason,
    pub(crate) config: Arc<Config>,
    pub(crate) delivery: Arc<Delivery>,
    /// Where the delivery pool runs if it is not running yet.
    pub(crate) runtime: Handle,
    pub(crate) call_span: Span,
    /// The operation's journal entry: removed once the cancel settles.
    pub(crate) journal: JournalSlot,
    /// How an accepted cancel is verified; `None`: it is not (a reaped
    /// cancel has no GetOperation route).
    pub(crate) verify: Option<VerifyFn<S>>,
    /// Where the outcome goes, if anywhere (a call ended by shutdown).
    pub(crate) reply: Option<oneshot::Sender<CancelOutcome>>,
    /// The call's metrics, recorded by the delivery rather than the caller.
    pub(crate) metrics: Option<GaveUp>,
}

impl<S> CancelJob<S> {
    /// A cancel fired by request (explicit or reaped) rather than by a
    /// tracked call: the layer's `config` and `delivery`, no journal entry
    /// of its own.
    pub(crate) fn direct(
        svc: S,
        target: Target,
        headers: Forwarded,
        reason: Reason,
        (config, delivery): (Arc<Config>, Arc<Delivery>),
        runtime: Handle,
        verify: Option<VerifyFn<S>>,
    ) -> Self {
        CancelJob {
            svc,
            target,
            headers,
            reason,
            config,
            delivery,
            runtime,
            call_span: Span::current(),
            journal: JournalSlot::default(),
            verify,
            reply: None,
            metrics: None,
        }
    }

    /// The queued form, counted in `pending` (the caller admitted it), with
    /// its `lro.cancel` span; `reply` receives the outcome.
    pub(crate) fn into_job<ReqBody, ResBody>(
        self,
        span: Span,
        reply: Option<oneshot::Sender<CancelOutcome>>,
    ) -> Job
    where
        S: Client<ReqBody, ResBody>,
        ReqBody: RequestBody + Send + 'static,
        ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
    {
        let fired = Instant::now();
        Box::new(Typed::<S, ReqBody, ResBody> {
            svc: self.svc,
            verify: self.verify,
            cancel: Cancel {
                headers: self.headers,
                target: self.target.for_cancel(),
                config: self.config,
                delivery: self.delivery,
                span,
                fired,
                attempt: 0,
                journal: self.journal,
                reply: reply.or(self.reply),
                metrics: self.metrics,
                settled: false,
            },
            types: PhantomData,
        })
    }
}

/// What every queued cancel carries, whatever its inner service. Dropped
/// before it settles (its runtime shut down first), it counts as `lost`.
pub(crate) struct Cancel {
    pub(crate) target: Target,
    headers: Forwarded,
    pub(crate) config: Arc<Config>,
    pub(crate) delivery: Arc<Delivery>,
    /// `lro.cancel`.
    pub(crate) span: Span,
    pub(crate) fired: Instant,
    /// Attempts started so far.
    pub(crate) attempt: u32,
    journal: JournalSlot,
    reply: Option<oneshot::Sender<CancelOutcome>>,
    /// The giving-up call's metrics, until recorded.
    metrics: Option<GaveUp>,
    settled: bool,
}

impl Cancel {
    /// `fired` plus the policy's deadline: no attempt starts after it.
    pub(crate) fn deadline(&self) -> Instant {
        let deadline = self.config.cancel.deadline;
        self.fired
            .checked_add(deadline)
            .or_else(|| self.fired.checked_add(Duration::from_secs(86400 * 365)))
            .unwrap_or(self.fired)
    }

    /// Records the giving-up call's metrics (once): at the first attempt,
    /// else when the cancel settles or is lost.
    pub(crate) fn record_fired(&mut self) {
        if let Some(metrics) = self.metrics.take() {
            metrics.record(self.fired);
        }
    }

    /// Ends the cancel with `outcome`: recorded on its span, logged, counted;
    /// the journal entry removed unless it failed (a reaper retries it once
    /// this process's lease ends); the waiting caller, if any, answered.
    pub(crate) fn settle(&mut self, outcome: CancelOutcome) {
        self.span.record("outcome", outcome.as_str());
        self.span
            .in_scope(|| outcome.log(self.fired, self.target.authority()));
        outcome.count(&self.delivery.counters);
        self.record_fired();
        let metrics = &self.delivery.counters.metrics;
        metrics.cancel_settled(&self.target, outcome, self.fired);
        if outcome != CancelOutcome::Failed {
            self.journal.remove();
        }
        self.settled = true;
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(outcome);
        }
    }
}

impl Drop for Cancel {
    fn drop(&mut self) {
        self.record_fired();
        let delivery = &self.delivery;
        if !self.settled {
            Counters::bump(&delivery.counters.lost);
            delivery.counters.metrics.cancel_lost(&self.target);
            tracing::warn!(
                parent: &self.span,
                operation.name = %self.target.name(),
                "cancel lost: the runtime shut down before it was sent"
            );
        }
        delivery.pending.fetch_sub(1, Ordering::AcqRel);
        delivery.counters.metrics.cancel_unqueued();
    }
}

/// A queued cancel: its [`Cancel`], and how to send it through its inner
/// service.
pub(crate) trait Deliver: Send {
    fn cancel(&mut self) -> &mut Cancel;

    /// One CancelOperation attempt through a clone of the inner service,
    /// inside the cancel's span (the caller bounds it in time).
    fn attempt(&self) -> BoxFuture<CancelAnswer>;

    /// Watches the operation after an accepted cancel (see
    /// [`CancelPolicy::verify`](crate::CancelPolicy::verify)); `None` at
    /// once if this cancel is not verified.
    fn verify(&self, timeout: Duration) -> BoxFuture<Option<CancelOutcome>>;
}

/// A queued cancel, boxed: one allocation each.
pub(crate) type Job = Box<dyn Deliver>;

struct Typed<S, ReqBody, ResBody> {
    svc: S,
    verify: Option<VerifyFn<S>>,
    cancel: Cancel,
    types: PhantomData<fn(ReqBody) -> ResBody>,
}

impl<S, ReqBody, ResBody> Deliver for Typed<S, ReqBody, ResBody>
where
    S: Client<ReqBody, ResBody>,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    fn cancel(&mut self) -> &mut Cancel {
        &mut self.cancel
    }

    fn attempt(&self) -> BoxFuture<CancelAnswer> {
        let c = &self.cancel;
        let request = c.target.request::<ReqBody>(Rpc::Cancel, &c.headers);
        let future = send(self.svc.clone(), request, c.target.protocol());
        Box::pin(future.instrument(c.span.clone()))
    }

    fn verify(&self, timeout: Duration) -> BoxFuture<Option<CancelOutcome>> {
        let c = &self.cancel;
        let Some(verify) = self.verify else {
            return Box::pin(std::future::ready(None));
        };
        let future = verify(
            self.svc.clone(),
            c.target.clone(),
            c.headers.clone(),
            c.config.clone(),
            c.delivery.clone(),
            timeout,
        );
        Box::pin(future.instrument(c.span.clone()))
    }
}
