//! [`Schedule`]: when the next poll of one operation goes out, and how many
//! went and failed before it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tracing::Span;

use super::PollPolicy;
use crate::protocol::{poll_span, Rpc};

/// The poll timer of one operation, on the time since its call.
#[derive(Debug)]
pub(crate) struct Schedule {
    sleep: Option<Pin<Box<Sleep>>>,
    delay: Duration,
    polls: u32,
    failures: u32,
    /// When the WaitOperation in flight was sent; `None` for a GetOperation.
    waiting: Option<Instant>,
    /// When the call was made: the schedule grows with the time since.
    started: Instant,
}

impl Schedule {
    pub(crate) fn new() -> Self {
        Schedule {
            sleep: None,
            delay: Duration::ZERO,
            polls: 0,
            failures: 0,
            waiting: None,
            started: Instant::now(),
        }
    }

    /// The first poll: at once for a long poll, else `initial_delay` after
    /// the call.
    pub(crate) fn first(&mut self, policy: &PollPolicy, long_poll: bool) {
        let delay = if long_poll {
            Duration::ZERO
        } else {
            policy.delay(true, self.started.elapsed())
        };
        self.set(delay);
    }

    /// After a not-done answer: at once after a long poll that took at least
    /// half its timeout, else on the backoff schedule.
    pub(crate) fn not_done(&mut self, policy: &PollPolicy) {
        self.failures = 0;
        let delay = match (self.waiting, policy.wait) {
            (Some(sent), Some(timeout)) if sent.elapsed() >= timeout / 2 => Duration::ZERO,
            _ => policy.delay(self.polls == 0, self.started.elapsed()),
        };
        self.set(delay);
    }

    /// After a transient failure: schedules another poll (no sooner than
    /// `after`, capped at `max_delay`), or `false` when
    /// `max_transient_failures` in a row have run out.
    pub(crate) fn retry(&mut self, policy: &PollPolicy, after: Option<Duration>) -> bool {
        self.failures += 1;
        if self.failures > policy.max_transient_failures {
            return false;
        }
        let delay = policy
            .delay(self.polls == 0, self.started.elapsed())
            .max(after.unwrap_or_default().min(policy.max_delay));
        self.set(delay);
        true
    }

    /// The next poll at once (after WaitOperation turned out unsupported).
    pub(crate) fn now(&mut self) {
        self.set(Duration::ZERO);
    }

    fn set(&mut self, delay: Duration) {
        self.delay = delay;
        let at = Instant::now() + delay;
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// Ready when the next poll is due.
    pub(crate) fn poll_due(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }

    /// Counts a poll being sent, and returns its `lro.poll` span.
    pub(crate) fn sent(&mut self, rpc: Rpc) -> Span {
        self.polls += 1;
        self.waiting = matches!(rpc, Rpc::Wait(_)).then(Instant::now);
        let delay_ms = u64::try_from(self.delay.as_millis()).unwrap_or(u64::MAX);
        poll_span(self.polls, delay_ms, rpc)
    }

    /// Polls sent so far.
    pub(crate) fn polls(&self) -> u32 {
        self.polls
    }

    /// Whether the poll in flight is a WaitOperation.
    pub(crate) fn waiting(&self) -> bool {
        self.waiting.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn transient_failures_run_out_and_a_not_done_answer_resets_them() {
        let policy = PollPolicy::new().jitter(false).max_transient_failures(2);
        let mut schedule = Schedule::new();
        schedule.first(&policy, false);
        assert_eq!(schedule.delay, Duration::from_secs(1));
        assert!(schedule.retry(&policy, Some(Duration::from_secs(7))));
        assert_eq!(
            schedule.delay,
            Duration::from_secs(7),
            "Retry-After honoured"
        );
        assert!(schedule.retry(&policy, None));
        assert!(
            !schedule.retry(&policy, None),
            "a third failure in a row gives up"
        );
        schedule.not_done(&policy);
        assert!(
            schedule.retry(&policy, None),
            "a not-done answer resets the count"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_poll_that_took_half_its_timeout_polls_again_at_once() {
        let policy = PollPolicy::new()
            .jitter(false)
            .wait_operation(Duration::from_secs(10));
        let mut schedule = Schedule::new();
        schedule.first(&policy, true);
        assert_eq!(schedule.delay, Duration::ZERO);
        let _span = schedule.sent(Rpc::Wait(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(6)).await;
        schedule.not_done(&policy);
        assert_eq!(schedule.delay, Duration::ZERO);
        let _span = schedule.sent(Rpc::Get);
        assert!(!schedule.waiting());
        schedule.not_done(&policy);
        assert!(schedule.delay > Duration::ZERO);
    }
}
