//! A durable record of the operations a process is tracking, so that a
//! [`Reaper`] can cancel (AIP-151 `CancelOperation`) what a crashed process
//! left running.
//!
//! - A process writes through a [`JournalWriter`]: an [`Entry`] is
//!   recorded when an operation's name becomes known and removed when the
//!   operation is done or its cancel settles. Both are non-blocking
//!   enqueues; a background task commits them in batches (group commit), so
//!   the caller's path never waits on storage. A crash loses at most what
//!   was enqueued but not yet committed: the batch window.
//! - The writer renews its owner's *lease*. Entries whose owner's lease has
//!   expired are *orphans*.
//! - A [`Reaper`] claims orphans (exclusively: two reapers never claim the
//!   same entry while a claim lasts), cancels each through the service stack
//!   it is given (which adds credentials: none are stored), and removes the
//!   entries whose cancel settled. A reaper holds a lease too: its claims
//!   last while it lives, so a dead reaper's are retaken once its lease
//!   expires.
//!
//! Backends: [`SqliteJournal`] (feature `journal-sqlite`, one local file)
//! and [`PostgresJournal`] (feature `journal-postgres`, one database shared
//! by a fleet), with the same schema. Any other store implements [`Journal`].

mod deliver;
mod entry;
mod origins;
mod reaper;
mod route;
mod schema;
mod writer;

#[cfg(feature = "journal-postgres")]
mod postgres;
#[cfg(feature = "journal-sqlite")]
mod sqlite;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use self::entry::{
    Entry, EntryId, OwnerId, Protocol, Route, GRPC_CANCEL_METHOD, JOURNALED_HEADERS,
};
pub use self::reaper::{ReapReport, Reaper, ReaperStats};
pub use self::schema::SCHEMA;
pub use self::writer::{JournalWriter, WriterOptions, WriterStats};

#[cfg(feature = "journal-postgres")]
pub use self::postgres::PostgresJournal;
#[cfg(feature = "journal-sqlite")]
pub use self::sqlite::SqliteJournal;

/// A boxed, `Send` future: what [`Journal`] methods return, so that the
/// trait is object-safe (`Arc<dyn Journal>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a journal operation can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum JournalError {
    /// The store failed (I/O, connection, SQL); the source says why.
    Store(Box<dyn std::error::Error + Send + Sync>),
    /// A stored row could not be read back (unknown protocol, bad route or headers).
    Corrupt(String),
    /// The input cannot be journaled (a relative cancel URI, say).
    Invalid(String),
    /// No tokio runtime to run the writer or reaper on.
    NoRuntime,
    /// The writer task is gone (its runtime shut down).
    Closed,
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Store(_) => f.write_str("journal store failed"),
            JournalError::Corrupt(what) => write!(f, "journal row unreadable: {what}"),
            JournalError::Invalid(what) => write!(f, "cannot journal: {what}"),
            JournalError::NoRuntime => f.write_str("no tokio runtime to run the journal on"),
            JournalError::Closed => f.write_str("the journal writer has stopped"),
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalError::Store(e) => Some(&**e),
            _ => None,
        }
    }
}

#[cfg(any(feature = "journal-sqlite", feature = "journal-postgres"))]
impl JournalError {
    pub(crate) fn store(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        JournalError::Store(Box::new(e))
    }
}

/// One group commit: entries to insert and entries to delete, applied in
/// one transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Entries to insert (an id already present is left as it is).
    pub records: Vec<Entry>,
    /// Entries to delete (an absent id is not an error).
    pub removes: Vec<EntryId>,
}

impl Batch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.removes.is_empty()
    }
}

