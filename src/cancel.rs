//! Delivering `CancelOperation` (AIP-151) after the caller gave up: detached,
//! best effort, retried, bounded, observable.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_service::Service;
use tracing::{field, Instrument, Span};

use crate::body::{Collect, Collected};
use crate::error::BoxError;
use crate::operation::{Operation, OperationName};
use crate::poll::{backoff, is_transient, retry_after};
use crate::request_body::RequestBody;

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
/// | 429, 502, 503, 504, a transport error, an attempt past [`attempt_timeout`](Self::attempt_timeout) | retried, honouring `Retry-After` (RFC 9110 §10.2.3) | yes, up to [`attempts`](Self::attempts) within [`deadline`](Self::deadline) |
/// | anything else | failed | no |
///
/// Defaults: 3 attempts, backoff 250 ms ×2 up to 2 s with full jitter, 3 s
/// per attempt, 10 s overall, UNIMPLEMENTED remembered for 10 min, 64 cancels
/// in flight per layer and 16,384 queued behind them (a queued cancel is a parked task of about
/// 1–3 KB, so a full queue costs some 16–48 MB).
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
            attempts: 3,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(3),
            deadline: Duration::from_secs(10),
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

    /// How many requests one cancel may send, the first included (default 3; at least 1).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The backoff before the first retry, doubled for each further one
    /// up to `max` (defaults 250 ms and 2 s; full jitter).
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

    /// How long one cancel may take in all, from the moment it is fired,
    /// waiting for a free slot included (default 10 s).
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
    /// least 1), and how many more may wait for a slot (default 16,384). A cancel
    /// fired while both are full is shed: counted in
    /// [`CancelStats::shed`] and logged at `warn` with the operation's name.
    pub fn concurrency(mut self, max_in_flight: usize, max_queued: usize) -> Self {
        self.max_in_flight = max_in_flight.max(1);
        self.max_queued = max_queued;
        self
    }
}

impl CancelPolicy {
    /// After an accepted cancel, poll `GetOperation` (250 ms, ×1.5, at most
    /// 5 s apart) until the operation is done or `timeout` passes, and record
    /// whether it ended CANCELLED (`error.code == 1`, AIP-151) or completed
    /// anyway: [`CancelStats::verified_cancelled`] and
    /// [`CancelStats::completed_anyway`], and the `lro.cancel` span's
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
}

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Dropped => "dropped",
            Reason::Deadline => "deadline",
            Reason::PollFailed => "poll_failed",
            Reason::DroppedInFlight => "dropped_in_flight",
        }
    }
}

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
    /// With [`CancelPolicy::verify`]: accepted cancels whose operation then
    /// ended CANCELLED (`error.code == 1`).
    pub verified_cancelled: u64,
    /// With [`CancelPolicy::verify`]: accepted cancels whose operation ended
    /// some other way (it completed, or failed with another code).
    pub completed_anyway: u64,
}

impl CancelStats {
    /// Cancels that have reached an outcome.
    pub fn finished(&self) -> u64 {
        self.accepted + self.not_found + self.unimplemented + self.failed + self.shed + self.lost
    }
}

#[derive(Debug, Default)]
struct Counters {
    fired: AtomicU64,
    accepted: AtomicU64,
    not_found: AtomicU64,
    unimplemented: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    shed: AtomicU64,
    lost: AtomicU64,
    unanswered: AtomicU64,
    verified_cancelled: AtomicU64,
    completed_anyway: AtomicU64,
}

/// State shared by every clone of one layer and its services.
pub(crate) struct Shared {
    counters: Counters,
    tracker: TaskTracker,
    slots: Semaphore,
    max_in_flight: AtomicUsize,
    pending: AtomicUsize,
    unimplemented: Mutex<HashMap<String, Instant>>,
    no_wait: Mutex<HashSet<String>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .field("stats", &self.stats())
            .finish()
    }
}

impl Shared {
    pub(crate) fn new(max_in_flight: usize) -> Self {
        Shared {
            counters: Counters::default(),
            tracker: TaskTracker::new(),
            slots: Semaphore::new(max_in_flight),
            max_in_flight: AtomicUsize::new(max_in_flight),
            pending: AtomicUsize::new(0),
            unimplemented: Mutex::new(HashMap::new()),
            no_wait: Mutex::new(HashSet::new()),
        }
    }

    /// Changes the number of cancel slots.
    pub(crate) fn resize(&self, max_in_flight: usize) {
        let old = self.max_in_flight.swap(max_in_flight, Ordering::AcqRel);
        if max_in_flight > old {
            self.slots.add_permits(max_in_flight - old);
        } else if old > max_in_flight {
            // Permits held now are forgotten as they come back.
            self.slots.forget_permits(old - max_in_flight);
        }
    }

