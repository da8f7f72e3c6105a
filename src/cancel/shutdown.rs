//! [`CancelHandle::shutdown`]: end every call still waiting, cancel their
//! operations, and wait for the cancels up to a deadline.

use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use super::outcome::CancelOutcome;
use super::stats::{CancelHandle, DrainReport};
use super::waiting::End;
use crate::operation::OperationName;

/// What [`CancelHandle::shutdown`] did with the calls that were waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Operations whose CancelOperation was accepted (AIP-151: the server
    /// will try to cancel them; with
    /// [`CancelPolicy::verify`](crate::CancelPolicy::verify), whether it did
    /// is in [`CancelStats`](crate::CancelStats)).
    pub accepted: Vec<OperationName>,
    /// Operations whose cancel was not accepted, and why. With a journal,
    /// the entry of every one whose cancel did not settle (still pending,
    /// failed, shed or lost) stays for a reaper.
    pub not_accepted: Vec<(OperationName, NotAccepted)>,
    /// Operations whose calls ended on their own before shutdown reached
    /// them (done, or failed and handled as usual).
    pub finished: Vec<OperationName>,
    /// Every cancel of the layer (these and any fired before) when
    /// `shutdown` returned.
    pub drain: DrainReport,
}

impl ShutdownReport {
    /// Whether every waiting call's cancel was accepted and no cancel is
    /// left pending.
    pub fn is_complete(&self) -> bool {
        self.not_accepted.is_empty() && self.drain.is_complete()
    }
}

/// Why a waiting call's operation was not reported cancelled by
/// [`CancelHandle::shutdown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotAccepted {
    /// Its cancel settled otherwise: not found, UNIMPLEMENTED, or failed.
    Outcome(CancelOutcome),
    /// Its cancel was still being delivered at the deadline; it goes on
    /// until the [`CancelPolicy`](crate::CancelPolicy)'s own deadline or the
    /// runtime's end.
    Pending,
    /// Its cancel was never sent: shed (the queue was full) or lost (the
    /// runtime shut down first).
    NotSent,
    /// No cancel was fired: the call's [`CancelOn`](crate::CancelOn) has the
    /// shutdown trigger off (or it is [`Detached`](crate::Detached)).
    NotCancelled,
    /// The call was not polled before the deadline (its task is blocked or
    /// gone), so it neither ended nor fired a cancel.
    NotReached,
}

impl CancelHandle {
    /// Graceful shutdown, for a process asked to stop (SIGTERM, a rolling
    /// deploy) while callers still wait on operations. Every call of this
    /// layer waiting on an operation ends with
    /// [`Error::Shutdown`](crate::Error::Shutdown) naming it, and fires its
    /// cancel (reason `shutdown`, unless [`CancelOn`](crate::CancelOn) turns
    /// that trigger off); then this waits for those cancels, and for every
    /// other cancel in flight ([`drain`](Self::drain)), until `deadline`
    /// passes. The report names each operation and whether its cancel was
    /// accepted.
    ///
    /// After it is called, a call whose operation becomes known ends at
    /// once the same way (it is not in the report); calls that do not start
    /// an operation are not affected. A call's task must be polled to end:
    /// one that is not, before the deadline, is reported
    /// [`NotAccepted::NotReached`]. Never fails.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let until = Instant::now()
            .checked_add(deadline)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365));
        let waiters = self.delivery.calls.close();
        let mut ends: FuturesUnordered<_> = waiters
            .iter()
            .enumerate()
            .map(|(i, waiter)| async move { (i, waiter.ended().await) })
            .collect();
        let mut results: Vec<_> = waiters.iter().map(|_| None).collect();
        while let Ok(Some((i, end))) = tokio::time::timeout_at(until, ends.next()).await {
            results[i] = Some(end);
        }
        drop(ends);
        let drain = self
            .drain(until.saturating_duration_since(Instant::now()))
            .await;
        let mut report = ShutdownReport {
            accepted: Vec::new(),
            not_accepted: Vec::new(),
            finished: Vec::new(),
            drain,
        };
        for (waiter, result) in waiters.iter().zip(results) {
            let name = waiter.name.clone();
            let why = match result {
                Some(Ok(Some(outcome))) if accepted(outcome) => {
                    report.accepted.push(name);
                    continue;
                }
                Some(Err(End::Finished)) => {
                    report.finished.push(name);
                    continue;
                }
                Some(Ok(Some(outcome))) => NotAccepted::Outcome(outcome),
                Some(Ok(None)) => NotAccepted::NotSent,
                Some(Err(_)) => NotAccepted::NotCancelled,
                None if waiter.fired() => NotAccepted::Pending,
                None => NotAccepted::NotReached,
            };
            report.not_accepted.push((name, why));
        }
        tracing::info!(
            accepted = report.accepted.len(),
            not_accepted = report.not_accepted.len(),
            finished = report.finished.len(),
            pending = report.drain.pending,
            "shutdown: calls ended, cancels delivered"
        );
        report
    }
}

fn accepted(outcome: CancelOutcome) -> bool {
    matches!(
        outcome,
        CancelOutcome::Accepted | CancelOutcome::VerifiedCancelled | CancelOutcome::CompletedAnyway
    )
}
