//! The reaper: cancels the operations of processes whose lease expired.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use tokio::task::JoinSet;
use tower_service::Service;
use tracing::{field, Instrument};

use super::deliver::cancel_entry;
use super::origins::{origin_key, Services};
use super::{Entry, EntryId, Journal, JournalError, OwnerId};
use crate::cancel::{CancelOutcome, CancelPolicy, Delivery};
use crate::config::Config;
use crate::error::BoxError;
use crate::request_body::RequestBody;

/// Cancels orphaned operations: entries of a [`Journal`] whose owner's lease
/// expired (a crashed or stopped process).
///
/// Each round ([`reap_once`](Self::reap_once); [`run`](Self::run) repeats it
/// every [`interval`](Self::interval), starting at once) claims orphans in
/// batches, sends each one's AIP-151 CancelOperation with the layer's cancel
/// delivery (policy, retries, UNIMPLEMENTED memo) through the caller's own
/// stack, which adds credentials (the journal holds none), to the origin the
/// operation was started on, and classifies the answer:
///
/// | answer | outcome | entry |
/// |---|---|---|
/// | 2xx (REST, not a gRPC answer) / `grpc-status: 0` | accepted | removed |
/// | 404 / `NOT_FOUND` | not found (already gone) | removed |
/// | 501 / `UNIMPLEMENTED` | unimplemented (nothing more can be done) | removed |
/// | failed: a non-retried error, or retries ran out of time ([`CancelPolicy`]'s deadline) | failed | claim released; a later round retries |
/// | no service for the entry's origin ([`Reaper::per_origin`]) | unrouted | claim released, for a reaper that has one |
///
/// Which service an entry's cancel goes through:
///
/// - [`Reaper::new`]`(journal, service)`: every entry through `service`,
///   with the entry's absolute URI (`https://host/v1/{name}:cancel`, or
///   `http://host:port/google.longrunning.Operations/CancelOperation` for
///   gRPC). The service must route by the request's URI, as hyper-util's
///   `Client` does — REST entries, and gRPC ones over an HTTP/2 client.
/// - [`Reaper::per_origin`]`(journal, [(origin, service), …])`: each entry
///   through the service given for its origin (`scheme://authority`), the
///   others left for another reaper. For gRPC through tonic: a `Channel`
///   sends every request to its own endpoint whatever the URI says, so give
///   one channel per origin (the origin the layer was told with
///   [`CancelOnDropLayer::grpc_origin`](crate::CancelOnDropLayer::grpc_origin)).
///
/// A claim lasts while its reaper lives: the reaper holds a lease on its
/// [`claimer`](Self::claimer) id in the journal's owners table
/// ([`Journal::renew`]; the row owns no entries), renewed before each claim
/// and every third of [`lease`](Self::lease) while a round runs, however
/// long its cancels take. If the reaper dies mid-round (killed, its task
/// aborted), its lease expires at most `lease` after its last renewal and
/// any reaper's next round retakes its claimed entries: within `lease` plus
/// that reaper's [`interval`](Self::interval) of the death, not
/// [`claim_for`](Self::claim_for).
///
/// Reaped cancels are not verified ([`CancelPolicy::verify`] does not apply:
/// a journal entry has no GetOperation route).
///
/// Every round is an `lro.reap` span (`claimed`, `accepted`, `not_found`,
/// `unimplemented`, `failed`, `unrouted`), every cancel an `lro.cancel` span with
/// `reason = "reaped"`.
pub struct Reaper<S, B> {
    journal: Arc<dyn Journal>,
    services: Services<S>,
    claimer: OwnerId,
    interval: Duration,
    lease: Duration,
    claim_for: Duration,
    batch: usize,
    config: Arc<Config>,
    delivery: Arc<Delivery>,
    counters: Arc<Counters>,
    _body: PhantomData<fn(B)>,
}

