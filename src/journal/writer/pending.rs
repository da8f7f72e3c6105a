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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::SystemTime;

    use http::{HeaderMap, Method, Uri};

    use super::*;
    use crate::journal::{OwnerId, Protocol, Route};

    fn record(owner: &OwnerId, seq: u64) -> (EntryId, Command) {
        let uri: Uri = "https://api.example.com/v1/projects/p/operations/o:cancel"
            .parse()
            .unwrap();
        let id = EntryId::new(owner, seq);
        let entry = Entry::new(
            id.clone(),
            "projects/p/operations/o",
            Protocol::Rest,
            Route::rest(&Method::POST, &uri).unwrap(),
            &HeaderMap::new(),
            owner.clone(),
            SystemTime::now(),
        );
        (id, Command::Record(entry))
    }

    #[test]
    fn a_remove_coalesces_with_a_fresh_record_and_is_written_for_a_tried_one() {
        let owner = OwnerId::random();
        let mut pending = Pending::default();
        let (fresh, r) = record(&owner, 0);
        assert_eq!(pending.add(r, 10), Added::Kept);
        assert_eq!(pending.add(Command::Remove(fresh), 10), Added::Coalesced);
        assert!(pending.is_empty());

        let (tried, r) = record(&owner, 1);
        pending.add(r, 10);
        let batch = pending.take(10);
        assert_eq!(batch.records.len(), 1);
        pending.put_back(batch);
        // The failed commit may have been applied: the remove is written.
        assert_eq!(pending.add(Command::Remove(tried.clone()), 10), Added::Kept);
        let batch = pending.take(10);
        assert!(batch.records.is_empty());
        assert_eq!(batch.removes, [tried]);
    }

    #[test]
    fn the_limit_drops_records_and_removes_but_never_a_coalescing_remove() {
        let owner = OwnerId::random();
        let mut pending = Pending::default();
        let (first, r) = record(&owner, 0);
        assert_eq!(pending.add(r, 2), Added::Kept);
        assert_eq!(pending.add(record(&owner, 1).1, 2), Added::Kept);
        assert_eq!(pending.add(record(&owner, 2).1, 2), Added::Dropped);
        let committed = EntryId::new(&owner, 99);
        assert_eq!(pending.add(Command::Remove(committed), 2), Added::Dropped);
        assert_eq!(pending.add(Command::Remove(first), 2), Added::Coalesced);
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn take_carries_at_most_max_changes_tried_records_first() {
        let owner = OwnerId::random();
        let mut pending = Pending::default();
        for seq in 0..3 {
            pending.add(record(&owner, seq).1, usize::MAX);
        }
        let tried = pending.take(2);
        let tried_ids: BTreeSet<EntryId> = tried.records.iter().map(|e| e.id().clone()).collect();
        pending.put_back(tried);
        for seq in 3..6 {
            pending.add(record(&owner, seq).1, usize::MAX);
        }
        pending.add(Command::Remove(EntryId::new(&owner, 99)), usize::MAX);
        let first = pending.take(2);
        let ids: BTreeSet<EntryId> = first.records.iter().map(|e| e.id().clone()).collect();
        assert_eq!(ids, tried_ids);
        assert_eq!(pending.len(), 5);
        let rest = pending.take(10);
        assert_eq!((rest.records.len(), rest.removes.len()), (4, 1));
        assert!(pending.is_empty());
    }
}
