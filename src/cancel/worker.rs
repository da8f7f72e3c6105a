//! A delivery worker: one of at most `max_in_flight` tasks per layer, each
//! taking cancels off the pool one at a time. It starts an attempt (or
//! settles a cancel that may not send: its server answered UNIMPLEMENTED
//! recently, or its deadline passed while it was queued), sends it, and acts
//! on the answer: settle, verify, or put it back to retry after a backoff —
//! holding no worker meanwhile. Every cancel ends in [`Cancel::settle`].
//!
//! [`Cancel::settle`]: super::job::Cancel::settle

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{select, Either};
use tokio::time::{Instant, Sleep};

use super::delivery::Delivery as Shared;
use super::job::{BoxFuture, Job};
use super::outcome::CancelOutcome;
use super::pool::Next;
use super::stats::Counters;
use crate::protocol::CancelAnswer;
use crate::retry::backoff;

/// Takes cancels off `shared`'s pool until none is left. The guard is
/// made here, not when the task first runs: a runtime shutting down may
/// drop the task unpolled, and the pool must still learn of it.
pub(crate) fn worker(shared: Arc<Shared>) -> impl Future<Output = ()> + Send {
    run(Guard {
        shared,
        keeping: false,
        done: false,
    })
}

async fn run(mut guard: Guard) {
    let shared = guard.shared.clone();
    // One timer per worker, moved for each attempt: resetting it later
    // needs no new timer registration.
    let mut limit = Box::pin(tokio::time::sleep(Duration::ZERO));
    loop {
        let (next, more) = shared.pool.next(guard.keeping, shared.max_in_flight);
        guard.keeping = false;
        for _ in 0..more {
            shared.tracker.spawn(boxed(shared.clone()));
        }
        match next {
            Next::Job(job) => deliver(&shared, job, limit.as_mut()).await,
            Next::Keep(at) => {
                guard.keeping = true;
                let woken = std::pin::pin!(shared.pool.wake().notified());
                let due = std::pin::pin!(tokio::time::sleep_until(at));
                select(woken, due).await;
            }
            Next::Exit => {
                guard.done = true;
                return;
            }
        }
        // An inner service that answers at once must not let one worker
        // starve its neighbours on the runtime.
        tokio::task::consume_budget().await;
    }
}

/// A worker with its type named, so that a worker can start another.
fn boxed(shared: Arc<Shared>) -> BoxFuture<()> {
    Box::pin(worker(shared))
}

/// Sends one attempt of `job` within its budget (`limit` reset to it), or
/// settles it if it may not send. An attempt past its budget is dropped
/// and retried.
async fn deliver(shared: &Shared, mut job: Job, mut limit: Pin<&mut Sleep>) {
    let Some(budget) = start(shared, &mut job) else {
        return;
    };
    limit.as_mut().reset(Instant::now() + budget);
    // The attempt is polled first: an answer and the limit at once count as
    // answered.
    let answer = match select(Unwind(job.attempt()), limit).await {
        Either::Left((Some(answer), _)) => answer,
        Either::Left((None, _)) => {
            tracing::error!("a cancel attempt panicked (in the inner service?)");
            CancelAnswer::Failed(None)
        }
        Either::Right(((), _)) => {
            job.cancel()
                .span
                .in_scope(|| tracing::debug!("cancel attempt timed out"));
            CancelAnswer::Retry(None)
        }
    };
    answered(shared, job, answer);
}

/// The next attempt's time budget (the policy's attempt timeout, cut short
/// by the deadline); `None` once the cancel is settled instead.
fn start(shared: &Shared, job: &mut Job) -> Option<Duration> {
    let c = job.cancel();
    if c.attempt == 0 && shared.unimplemented_at(c.target.authority()) {
        c.settle(CancelOutcome::UnimplementedSkipped);
        return None;
    }
    let now = Instant::now();
    if c.attempt == 0 {
        // The deadline bounds retrying, and runs from the first attempt:
        // time queued behind a burst's backlog (slots held by attempts
        // that hang until their timeout) must not eat a cancel's retries.
        c.fired = now;
    }
    let deadline = c.deadline();
    if now >= deadline {
        let attempt = c.attempt;
        c.span
            .in_scope(|| tracing::warn!(attempt, "no cancel slot free before the cancel deadline"));
        c.settle(CancelOutcome::Failed);
        return None;
    }
    if c.attempt > 0 {
        Counters::bump(&shared.counters.retried);
    } else {
        c.record_fired();
    }
    c.attempt += 1;
    c.span.record("attempt", c.attempt);
    Some(c.config.cancel.attempt_timeout.min(deadline - now))
}

/// Acts on an attempt's answer: settles, verifies (in a task of its own,
/// holding no worker), or puts the cancel back to retry (full-jitter
/// backoff, never shorter than the server's `Retry-After`) unless that
/// would start past the deadline or the attempts are used up.
fn answered(shared: &Shared, mut job: Job, answer: CancelAnswer) {
    let c = job.cancel();
    let policy = &c.config.cancel;
    let outcome = match answer {
        CancelAnswer::Accepted => match policy.verify {
            Some(timeout) => return verify(shared, job, timeout),
            None => CancelOutcome::Accepted,
        },
        CancelAnswer::NotFound => CancelOutcome::NotFound,
        CancelAnswer::Failed(_) => CancelOutcome::Failed,
        CancelAnswer::Unimplemented => {
            let memo = policy.remember_unimplemented;
            shared.remember_unimplemented(c.target.authority(), memo);
            CancelOutcome::Unimplemented
        }
        CancelAnswer::Retry(after) => {
            let backoff = backoff(
                policy.initial_backoff,
                2.0,
                policy.max_backoff,
                c.attempt - 1,
                true,
            );
            let delay = backoff.max(after.unwrap_or_default());
            match Instant::now().checked_add(delay) {
                Some(at) if c.attempt < policy.attempts && at < c.deadline() => {
                    return shared.pool.retry(job, at);
                }
                _ => CancelOutcome::Failed,
            }
        }
    };
    c.settle(outcome);
}

/// Watches an accepted cancel's operation to its end, then settles it.
fn verify(shared: &Shared, mut job: Job, timeout: Duration) {
    let watch = Unwind(job.verify(timeout));
    shared.tracker.spawn(async move {
        let verified = watch.await.flatten();
        job.cancel()
            .settle(verified.unwrap_or(CancelOutcome::Accepted));
    });
}

/// Gives the pool back a worker dropped unfinished (its runtime shut down):
/// the last one counts what was queued or waiting as lost.
struct Guard {
    shared: Arc<Shared>,
    /// Asleep keeping the timer heap.
    keeping: bool,
    /// Ended normally.
    done: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.done {
            drop(self.shared.pool.abandon(self.keeping));
        }
    }
}

/// A boxed future polled inside `catch_unwind`: `None` if it panicked, so
/// that a panicking inner service fails one cancel, not the worker.
struct Unwind<T>(BoxFuture<T>);

impl<T> Future for Unwind<T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Some(value)),
            Err(_) => Poll::Ready(None),
        }
    }
}