impl<S, B> fmt::Debug for Reaper<S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reaper")
            .field("journal", &self.journal)
            .field("claimer", &self.claimer)
            .field("interval", &self.interval)
            .field("lease", &self.lease)
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
    /// Entries of an origin this reaper has no service for
    /// ([`Reaper::per_origin`]); released for another reaper.
    pub unrouted: u64,
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
    unrouted: AtomicU64,
}

impl Counters {
    fn add(&self, r: &ReapReport) {
        self.claimed.fetch_add(r.claimed, Ordering::Relaxed);
        self.accepted.fetch_add(r.accepted, Ordering::Relaxed);
        self.not_found.fetch_add(r.not_found, Ordering::Relaxed);
        self.unimplemented
            .fetch_add(r.unimplemented, Ordering::Relaxed);
        self.failed.fetch_add(r.failed, Ordering::Relaxed);
        self.unrouted.fetch_add(r.unrouted, Ordering::Relaxed);
    }
}

/// A reaper's default lease: the writer's default.
const DEFAULT_LEASE: Duration = Duration::from_secs(30);

impl<S, B> Reaper<S, B> {
    /// A reaper of `journal`'s orphans that cancels through `service`, with
    /// a fresh claimer id, a 30 s interval, a 30 s lease, claims of 256
    /// entries held for 5 min at most, and the default [`CancelPolicy`].
    pub fn new(journal: impl Journal, service: S) -> Self {
        Self::with_services(journal, Services::Any(service))
    }

    /// A reaper of `journal`'s orphans that cancels each through the
    /// service given for its origin (`http://host:port`; scheme and
    /// authority compared, any path ignored), with the defaults of
    /// [`new`](Self::new). Entries of other origins are claimed, released
    /// at once and counted `unrouted`, for a reaper that has their service.
    ///
    /// ```no_run
    /// # #[cfg(feature = "journal-sqlite")]
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_lro::journal::{Reaper, SqliteJournal};
    ///
    /// let origin: http::Uri = "https://clouddeploy.googleapis.com".parse()?;
    /// let channel = tonic::transport::Channel::builder(origin.clone()).connect().await?;
    /// // Add credentials with a layer over `channel` as the caller's stack does.
    /// let reaper = Reaper::<_, tonic::body::Body>::per_origin(
    ///     SqliteJournal::open("journal.sqlite")?,
    ///     [(origin, channel)],
    /// );
    /// tokio::spawn(reaper.run());
    /// # Ok(()) }
    /// ```
    pub fn per_origin(journal: impl Journal, services: impl IntoIterator<Item = (Uri, S)>) -> Self {
        let services = services
            .into_iter()
            .map(|(uri, s)| {
                let scheme = uri.scheme_str().unwrap_or("");
                let authority = uri.authority().map_or("", |a| a.as_str());
                (origin_key(scheme, authority), s)
            })
            .collect();
        Self::with_services(journal, Services::PerOrigin(services))
    }

    fn with_services(journal: impl Journal, services: Services<S>) -> Self {
        Reaper {
            journal: Arc::new(journal),
            services,
            claimer: OwnerId::random(),
            interval: Duration::from_secs(30),
            lease: DEFAULT_LEASE,
            claim_for: Duration::from_secs(300),
            batch: 256,
            delivery: Arc::new(Delivery::new(&CancelPolicy::default())),
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

    /// This reaper's lease (default 30 s, as a writer's; at least 3 ms): its
    /// claims hold while the lease lives, and it is renewed before each
    /// claim and every `lease / 3` while a round runs. If this reaper dies
    /// mid-round, another reaper retakes its claimed entries once the lease
    /// has expired: within `lease` plus that reaper's
    /// [`interval`](Self::interval) of the death. It costs a lease write
    /// before each claim and every `lease / 3` during a round (a row in the
    /// owners table, deleted by a claim once the lease has expired); shorter
    /// means a dead reaper's claims are retaken sooner. Keep it longer than the journal
    /// outages a round should ride out (a reaper that cannot renew for a
    /// whole lease may see another reaper cancel what it claimed: a
    /// harmless second CancelOperation).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(3));
        self
    }

    /// The longest a claim keeps other reapers off an entry while this
    /// reaper's [`lease`](Self::lease) lives (default 5 min): the bound for a
    /// reaper that is alive but stuck. A reaper that dies loses its claims
    /// with its lease, sooner. Keep it well above the attempt timeout.
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
        self.delivery = Arc::new(Delivery::new(&policy));
        self.config = Arc::new(config(policy));
        self
    }

