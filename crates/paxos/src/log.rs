//! The acceptor's log: accepted entries above the latest snapshot, the commit
//! index, and the memberships the log defines.
//!
//! Unlike a Raft log, a Paxos acceptor's log may have holes (an accept that
//! was lost) and an entry may be overwritten by a higher ballot, so it is a
//! map from slot to entry. Entries at or below `commit` are chosen and never
//! change value.
//!
//! The membership of a slot is set by the last membership entry in an
//! earlier slot (or by the snapshot, if there is none above it): a change in
//! slot `c` governs slots `c + 1` onwards.

use std::collections::BTreeMap;

use crate::types::{Entry, Membership, Slot, Snapshot, Value};

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Log {
    /// The latest snapshot: everything at or below its index is chosen and
    /// applied, and gone from `entries`. Index 0 with an empty membership for
    /// a replica that joined and knows nothing yet.
    pub(crate) snapshot: Snapshot,
    /// Accepted entries above the snapshot.
    entries: BTreeMap<Slot, Entry>,
    /// The membership entries among `entries`, by slot.
    configs: BTreeMap<Slot, Membership>,
    /// Every slot up to here is chosen and present (or in the snapshot).
    pub(crate) commit: Slot,
}

impl Log {
    /// A log starting from `snapshot`.
    pub(crate) fn new(snapshot: Snapshot) -> Self {
        let commit = snapshot.index;
        Log {
            snapshot,
            entries: BTreeMap::new(),
            configs: BTreeMap::new(),
            commit,
        }
    }

    /// The entry in `slot`, if this acceptor has one above the snapshot.
    pub(crate) fn get(&self, slot: Slot) -> Option<&Entry> {
        self.entries.get(&slot)
    }

    /// The entries in `range`.
    pub(crate) fn range(
        &self,
        range: impl std::ops::RangeBounds<Slot>,
    ) -> impl Iterator<Item = &Entry> {
        self.entries.range(range).map(|(_, e)| e)
    }

    /// Stores `entry` (overwriting the slot). Slots at or below the snapshot
    /// are ignored: they are chosen and applied already.
    pub(crate) fn put(&mut self, entry: Entry) -> bool {
        if entry.slot <= self.snapshot.index {
            return false;
        }
        match &entry.value {
            Value::Config { membership, .. } => {
                self.configs.insert(entry.slot, membership.clone());
            }
            _ => {
                self.configs.remove(&entry.slot);
            }
        }
        self.entries.insert(entry.slot, entry);
        true
    }

    /// The membership governing `slot`, with the slot of the entry that set
    /// it (its epoch).
    pub(crate) fn config_at(&self, slot: Slot) -> (Slot, &Membership) {
        match self.configs.range(..slot).next_back() {
            Some((s, m)) => (*s, m),
            None => (self.snapshot.membership_slot, &self.snapshot.membership),
        }
    }

    /// The committed membership (governing the first open slot) and its
    /// epoch.
    pub(crate) fn committed_config(&self) -> (Slot, &Membership) {
        self.config_at(self.commit + 1)
    }

    /// Membership entries above the commit index (accepted, not known
    /// chosen).
    pub(crate) fn open_configs(&self) -> impl Iterator<Item = (Slot, &Membership)> {
        self.configs.range(self.commit + 1..).map(|(s, m)| (*s, m))
    }

    /// Advances the commit index over every present entry up to `upto`
    /// accepted in `ballot` (`None`: any ballot, the entries are known
    /// chosen). Returns whether it moved.
    pub(crate) fn commit_through(&mut self, upto: Slot, ballot: Option<crate::Ballot>) -> bool {
        let before = self.commit;
        while self.commit < upto {
            match self.entries.get(&(self.commit + 1)) {
                Some(e) if ballot.is_none_or(|b| e.ballot == b) => self.commit += 1,
                _ => break,
            }
        }
        self.commit != before
    }

    /// Replaces everything at or below `snapshot.index` with the snapshot.
    pub(crate) fn install_snapshot(&mut self, snapshot: Snapshot) {
        let keep = self.entries.split_off(&(snapshot.index + 1));
        self.entries = keep;
        let keep = self.configs.split_off(&(snapshot.index + 1));
        self.configs = keep;
        self.commit = self.commit.max(snapshot.index);
        self.snapshot = snapshot;
    }
}
