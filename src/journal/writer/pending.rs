//! The writer's changes waiting for a commit: coalesced, and bounded while
//! commits fail.

use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::journal::{Batch, Entry, EntryId};

/// What the writer's queue carries.
pub(super) enum Command {
    Record(Entry),
    Remove(EntryId),
    Flush(oneshot::Sender<()>),
}

/// What [`Pending::add`] did with a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Added {
    /// Kept for a commit (or a flush waiting on one).
    Kept,
    /// A remove met its record not yet tried: neither will be written.
    Coalesced,
    /// Over the limit: dropped.
    Dropped,
}

/// Changes gathered for the next commits.
#[derive(Default)]
pub(super) struct Pending {
    /// Records never tried: a remove of one means neither is written.
    fresh: HashMap<EntryId, Entry>,
    /// Records of a failed commit. The store may hold them all the same (a
    /// commit whose answer was lost may have succeeded), so a remove of one
    /// is written rather than coalesced.
    tried: HashMap<EntryId, Entry>,
    removes: Vec<EntryId>,
    /// Flushes waiting for everything before them.
    pub(super) flushes: Vec<oneshot::Sender<()>>,
}

impl Pending {
    /// Changes held (records and removes; not flushes).
    pub(super) fn len(&self) -> usize {
        self.fresh.len() + self.tried.len() + self.removes.len()
    }

    /// Whether no change is held.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes `command` in, holding at most `limit` changes: a record or a
    /// remove that would exceed it is dropped, a remove that coalesces or
    /// replaces a tried record never is.
    pub(super) fn add(&mut self, command: Command, limit: usize) -> Added {
        match command {
            Command::Record(entry) => {
                if self.len() >= limit {
                    return Added::Dropped;
                }
                self.fresh.insert(entry.id().clone(), entry);
            }
            Command::Remove(id) => {
                if self.fresh.remove(&id).is_some() {
                    return Added::Coalesced;
                }
                if self.tried.remove(&id).is_none() && self.len() >= limit {
                    return Added::Dropped;
                }
                self.removes.push(id);
            }
            Command::Flush(done) => self.flushes.push(done),
        }
        Added::Kept
    }

    /// Takes at most `max` changes for one commit: tried records first.
    pub(super) fn take(&mut self, max: usize) -> Batch {
        let mut records = take_some(&mut self.tried, max);
        records.extend(take_some(&mut self.fresh, max - records.len()));
        let n = self.removes.len().min(max - records.len());
        let removes = self.removes.drain(..n).collect();
        Batch { records, removes }
    }

    /// Takes back the changes of a failed commit (its records now tried).
    pub(super) fn put_back(&mut self, batch: Batch) {
        for entry in batch.records {
            self.tried.insert(entry.id().clone(), entry);
        }
        self.removes.extend(batch.removes);
    }
}

fn take_some(map: &mut HashMap<EntryId, Entry>, max: usize) -> Vec<Entry> {
    if map.len() <= max {
        return std::mem::take(map).into_values().collect();
    }
    let ids: Vec<EntryId> = map.keys().take(max).cloned().collect();
    ids.iter().filter_map(|id| map.remove(id)).collect()
}
