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
//!
//! The log counts the bytes its entries hold ([`Log::bytes`]) so the driver
//! can bound the memory it takes by compacting ([`Log::compaction_point`]).

use std::collections::BTreeMap;

use crate::types::{Entry, Membership, Slot, Snapshot, Value};

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Log {
    /// The latest snapshot: everything at or below its index is chosen and
    /// applied, and gone from `entries`. Its `data` is always empty: the
    /// state machine holds the state (see `Replica::send_snapshot`). Index 0 with an empty membership for
    /// a replica that joined and knows nothing yet.
    pub(crate) snapshot: Snapshot,
    /// Accepted entries above the snapshot.
    entries: BTreeMap<Slot, Entry>,
    /// The membership entries among `entries`, by slot.
    configs: BTreeMap<Slot, Membership>,
    /// Every slot up to here is chosen and present (or in the snapshot).
    pub(crate) commit: Slot,
    /// The memory `entries` take, as [`footprint`] counts it.
    bytes: usize,
}

/// What an entry costs in memory: its payload plus a fixed allowance for
/// the slot, the ballot and the map node around it.
pub(crate) fn footprint(entry: &Entry) -> usize {
    const OVERHEAD: usize = 96;
    OVERHEAD
        + match &entry.value {
            Value::Command { data, .. } => data.len(),
            Value::Config { membership, .. } => 16 * membership.voters.len(),
            Value::Noop => 0,
        }
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
            bytes: 0,
        }
    }

    /// The memory the entries above the snapshot take (see [`footprint`]).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Where to compact so that the newest entries, up to about `keep`
    /// bytes of them, stay for lagging replicas to catch up from: the
    /// highest slot, at most `upto`, whose successors hold at least `keep`
    /// bytes. `None` when that is not above the snapshot.
    pub(crate) fn compaction_point(&self, keep: usize, upto: Slot) -> Option<Slot> {
        let mut kept = 0;
        for (slot, entry) in self.entries.iter().rev() {
            if kept >= keep {
                return Some((*slot).min(upto)).filter(|p| *p > self.snapshot.index);
            }
            kept += footprint(entry);
        }
        None
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
        self.bytes += footprint(&entry);
        if let Some(old) = self.entries.insert(entry.slot, entry) {
            self.bytes -= footprint(&old);
        }
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

    /// Replaces everything at or below `snapshot.index` with the snapshot
    /// (its index and membership: the data goes to the state machine).
    pub(crate) fn install_snapshot(&mut self, snapshot: Snapshot) {
        debug_assert!(snapshot.data.is_empty(), "the log keeps no snapshot data");
        let keep = self.entries.split_off(&(snapshot.index + 1));
        self.entries = keep;
        let keep = self.configs.split_off(&(snapshot.index + 1));
        self.configs = keep;
        self.bytes = self.entries.values().map(footprint).sum();
        self.commit = self.commit.max(snapshot.index);
        self.snapshot = snapshot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Ballot, Membership};

    fn command(slot: Slot, len: usize) -> Entry {
        Entry {
            slot,
            ballot: Ballot::new(1, 1),
            value: Value::Command {
                id: slot,
                data: vec![0; len],
            },
        }
    }

    fn log() -> Log {
        Log::new(Snapshot {
            index: 0,
            membership: Membership::default(),
            membership_slot: 0,
            data: Vec::new(),
        })
    }

    #[test]
    fn bytes_follow_puts_overwrites_and_truncation() {
        let mut log = log();
        for slot in 1..=4 {
            log.put(command(slot, 1000));
        }
        let each = footprint(&command(1, 1000));
        assert_eq!(log.bytes(), 4 * each);
        // A higher ballot's value replaces the slot's.
        log.put(command(2, 10));
        assert_eq!(log.bytes(), 3 * each + footprint(&command(2, 10)));
        let meta = Snapshot {
            index: 2,
            ..log.snapshot.clone()
        };
        log.install_snapshot(meta);
        assert_eq!(log.bytes(), 2 * each);
    }

    #[test]
    fn the_compaction_point_keeps_the_newest_bytes_and_stays_applied() {
        let mut log = log();
        for slot in 1..=10 {
            log.put(command(slot, 1000));
        }
        let each = footprint(&command(1, 1000));
        // Keep three entries' worth: slots 8..=10 stay.
        assert_eq!(log.compaction_point(3 * each, 10), Some(7));
        assert_eq!(log.compaction_point(3 * each - 1, 10), Some(7));
        assert_eq!(log.compaction_point(3 * each + 1, 10), Some(6));
        // Never past what the state machine applied.
        assert_eq!(log.compaction_point(3 * each, 5), Some(5));
        // Nothing to free: the log is within the budget.
        assert_eq!(log.compaction_point(10 * each, 10), None);
        // Or the point is not above the snapshot.
        assert_eq!(log.compaction_point(0, 0), None);
    }
}