    fn stats(&self) -> CancelStats {
        let c = &self.counters;
        CancelStats {
            fired: c.fired.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            not_found: c.not_found.load(Ordering::Relaxed),
            unimplemented: c.unimplemented.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            shed: c.shed.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            unanswered: c.unanswered.load(Ordering::Relaxed),
            verified_cancelled: c.verified_cancelled.load(Ordering::Relaxed),
            completed_anyway: c.completed_anyway.load(Ordering::Relaxed),
        }
    }

    /// Whether `authority` answered WaitOperation with 404 or 501 before.
    pub(crate) fn wait_unsupported(&self, authority: &str) -> bool {
        self.no_wait
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(authority)
    }

    pub(crate) fn remember_no_wait(&self, authority: &str) {
        self.no_wait
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(authority.to_owned());
    }

    pub(crate) fn count_unanswered(&self) {
        self.counters.unanswered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_lost(&self) {
        self.counters.lost.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    fn unimplemented_at(&self, authority: &str) -> bool {
        let mut map = self
            .unimplemented
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match map.get(authority) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                map.remove(authority);
                false
            }
            None => false,
        }
    }

    fn remember_unimplemented(&self, authority: &str, for_: Duration) {
        if for_.is_zero() {
            return;
        }
        if let Some(until) = Instant::now().checked_add(for_) {
            self.unimplemented
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(authority.to_owned(), until);
        }
    }
}

/// A handle on one layer's cancels: counters, and a graceful-shutdown drain.
///
/// Get it from [`CancelOnDropLayer::handle`](crate::CancelOnDropLayer::handle);
/// it is shared by every clone of the layer and of the services it made.
#[derive(Clone, Debug)]
pub struct CancelHandle {
    pub(crate) shared: Arc<Shared>,
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
        self.shared.stats()
    }

    /// Cancels fired but not finished yet (sending, backing off or queued).
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// Waits until every cancel fired so far has finished, or `timeout`
    /// passes, whichever is first. Call it at graceful shutdown, after the
    /// callers whose futures may still be dropped are gone, so that the
    /// process does not exit with cancels unsent. Cancels fired while it waits
    /// are waited for too. Never fails; the report says what was left.
    pub async fn drain(&self, timeout: Duration) -> DrainReport {
        let tracker = &self.shared.tracker;
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

/// Everything a detached cancel needs, taken from the response future.
pub(crate) struct CancelJob<S> {
    pub(crate) svc: S,
    pub(crate) name: OperationName,
    pub(crate) uri: Uri,
    pub(crate) method: Method,
    pub(crate) get_uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) reason: Reason,
    pub(crate) policy: CancelPolicy,
    pub(crate) shared: Arc<Shared>,
    pub(crate) runtime: Handle,
    pub(crate) call_span: Span,
}

/// Counts a cancel that never ran (its task dropped by a shutting-down
/// runtime), and keeps `pending` right.
struct PendingGuard {
    shared: Arc<Shared>,
    name: Option<OperationName>,
}

impl PendingGuard {
    fn done(mut self) {
        self.name = None;
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.shared.pending.fetch_sub(1, Ordering::AcqRel);
        if let Some(name) = self.name.take() {
            self.shared.count_lost();
            tracing::warn!(operation.name = %name, "cancel lost: the runtime shut down before it was sent");
        }
    }
}

/// Spawns one detached cancel. Called from the response future (possibly in
/// its `Drop`): never blocks, never panics.
pub(crate) fn spawn_cancel<S, ReqBody, ResBody>(mut job: CancelJob<S>)
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes> + Unpin + Send + 'static,
{
    // Once here, not on every attempt's copy of the headers.
    job.headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from_static("0"),
    );
    let shared = job.shared.clone();
    shared.counters.fired.fetch_add(1, Ordering::Relaxed);
    let capacity = job
        .policy
        .max_in_flight
        .saturating_add(job.policy.max_queued);
    let admitted = shared
        .pending
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < capacity).then_some(n + 1)
        })
        .is_ok();
    if !admitted {
        shared.counters.shed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            parent: &job.call_span,
            operation.name = %job.name,
            reason = job.reason.as_str(),
            "cancel shed: {capacity} cancels already in flight or queued"
        );
        return;
    }
    let guard = PendingGuard {
        shared: shared.clone(),
        name: Some(job.name.clone()),
    };
    let span = tracing::info_span!(
        parent: None,
        "lro.cancel",
        operation.name = %job.name,
        reason = job.reason.as_str(),
        attempt = field::Empty,
        http.response.status_code = field::Empty,
        outcome = field::Empty,
    );
    span.follows_from(&job.call_span);
    let runtime = job.runtime.clone();
    let tracker = shared.tracker.clone();
    let task = async move {
        let outcome = deliver::<S, ReqBody, ResBody>(job).await;
        outcome.count(&shared);
        guard.done();
    }
    .instrument(span);
    tracker.spawn_on(task, &runtime);
}