/// Durable storage for [`Entry`]s, owners' leases and reapers' claims.
///
/// Times are the store's: a shared store (PostgreSQL) uses its own clock so
/// that replicas' clock skew cannot expire a live owner's lease.
pub trait Journal: Send + Sync + fmt::Debug + 'static {
    /// Applies `batch` atomically: all of it or none.
    ///
    /// # Errors
    /// [`JournalError::Store`] if the transaction failed; nothing was written.
    fn commit<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), JournalError>>;

    /// Sets `owner`'s lease to expire `lease` from now (creating it).
    ///
    /// # Errors
    /// [`JournalError::Store`] if it could not be written.
    fn renew<'a>(
        &'a self,
        owner: &'a OwnerId,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(), JournalError>>;

    /// Ends `owner`'s lease now: its remaining entries become orphans at once.
    ///
    /// # Errors
    /// [`JournalError::Store`] if it could not be written.
    fn retire<'a>(&'a self, owner: &'a OwnerId) -> BoxFuture<'a, Result<(), JournalError>>;

    /// Claims up to `limit` orphans for `claimer`, oldest first, until
    /// `claim_for` from now at most.
    ///
    /// The claimer must hold a lease ([`renew`](Self::renew) it with its id
    /// before claiming, and keep renewing it while it works on what it
    /// claimed): a claim lasts only while both hold. An entry is claimable
    /// when its owner's lease has expired (or the owner has no row) and
    /// either it is not claimed, its claim expired (`claim_until_ms` is
    /// past), or — for a claim taken before this call began — its claimer
    /// has no live lease (an expired one, or no row). Exclusive: an entry
    /// is returned to one caller only while its claim lasts, however many
    /// reapers call this at once.
    ///
    /// # Errors
    /// [`JournalError::Store`] if the claim failed (nothing was claimed), or
    /// [`JournalError::Corrupt`] for an unreadable row.
    fn claim<'a>(
        &'a self,
        claimer: &'a OwnerId,
        limit: usize,
        claim_for: Duration,
    ) -> BoxFuture<'a, Result<Vec<Entry>, JournalError>>;

    /// Drops the claims on `ids`, so that a later claim may take them again.
    ///
    /// # Errors
    /// [`JournalError::Store`] if it could not be written.
    fn release<'a>(&'a self, ids: &'a [EntryId]) -> BoxFuture<'a, Result<(), JournalError>>;

    /// Every entry, for inspection and tests (no claim taken).
    ///
    /// # Errors
    /// [`JournalError::Store`] or [`JournalError::Corrupt`].
    fn entries(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>>;

    /// Records one entry now (one transaction). The layer does not call
    /// this: it enqueues through a [`JournalWriter`].
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    fn record(&self, entry: Entry) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            let batch = Batch {
                records: vec![entry],
                removes: Vec::new(),
            };
            self.commit(&batch).await
        })
    }

    /// Removes one entry now (one transaction).
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    fn remove(&self, id: EntryId) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            let batch = Batch {
                records: Vec::new(),
                removes: vec![id],
            };
            self.commit(&batch).await
        })
    }
}

impl<J: Journal + ?Sized> Journal for Arc<J> {
    fn commit<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), JournalError>> {
        (**self).commit(batch)
    }
    fn renew<'a>(
        &'a self,
        owner: &'a OwnerId,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        (**self).renew(owner, lease)
    }
    fn retire<'a>(&'a self, owner: &'a OwnerId) -> BoxFuture<'a, Result<(), JournalError>> {
        (**self).retire(owner)
    }
    fn claim<'a>(
        &'a self,
        claimer: &'a OwnerId,
        limit: usize,
        claim_for: Duration,
    ) -> BoxFuture<'a, Result<Vec<Entry>, JournalError>> {
        (**self).claim(claimer, limit, claim_for)
    }
    fn release<'a>(&'a self, ids: &'a [EntryId]) -> BoxFuture<'a, Result<(), JournalError>> {
        (**self).release(ids)
    }
    fn entries(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        (**self).entries()
    }
}

/// Milliseconds in `d`, saturating.
#[cfg(any(feature = "journal-sqlite", feature = "journal-postgres"))]
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
