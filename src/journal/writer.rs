//! The background writer: non-blocking enqueues, group commits, lease renewal.

mod pending;
mod task;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use self::pending::Command;
use self::task::Task;
use super::{Entry, EntryId, Journal, JournalError, OwnerId};

/// How a [`JournalWriter`] commits and renews its lease.
///
/// Defaults: lease 30 s renewed every 10 s, batches of at most 1,024
/// changes, a queue of 65,536 changes.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    lease: Duration,
    max_batch: usize,
    queue: usize,
    owner: Option<OwnerId>,
    /// The `lro.journal.*` instruments, with a `Meter`.
    metrics: crate::metrics::JournalMetrics,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            lease: Duration::from_secs(30),
            max_batch: 1024,
            queue: 65_536,
            owner: None,
            metrics: Default::default(),
        }
    }
}

impl WriterOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long the owner's lease lasts (default 30 s; renewed every third
    /// of it, at least every 10 ms). A process that stops renewing — a
    /// crash, or a journal unreachable for this long — has its entries
    /// reaped after it: shorter reaps crashes sooner, longer tolerates
    /// longer outages of the journal.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// The most changes (records plus removes) one commit carries (default 1,024; at least 1).
    pub fn max_batch(mut self, max: usize) -> Self {
        self.max_batch = max.max(1);
        self
    }

    /// How many changes may wait for a commit (default 65,536). A change
    /// enqueued while the queue is full is dropped, counted in
    /// [`WriterStats::dropped`] and logged at `warn` (the 1st, 2nd, 4th,
    /// 8th... drop of the writer's life). While commits fail (a full disk,
    /// the store unreachable) the writer keeps taking changes in, a record
    /// and its remove cancelling out, and holds at most this many: a record,
    /// or a remove of a committed entry, beyond that is dropped (counted;
    /// one `warn` per outage).
    pub fn queue(mut self, capacity: usize) -> Self {
        self.queue = capacity.max(1);
        self
    }

    /// Records the writer's instruments on `meter` (feature `opentelemetry`):
    /// the histogram `lro.journal.commit.duration`, each commit's latency in
    /// seconds from the first attempt to success (retries included); the
    /// counters `lro.journal.commit.errors` (`{commit}`, as
    /// [`WriterStats::errors`]) and `lro.journal.changes.dropped`
    /// (`{change}`, as [`WriterStats::dropped`]).
    #[cfg(feature = "opentelemetry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
    pub fn meter(mut self, meter: &opentelemetry::metrics::Meter) -> Self {
        self.metrics = crate::metrics::JournalMetrics::new(meter);
        self
    }

    /// This process's owner id (default [`OwnerId::random`]).
    pub fn owner(mut self, owner: OwnerId) -> Self {
        self.owner = Some(owner);
        self
    }
}

/// Counters of one [`JournalWriter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterStats {
    /// Entries written.
    pub recorded: u64,
    /// Entries deleted.
    pub removed: u64,
    /// Entries recorded and removed before their record was tried (within
    /// one batch window, or while commits fail): never written.
    pub coalesced: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Commits that failed (each attempt counts; retried with backoff, their
    /// changes kept).
    pub errors: u64,
    /// Changes dropped because the queue was full ([`WriterOptions::queue`])
    /// or the writer had stopped: never written. A dropped record is an
    /// operation a reaper will not cancel after a crash; a dropped remove,
    /// a harmless extra CancelOperation on a done operation.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    recorded: AtomicU64,
    removed: AtomicU64,
    coalesced: AtomicU64,
    batches: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
}

