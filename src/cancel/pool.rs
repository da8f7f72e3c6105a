//! The delivery pool, one per layer: fired cancels wait in a queue — a
//! pointer each — for the one delivery task that sends them. The task is
//! started by the first cancel to arrive, on the runtime that cancel was
//! fired from, and ends once the queue is empty and nothing is in flight or
//! waiting to retry; the next cancel starts another.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Waker};

use tokio::runtime::Handle;

use super::dispatch::Delivery;
use super::job::Job;
use crate::shared::Shared;

/// A queue kept with more room than this is shrunk once it empties, so
/// that a burst does not hold its memory.
const KEPT_CAPACITY: usize = 1024;

/// The queue of cancels waiting to be sent, and whether a delivery task
/// runs to send them.
#[derive(Default)]
pub(crate) struct Pool {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Whether a delivery task runs (or is being spawned).
    running: bool,
    /// The delivery task's waker, while it waits for jobs.
    waker: Option<Waker>,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job` (already admitted and counted), and starts the delivery
    /// task on `runtime` if none runs. Never blocks but on the queue's lock.
    pub(crate) fn push(shared: &Arc<Shared>, job: Job, runtime: &Handle) {
        let (start, waker) = {
            let mut state = shared.pool.lock();
            state.jobs.push_back(job);
            let start = !state.running;
            state.running = true;
            (start, state.waker.take())
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        if start {
            // A runtime shutting down drops the task unpolled: its drop
            // counts what was queued as lost.
            shared
                .tracker
                .spawn_on(Delivery::new(shared.clone()), runtime);
        }
    }

    /// The next queued job; with none, the delivery task is woken when one
    /// is pushed.
    pub(crate) fn pop(&self, cx: &Context<'_>) -> Option<Job> {
        let mut state = self.lock();
        let job = state.jobs.pop_front();
        if job.is_none() {
            if state.jobs.capacity() > KEPT_CAPACITY {
                state.jobs.shrink_to(KEPT_CAPACITY);
            }
            match &state.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => state.waker = Some(cx.waker().clone()),
            }
        }
        job
    }

    /// Ends the delivery task if nothing is queued (`true`); a later push
    /// starts another.
    pub(crate) fn stop(&self) -> bool {
        let mut state = self.lock();
        if !state.jobs.is_empty() {
            return false;
        }
        state.running = false;
        state.waker = None;
        true
    }

    /// The delivery task was dropped unfinished (its runtime shut down):
    /// what was queued goes with it, each job counted as lost when dropped
    /// (after the lock is released).
    pub(crate) fn abandon(&self) -> VecDeque<Job> {
        let mut state = self.lock();
        state.running = false;
        state.waker = None;
        std::mem::take(&mut state.jobs)
    }
}
