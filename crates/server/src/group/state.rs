//! The replicated state machine of a group: what a committed log entry does
//! to the node's MVCC store, and the applied index kept with it.
//!
//! Commands are [`Command`]s encoded with postcard. Applying a run of
//! committed entries is **one** write batch holding every version they
//! create and the new applied record (`/<group>/applied` in
//! [`Space::Meta`]: the last applied slot and the largest commit timestamp
//! applied), so after a crash the applied index names exactly the entries
//! whose effects are in the store, and the driver re-applies the ones after
//! it from the log. The batch is not synced: the log entries it comes from
//! are durable already, and the next synced write of the node (any Paxos
//! persist) makes it durable too, since RocksDB has one write-ahead log.
//!
//! A snapshot ([`GroupState::dump`]) is every stored version of the group's
//! data with the applied record; installing one replaces the group's data.
//! The group owns the whole data keyspace of its node for now: ranges and
//! many groups per node arrive with sharding.
//!
//! An entry that fails to decode is [`Error::Corruption`]: the driver stops
//! the replica rather than skip it (replicas must never diverge).

use meridian_error::{Error, Result};
use meridian_paxos::{Entry, Slot, Snapshot, Value};
use meridian_storage::{
    put_version, Durability, Engine, KeyRange, ScanDirection, Space, WriteBatch,
};
use meridian_truetime::Timestamp;
use serde::{Deserialize, Serialize};

/// A command of a group's replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// The commit record of a read-write transaction on this group: its
    /// writes (`None` = delete), applied as versions at `ts`.
    Commit {
        /// The commit timestamp.
        ts: Timestamp,
        /// The writes, in key order.
        writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    },
}

impl Command {
    /// The command as log entry bytes.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("commands always encode")
    }

    /// Decodes a log entry's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Command> {
        postcard::from_bytes(bytes)
            .map_err(|e| Error::Corruption(format!("undecodable group command: {e}")))
    }
}

/// What a snapshot of the state machine holds.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotData {
    /// The largest commit timestamp applied.
    max_ts: Timestamp,
    /// Every stored version, as raw keys and values of [`Space::Data`].
    versions: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The group's state machine on one node.
#[derive(Debug)]
pub struct GroupState<E: Engine> {
    /// The node's storage.
    engine: E,
    /// The group.
    group: u64,
    /// The last slot applied.
    applied: Slot,
    /// The largest commit timestamp applied.
    max_ts: Timestamp,
}

impl<E: Engine> GroupState<E> {
    /// Loads the state machine's applied record (slot 0 for a new group).
    pub fn load(engine: E, group: u64) -> Result<Self> {
        let (applied, max_ts) = match engine.get(Space::Meta, &applied_key(group))? {
            None => (0, Timestamp::MIN),
            Some(bytes) => postcard::from_bytes::<(Slot, Timestamp)>(&bytes)
                .map_err(|e| Error::Corruption(format!("group {group}: applied record: {e}")))?,
        };
        Ok(GroupState {
            engine,
            group,
            applied,
            max_ts,
        })
    }

    /// The last slot applied.
    pub fn applied(&self) -> Slot {
        self.applied
    }

    /// The largest commit timestamp applied: a new leader issues timestamps
    /// above it.
    pub fn max_ts(&self) -> Timestamp {
        self.max_ts
    }

    /// Applies committed entries, in slot order, as one batch. Returns the
    /// ids of the commands applied (their proposers are waiting). Entries at
    /// or below the applied index are skipped (a restart may deliver them
    /// again).
    pub fn apply(&mut self, entries: &[Entry]) -> Result<Vec<u64>> {
        let mut batch = WriteBatch::new();
        let mut ids = Vec::new();
        let (mut applied, mut max_ts) = (self.applied, self.max_ts);
        for entry in entries.iter().filter(|e| e.slot > self.applied) {
            if entry.slot != applied + 1 {
                return Err(Error::Internal(format!(
                    "group {}: slot {} delivered after slot {applied}",
                    self.group, entry.slot
                )));
            }
            if let Value::Command { id, data } = &entry.value {
                let Command::Commit { ts, writes } = Command::decode(data).map_err(|e| {
                    Error::Corruption(format!("group {} slot {}: {e}", self.group, entry.slot))
                })?;
                for (key, value) in &writes {
                    put_version(&mut batch, key, ts, value.as_deref());
                }
                max_ts = max_ts.max(ts);
                ids.push(*id);
            }
            applied = entry.slot;
        }
        if applied == self.applied {
            return Ok(ids);
        }
        batch.put(
            Space::Meta,
            applied_key(self.group),
            encode_applied(applied, max_ts),
        );
        self.engine.write(batch, Durability::Buffered)?;
        self.applied = applied;
        self.max_ts = max_ts;
        Ok(ids)
    }

    /// A snapshot of the state machine's data (for [`Replica::compact`]).
    ///
    /// [`Replica::compact`]: meridian_paxos::Replica::compact
    pub fn dump(&self) -> Result<Vec<u8>> {
        let versions = self
            .engine
            .scan(Space::Data, &KeyRange::all(), ScanDirection::Forward)
            .collect::<Result<Vec<_>>>()?;
        let data = SnapshotData {
            max_ts: self.max_ts,
            versions,
        };
        Ok(postcard::to_allocvec(&data).expect("snapshots always encode"))
    }

