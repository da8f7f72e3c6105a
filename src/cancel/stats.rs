//! [`CancelStats`] and [`CancelHandle`]: what one layer's cancels did, and
//! draining them at shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::delivery::Delivery;
use crate::config::Config;
use crate::metrics::Metrics;

/// Counters of one layer's cancels, from [`CancelHandle::stats`].
///
/// `fired` counts cancels the layer decided to send. Each ends in exactly one
/// of `accepted`, `not_found`, `unimplemented`, `failed`, `shed` or `lost`,
/// or is still in flight; `retried` counts extra attempts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CancelStats {
    /// Cancels fired (operations the layer gave up on while not done).
    pub fired: u64,
    /// Answered 2xx.
    pub accepted: u64,
    /// Answered 404: the operation no longer exists.
    pub not_found: u64,
    /// Answered 501 / `UNIMPLEMENTED`, or skipped because the authority did before.
    pub unimplemented: u64,
    /// Ended without success: a non-retried error status, or retries and deadline exhausted.
    pub failed: u64,
    /// Retry attempts sent (beyond each cancel's first).
    pub retried: u64,
    /// Not sent because the in-flight limit and queue were full.
    pub shed: u64,
    /// Dropped unsent because the tokio runtime shut down first.
    pub lost: u64,
    /// Calls abandoned before their first response (the future dropped, or
    /// the layer's deadline passed, with the original request in flight)
    /// whose answer did not come within the cancel deadline, or whose
    /// detached wait was cut short by the runtime shutting down: an
    /// operation the request started, if any, cannot be cancelled. Not part
    /// of `fired`.
    pub unanswered: u64,
    /// With [`CancelPolicy::verify`](crate::CancelPolicy::verify): accepted cancels whose operation then
    /// ended CANCELLED (`error.code == 1`).
    pub verified_cancelled: u64,
    /// With [`CancelPolicy::verify`](crate::CancelPolicy::verify): accepted cancels whose operation ended
    /// some other way (it completed, or failed with another code).
    pub completed_anyway: u64,
}

impl CancelStats {
    /// Cancels that have reached an outcome.
    pub fn finished(&self) -> u64 {
        self.accepted + self.not_found + self.unimplemented + self.failed + self.shed + self.lost
    }
}

/// The live counters behind [`CancelStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) fired: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) not_found: AtomicU64,
    pub(crate) unimplemented: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) shed: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) unanswered: AtomicU64,
    pub(crate) verified_cancelled: AtomicU64,
    pub(crate) completed_anyway: AtomicU64,
    /// The same events as OpenTelemetry instruments, once a `Meter` is given.
    pub(crate) metrics: Metrics,
}

impl Counters {
    pub(crate) fn stats(&self) -> CancelStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CancelStats {
            fired: load(&self.fired),
            accepted: load(&self.accepted),
            not_found: load(&self.not_found),
            unimplemented: load(&self.unimplemented),
            failed: load(&self.failed),
            retried: load(&self.retried),
            shed: load(&self.shed),
            lost: load(&self.lost),
            unanswered: load(&self.unanswered),
            verified_cancelled: load(&self.verified_cancelled),
            completed_anyway: load(&self.completed_anyway),
        }
    }

    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A handle on one layer's cancels: counters, a graceful-shutdown drain, and
/// explicit cancels of operations held by name
/// ([`cancel`](CancelHandle::cancel)).
///
/// Get it from [`CancelOnDropLayer::handle`](crate::CancelOnDropLayer::handle);
/// its delivery (slots, queue, counters) is shared by every clone of the
/// layer and of the services it made. Its explicit cancels use the layer's
/// settings as they were when the handle was taken.
#[derive(Clone, Debug)]
pub struct CancelHandle {
    pub(crate) delivery: Arc<Delivery>,
    pub(crate) config: Arc<Config>,
}

/// What [`CancelHandle::drain`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Cancels still in flight or queued when `drain` returned: zero when it
    /// finished within its timeout.
    pub pending: usize,
    /// The counters when `drain` returned.
    pub stats: CancelStats,
}

impl DrainReport {
    /// Whether every cancel had finished.
    pub fn is_complete(&self) -> bool {
        self.pending == 0
    }
}

impl CancelHandle {
    /// The counters so far.
    pub fn stats(&self) -> CancelStats {
        self.delivery.stats()
    }

    /// Cancels fired but not finished yet (sending, backing off or queued).
    pub fn pending(&self) -> usize {
        self.delivery.pending.load(Ordering::Acquire)
    }

    /// Waits until every cancel fired so far has finished, or `timeout`
    /// passes, whichever is first. Call it at graceful shutdown, after the
    /// callers whose futures may still be dropped are gone, so that the
    /// process does not exit with cancels unsent. Cancels fired while it waits
    /// are waited for too. Never fails; the report says what was left.
    pub async fn drain(&self, timeout: Duration) -> DrainReport {
        let tracker = &self.delivery.tracker;
        // Closed for good: `close` only tells `wait` that no more tasks are
        // expected; tasks spawned afterwards are still tracked and waited
        // for. Reopening here would take the wake-up away from a concurrent
        // `drain`.
        tracker.close();
        let _ = tokio::time::timeout(timeout, tracker.wait()).await;
        DrainReport {
            pending: self.pending().max(tracker.len()),
            stats: self.stats(),
        }
    }
}
