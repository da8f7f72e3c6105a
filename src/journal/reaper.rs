//! The reaper: cancels the operations of processes whose lease expired.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tokio::task::JoinSet;
use tower_service::Service;
use tracing::{field, Instrument};

use super::deliver::cancel_entry;
use super::{Entry, EntryId, Journal, JournalError, OwnerId};
use crate::cancel::{CancelOutcome, CancelPolicy};
use crate::config::Config;
use crate::error::BoxError;
use crate::request_body::RequestBody;
use crate::shared::Shared;

/// Cancels orphaned operations: entries of a [`Journal`] whose owner's lease
/// expired (a crashed or stopped process).
///
/// Each round ([`reap_once`](Self::reap_once); [`run`](Self::run) repeats it
/// every [`interval`](Self::interval), starting at once) claims orphans in
/// batches, sends each one's AIP-151 CancelOperation through `service` with
/// the layer's cancel delivery (policy, retries, UNIMPLEMENTED memo) —
/// the caller's own stack, which adds credentials: the journal holds none —
/// to the origin the operation was started on, and classifies the answer:
///
/// | answer | outcome | entry |
/// |---|---|---|
/// | 2xx | accepted | removed |
/// | 404 | not found (already gone) | removed |
/// | 501 / `UNIMPLEMENTED` | unimplemented (nothing more can be done) | removed |
/// | failed: a non-retried error, or retries ran out of time ([`CancelPolicy`]'s deadline) | failed | claim released; a later round retries |
///
/// Every round is an `lro.reap` span (`claimed`, `accepted`, `not_found`,
/// `unimplemented`, `failed`), every cancel an `lro.cancel` span with
/// `reason = "reaped"`.
pub struct Reaper<S, B> {
    journal: Arc<dyn Journal>,
    service: S,
    claimer: OwnerId,
    interval: Duration,
    claim_for: Duration,
    batch: usize,
    config: Arc<Config>,
    counters: Arc<Counters>,
    _body: PhantomData<fn(B)>,
}