/// Writes [`Entry`]s to a [`Journal`] off the caller's path.
///
/// [`record`](Self::record) and [`remove`](Self::remove) only enqueue.
/// A background task takes everything queued (up to
/// [`WriterOptions::max_batch`]) and commits it in one transaction, then
/// the next batch: while one commit is running, the next batch gathers.
/// An entry recorded and removed before its batch commits is never written.
/// The same task renews the owner's lease.
///
/// **When the store fails** (a full disk, an unwritable file, the database
/// unreachable), calls are not affected: enqueueing never waits. A failed
/// commit is retried (100 ms, doubling to 5 s) with its changes kept, and
/// counted in [`WriterStats::errors`]; the outage is logged once at `error`
/// with the store's error as `source` (later attempts at `debug`), and its
/// end once at `warn` (`failed_attempts`, `dropped`, `outage_ms`).
/// Meanwhile new changes are taken in and coalesced, at most
/// [`WriterOptions::queue`] of them held; beyond that they are dropped and
/// counted in [`WriterStats::dropped`]. Once a commit succeeds, everything
/// held is committed. Lease renewals fail too: an outage longer than
/// [`WriterOptions::lease`] lets a reaper cancel this process's operations.
///
/// **What a crash loses**: changes enqueued but not committed — those of the
/// batch being committed and those queued behind it, i.e. about one commit
/// time (BENCHMARKS.md has it per backend). A lost record means an operation
/// that will not be reaped; a lost remove means one that gets a harmless
/// extra CancelOperation after it finished (a no-op on a done operation,
/// AIP-151). [`flush`](Self::flush) waits until everything enqueued so far
/// is committed (or dropped).
#[derive(Clone)]
pub struct JournalWriter {
    tx: mpsc::Sender<Command>,
    owner: OwnerId,
    seq: Arc<AtomicU64>,
    counters: Arc<Counters>,
    journal: Arc<dyn Journal>,
    metrics: crate::metrics::JournalMetrics,
}

impl fmt::Debug for JournalWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalWriter")
            .field("owner", &self.owner)
            .field("journal", &self.journal)
            .field("stats", &self.stats())
            .finish()
    }
}

impl JournalWriter {
    /// Starts the writer task on the current tokio runtime; it renews the
    /// owner's lease before it commits anything, and runs until every clone
    /// of the writer is dropped.
    ///
    /// # Errors
    /// [`JournalError::NoRuntime`] outside a tokio runtime.
    pub fn start(journal: impl Journal, options: WriterOptions) -> Result<Self, JournalError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| JournalError::NoRuntime)?;
        let journal: Arc<dyn Journal> = Arc::new(journal);
        let owner = options.owner.clone().unwrap_or_else(OwnerId::random);
        let (tx, rx) = mpsc::channel(options.queue);
        let counters = Arc::new(Counters::default());
        let metrics = options.metrics.clone();
        let task = Task {
            journal: journal.clone(),
            owner: owner.clone(),
            options,
            counters: counters.clone(),
        };
        runtime.spawn(task.run(rx));
        Ok(JournalWriter {
            tx,
            owner,
            seq: Arc::new(AtomicU64::new(0)),
            counters,
            journal,
            metrics,
        })
    }

    /// This process's owner id.
    pub fn owner(&self) -> &OwnerId {
        &self.owner
    }

    /// The journal written to.
    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    /// A fresh entry id of this owner.
    pub fn next_id(&self) -> EntryId {
        EntryId::new(&self.owner, self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// Enqueues `entry` to be written. Never blocks, never fails: a full
    /// queue drops it (counted, logged).
    pub fn record(&self, entry: Entry) {
        self.send(Command::Record(entry));
    }

    /// Enqueues the removal of entry `id`.
    pub fn remove(&self, id: EntryId) {
        self.send(Command::Remove(id));
    }

    fn send(&self, command: Command) {
        if let Err(e) = self.tx.try_send(command) {
            let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            self.metrics.dropped(1);
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "queue full",
                mpsc::error::TrySendError::Closed(_) => "writer stopped",
            };
            // The 1st, 2nd, 4th, 8th... drop: a few lines, not one per call.
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "journal change dropped: {why}");
            }
        }
    }

    /// Waits until every change enqueued before this call is committed (or
    /// dropped: see [`WriterStats::dropped`]). While commits fail, it waits
    /// until they succeed again.
    ///
    /// # Errors
    /// [`JournalError::Closed`] if the writer task has stopped.
    pub async fn flush(&self) -> Result<(), JournalError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Flush(done))
            .await
            .map_err(|_| JournalError::Closed)?;
        wait.await.map_err(|_| JournalError::Closed)
    }

    /// Flushes, then ends the owner's lease: entries still journaled (cancels
    /// that never settled) become orphans for a reaper at once. Call at
    /// graceful shutdown, after draining the layer's cancels.
    ///
    /// # Errors
    /// As [`flush`](Self::flush), or the store's error.
    pub async fn retire(&self) -> Result<(), JournalError> {
        self.flush().await?;
        self.journal.retire(&self.owner).await
    }

    /// The counters so far.
    pub fn stats(&self) -> WriterStats {
        let c = &self.counters;
        WriterStats {
            recorded: c.recorded.load(Ordering::Relaxed),
            removed: c.removed.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }
}
