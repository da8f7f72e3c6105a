//! The background writer: non-blocking enqueues, group commits, lease renewal.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{Batch, Entry, EntryId, Journal, JournalError, OwnerId};

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
    /// `lro.journal.commit.duration`, with a `Meter`.
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
    /// [`WriterStats::dropped`] and logged at `warn`.
    pub fn queue(mut self, capacity: usize) -> Self {
        self.queue = capacity.max(1);
        self
    }

    /// Records each commit's latency on `meter` (feature `opentelemetry`):
    /// the histogram `lro.journal.commit.duration`, in seconds, from the
    /// first attempt to success (retries included).
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
    /// Entries recorded and removed within one batch window: never written.
    pub coalesced: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Transactions that failed (retried with backoff, their changes kept).
    pub errors: u64,
    /// Changes dropped because the queue was full.
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

enum Command {
    Record(Entry),
    Remove(EntryId),
    Flush(oneshot::Sender<()>),
}

/// Writes [`Entry`]s to a [`Journal`] off the caller's path.
///
/// [`record`](Self::record) and [`remove`](Self::remove) only enqueue.
/// A background task takes everything queued (up to
/// [`WriterOptions::max_batch`]) and commits it in one transaction, then
/// the next batch: while one commit is running, the next batch gathers.
/// An entry recorded and removed before its batch commits is never written.
/// A failed commit is retried (100 ms, doubling to 5 s) with its changes
/// kept. The same task renews the owner's lease.
///
/// **What a crash loses**: changes enqueued but not committed — those of the
/// batch being committed and those queued behind it, i.e. about one commit
/// time (BENCHMARKS.md has it per backend). A lost record means an operation
/// that will not be reaped; a lost remove means one that gets a harmless
/// extra CancelOperation after it finished (a no-op on a done operation,
/// AIP-151). [`flush`](Self::flush) waits until everything enqueued so far
/// is committed.
#[derive(Clone)]
pub struct JournalWriter {
    tx: mpsc::Sender<Command>,
    owner: OwnerId,
    seq: Arc<AtomicU64>,
    counters: Arc<Counters>,
    journal: Arc<dyn Journal>,
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
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "queue full",
                mpsc::error::TrySendError::Closed(_) => "writer stopped",
            };
            tracing::warn!("journal change dropped: {why}");
        }
    }

    /// Waits until every change enqueued before this call is committed.
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

struct Task {
    journal: Arc<dyn Journal>,
    owner: OwnerId,
    options: WriterOptions,
    counters: Arc<Counters>,
}

/// Changes gathered for one commit.
#[derive(Default)]
struct Pending {
    records: HashMap<EntryId, Entry>,
    removes: Vec<EntryId>,
    flushes: Vec<oneshot::Sender<()>>,
    coalesced: u64,
}

impl Pending {
    fn len(&self) -> usize {
        self.records.len() + self.removes.len()
    }

    fn add(&mut self, command: Command) {
        match command {
            Command::Record(e) => {
                self.records.insert(e.id().clone(), e);
            }
            Command::Remove(id) => {
                if self.records.remove(&id).is_some() {
                    self.coalesced += 1;
                } else {
                    self.removes.push(id);
                }
            }
            Command::Flush(done) => self.flushes.push(done),
        }
    }
}

impl Task {
    async fn run(self, mut rx: mpsc::Receiver<Command>) {
        let renew_every = (self.options.lease / 3).max(Duration::from_millis(10));
        self.renew().await;
        // The next renewal is timed from the end of the last one, and the
        // select is fair: a slow store delays renewals, never starves commits.
        let next = tokio::time::sleep(renew_every);
        tokio::pin!(next);
        loop {
            tokio::select! {
                _ = &mut next => {
                    self.renew().await;
                    next.as_mut().reset(tokio::time::Instant::now() + renew_every);
                }
                command = rx.recv() => {
                    let Some(command) = command else { break };
                    let mut pending = Pending::default();
                    pending.add(command);
                    while pending.len() < self.options.max_batch {
                        match rx.try_recv() {
                            Ok(command) => pending.add(command),
                            Err(_) => break,
                        }
                    }
                    self.commit(pending, next.as_mut(), renew_every).await;
                }
            }
        }
    }

    async fn renew(&self) {
        if let Err(e) = self.journal.renew(&self.owner, self.options.lease).await {
            tracing::warn!(owner = %self.owner, error = %e, source = ?std::error::Error::source(&e),
                "journal: owner lease not renewed");
        }
    }

    /// Commits `pending`, retrying until it succeeds; renews the lease
    /// while it retries.
    async fn commit(
        &self,
        pending: Pending,
        mut next: std::pin::Pin<&mut tokio::time::Sleep>,
        renew_every: Duration,
    ) {
        let batch = Batch {
            records: pending.records.into_values().collect(),
            removes: pending.removes,
        };
        let c = &self.counters;
        c.coalesced.fetch_add(pending.coalesced, Ordering::Relaxed);
        let mut delay = Duration::from_millis(100);
        let started = tokio::time::Instant::now();
        while !batch.is_empty() {
            match self.journal.commit(&batch).await {
                Ok(()) => {
                    c.batches.fetch_add(1, Ordering::Relaxed);
                    c.recorded
                        .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
                    c.removed
                        .fetch_add(batch.removes.len() as u64, Ordering::Relaxed);
                    self.options.metrics.committed(started);
                    break;
                }
                Err(e) => {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, source = ?std::error::Error::source(&e),
                        changes = batch.records.len() + batch.removes.len(),
                        "journal commit failed; retrying");
                    let sleep = tokio::time::sleep(delay);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            _ = next.as_mut() => {
                                self.renew().await;
                                next.as_mut().reset(tokio::time::Instant::now() + renew_every);
                            }
                        }
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        for done in pending.flushes {
            let _ = done.send(());
        }
    }
}
