//! [`Delivery`]: the cancel delivery's runtime state, owned by the layer's
//! [`CancelHandle`](crate::CancelHandle) and shared with every service it
//! builds and their clones — cancel slots, queue and counters, and the
//! per-server memos.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use std::sync::Arc;

use super::policy::CancelPolicy;
use super::pool::Pool;
use super::stats::{CancelStats, Counters};
use super::waiting::Calls;

/// The state of one layer's cancel delivery, shared by every clone of the
/// layer and its services. The limits are fixed at creation: a policy with
/// others gets a new `Delivery`.
pub(crate) struct Delivery {
    pub(crate) counters: Counters,
    /// The delivery workers (and tasks waiting on calls abandoned in flight),
    /// for `drain`.
    pub(crate) tracker: TaskTracker,
    /// Fired cancels waiting to be sent.
    pub(crate) pool: Pool,
    /// Cancel attempts sending at once.
    pub(crate) max_in_flight: usize,
    /// Cancels fired and not finished: sending, verifying, backing off or
    /// queued.
    pub(crate) pending: AtomicUsize,
    /// In flight plus queued: more are shed.
    pub(crate) capacity: usize,
    /// The calls waiting on an operation, for `CancelHandle::shutdown`.
    pub(crate) calls: Arc<Calls>,
    unimplemented: Mutex<HashMap<String, Instant>>,
    no_wait: Mutex<HashSet<String>>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .field("capacity", &self.capacity)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Delivery {
    pub(crate) fn new(policy: &CancelPolicy) -> Self {
        Delivery {
            counters: Counters::default(),
            tracker: TaskTracker::new(),
            pool: Pool::default(),
            max_in_flight: policy.max_in_flight,
            pending: AtomicUsize::new(0),
            capacity: policy.max_in_flight.saturating_add(policy.max_queued),
            calls: Arc::default(),
            unimplemented: Mutex::new(HashMap::new()),
            no_wait: Mutex::new(HashSet::new()),
        }
    }

    /// Whether these limits are `policy`'s.
    pub(crate) fn fits(&self, policy: &CancelPolicy) -> bool {
        self.max_in_flight == policy.max_in_flight
            && self.capacity == policy.max_in_flight.saturating_add(policy.max_queued)
    }

    pub(crate) fn stats(&self) -> CancelStats {
        self.counters.stats()
    }

    /// Whether `authority` answered WaitOperation as not implemented before.
    pub(crate) fn wait_unsupported(&self, authority: &str) -> bool {
        self.no_wait
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(authority)
    }

    /// Remembers, for the layer's lifetime, that `authority` does not
    /// implement WaitOperation.
    pub(crate) fn remember_no_wait(&self, authority: &str) {
        self.no_wait
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(authority.to_owned());
    }

    /// Whether `authority` answered CancelOperation as not implemented
    /// within the remembered time.
    pub(crate) fn unimplemented_at(&self, authority: &str) -> bool {
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

    pub(crate) fn remember_unimplemented(&self, authority: &str, for_: Duration) {
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
