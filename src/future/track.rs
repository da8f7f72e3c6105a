//! [`Track`]: what a call the layer inspects carries — the call's context
//! (everything needed to poll and to cancel), its poll schedule, its
//! deadline, and the operation once known.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use tokio::runtime::Handle;
use tokio::time::{Instant, Sleep};
use tracing::{field, Span};

use crate::cancel::{CancelJob, Delivery, Reason, Registration, VerifyFn};
use crate::config::Config;
use crate::extensions::CancelOn;
use crate::forwarded::Forwarded;
use crate::journal_hook::JournalSlot;
use crate::metrics::{CallMetrics, Finished};
use crate::poll::{next_rpc, Schedule};
use crate::protocol::{record_end, record_server, Protocol, Rpc, Target};

/// What a tracked call keeps from `call`: the inner service's clone, the
/// protocol and original request's URI, the forwarded headers, the layer's
/// settings and its cancel delivery, the runtime, the `lro.call` span.
pub(crate) struct CallContext<S> {
    pub(crate) svc: S,
    pub(crate) protocol: Protocol,
    pub(crate) origin: Uri,
    /// The original request's allowlisted headers.
    pub(crate) headers: Forwarded,
    pub(crate) config: Arc<Config>,
    pub(crate) delivery: Arc<Delivery>,
    pub(crate) runtime: Handle,
    pub(crate) span: Span,
    /// `spawn_cancel` for this service's types, chosen in `call` where its
    /// bounds hold, so that `Drop` (which may not add bounds) can use it;
    /// `None` for a context that only watches (verifying a cancel).
    pub(crate) fire: Option<fn(CancelJob<S>)>,
    /// How a cancel this call fires verifies its outcome (chosen in `call`
    /// likewise).
    pub(crate) verify: Option<VerifyFn<S>>,
    /// Which triggers fire a cancel for this call (none if it carried
    /// [`Detached`](crate::Detached)).
    pub(crate) cancel_on: CancelOn,
}

/// A call the layer inspects. Boxed, so that calls the layer does not
/// inspect pay nothing for it.
pub(crate) struct Track<S> {
    pub(crate) call: CallContext<S>,
    pub(crate) schedule: Schedule,
    deadline: Option<Pin<Box<Sleep>>>,
    pub(crate) target: Option<Target>,
    pub(crate) poll_span: Span,
    /// The operation's journal entry, once recorded.
    pub(crate) journal: JournalSlot,
    /// Among the layer's waiting calls, once the operation is known (for
    /// `CancelHandle::shutdown`).
    pub(crate) waiting: Option<Registration>,
    /// The wait's metric attributes and start, with a `Meter`.
    pub(crate) metrics: Option<CallMetrics>,
}

impl<S> Track<S> {
    pub(crate) fn new(call: CallContext<S>) -> Self {
        let deadline = call
            .config
            .deadline
            .map(|d| Box::pin(tokio::time::sleep_until(far_instant(d))));
        Track {
            call,
            schedule: Schedule::new(),
            deadline,
            target: None,
            poll_span: Span::none(),
            journal: JournalSlot::default(),
            waiting: None,
            metrics: None,
        }
    }

    /// Ready when the layer's deadline has passed.
    pub(crate) fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.deadline.as_mut() {
            Some(deadline) => deadline.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }

    /// Records the operation the call now waits on, and schedules the first
    /// poll. `announce`: log "operation started" (not when verifying a cancel).
    pub(crate) fn start(&mut self, target: Target, announce: bool) {
        self.adopt(target, announce);
        let long_poll = self.target.as_ref().is_some_and(|t| {
            matches!(
                next_rpc(&self.call.config.poll, t, |a| {
                    self.call.delivery.wait_unsupported(a)
                }),
                Rpc::Wait(_)
            )
        });
        self.schedule.first(&self.call.config.poll, long_poll);
    }

    /// Records the operation the call now waits on: the span's
    /// `operation.name`, the journal entry.
    pub(crate) fn adopt(&mut self, target: Target, announce: bool) {
        self.call
            .span
            .record("operation.name", field::display(target.name()));
        record_server(&self.call.span, target.authority());
        if announce {
            tracing::info!(parent: &self.call.span, operation.name = %target.name(), "operation started");
            // Not when verifying a cancel (already journaled), nor for a
            // call that nothing cancels.
            if self.call.cancel_on.any() {
                self.journal =
                    JournalSlot::record(&self.call.config.journal, &target, &self.call.headers);
            }
            self.waiting = Some(self.call.delivery.calls.register(target.name().clone()));
            let metrics = &self.call.delivery.counters.metrics;
            self.metrics = metrics.call(&target, &self.call.origin);
        }
        self.target = Some(target);
    }

    /// Stops watching: fires a cancel if an operation was known (it is not
    /// done, or this would not be called) and the call's [`CancelOn`] fires
    /// on `reason` (shutdown's, once shutdown has begun).
    pub(crate) fn give_up(self, reason: Reason) {
        let Track {
            call,
            target,
            journal,
            waiting,
            metrics,
            schedule,
            ..
        } = self;
        let Some(target) = target else { return };
        record_end(&call.span, schedule.polls(), false, None);
        let reason = match &waiting {
            Some(waiting) if waiting.closing() => Reason::Shutdown,
            _ => reason,
        };
        let Some(fire) = call.fire.filter(|_| reason.fires(call.cancel_on)) else {
            if let Some(metrics) = metrics {
                metrics.finished(Finished::GaveUp, schedule.polls());
            }
            tracing::info!(
                parent: &call.span,
                operation.name = %target.name(),
                reason = reason.as_str(),
                "stopped waiting on the operation; not cancelling it (its trigger is off)"
            );
            if let Some(waiting) = waiting {
                waiting.not_cancelled();
            }
            return;
        };
        tracing::info!(
            parent: &call.span,
            operation.name = %target.name(),
            reason = reason.as_str(),
            "gave up on operation before it was done; cancelling"
        );
        fire(CancelJob {
            svc: call.svc,
            target,
            headers: call.headers,
            reason,
            config: call.config,
            delivery: call.delivery,
            runtime: call.runtime,
            call_span: call.span,
            journal,
            verify: call.verify,
            // Shutdown awaits the outcome of the cancels it caused.
            reply: waiting
                .filter(Registration::closing)
                .map(Registration::cancelled),
            // Recorded by the delivery, off the caller's path.
            metrics: metrics.map(|m| m.gave_up(reason, schedule.polls())),
        });
    }
}

/// `Instant::now() + d`, saturating far in the future.
fn far_instant(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86400 * 365 * 30))
}
