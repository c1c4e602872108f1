//! The durable storage of a Paxos replica: [`PaxosStore`] writes what a
//! [`Ready`] says must survive a crash and reads it back as the
//! [`Stored`] records that [`Replica::recover`] starts from.
//!
//! # The sync rule (persist before send)
//!
//! [`PaxosStore::persist`] turns one `Ready` into **one** atomic
//! [`WriteBatch`] (a received or compacted snapshot, the truncation behind the
//! compaction point, the accepted entries, the hard state) and writes it with
//! [`Durability::Sync`]: it returns only after the RocksDB write-ahead log is
//! fsynced. The driver must therefore call it, and see it succeed, **before**
//! it sends [`Ready::persisted_messages`] (promises and acceptances are vows
//! about durable state that others count in a quorum) and before it calls
//! [`Replica::advance`] (which lets the replica count its own vote). Because
//! the batch is atomic, a crash leaves either all of a Ready or none of it:
//! never a hard state whose commit index points past entries that were lost.
//! This is the "Ready/advance contract" of the `meridian-paxos` crate docs,
//! step 2.
//!
//! # Key layout
//!
//! Many groups share one [`Engine`]; every key starts with the group id, so
//! one group's records are a contiguous range no other group touches:
//!
//! | space | key | value |
//! |---|---|---|
//! | [`Space::Log`] | `/` group (u64 BE) `/` slot (u64 BE) | [`codec::encode_entry`] |
//! | [`Space::Meta`] | `/` group (u64 BE) `/hard_state` | [`codec::encode_hard_state`] |
//! | [`Space::Meta`] | `/` group (u64 BE) `/snapshot` | [`codec::encode_snapshot`], without data |
//!
//! Big-endian slots make the log's byte order its slot order, so the
//! truncation behind a snapshot is one `delete_range` from slot 0 up to and
//! including the snapshot index.
//!
//! # Corruption
//!
//! Every record is a checksummed frame of the paxos [`codec`].
//! [`PaxosStore::load`] decodes each one as it reads it back, and a damaged
//! record (or a log record whose slot disagrees with its key) is
//! [`Error::Corruption`] naming the group and the slot: the replica refuses
//! to start rather than apply damaged data (STYLE: a non-deterministic
//! failure stops the replica).
//!
//! # Left out
//!
//! The snapshot record holds the snapshot's index and membership only: the
//! state machine's data is in the state machine, which persists its own
//! applied index alongside the data it applies (no RocksDB checkpoints, no
//! chunking of snapshots sent to peers).

use meridian_error::{Error, Result};
#[cfg(doc)]
use meridian_paxos::Replica;
use meridian_paxos::{codec, Ready, Slot, Snapshot, Stored};
use meridian_storage::{Durability, Engine, KeyRange, ScanDirection, Space, WriteBatch};

/// The suffix of the hard state key in [`Space::Meta`].
const HARD_STATE: &[u8] = b"hard_state";
/// The suffix of the snapshot key in [`Space::Meta`].
const SNAPSHOT: &[u8] = b"snapshot";

/// The durable records of one Paxos group on one node, over a (possibly
/// shared) storage engine.
#[derive(Debug)]
pub struct PaxosStore<E: Engine> {
    /// The engine holding the records of this group and of others.
    engine: E,
    /// The group whose records this store reads and writes.
    group: u64,
}

impl<E: Engine> PaxosStore<E> {
    /// The store of `group` in `engine`. Pass `&engine` or an `Arc` to share
    /// one engine between groups.
    pub fn new(engine: E, group: u64) -> Self {
        PaxosStore { engine, group }
    }

    /// The group this store belongs to.
    pub fn group(&self) -> u64 {
        self.group
    }

