//! [`CancelOutcome`]: how one CancelOperation ended — counted, logged, and
//! recorded on its `lro.cancel` span.

use tokio::time::Instant;

use super::stats::Counters;

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

    pub(crate) fn count(self, c: &Counters) {
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

    pub(crate) fn log(self, started: Instant, authority: &str) {
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