/// How one cancel ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Accepted,
    VerifiedCancelled,
    CompletedAnyway,
    NotFound,
    Unimplemented,
    UnimplementedSkipped,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::VerifiedCancelled => "verified_cancelled",
            Outcome::CompletedAnyway => "completed_anyway",
            Outcome::NotFound => "not_found",
            Outcome::Unimplemented => "unimplemented",
            Outcome::UnimplementedSkipped => "unimplemented_skipped",
            Outcome::Failed => "failed",
        }
    }

    fn count(self, shared: &Shared) {
        let c = &shared.counters;
        let counter = match self {
            Outcome::Accepted => &c.accepted,
            Outcome::VerifiedCancelled => {
                c.accepted.fetch_add(1, Ordering::Relaxed);
                &c.verified_cancelled
            }
            Outcome::CompletedAnyway => {
                c.accepted.fetch_add(1, Ordering::Relaxed);
                &c.completed_anyway
            }
            Outcome::NotFound => &c.not_found,
            Outcome::Unimplemented | Outcome::UnimplementedSkipped => &c.unimplemented,
            Outcome::Failed => &c.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one attempt's answer means.
enum Answer {
    Final(Outcome),
    Retry(Option<Duration>),
}

async fn deliver<S, ReqBody, ResBody>(job: CancelJob<S>) -> Outcome
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes> + Unpin + Send + 'static,
{
    let span = Span::current();
    let policy = &job.policy;
    let started = Instant::now();
    let deadline = started + policy.deadline;
    let authority = job
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();

    let outcome = 'outcome: {
        if job.shared.unimplemented_at(&authority) {
            break 'outcome Outcome::UnimplementedSkipped;
        }
        let mut attempt = 0;
        loop {
            // A slot per attempt: a cancel backing off, or honouring a
            // Retry-After, sends nothing and holds no slot.
            let Ok(Ok(slot)) = tokio::time::timeout_at(deadline, job.shared.slots.acquire()).await
            else {
                tracing::warn!(attempt, "no cancel slot free before the cancel deadline");
                break 'outcome Outcome::Failed;
            };
            if attempt > 0 {
                job.shared.counters.retried.fetch_add(1, Ordering::Relaxed);
            }
            attempt += 1;
            span.record("attempt", attempt);
            let request = cancel_request::<ReqBody>(&job);
            let budget = policy
                .attempt_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            // The budget covers reading the answer's body too: a server that
            // sends a head, then a body that never ends, must not hold the
            // cancel (and its slot) forever.
            let svc = job.svc.clone();
            let result = tokio::time::timeout(budget, async move {
                let response = svc.oneshot(request).await.map_err(Into::into)?;
                Ok::<_, BoxError>(classify(response).await)
            })
            .await;
            let answer = match result {
                Err(_) => {
                    tracing::debug!(attempt, "cancel attempt timed out");
                    Answer::Retry(None)
                }
                Ok(Err(e)) => {
                    tracing::debug!(attempt, error = %e, "cancel attempt failed in transport");
                    Answer::Retry(None)
                }
                Ok(Ok(answer)) => answer,
            };
            match answer {
                Answer::Final(outcome) => {
                    if outcome == Outcome::Unimplemented {
                        job.shared
                            .remember_unimplemented(&authority, policy.remember_unimplemented);
                    }
                    break 'outcome outcome;
                }
                Answer::Retry(after) => {
                    let delay = backoff(
                        policy.initial_backoff,
                        2.0,
                        policy.max_backoff,
                        attempt - 1,
                        true,
                    )
                    .max(after.unwrap_or_default());
                    let next = Instant::now() + delay;
                    if attempt >= policy.attempts || next >= deadline {
                        break 'outcome Outcome::Failed;
                    }
                    drop(slot);
                    tokio::time::sleep_until(next).await;
                }
            }
        }
    };

    let outcome = match (outcome, policy.verify) {
        (Outcome::Accepted, Some(timeout)) => {
            let (svc, uri, headers) = (job.svc.clone(), job.get_uri.clone(), job.headers.clone());
            verify::<S, ReqBody, ResBody>(svc, uri, headers, timeout)
                .await
                .unwrap_or(Outcome::Accepted)
        }
        (outcome, _) => outcome,
    };
    span.record("outcome", outcome.as_str());
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Outcome::Accepted => {
            tracing::info!(elapsed_ms, "operation cancelled (CancelOperation accepted)")
        }
        Outcome::VerifiedCancelled => tracing::info!(
            elapsed_ms,
            "operation cancelled: GetOperation shows it ended CANCELLED"
        ),
        Outcome::CompletedAnyway => tracing::warn!(
            elapsed_ms,
            "cancel accepted, but the operation ended without CANCELLED"
        ),
        Outcome::NotFound => tracing::info!(elapsed_ms, "cancel: operation not found"),
        Outcome::Unimplemented | Outcome::UnimplementedSkipped => tracing::warn!(
            authority = %authority,
            "cancel not sent: the server does not implement CancelOperation (UNIMPLEMENTED)"
        ),
        Outcome::Failed => tracing::warn!(elapsed_ms, "cancel failed"),
    }
    outcome
}

