//! The writer's background task: group commits, retries through a store
//! outage, lease renewal.

use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::pending::{Added, Command, Pending};
use super::{Counters, WriterOptions};
use crate::journal::{Journal, JournalError, OwnerId};

pub(super) struct Task {
    pub(super) journal: Arc<dyn Journal>,
    pub(super) owner: OwnerId,
    pub(super) options: WriterOptions,
    pub(super) counters: Arc<Counters>,
}

/// A run of failed commits, from the first failure to the next success.
struct Outage {
    since: tokio::time::Instant,
    attempts: u64,
    dropped: u64,
}

impl Outage {
    /// The first failure: logged once, at `error`, with the store's error.
    fn begin(error: &JournalError, held: usize) -> Self {
        tracing::error!(error = %error, source = ?std::error::Error::source(error), held,
            "journal commits failing: changes held in memory and retried until the store \
             recovers (a crash meanwhile loses them)");
        Outage {
            since: tokio::time::Instant::now(),
            attempts: 0,
            dropped: 0,
        }
    }

    /// A commit succeeded again: logged once, with the outage's toll.
    fn end(self) {
        tracing::warn!(
            failed_attempts = self.attempts,
            dropped = self.dropped,
            outage_ms = self.since.elapsed().as_millis() as u64,
            "journal commits recovered"
        );
    }
}

impl Task {
    pub(super) async fn run(self, mut rx: mpsc::Receiver<Command>) {
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
                    self.take_in(&mut pending, command, usize::MAX, None);
                    while pending.len() < self.options.max_batch {
                        match rx.try_recv() {
                            Ok(command) => self.take_in(&mut pending, command, usize::MAX, None),
                            Err(_) => break,
                        }
                    }
                    let mut wait = Wait { rx: &mut rx, next: next.as_mut(), renew_every };
                    if self.commit(&mut pending, &mut wait).await.is_break() {
                        break;
                    }
                }
            }
        }
    }

    /// Adds `command` to `pending` (at most `limit` changes), counting
    /// what coalesces and what is dropped (in `outage` too, if any).
    fn take_in(
        &self,
        pending: &mut Pending,
        command: Command,
        limit: usize,
        outage: Option<&mut Outage>,
    ) {
        match pending.add(command, limit) {
            Added::Kept => {}
            Added::Coalesced => {
                self.counters.coalesced.fetch_add(1, Ordering::Relaxed);
            }
            Added::Dropped => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                self.options.metrics.dropped(1);
                let Some(outage) = outage else { return };
                outage.dropped += 1;
                if outage.dropped == 1 {
                    tracing::warn!(held = limit,
                        "journal commits failing with the queue full: new changes dropped until the store recovers");
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

    /// Commits everything in `pending`, at most `max_batch` changes per
    /// transaction, then answers its flushes. A failed transaction is
    /// retried (100 ms, doubling to 5 s) with its changes kept; while it
    /// waits, the lease is renewed and new changes are taken in (coalesced,
    /// at most `queue` of them held: the rest dropped).
    ///
    /// Breaks if the store answers [`JournalError::Closed`] (its runtime is
    /// shutting down): the changes held are dropped (counted, one `warn`).
    async fn commit(&self, pending: &mut Pending, wait: &mut Wait<'_, '_>) -> ControlFlow<()> {
        let c = &self.counters;
        let mut outage: Option<Outage> = None;
        let mut delay = Duration::from_millis(100);
        let mut started = None;
        while !pending.is_empty() {
            let batch = pending.take(self.options.max_batch);
            let first = *started.get_or_insert_with(tokio::time::Instant::now);
            match self.journal.commit(&batch).await {
                Ok(()) => {
                    c.batches.fetch_add(1, Ordering::Relaxed);
                    c.recorded
                        .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
                    c.removed
                        .fetch_add(batch.removes.len() as u64, Ordering::Relaxed);
                    self.options.metrics.committed(first);
                    started = None;
                }
                Err(JournalError::Closed) => {
                    pending.put_back(batch);
                    let lost = pending.len() as u64;
                    c.dropped.fetch_add(lost, Ordering::Relaxed);
                    self.options.metrics.dropped(lost);
                    tracing::warn!(dropped = lost,
                        "journal writer stopped: the runtime is shutting down, changes not committed");
                    return ControlFlow::Break(());
                }
                Err(e) => {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    self.options.metrics.failed();
                    pending.put_back(batch);
                    let outage = outage.get_or_insert_with(|| Outage::begin(&e, pending.len()));
                    outage.attempts += 1;
                    if outage.attempts > 1 {
                        tracing::debug!(error = %e, source = ?std::error::Error::source(&e),
                            attempt = outage.attempts, "journal commit failed again");
                    }
                    self.wait_out(delay, pending, wait, outage).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        if let Some(outage) = outage {
            outage.end();
        }
        for done in pending.flushes.drain(..) {
            let _ = done.send(());
        }
        ControlFlow::Continue(())
    }

    /// Waits `delay` before a retry, renewing the lease when due and taking
    /// new changes into `pending`.
    async fn wait_out(
        &self,
        delay: Duration,
        pending: &mut Pending,
        wait: &mut Wait<'_, '_>,
        outage: &mut Outage,
    ) {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        let mut open = true;
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                _ = wait.next.as_mut() => {
                    self.renew().await;
                    wait.next.as_mut().reset(tokio::time::Instant::now() + wait.renew_every);
                }
                command = wait.rx.recv(), if open => match command {
                    Some(command) => self.take_in(pending, command, self.options.queue, Some(outage)),
                    None => open = false,
                },
            }
        }
    }
}

/// What a commit waits on between retries: the queue and the lease renewal.
struct Wait<'r, 's> {
    rx: &'r mut mpsc::Receiver<Command>,
    next: Pin<&'s mut tokio::time::Sleep>,
    renew_every: Duration,
}
