//! [`PollPolicy`]: when the layer sends GetOperation (or WaitOperation).

use std::time::Duration;

/// How often the layer sends `GetOperation` (`GET {prefix}{name}`, AIP-151)
/// while an operation is not done.
///
/// The first poll comes `initial_delay` after the call. After that, each poll
/// comes when the time since the call has grown by the factor `multiplier`:
/// poll *n + 1* is `(multiplier − 1) × (time since the call)` after poll *n*,
/// at most `max_delay`. With the defaults (1 s, ×1.5, at most 30 s) the polls
/// come at 1, 1.5, 2.25, 3.4, 5.1, 7.6, 11.4, 17.1, 25.6, 38.4 s …, then every
/// 30 s. With `jitter`, each delay is shortened by a uniformly random 0–10 %,
/// so that callers started together do not poll in lockstep.
/// Defaults: 1 s, ×1.5, at most 30 s, jitter on, 5 transient failures in a row.
///
/// Why this schedule: an operation of any duration T (up to the point where
/// `max_delay` takes over) is learned of at most `(multiplier − 1) × T` late —
/// half its duration with the defaults — in about ⌈log₁.₅ T⌉ + 1 polls. A
/// schedule that grows each *delay* by the multiplier instead learns of a
/// 1.01 s operation at 2.5 s; and full jitter (a random 0–100 % of each delay)
/// spends polls early and learns late: in the load example, a 10 s
/// operation was learned of up to 13 s late (p99) in up to 9 polls.
///
#[derive(Clone, Debug, PartialEq)]
pub struct PollPolicy {
    pub(crate) initial_delay: Duration,
    pub(crate) multiplier: f64,
    pub(crate) max_delay: Duration,
    pub(crate) jitter: bool,
    pub(crate) max_transient_failures: u32,
    pub(crate) wait: Option<Duration>,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            initial_delay: Duration::from_secs(1),
            multiplier: 1.5,
            max_delay: Duration::from_secs(30),
            jitter: true,
            max_transient_failures: 5,
            wait: None,
        }
    }
}

impl PollPolicy {
    /// The default policy: 1 s, ×1.5, at most 30 s, 0–10 % jitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The delay from the call to the first poll (default 1 s).
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The factor by which the time since the call grows from one poll to the
    /// next (default 1.5). Values below 1.1 (and NaN) are treated as 1.1.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier >= 1.1 { multiplier } else { 1.1 };
        self
    }

    /// The longest delay between two polls (default 30 s).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Whether to shorten each delay by a uniformly random 0–10 % (default
    /// `true`). Turn it off for reproducible timings in tests.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// How many transient poll failures in a row are retried before the call
    /// ends with [`Error::Poll`](crate::Error::Poll) (default 5).
    pub fn max_transient_failures(mut self, failures: u32) -> Self {
        self.max_transient_failures = failures;
        self
    }

    /// Long-poll with `WaitOperation` (AIP-151: `POST {prefix}{name}:wait`,
    /// body `{"timeout": "<seconds>s"}`) instead of sleeping between
    /// `GetOperation`s: the server answers as soon as the operation is done,
    /// or after `timeout`, and the layer waits again at once. A server that
    /// answers 404 or 501 to it does not implement it: the layer falls back to
    /// GET polling on the schedule above and remembers that authority (for
    /// the layer's lifetime) so later operations there poll with GET at once.
    /// Request bodies that cannot carry one
    /// ([`RequestBody::from_bytes`](crate::RequestBody::from_bytes) returns
    /// `None`) poll with GET.
    pub fn wait_operation(mut self, timeout: Duration) -> Self {
        self.wait = Some(timeout);
        self
    }

    /// The delay before the next poll, jitter applied: `initial_delay` before
    /// the first (`elapsed` is then ignored), else `(multiplier − 1) ×
    /// elapsed` (at least 1 ms, at most `max_delay`), where `elapsed` is the
    /// time since the call.
    pub(crate) fn delay(&self, first: bool, elapsed: Duration) -> Duration {
        let delay = if first {
            self.initial_delay
        } else {
            elapsed.mul_f64(self.multiplier - 1.0).clamp(
                Duration::from_millis(1),
                self.max_delay.max(Duration::from_millis(1)),
            )
        };
        if self.jitter {
            delay.mul_f64(1.0 - POLL_JITTER * fastrand::f64())
        } else {
            delay
        }
    }
}

/// The most a poll delay is changed by jitter: 10 %.
const POLL_JITTER: f64 = 0.1;

#[cfg(test)]
mod tests {
    use super::*;

    /// The poll times (since the call) under a policy, for an operation that
    /// never ends.
    fn schedule(p: &PollPolicy, polls: usize) -> Vec<f64> {
        let mut t = Duration::ZERO;
        (0..polls)
            .map(|n| {
                t += p.delay(n == 0, t);
                t.as_secs_f64()
            })
            .collect()
    }

    #[test]
    fn default_schedule_without_jitter() {
        let p = PollPolicy::new().jitter(false);
        let times = schedule(&p, 14);
        for (n, t) in times.iter().take(10).enumerate() {
            assert!((t - 1.5f64.powi(n as i32)).abs() < 1e-6, "{times:?}");
        }
        assert!((times[11] - 1.5f64.powi(11)).abs() < 1e-6, "{times:?}");
        // Past 60 s, half the time elapsed is more than max_delay: every 30 s.
        assert!(
            (times[12] - times[11] - 30.0).abs() < 1e-6,
            "capped: {times:?}"
        );
        assert!(
            (times[13] - times[12] - 30.0).abs() < 1e-6,
            "capped: {times:?}"
        );
    }

    #[test]
    fn completion_is_learned_within_half_its_duration_in_few_polls() {
        // Every duration from 0.5 s to 60 s, in 10 ms steps, with jitter.
        let p = PollPolicy::new();
        for t in (50..6000).map(|n| n as f64 / 100.0) {
            let times = schedule(&p, 40);
            let (polls, learned) = times
                .iter()
                .enumerate()
                .find(|(_, poll)| **poll >= t)
                .map(|(n, poll)| (n + 1, *poll))
                .unwrap();
            let late = learned - t;
            assert!(late <= 0.5 * t.max(1.0) + 1e-9, "T={t}: {late} late");
            let budget = (t.max(1.0).ln() / 1.5f64.ln() - 1e-9).ceil() as usize + 2;
            assert!(polls <= budget, "T={t}: {polls} polls > {budget}");
        }
    }

    #[test]
    fn jitter_only_shortens_within_ten_percent() {
        let p = PollPolicy::new();
        let exact = PollPolicy::new().jitter(false);
        for secs in [0.0, 1.0, 3.0, 100.0] {
            let elapsed = Duration::from_secs_f64(secs);
            for first in [true, false] {
                let base = exact.delay(first, elapsed);
                let d = p.delay(first, elapsed);
                assert!(d <= base && d >= base.mul_f64(0.9), "{d:?} vs {base:?}");
            }
        }
    }
}
