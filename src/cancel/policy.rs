//! [`CancelPolicy`]: how a CancelOperation is delivered, and why one is fired.

use std::time::Duration;

use crate::extensions::CancelOn;

/// How a `CancelOperation` request is delivered (AIP-151 `POST {prefix}{name}:cancel`).
///
/// Each attempt is a fresh request through a clone of the inner service.
/// Answers are classified (see the README's "Failure handling"):
///
/// | answer | outcome | retried |
/// |---|---|---|
/// | 2xx | accepted | no |
/// | 404 | not found (nothing to cancel) | no |
/// | 501, or an AIP-193 error body whose `status` is `UNIMPLEMENTED` | unimplemented; the authority is remembered for [`remember_unimplemented`](Self::remember_unimplemented) and later cancels there are skipped | no |
/// | 429, 502, 503, 504, a transport error, an attempt past [`attempt_timeout`](Self::attempt_timeout) | retried, honouring `Retry-After` (RFC 9110 §10.2.3) | yes, until the [`deadline`](Self::deadline) (or [`attempts`](Self::attempts), if set) |
/// | anything else | failed | no |
///
/// Defaults: retries bounded by a 60 s overall deadline rather than a count,
/// backoff 200 ms ×2 capped at 5 s with full jitter (never shorter than a
/// `Retry-After`), 3 s per attempt, UNIMPLEMENTED remembered for 10 min, 64
/// cancels in flight per layer and 16,384 queued behind them. A layer's
/// cancels are sent by its workers — at most one task per in-flight slot,
/// started as cancels arrive and ended when none is left — each sending one
/// attempt at a time: a queued cancel is a job of some 650–750 bytes (its
/// operation's name and route, the forwarded headers, a clone of the inner
/// service), not a task, so a full queue costs about 12 MB. A cancel backing
/// off waits in a timer heap and holds no slot; once due it goes before the
/// cancels queued since.
///
/// Why a deadline and not a count: with a share `f` of attempts failing
/// independently, `k` attempts lose `f^k` of the cancels — 2.7 % for 3
/// attempts at `f = 30 %`. Within 60 s even attempts that all hang for the
/// full 3 s make at least 12 tries (`0.3^12 ≈ 5·10⁻⁷`); answered failures
/// (503, 429, resets) make many more.
#[derive(Clone, Debug, PartialEq)]
pub struct CancelPolicy {
    pub(crate) attempts: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) attempt_timeout: Duration,
    pub(crate) deadline: Duration,
    pub(crate) remember_unimplemented: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) max_queued: usize,
    pub(crate) verify: Option<Duration>,
}

impl Default for CancelPolicy {
    fn default() -> Self {
        CancelPolicy {
            attempts: u32::MAX,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(3),
            deadline: Duration::from_secs(60),
            remember_unimplemented: Duration::from_secs(600),
            max_in_flight: 64,
            max_queued: 16_384,
            verify: None,
        }
    }
}

impl CancelPolicy {
    /// The default policy (see the type's docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// How many requests one cancel may send, the first included (default:
    /// no limit but the [`deadline`](Self::deadline); at least 1).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The backoff before the first retry, doubled for each further one
    /// up to `max` (defaults 200 ms and 5 s; full jitter). A `Retry-After`
    /// longer than the backoff is honoured instead.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// How long one attempt may take before it counts as failed and is retried (default 3 s).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// How long one cancel may go on retrying, from its first attempt
    /// (default 60 s). Retries stop when the next attempt would start past
    /// it. Time queued for a free slot before the first attempt is not
    /// counted: the queue bounds that ([`concurrency`](Self::concurrency)),
    /// and [`CancelHandle::drain`](crate::CancelHandle::drain) bounds a
    /// shutdown.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// How long an authority that answered UNIMPLEMENTED is remembered, so
    /// that cancels to it are skipped (default 10 min; zero turns it off).
    pub fn remember_unimplemented(mut self, duration: Duration) -> Self {
        self.remember_unimplemented = duration;
        self
    }

    /// How many cancels of one layer may be sending at once (default 64; at
    /// least 1), and how many more may wait for a slot, backing off
    /// included (default 16,384). A cancel
    /// fired while both are full is shed: counted in
    /// [`CancelStats::shed`](crate::CancelStats::shed) and logged at `warn` with the operation's name.
    pub fn concurrency(mut self, max_in_flight: usize, max_queued: usize) -> Self {
        self.max_in_flight = max_in_flight.max(1);
        self.max_queued = max_queued;
        self
    }
}

impl CancelPolicy {
    /// After an accepted cancel, poll `GetOperation` on the layer's
    /// [`PollPolicy`](crate::PollPolicy) — its schedule, transient-failure
    /// retries and `max_inspect_bytes` — until the operation is done or
    /// `timeout` passes, and record
    /// whether it ended CANCELLED (`error.code == 1`, AIP-151) or completed
    /// anyway: [`CancelStats::verified_cancelled`](crate::CancelStats::verified_cancelled) and
    /// [`CancelStats::completed_anyway`](crate::CancelStats::completed_anyway), and the `lro.cancel` span's
    /// `outcome`. Off by default: it costs requests, and CancelOperation
    /// is asynchronous, so an accepted cancel says nothing about the end.
    pub fn verify(mut self, timeout: Duration) -> Self {
        self.verify = Some(timeout);
        self
    }
}

/// Why the layer fired a cancel; the `reason` field of the `lro.cancel` span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The response future was dropped before the operation was done.
    Dropped,
    /// The layer's deadline passed.
    Deadline,
    /// Polling gave up.
    PollFailed,
    /// The response future was dropped while the original request was in
    /// flight; a detached task read the answer and found an operation.
    DroppedInFlight,
    /// [`CancelOnDrop::cancel`](crate::CancelOnDrop::cancel) was called.
    Explicit,
    /// A journal reaper cancels an operation a dead process left running.
    #[cfg_attr(not(feature = "journal"), allow(dead_code))]
    Reaped,
    /// [`CancelHandle::shutdown`](crate::CancelHandle::shutdown) ended the call.
    Shutdown,
}

impl Reason {
    /// Whether a give-up for this reason sends a cancel under `triggers`
    /// (explicit and reaped cancels are not triggers: always sent).
    pub(crate) fn fires(self, triggers: CancelOn) -> bool {
        match self {
            Reason::Dropped | Reason::DroppedInFlight => triggers.on_drop(),
            Reason::Deadline => triggers.on_deadline(),
            Reason::PollFailed => triggers.on_poll_failure(),
            Reason::Shutdown => triggers.on_shutdown(),
            Reason::Explicit | Reason::Reaped => true,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Dropped => "dropped",
            Reason::Deadline => "deadline",
            Reason::PollFailed => "poll_failed",
            Reason::DroppedInFlight => "dropped_in_flight",
            Reason::Explicit => "explicit",
            Reason::Reaped => "reaped",
            Reason::Shutdown => "shutdown",
        }
    }
}