impl<S, B> fmt::Debug for Reaper<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reaper")
            .field("journal", &self.journal)
            .field("claimer", &self.claimer)
            .field("interval", &self.interval)
            .field("claim_for", &self.claim_for)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What one [`Reaper::reap_once`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReapReport {
    /// Orphans claimed.
    pub claimed: u64,
    /// Cancels answered 2xx.
    pub accepted: u64,
    /// Cancels answered 404.
    pub not_found: u64,
    /// Cancels answered UNIMPLEMENTED.
    pub unimplemented: u64,
    /// Cancels that failed; their entries were released for a later round.
    pub failed: u64,
}

/// A reaper's counters since it was made.
pub type ReaperStats = ReapReport;

#[derive(Debug, Default)]
struct Counters {
    claimed: AtomicU64,
    accepted: AtomicU64,
    not_found: AtomicU64,
    unimplemented: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    fn add(&self, r: &ReapReport) {
        self.claimed.fetch_add(r.claimed, Ordering::Relaxed);
        self.accepted.fetch_add(r.accepted, Ordering::Relaxed);
        self.not_found.fetch_add(r.not_found, Ordering::Relaxed);
        self.unimplemented
            .fetch_add(r.unimplemented, Ordering::Relaxed);
        self.failed.fetch_add(r.failed, Ordering::Relaxed);
    }
}

impl<S, B> Reaper<S, B> {
    /// A reaper of `journal`'s orphans that cancels through `service`, with
    /// a fresh claimer id, a 30 s interval, claims of 256 entries held for
    /// 5 min, and the default [`CancelPolicy`].
    pub fn new(journal: impl Journal, service: S) -> Self {
        Reaper {
            journal: Arc::new(journal),
            service,
            claimer: OwnerId::random(),
            interval: Duration::from_secs(30),
            claim_for: Duration::from_secs(300),
            batch: 256,
            config: Arc::new(config(CancelPolicy::default())),
            counters: Arc::default(),
            _body: PhantomData,
        }
    }

    /// How long [`run`](Self::run) waits between rounds (default 30 s).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How long a claim keeps other reapers off an entry (default 5 min):
    /// if this reaper dies mid-round, its claimed entries are reaped by
    /// another after this. Keep it well above the attempt timeout.
    pub fn claim_for(mut self, claim_for: Duration) -> Self {
        self.claim_for = claim_for;
        self
    }

    /// How many entries one claim takes (default 256; at least 1).
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// How each cancel is delivered (default [`CancelPolicy::default`]:
    /// retries until a 60 s deadline). Its concurrency bounds this reaper's
    /// cancels in flight.
    pub fn cancel_policy(mut self, policy: CancelPolicy) -> Self {
        self.config = Arc::new(config(policy));
        self
    }

    /// This reaper's id, written to the entries it claims (`claimed_by`).
    pub fn claimer(&self) -> &OwnerId {
        &self.claimer
    }

    /// The counters so far.
    pub fn stats(&self) -> ReaperStats {
        let c = &self.counters;
        ReapReport {
            claimed: c.claimed.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            not_found: c.not_found.load(Ordering::Relaxed),
            unimplemented: c.unimplemented.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }
}

impl<S, B, ResBody> Reaper<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    /// One round: claims and cancels orphans until none is left.
    ///
    /// # Errors
    /// The journal's error if a claim, removal or release failed; the
    /// entries of that batch stay claimed until their claim expires and are
    /// retried then.
    pub async fn reap_once(&self) -> Result<ReapReport, JournalError> {
        let span = tracing::info_span!(
            "lro.reap",
            claimer = %self.claimer,
            claimed = field::Empty,
            accepted = field::Empty,
            not_found = field::Empty,
            unimplemented = field::Empty,
            failed = field::Empty,
        );
        let result = self.round().instrument(span.clone()).await;
        if let Ok(r) = &result {
            span.record("claimed", r.claimed);
            span.record("accepted", r.accepted);
            span.record("not_found", r.not_found);
            span.record("unimplemented", r.unimplemented);
            span.record("failed", r.failed);
        }
        result
    }

    async fn round(&self) -> Result<ReapReport, JournalError> {
        let mut report = ReapReport::default();
        loop {
            let claimed = self
                .journal
                .claim(&self.claimer, self.batch, self.claim_for)
                .await?;
            let full = claimed.len() >= self.batch;
            let batch = self.cancel_all(claimed).await?;
            self.counters.add(&batch);
            report.claimed += batch.claimed;
            report.accepted += batch.accepted;
            report.not_found += batch.not_found;
            report.unimplemented += batch.unimplemented;
            report.failed += batch.failed;
            if !full {
                return Ok(report);
            }
        }
    }

    /// Cancels `entries` (64 at a time), removes the settled ones and
    /// releases the others, in one commit each.
    async fn cancel_all(&self, entries: Vec<Entry>) -> Result<ReapReport, JournalError> {
        let mut report = ReapReport {
            claimed: entries.len() as u64,
            ..ReapReport::default()
        };
        // The policy's slots bound the attempts in flight.
        let mut tasks = JoinSet::new();
        for entry in entries {
            let (svc, config) = (self.service.clone(), self.config.clone());
            tasks.spawn(
                async move {
                    let outcome = cancel_entry::<S, B, ResBody>(svc, config, &entry).await;
                    (entry.id().clone(), outcome)
                }
                .in_current_span(),
            );
        }
        let (mut settled, mut released) = (Vec::<EntryId>::new(), Vec::<EntryId>::new());
        while let Some(joined) = tasks.join_next().await {
            let Ok((id, outcome)) = joined else {
                report.failed += 1;
                continue;
            };
            match outcome {
                CancelOutcome::Accepted
                | CancelOutcome::VerifiedCancelled
                | CancelOutcome::CompletedAnyway => report.accepted += 1,
                CancelOutcome::NotFound => report.not_found += 1,
                CancelOutcome::Unimplemented | CancelOutcome::UnimplementedSkipped => {
                    report.unimplemented += 1
                }
                CancelOutcome::Failed => {
                    report.failed += 1;
                    released.push(id);
                    continue;
                }
            }
            settled.push(id);
        }
        if !settled.is_empty() {
            let batch = super::Batch {
                records: Vec::new(),
                removes: settled,
            };
            self.journal.commit(&batch).await?;
        }
        if !released.is_empty() {
            self.journal.release(&released).await?;
        }
        Ok(report)
    }

    /// Reaps at once, then every [`interval`](Self::interval), forever;
    /// a failed round is logged at `warn` and the next one tries again.
    pub async fn run(self) {
        loop {
            if let Err(e) = self.reap_once().await {
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "reap round failed");
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}

/// The layer settings a reaper's cancels use: `policy`, and its own slots,
/// counters and memos.
fn config(policy: CancelPolicy) -> Config {
    Config {
        shared: Arc::new(Shared::new(&policy)),
        cancel: policy,
        ..Config::default()
    }
}
