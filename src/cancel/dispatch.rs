//! The delivery task: takes cancels off the pool's queue and sends up to the
//! policy's `max_in_flight` at a time, each a future in one task (no task
//! per cancel). A cancel answered "retry" waits in a timer queue, holding no
//! slot, and goes before the queue once due; an accepted one is verified if
//! the policy asks. Every cancel ends in [`Cancel::settle`].

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;
use tokio_util::time::DelayQueue;

use super::job::{BoxFuture, Job};
use super::outcome::CancelOutcome;
use super::stats::Counters;
use crate::protocol::CancelAnswer;
use crate::retry::backoff;
use crate::shared::Shared;

/// Cancels started in one poll before the task yields to the runtime: an
/// inner service that answers at once must not starve the task's neighbours.
const STARTS_PER_POLL: usize = 256;

/// The delivery task of one layer's pool.
pub(crate) struct Delivery {
    shared: Arc<Shared>,
    /// Attempts in flight, one slot each.
    sending: FuturesUnordered<Holding<CancelAnswer>>,
    /// Accepted cancels being verified (no slot).
    verifying: FuturesUnordered<Holding<Option<CancelOutcome>>>,
    /// Cancels backing off until their next attempt.
    waiting: DelayQueue<Job>,
    /// Retries whose time has come: sent before the queue.
    due: VecDeque<Job>,
    /// Ended normally: nothing is left to count as lost.
    finished: bool,
}

impl Delivery {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Delivery {
            shared,
            sending: FuturesUnordered::new(),
            verifying: FuturesUnordered::new(),
            waiting: DelayQueue::new(),
            due: VecDeque::new(),
            finished: false,
        }
    }

    /// Starts the next attempt of `job`, or settles it if it may not send:
    /// its server answered UNIMPLEMENTED recently, or its deadline passed
    /// while it waited for a slot. Whether an attempt started.
    fn start(&mut self, mut job: Job) -> bool {
        let c = job.cancel();
        if c.attempt == 0 && self.shared.unimplemented_at(c.target.authority()) {
            c.settle(CancelOutcome::UnimplementedSkipped);
            return false;
        }
        let now = Instant::now();
        let deadline = c.deadline();
        if now >= deadline {
            let attempt = c.attempt;
            c.span.in_scope(|| {
                tracing::warn!(attempt, "no cancel slot free before the cancel deadline")
            });
            c.settle(CancelOutcome::Failed);
            return false;
        }
        if c.attempt > 0 {
            Counters::bump(&self.shared.counters.retried);
        }
        c.attempt += 1;
        c.span.record("attempt", c.attempt);
        let budget = c.config.cancel.attempt_timeout.min(deadline - now);
        let future = job.attempt(budget);
        self.sending.push(Holding::new(job, future));
        true
    }

    /// Acts on an attempt's answer: settles, verifies, or schedules the
    /// retry (full-jitter backoff, never shorter than the server's
    /// `Retry-After`) unless it would start past the deadline or the
    /// attempts are used up.
    fn answered(&mut self, mut job: Job, answer: CancelAnswer) {
        let c = job.cancel();
        let policy = &c.config.cancel;
        let outcome = match answer {
            CancelAnswer::Accepted => match policy.verify {
                Some(timeout) => {
                    let future = job.verify(timeout);
                    self.verifying.push(Holding::new(job, future));
                    return;
                }
                None => CancelOutcome::Accepted,
            },
            CancelAnswer::NotFound => CancelOutcome::NotFound,
            CancelAnswer::Failed(_) => CancelOutcome::Failed,
            CancelAnswer::Unimplemented => {
                let memo = policy.remember_unimplemented;
                self.shared
                    .remember_unimplemented(c.target.authority(), memo);
                CancelOutcome::Unimplemented
            }
            CancelAnswer::Retry(after) => {
                let delay = backoff(
                    policy.initial_backoff,
                    2.0,
                    policy.max_backoff,
                    c.attempt - 1,
                    true,
                )
                .max(after.unwrap_or_default());
                match Instant::now().checked_add(delay) {
                    Some(next) if c.attempt < policy.attempts && next < c.deadline() => {
                        self.waiting.insert_at(job, next);
                        return;
                    }
                    _ => CancelOutcome::Failed,
                }
            }
        };
        c.settle(outcome);
    }

    /// Takes in what finished: answers, verifications, retries now due.
    /// Whether anything did.
    fn collect(&mut self, cx: &mut Context<'_>) -> bool {
        let mut any = false;
        while let Poll::Ready(Some((job, answer))) = self.sending.poll_next_unpin(cx) {
            any = true;
            let answer = answer.unwrap_or_else(|| {
                tracing::error!("a cancel attempt panicked (in the inner service?)");
                CancelAnswer::Failed(None)
            });
            if let Some(job) = job {
                self.answered(job, answer);
            }
        }
        while let Poll::Ready(Some((job, verified))) = self.verifying.poll_next_unpin(cx) {
            any = true;
            if let Some(mut job) = job {
                let outcome = verified.flatten().unwrap_or(CancelOutcome::Accepted);
                job.cancel().settle(outcome);
            }
        }
        while let Poll::Ready(Some(expired)) = self.waiting.poll_expired(cx) {
            any = true;
            self.due.push_back(expired.into_inner());
        }
        any
    }

    /// Fills the free slots: retries due first, then the queue. How many
    /// attempts started, and whether it stopped at [`STARTS_PER_POLL`].
    fn fill(&mut self, cx: &Context<'_>) -> (usize, bool) {
        let mut started = 0;
        let mut taken = 0;
        while self.sending.len() < self.shared.max_in_flight {
            if taken == STARTS_PER_POLL {
                return (started, true);
            }
            let job = match self.due.pop_front() {
                Some(job) => job,
                None => match self.shared.pool.pop(cx) {
                    Some(job) => job,
                    None => break,
                },
            };
            taken += 1;
            started += usize::from(self.start(job));
        }
        (started, false)
    }

    fn idle(&self) -> bool {
        self.sending.is_empty()
            && self.verifying.is_empty()
            && self.waiting.is_empty()
            && self.due.is_empty()
    }
}

impl Future for Delivery {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut rounds = 0;
        loop {
            let collected = this.collect(cx);
            let (started, yielding) = this.fill(cx);
            if this.idle() {
                if this.shared.pool.stop() {
                    this.finished = true;
                    return Poll::Ready(());
                }
                continue;
            }
            rounds += 1;
            if yielding || rounds == STARTS_PER_POLL {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // New futures must be polled once to register their wakers.
            if started == 0 && !collected {
                return Poll::Pending;
            }
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if !self.finished {
            // Dropped by a runtime shutting down: the queued jobs go too,
            // each counted lost (as are those in flight, waiting or due,
            // dropped with this task's fields).
            drop(self.shared.pool.abandon());
        }
    }
}

/// A job and the future of its attempt (or verification): yields the job
/// back with the result, `None` if the future panicked.
struct Holding<T> {
    job: Option<Job>,
    future: BoxFuture<T>,
}

impl<T> Holding<T> {
    fn new(job: Job, future: BoxFuture<T>) -> Self {
        Holding {
            job: Some(job),
            future,
        }
    }
}

impl<T> Future for Holding<T> {
    type Output = (Option<Job>, Option<T>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = match catch_unwind(AssertUnwindSafe(|| this.future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(value)) => Some(value),
            Err(_) => None,
        };
        Poll::Ready((this.job.take(), result))
    }
}
