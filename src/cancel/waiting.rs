//! The calls waiting on an operation, so that
//! [`CancelHandle::shutdown`](crate::CancelHandle::shutdown) can end them:
//! each tracked call registers once its operation's name is known, and
//! leaves when it ends, saying how (a cancel on its way, none, or finished).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Context;

use futures_util::task::AtomicWaker;
use tokio::sync::{oneshot, Notify};

use super::outcome::CancelOutcome;
use crate::operation::OperationName;

/// The calls of one layer waiting on an operation.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    closing: AtomicBool,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Arc<Waiter>>>,
}

/// One waiting call, as shutdown sees it.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) name: OperationName,
    waker: AtomicWaker,
    end: Mutex<End>,
    ended: Notify,
}

/// How a waiting call ended.
#[derive(Debug)]
pub(crate) enum End {
    /// Not yet.
    Waiting,
    /// A cancel was fired; its outcome arrives here (dropped unsent if it was
    /// shed or lost).
    Cancel(oneshot::Receiver<CancelOutcome>),
    /// Its outcome is being awaited by shutdown.
    Fired,
    /// It stopped waiting without a cancel: the trigger is off for it.
    NoCancel,
    /// The operation was done, or the call failed before a cancel was due.
    Finished,
}

impl Calls {
    /// Whether shutdown has begun.
    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Registers a call waiting on `name`.
    pub(crate) fn register(self: &Arc<Self>, name: OperationName) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let waiter = Arc::new(Waiter {
            name,
            waker: AtomicWaker::new(),
            end: Mutex::new(End::Waiting),
            ended: Notify::new(),
        });
        self.lock().insert(id, waiter.clone());
        Registration {
            calls: self.clone(),
            id,
            waiter,
        }
    }

    /// Begins shutdown: every call registered so far, woken. A call that
    /// registers afterwards sees `closing` when it is next polled.
    pub(crate) fn close(&self) -> Vec<Arc<Waiter>> {
        let waiters: Vec<_> = {
            let waiting = self.lock();
            self.closing.store(true, Ordering::Release);
            waiting.values().cloned().collect()
        };
        for waiter in &waiters {
            waiter.waker.wake();
        }
        waiters
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Waiter>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Waiter {
    fn set(&self, end: End) {
        let mut slot = self.end.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*slot, End::Waiting) {
            *slot = end;
            drop(slot);
            self.ended.notify_one();
        }
    }

    /// Waits until the call ends: its cancel's outcome (`Err` if the cancel
    /// was dropped unsent), or how it ended without one.
    pub(crate) async fn ended(&self) -> Result<Option<CancelOutcome>, End> {
        loop {
            let end = {
                let mut slot = self.end.lock().unwrap_or_else(PoisonError::into_inner);
                match &*slot {
                    End::Waiting => None,
                    End::Cancel(_) => Some(std::mem::replace(&mut *slot, End::Fired)),
                    End::NoCancel => Some(End::NoCancel),
                    End::Fired | End::Finished => Some(End::Finished),
                }
            };
            match end {
                None => self.ended.notified().await,
                Some(End::Cancel(outcome)) => return Ok(outcome.await.ok()),
                Some(other) => return Err(other),
            }
        }
    }

    /// Whether a cancel was fired for this call (its outcome may be pending).
    pub(crate) fn fired(&self) -> bool {
        let slot = self.end.lock().unwrap_or_else(PoisonError::into_inner);
        matches!(*slot, End::Cancel(_) | End::Fired)
    }
}

/// A call's place among the waiting calls; leaving it (drop) removes it.
#[derive(Debug)]
pub(crate) struct Registration {
    calls: Arc<Calls>,
    id: u64,
    waiter: Arc<Waiter>,
}

impl Registration {
    /// Whether shutdown has begun; wakes this call when it does.
    pub(crate) fn poll_closing(&self, cx: &mut Context<'_>) -> bool {
        if self.calls.closing() {
            return true;
        }
        self.waiter.waker.register(cx.waker());
        self.calls.closing()
    }

    /// Whether shutdown has begun.
    pub(crate) fn closing(&self) -> bool {
        self.calls.closing()
    }

    /// The operation the call waits on.
    pub(crate) fn name(&self) -> &OperationName {
        &self.waiter.name
    }

    /// The call fires a cancel: where its outcome goes.
    pub(crate) fn cancelled(self) -> oneshot::Sender<CancelOutcome> {
        let (reply, outcome) = oneshot::channel();
        self.waiter.set(End::Cancel(outcome));
        reply
    }

    /// The call stopped waiting and fires no cancel.
    pub(crate) fn not_cancelled(self) {
        self.waiter.set(End::NoCancel);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.calls.lock().remove(&self.id);
        self.waiter.set(End::Finished);
    }
}