/// Polls `GetOperation` after an accepted cancel until the operation is
/// done; `None` if it is not done within `timeout` or cannot be read.
async fn verify<S, ReqBody, ResBody>(
    svc: S,
    get_uri: Uri,
    mut headers: HeaderMap,
    timeout: Duration,
) -> Option<Outcome>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes> + Unpin + Send + 'static,
{
    headers.remove(http::header::CONTENT_LENGTH);
    let check = async move {
        for attempt in 0.. {
            let mut request = Request::new(ReqBody::empty());
            *request.uri_mut() = get_uri.clone();
            request.headers_mut().clone_from(&headers);
            let answer = svc
                .clone()
                .oneshot(request)
                .await
                .map_err(Into::<BoxError>::into);
            if let Ok(response) = answer {
                if response.status().is_success() {
                    let mut collect = Collect::new(response.into_body(), 1024 * 1024);
                    if let Ok(Collected::Complete { data, .. }) =
                        std::future::poll_fn(|cx| collect.poll_collect(cx)).await
                    {
                        match Operation::from_json(&data) {
                            Ok(op) if op.done && op.is_cancelled() => {
                                return Outcome::VerifiedCancelled
                            }
                            Ok(op) if op.done => return Outcome::CompletedAnyway,
                            _ => {}
                        }
                    }
                }
            }
            let delay = backoff(
                Duration::from_millis(250),
                1.5,
                Duration::from_secs(5),
                attempt,
                true,
            );
            tokio::time::sleep(delay).await;
        }
        Outcome::Accepted
    };
    tokio::time::timeout(timeout, check).await.ok()
}

/// `POST {prefix}{name}:cancel`, empty body, `content-length: 0` (AIP-151).
fn cancel_request<ReqBody: RequestBody>(job: &CancelJob<impl Sized>) -> Request<ReqBody> {
    // POST (AIP-151), unless a route function chose otherwise.
    let mut request = Request::new(ReqBody::empty());
    *request.method_mut() = job.method.clone();
    *request.uri_mut() = job.uri.clone();
    // Includes `content-length: 0` (AIP-151: the body must be empty).
    request.headers_mut().clone_from(&job.headers);
    request
}

/// Classifies a cancel answer; reads at most 64 KiB of an error body to find
/// an AIP-193 `"status": "UNIMPLEMENTED"`.
async fn classify<B>(response: Response<B>) -> Answer
where
    B: Body<Data = Bytes> + Unpin,
{
    let status = response.status();
    Span::current().record("http.response.status_code", status.as_u16());
    if status.is_success() {
        return Answer::Final(Outcome::Accepted);
    }
    if status == StatusCode::NOT_FOUND {
        return Answer::Final(Outcome::NotFound);
    }
    if status == StatusCode::NOT_IMPLEMENTED {
        return Answer::Final(Outcome::Unimplemented);
    }
    if is_transient(status) {
        return Answer::Retry(retry_after(response.headers()));
    }
    let mut collect = Collect::new(response.into_body(), 64 * 1024);
    if let Ok(Collected::Complete { data, .. }) =
        std::future::poll_fn(|cx| collect.poll_collect(cx)).await
    {
        if error_status_is(&data, "UNIMPLEMENTED") {
            return Answer::Final(Outcome::Unimplemented);
        }
    }
    Answer::Final(Outcome::Failed)
}

/// Whether an AIP-193 error body (`{"error": {"status": "..."}}`) has that status.
fn error_status_is(body: &[u8], expected: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        error: Inner<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Inner<'a> {
        #[serde(borrow, default)]
        status: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Envelope<'_>>(body)
        .ok()
        .and_then(|e| e.error.status)
        .is_some_and(|s| s == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aip193_status_is_read() {
        assert!(error_status_is(
            br#"{"error":{"code":400,"message":"no","status":"UNIMPLEMENTED"}}"#,
            "UNIMPLEMENTED"
        ));
        assert!(!error_status_is(
            br#"{"error":{"code":400,"status":"INVALID_ARGUMENT"}}"#,
            "UNIMPLEMENTED"
        ));
        assert!(!error_status_is(b"not json", "UNIMPLEMENTED"));
    }
}