    /// Replaces the state machine's data with `snapshot`'s, synced. A
    /// snapshot with no data (the bootstrap membership) only moves the
    /// applied index.
    pub fn install(&mut self, snapshot: &Snapshot) -> Result<()> {
        if snapshot.index <= self.applied && snapshot.data.is_empty() {
            return Ok(());
        }
        let data: SnapshotData = if snapshot.data.is_empty() {
            SnapshotData {
                max_ts: self.max_ts,
                versions: Vec::new(),
            }
        } else {
            postcard::from_bytes(&snapshot.data).map_err(|e| {
                Error::Corruption(format!(
                    "group {}: snapshot at slot {}: {e}",
                    self.group, snapshot.index
                ))
            })?
        };
        let mut batch = WriteBatch::new();
        for item in self
            .engine
            .scan(Space::Data, &KeyRange::all(), ScanDirection::Forward)
        {
            let (key, _) = item?;
            batch.delete(Space::Data, key);
        }
        for (key, value) in data.versions {
            batch.put(Space::Data, key, value);
        }
        batch.put(
            Space::Meta,
            applied_key(self.group),
            encode_applied(snapshot.index, data.max_ts),
        );
        self.engine.write(batch, Durability::Sync)?;
        self.applied = snapshot.index;
        self.max_ts = data.max_ts;
        Ok(())
    }
}

/// `/<group BE>/applied` in [`Space::Meta`] (beside the Paxos records).
fn applied_key(group: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(18);
    key.push(b'/');
    key.extend_from_slice(&group.to_be_bytes());
    key.extend_from_slice(b"/applied");
    key
}

fn encode_applied(applied: Slot, max_ts: Timestamp) -> Vec<u8> {
    postcard::to_allocvec(&(applied, max_ts)).expect("applied records always encode")
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_paxos::{Ballot, Membership};
    use meridian_storage::{MemoryEngine, Mvcc};
    use std::sync::Arc;

    fn commit(slot: Slot, id: u64, ts: u64, writes: &[(&str, Option<&str>)]) -> Entry {
        let writes = writes
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
            .collect();
        Entry {
            slot,
            ballot: Ballot::new(1, 1),
            value: Value::Command {
                id,
                data: Command::Commit {
                    ts: Timestamp::from_nanos(ts),
                    writes,
                }
                .encode(),
            },
        }
    }

    #[test]
    fn applies_commits_as_versions_and_remembers_where_it_stopped() {
        let engine = Arc::new(MemoryEngine::new());
        let mut state = GroupState::load(engine.clone(), 7).unwrap();
        let noop = Entry {
            slot: 2,
            ballot: Ballot::new(1, 1),
            value: Value::Noop,
        };
        let ids = state
            .apply(&[
                commit(1, 11, 100, &[("a", Some("1"))]),
                noop,
                commit(3, 12, 200, &[("a", None), ("b", Some("2"))]),
            ])
            .unwrap();
        assert_eq!(ids, vec![11, 12]);
        assert_eq!(
            (state.applied(), state.max_ts()),
            (3, Timestamp::from_nanos(200))
        );
        // Redelivery after a restart is skipped.
        assert!(state.apply(&[commit(3, 12, 200, &[])]).unwrap().is_empty());

        let mvcc = Mvcc::new(engine.clone()).unwrap();
        assert_eq!(
            mvcc.get(b"a", Timestamp::from_nanos(150)).unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(mvcc.get(b"a", Timestamp::MAX).unwrap(), None);
        let reloaded = GroupState::load(engine, 7).unwrap();
        assert_eq!(reloaded.applied(), 3);
        assert_eq!(reloaded.max_ts(), Timestamp::from_nanos(200));
    }

    #[test]
    fn a_gap_or_a_damaged_command_stops_the_state_machine() {
        let mut state = GroupState::load(Arc::new(MemoryEngine::new()), 1).unwrap();
        let err = state.apply(&[commit(2, 1, 1, &[])]).unwrap_err();
        assert!(matches!(err, Error::Internal(_)), "{err}");
        let damaged = Entry {
            slot: 1,
            ballot: Ballot::new(1, 1),
            value: Value::Command {
                id: 1,
                data: vec![9, 9, 9],
            },
        };
        let err = state.apply(&[damaged]).unwrap_err();
        assert!(matches!(err, Error::Corruption(_)), "{err}");
        assert_eq!(state.applied(), 0, "nothing was applied");
    }

    #[test]
    fn a_snapshot_replaces_the_data_of_another_replica() {
        let source = Arc::new(MemoryEngine::new());
        let mut leader = GroupState::load(source.clone(), 1).unwrap();
        leader
            .apply(&[commit(1, 1, 10, &[("x", Some("new"))])])
            .unwrap();
        let snapshot = Snapshot {
            index: 1,
            membership: Membership::new([1, 2, 3]),
            membership_slot: 0,
            data: leader.dump().unwrap(),
        };

        let target = Arc::new(MemoryEngine::new());
        let mut lagging = GroupState::load(target.clone(), 1).unwrap();
        // Stale data the snapshot must remove.
        Mvcc::new(target.clone())
            .unwrap()
            .write(
                Timestamp::from_nanos(5),
                [(b"stale".to_vec(), Some(b"1".to_vec()))],
                Durability::Sync,
            )
            .unwrap();
        lagging.install(&snapshot).unwrap();
        assert_eq!(
            (lagging.applied(), lagging.max_ts()),
            (1, Timestamp::from_nanos(10))
        );
        let mvcc = Mvcc::new(target).unwrap();
        assert_eq!(
            mvcc.get(b"x", Timestamp::MAX).unwrap(),
            Some(b"new".to_vec())
        );
        assert_eq!(mvcc.get(b"stale", Timestamp::MAX).unwrap(), None);
    }
}