    /// This reaper's id, written to the entries it claims (`claimed_by`)
    /// and the owner of its lease.
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
            unrouted: c.unrouted.load(Ordering::Relaxed),
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
    /// One round: renews this reaper's lease, claims and cancels orphans
    /// until none is left, renewing the lease every third of it.
    ///
    /// # Errors
    /// The journal's error if a renewal before a claim, a claim, removal or
    /// release failed; the entries of that batch stay claimed until this
    /// reaper's lease or their claim expires and are retried then.
    pub async fn reap_once(&self) -> Result<ReapReport, JournalError> {
        let span = tracing::info_span!(
            "lro.reap",
            claimer = %self.claimer,
            claimed = field::Empty,
            accepted = field::Empty,
            not_found = field::Empty,
            unimplemented = field::Empty,
            failed = field::Empty,
            unrouted = field::Empty,
        );
        let result = self.round().instrument(span.clone()).await;
        if let Ok(r) = &result {
            span.record("claimed", r.claimed);
            span.record("accepted", r.accepted);
            span.record("not_found", r.not_found);
            span.record("unimplemented", r.unimplemented);
            span.record("failed", r.failed);
            span.record("unrouted", r.unrouted);
        }
        result
    }

    /// The claims and cancels, with the lease renewed every third of it
    /// until they end.
    async fn round(&self) -> Result<ReapReport, JournalError> {
        let work = std::pin::pin!(self.claim_and_cancel());
        let heartbeat = std::pin::pin!(self.heartbeat());
        match futures_util::future::select(work, heartbeat).await {
            futures_util::future::Either::Left((result, _)) => result,
            futures_util::future::Either::Right((never, _)) => match never {},
        }
    }

    /// Renews this reaper's lease every third of it, forever; a failed
    /// renewal is logged at `warn` (the claims hold until the lease ends).
    async fn heartbeat(&self) -> std::convert::Infallible {
        let period = self.lease / 3;
        loop {
            tokio::time::sleep(period).await;
            if let Err(e) = self.journal.renew(&self.claimer, self.lease).await {
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "reaper lease renewal failed");
            }
        }
    }

    async fn claim_and_cancel(&self) -> Result<ReapReport, JournalError> {
        let mut report = ReapReport::default();
        loop {
            // A claim holds while the claimer's lease lives: renew first.
            self.journal.renew(&self.claimer, self.lease).await?;
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
            report.unrouted += batch.unrouted;
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
        let mut released = Vec::<EntryId>::new();
        for entry in entries {
            let Some(svc) = self.services.for_entry(&entry) else {
                tracing::debug!(entry = %entry.id(), "no service for the entry's origin; released");
                report.unrouted += 1;
                released.push(entry.id().clone());
                continue;
            };
            let delivery = (self.config.clone(), self.delivery.clone());
            tasks.spawn(
                async move {
                    let outcome = cancel_entry::<S, B, ResBody>(svc, delivery, &entry).await;
                    (entry.id().clone(), outcome)
                }
                .in_current_span(),
            );
        }
        let mut settled = Vec::<EntryId>::new();
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

/// The layer settings a reaper's cancels use: `policy` (its own slots,
/// counters and memos are its `delivery`).
fn config(policy: CancelPolicy) -> Config {
    Config {
        cancel: policy,
        ..Config::default()
    }
}