    /// The engine underneath.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Persists, in one atomic batch synced to disk, everything `ready` says
    /// must be durable, plus `compacted`: the snapshot that
    /// [`Replica::compact`] returned since the last Ready, if any (the Ready
    /// carries only its compaction point). Call this before sending
    /// [`Ready::persisted_messages`] and before [`Replica::advance`].
    ///
    /// The order inside the batch follows the Ready's contract: snapshot,
    /// truncation up to the compaction point (or the snapshot's index),
    /// entries (each replacing its slot), hard state. A Ready with nothing
    /// to persist writes nothing.
    pub fn persist(&self, ready: &Ready, compacted: Option<&Snapshot>) -> Result<()> {
        let mut batch = WriteBatch::new();
        // The newer snapshot wins if both are present.
        let snapshot = match (ready.snapshot.as_ref(), compacted) {
            (Some(a), Some(b)) => Some(if a.index >= b.index { a } else { b }),
            (a, b) => a.or(b),
        };
        let mut truncate = ready.compact;
        if let Some(snapshot) = snapshot {
            self.put_snapshot(&mut batch, snapshot);
            if snapshot.index > 0 {
                truncate = truncate.max(Some(snapshot.index));
            }
        }
        if let Some(through) = truncate {
            let end = match through.checked_add(1) {
                Some(next) => self.log_key(next),
                None => self.log_end(),
            };
            batch.delete_range(Space::Log, self.log_key(0), end);
        }
        for entry in &ready.entries {
            batch.put(
                Space::Log,
                self.log_key(entry.slot),
                codec::encode_entry(entry),
            );
        }
        if let Some(hard_state) = &ready.hard_state {
            batch.put(
                Space::Meta,
                self.meta_key(HARD_STATE),
                codec::encode_hard_state(hard_state),
            );
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.engine.write(batch, Durability::Sync)
    }

    /// Adds to `batch` the deletion of every record of this group (log,
    /// hard state, snapshot): what a node forgets when its replica leaves
    /// the group.
    pub fn erase(&self, batch: &mut WriteBatch) {
        batch.delete_range(Space::Log, self.log_key(0), self.log_end());
        batch.delete(Space::Meta, self.meta_key(HARD_STATE));
        batch.delete(Space::Meta, self.meta_key(SNAPSHOT));
    }

    /// A batch writing `snapshot`'s record, for the state machine to write
    /// with the state it installs from the snapshot.
    pub fn snapshot_record(&self, snapshot: &Snapshot) -> WriteBatch {
        let mut batch = WriteBatch::new();
        self.put_snapshot(&mut batch, snapshot);
        batch
    }

    /// Puts `snapshot`'s record into `batch`: its index and membership (the
    /// state machine holds its data).
    fn put_snapshot(&self, batch: &mut WriteBatch, snapshot: &Snapshot) {
        batch.put(
            Space::Meta,
            self.meta_key(SNAPSHOT),
            codec::encode_snapshot(&snapshot.without_data()),
        );
    }

    /// Reads back this group's records for [`Replica::recover`], checking
    /// every one: a record that fails its checksum (or a log record stored
    /// under another slot's key) is [`Error::Corruption`] naming the group
    /// and slot. Entries come in slot order.
    pub fn load(&self) -> Result<Stored> {
        let group = self.group;
        let hard_state = self.engine.get(Space::Meta, &self.meta_key(HARD_STATE))?;
        if let Some(bytes) = &hard_state {
            codec::decode_hard_state(bytes).map_err(|e| {
                Error::Corruption(format!("paxos group {group}: hard state: {}", reason(e)))
            })?;
        }
        let snapshot = self.engine.get(Space::Meta, &self.meta_key(SNAPSHOT))?;
        if let Some(bytes) = &snapshot {
            codec::decode_snapshot(bytes).map_err(|e| {
                Error::Corruption(format!("paxos group {group}: snapshot: {}", reason(e)))
            })?;
        }
        let prefix = self.log_prefix();
        let mut entries = Vec::new();
        for item in self.engine.scan(
            Space::Log,
            &KeyRange::prefix(&prefix),
            ScanDirection::Forward,
        ) {
            let (key, bytes) = item?;
            let slot = self.slot_of(&key)?;
            let entry = codec::decode_entry(&bytes).map_err(|e| {
                Error::Corruption(format!(
                    "paxos group {group}: log entry at slot {slot}: {}",
                    reason(e)
                ))
            })?;
            if entry.slot != slot {
                return Err(Error::Corruption(format!(
                    "paxos group {group}: log record at slot {slot} holds slot {}",
                    entry.slot
                )));
            }
            entries.push(bytes);
        }
        Ok(Stored {
            hard_state,
            snapshot,
            entries,
        })
    }

    /// `/<group BE>/`: the start of every key of this group.
    fn log_prefix(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(10);
        key.push(b'/');
        key.extend_from_slice(&self.group.to_be_bytes());
        key.push(b'/');
        key
    }

    /// `/<group BE>/<slot BE>` in [`Space::Log`].
    fn log_key(&self, slot: Slot) -> Vec<u8> {
        let mut key = self.log_prefix();
        key.extend_from_slice(&slot.to_be_bytes());
        key
    }

    /// The first key after every log key of this group.
    fn log_end(&self) -> Vec<u8> {
        let mut key = self.log_prefix();
        key.extend_from_slice(&[0xff; 9]);
        key
    }

    /// `/<group BE>/<name>` in [`Space::Meta`].
    fn meta_key(&self, name: &[u8]) -> Vec<u8> {
        let mut key = self.log_prefix();
        key.extend_from_slice(name);
        key
    }

    /// The slot of a log key of this group.
    fn slot_of(&self, key: &[u8]) -> Result<Slot> {
        let prefix_len = self.log_prefix().len();
        key.get(prefix_len..)
            .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| {
                Error::Corruption(format!(
                    "paxos group {}: malformed log key {key:02x?}",
                    self.group
                ))
            })
    }
}

/// The message inside a codec error, without its variant's prefix.
fn reason(error: Error) -> String {
    match error {
        Error::Corruption(why) => why,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
