//! The delivery pool, one per layer: fired cancels wait in a queue — a
//! pointer each — for the pool's workers, at most the policy's
//! `max_in_flight` tasks, each sending one attempt at a time. Workers are
//! started as cancels arrive, on the runtime each was fired from, and end
//! when the queue is empty; cancels backing off wait in a timer heap, kept
//! by one worker sleeping until the earliest is due, and go before the
//! queue once due.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::delivery::Delivery as Shared;
use super::job::Job;
use super::worker::worker;

/// A queue kept with more room than this is shrunk once it empties, so
/// that a burst does not hold its memory.
const KEPT_CAPACITY: usize = 1024;

/// The queue of cancels waiting to be sent, the retries waiting for their
/// time, and the workers sending them.
#[derive(Default)]
pub(crate) struct Pool {
    state: Mutex<State>,
    /// Wakes the worker keeping the timer heap: a retry due earlier, or a
    /// job while every worker slot is taken.
    wake: Notify,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    waiting: BinaryHeap<Waiting>,
    /// Tie-break for retries due at the same instant: first come first.
    seq: u64,
    /// Workers alive.
    workers: usize,
    /// When the worker keeping the timer heap wakes, if one is asleep.
    keeper: Option<Instant>,
}

/// A cancel backing off until `at`.
struct Waiting {
    at: Instant,
    seq: u64,
    job: Job,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Waiting {}

impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiting {
    /// Reversed: the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// What a worker does next.
pub(crate) enum Next {
    /// Send (or settle) this cancel.
    Job(Job),
    /// Keep the timer heap: sleep until this instant or a wake-up.
    Keep(Instant),
    /// Nothing left: end.
    Exit,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job` (already admitted and counted), and starts a worker on
    /// `runtime` if fewer than `max_in_flight` run. Never blocks but on the
    /// queue's lock.
    pub(crate) fn push(shared: &Arc<Shared>, job: Job, runtime: &Handle) {
        let (start, wake) = {
            let mut state = shared.pool.lock();
            state.jobs.push_back(job);
            let start = state.workers < shared.max_in_flight;
            state.workers += usize::from(start);
            (start, !start && state.keeper.is_some())
        };
        if start {
            // A runtime shutting down drops the task unpolled: its guard
            // then counts what was queued as lost.
            shared.tracker.spawn_on(worker(shared.clone()), runtime);
        } else if wake {
            shared.pool.wake.notify_one();
        }
    }

    /// Puts `job` back to be sent again at `at` (a retry backing off).
    pub(crate) fn retry(&self, job: Job, at: Instant) {
        let wake = {
            let mut state = self.lock();
            state.seq += 1;
            let seq = state.seq;
            state.waiting.push(Waiting { at, seq, job });
            state.keeper.is_some_and(|wakes| at < wakes)
        };
        if wake {
            self.wake.notify_one();
        }
    }

    /// The worker's next step: the earliest due retry, else the oldest
    /// queued cancel; with none, keep the timer heap if nobody does, or end.
    /// Also how many more workers to start (retries fell due for which no
    /// worker is free), counted as running already.
    pub(crate) fn next(&self, keeping: bool, max_workers: usize) -> (Next, usize) {
        let mut state = self.lock();
        if keeping {
            state.keeper = None;
        }
        let now = Instant::now();
        let mut due = Vec::new();
        while state.waiting.peek().is_some_and(|w| w.at <= now) {
            due.extend(state.waiting.pop().map(|w| w.job));
        }
        let fell_due = due.len();
        for job in due.into_iter().rev() {
            state.jobs.push_front(job);
        }
        if let Some(job) = state.jobs.pop_front() {
            let more = fell_due
                .saturating_sub(1)
                .min(max_workers.saturating_sub(state.workers));
            state.workers += more;
            return (Next::Job(job), more);
        }
        if state.jobs.capacity() > KEPT_CAPACITY {
            state.jobs.shrink_to(KEPT_CAPACITY);
        }
        match state.waiting.peek().map(|w| w.at) {
            Some(at) if state.keeper.is_none() => {
                state.keeper = Some(at);
                (Next::Keep(at), 0)
            }
            _ => {
                state.workers -= 1;
                (Next::Exit, 0)
            }
        }
    }

    /// The notification the timer heap's keeper sleeps on.
    pub(crate) fn wake(&self) -> &Notify {
        &self.wake
    }

    /// A worker was dropped unfinished (its runtime shut down). The last
    /// one takes what was queued or waiting along: each job is counted lost
    /// when dropped, after the lock is released.
    pub(crate) fn abandon(&self, keeping: bool) -> Vec<Job> {
        let mut state = self.lock();
        state.workers -= 1;
        if keeping {
            state.keeper = None;
        }
        if state.workers > 0 {
            return Vec::new();
        }
        let mut lost: Vec<Job> = state.jobs.drain(..).collect();
        lost.extend(state.waiting.drain().map(|w| w.job));
        lost
    }
}
