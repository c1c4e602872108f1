//! The replicated state machine of a group: what a committed log entry does
//! to the node's MVCC store, and the applied index kept with it.
//!
//! Commands are [`Command`]s encoded with postcard. Applying a run of
//! committed entries is **one** write batch holding every version they
//! create, the two-phase commit records they change and the new applied
//! record (`/<group>/applied` in [`Space::Meta`]: the last applied slot and
//! the largest timestamp applied), so after a crash the applied index names
//! exactly the entries whose effects are in the store, and the driver
//! re-applies the ones after it from the log. The batch is not synced: the
//! log entries it comes from are durable already, and the next synced write
//! of the node (any Paxos persist) makes it durable too, since RocksDB has
//! one write-ahead log.
//!
//! # Two-phase commit records
//!
//! A participant's [`Command::Prepare`] stores its prepare record at
//! `/<group>/prepared/<gid>` until [`Command::Decide`] applies the outcome
//! (the writes at the commit timestamp, or nothing) and removes it. A
//! coordinator's [`Command::CoordinatorCommit`] applies its writes and
//! stores the outcome at `/<group>/outcome/<gid>`, unless a
//! [`Command::Resolve`] stored an abort first: whichever comes first in the
//! log wins, on every replica alike. A participant may ask for an outcome
//! (resolution) for as long as it holds the prepare record, so a committed
//! outcome is kept until the gateway has heard from every participant that
//! it applied it; then the gateway logs [`Command::Forget`] at the
//! coordinator, which removes the record. A resolution that comes later
//! still (one sent before its participant's outcome arrived) finds nothing
//! and records an abort, which the participant, having decided, ignores
//! (a `Decide` of a transaction not prepared does nothing). Outcomes whose
//! gateway died before hearing from every participant, and aborts, are kept.
//!
//! # Safe time
//!
//! Commit records reach the log in timestamp order (each leader issues
//! increasing timestamps, and every later leader larger ones), so the
//! largest timestamp applied is a safe time, except that a prepared
//! transaction may still commit at its prepare timestamp `p` or above:
//! `t_safe = min(max applied, min(p) - 1)` (Spanner §4.1.3).
//!
//! # Spans
//!
//! The node's replicas share its data keyspace; each group serves the key
//! ranges its [`Spans`] say (at first those of the initial placement; a
//! move changes them through control keys, see [`crate::spans`]), stored
//! at `/<group>/spans` and changed in the same batch as the entry that
//! changes them. A commit or prepare record writing a key the group does
//! not serve is refused with [`Error::RangeMoved`], the same on every
//! replica. [`Command::Ingest`] stores a range's versions copied from
//! another group before the group adopts it. A snapshot
//! ([`GroupState::dump`]) holds every stored version in the group's ranges
//! (served or incoming) with its records and spans; installing one replaces
//! its records and spans and adds its versions.
//!
//! Versions are immutable facts, and two groups may hold the same ones on
//! a node while a range moves between them, so a group never deletes
//! versions (a released range's stay on the node; garbage collection
//! trims them like any others), and installing a snapshot only adds.
//!
//! An entry that fails to decode is [`Error::Corruption`]: the driver stops
//! the replica rather than skip it (replicas must never diverge). A command
//! whose effect is refused deterministically (a coordinator commit after an
//! abort) is answered with its error, the same on every replica.

use std::collections::BTreeMap;

use meridian_error::{Error, Result};
use meridian_paxos::{Entry, Slot, Snapshot, Value};
use meridian_storage::{
    prefix_successor, put_version, versioned_range, Durability, Engine, KeyRange, KvPair,
    ScanDirection, Space, WriteBatch,
};
use meridian_truetime::Timestamp;
use meridian_txn::{GlobalTxnId, LockMode, LockTarget, Outcome, PrepareRecord};
use serde::{Deserialize, Serialize};

pub use crate::spans::SharedSpans;
use crate::spans::{control_group, SpanChange, Spans};

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
    /// A participant's prepare record (two-phase commit, phase one).
    Prepare(PreparedEntry),
    /// The outcome of a transaction prepared here: `Some(s)` commits its
    /// writes at `s`, `None` aborts it.
    Decide {
        /// The transaction.
        gid: u128,
        /// Its commit timestamp, if it committed.
        commit_ts: Option<Timestamp>,
    },
    /// The coordinator's commit record: its own writes at `ts`, and the
    /// outcome of the transaction (unless an abort was recorded first).
    CoordinatorCommit {
        /// The transaction.
        gid: u128,
        /// The commit timestamp.
        ts: Timestamp,
        /// The coordinator group's writes.
        writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    },
    /// At the coordinator: records an abort of `gid` unless it is decided.
    Resolve {
        /// The transaction.
        gid: u128,
    },
    /// At the coordinator: removes the outcome record of `gid`, which every
    /// participant has applied.
    Forget {
        /// The transaction.
        gid: u128,
    },
    /// Raw versions of `[start, end)` copied from the group serving it,
    /// stored (not served) until this group adopts the range.
    Ingest {
        /// The first key of the range.
        start: Vec<u8>,
        /// Its end (`None`: the end of the keyspace).
        end: Option<Vec<u8>>,
        /// Raw [`Space::Data`] pairs.
        versions: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

/// A prepare record as the log holds it (a [`PrepareRecord`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedEntry {
    /// The transaction.
    pub gid: u128,
    /// Its coordinator group.
    pub coordinator: u64,
    /// Its wound-wait priority.
    pub start_ts: Timestamp,
    /// Its prepare timestamp.
    pub prepare_ts: Timestamp,
    /// Its writes here.
    pub writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Its locks here.
    pub locks: Vec<LoggedLock>,
}

/// A lock of a prepared transaction, as its prepare record holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedLock {
    /// The key locked, or the start of the range locked.
    pub start: Vec<u8>,
    /// `None` for a key; for a range `[start, end)`, its end (`Some(None)`:
    /// to the end of the keyspace).
    pub end: Option<Option<Vec<u8>>>,
    /// Exclusive, or shared.
    pub exclusive: bool,
}

impl From<&PrepareRecord> for PreparedEntry {
    fn from(record: &PrepareRecord) -> Self {
        PreparedEntry {
            gid: record.gid.0,
            coordinator: record.coordinator,
            start_ts: record.start_ts,
            prepare_ts: record.prepare_ts,
            writes: record
                .writes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            locks: record
                .locks
                .iter()
                .map(|(target, mode)| {
                    let exclusive = *mode == LockMode::Exclusive;
                    match target {
                        LockTarget::Key(key) => LoggedLock {
                            start: key.clone(),
                            end: None,
                            exclusive,
                        },
                        LockTarget::Range(range) => LoggedLock {
                            start: range.start.clone(),
                            end: Some(range.end.clone()),
                            exclusive,
                        },
                    }
                })
                .collect(),
        }
    }
}

impl PreparedEntry {
    /// The record a leader's engine restores.
    pub fn to_record(&self) -> PrepareRecord {
        PrepareRecord {
            gid: GlobalTxnId(self.gid),
            coordinator: self.coordinator,
            start_ts: self.start_ts,
            prepare_ts: self.prepare_ts,
            writes: self.writes.iter().cloned().collect(),
            locks: self
                .locks
                .iter()
                .map(|lock| {
                    let target = match &lock.end {
                        None => LockTarget::Key(lock.start.clone()),
                        Some(end) => LockTarget::Range(meridian_txn::KeyRange {
                            start: lock.start.clone(),
                            end: end.clone(),
                        }),
                    };
                    let mode = if lock.exclusive {
                        LockMode::Exclusive
                    } else {
                        LockMode::Shared
                    };
                    (target, mode)
                })
                .collect(),
        }
    }
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
    /// The largest timestamp applied.
    max_ts: Timestamp,
    /// Every stored version in the group's ranges, as raw keys and values
    /// of [`Space::Data`].
    versions: Vec<(Vec<u8>, Vec<u8>)>,
    /// The group's two-phase commit records, as raw [`Space::Meta`] pairs.
    records: Vec<(Vec<u8>, Vec<u8>)>,
    /// What the group serves and what is being copied in.
    spans: Spans,
}

/// The outcome of each command applied, by proposal id.
pub type Applied = Vec<(u64, Result<()>)>;

/// The group's state machine on one node.
#[derive(Debug)]
pub struct GroupState<E: Engine> {
    /// The node's storage.
    engine: E,
    /// The group.
    group: u64,
    /// What the group serves.
    spans: SharedSpans,
    /// The last slot applied.
    applied: Slot,
    /// The largest commit, prepare or safe-time timestamp applied.
    max_ts: Timestamp,
    /// Transactions prepared here, undecided: their prepare timestamps.
    prepared: BTreeMap<u128, Timestamp>,
}

impl<E: Engine> GroupState<E> {
    /// Loads the state machine of `group` from its applied record (slot 0
    /// for a new group), spans (`initial` when none are stored: the ranges
    /// the cluster's first placement gives it) and prepare records.
    pub fn load(engine: E, group: u64, initial: Vec<KeyRange>) -> Result<Self> {
        let (applied, max_ts) = match engine.get(Space::Meta, &applied_key(group))? {
            None => (0, Timestamp::MIN),
            Some(bytes) => postcard::from_bytes::<(Slot, Timestamp)>(&bytes)
                .map_err(|e| Error::Corruption(format!("group {group}: applied record: {e}")))?,
        };
        let spans = match engine.get(Space::Meta, &spans_key(group))? {
            None => Spans::owning(&initial),
            Some(bytes) => postcard::from_bytes(&bytes)
                .map_err(|e| Error::Corruption(format!("group {group}: spans: {e}")))?,
        };
        let mut state = GroupState {
            engine,
            group,
            spans: SharedSpans::new(spans),
            applied,
            max_ts,
            prepared: BTreeMap::new(),
        };
        state.prepared = state
            .prepared_records()?
            .into_iter()
            .map(|entry| (entry.gid, entry.prepare_ts))
            .collect();
        Ok(state)
    }

    /// What the group serves, as the state machine keeps it up to date.
    pub fn spans(&self) -> SharedSpans {
        self.spans.clone()
    }

    /// The last slot applied.
    pub fn applied(&self) -> Slot {
        self.applied
    }

    /// The largest timestamp applied (commits, prepares, safe-time
    /// markers): a new leader issues timestamps above it.
    pub fn max_ts(&self) -> Timestamp {
        self.max_ts
    }

    /// The replica's safe time: `min(max applied, min(prepare ts) - 1)`.
    pub fn safe_ts(&self) -> Timestamp {
        match self.prepared.values().min() {
            Some(&p) => self.max_ts.min(p.prev()),
            None => self.max_ts,
        }
    }

    /// The transactions prepared here and not decided, from their stored
    /// records.
    pub fn prepared_records(&self) -> Result<Vec<PreparedEntry>> {
        stored_prepare_records(&self.engine, self.group)
    }

    /// Applies committed entries, in slot order, as one batch. Returns the
    /// ids of the commands applied (their proposers are waiting) with each
    /// one's outcome. Entries at or below the applied index are skipped (a
    /// restart may deliver them again).
    pub fn apply(&mut self, entries: &[Entry]) -> Result<Applied> {
        let mut batch = WriteBatch::new();
        let mut results = Vec::new();
        let (mut applied, mut max_ts) = (self.applied, self.max_ts);
        // Changes to the prepare and outcome records within this batch.
        let mut prepared = self.prepared.clone();
        // Outcome records changed by this batch (`None`: removed), over the
        // stored ones.
        let mut outcomes: BTreeMap<u128, Option<Option<Timestamp>>> = BTreeMap::new();
        let mut new_records: BTreeMap<u128, PreparedEntry> = BTreeMap::new();
        let before = self.spans.get();
        let mut spans = before.clone();
        for entry in entries.iter().filter(|e| e.slot > self.applied) {
            if entry.slot != applied + 1 {
                return Err(Error::Internal(format!(
                    "group {}: slot {} delivered after slot {applied}",
                    self.group, entry.slot
                )));
            }
            if let Value::Command { id, data } = &entry.value {
                let command = Command::decode(data).map_err(|e| {
                    Error::Corruption(format!("group {} slot {}: {e}", self.group, entry.slot))
                })?;
                let result = match command {
                    Command::Commit { ts, writes } => {
                        max_ts = max_ts.max(ts);
                        self.check_writes(&spans, &writes).map(|()| {
                            self.write_effects(&mut batch, &mut spans, ts, &writes);
                        })
                    }
                    Command::Prepare(record) => {
                        max_ts = max_ts.max(record.prepare_ts);
                        self.check_writes(&spans, &record.writes).map(|()| {
                            prepared.insert(record.gid, record.prepare_ts);
                            batch.put(
                                Space::Meta,
                                record_key(self.group, PREPARED, record.gid),
                                postcard::to_allocvec(&record).expect("records always encode"),
                            );
                            new_records.insert(record.gid, record);
                        })
                    }
                    Command::Decide { gid, commit_ts } => {
                        if prepared.remove(&gid).is_some() {
                            let key = record_key(self.group, PREPARED, gid);
                            if let Some(ts) = commit_ts {
                                let entry = match new_records.remove(&gid) {
                                    Some(entry) => entry,
                                    None => self.stored_record(&key)?,
                                };
                                // Checked when it prepared; its locks kept
                                // the range from moving since.
                                self.write_effects(&mut batch, &mut spans, ts, &entry.writes);
                                max_ts = max_ts.max(ts);
                            }
                            batch.delete(Space::Meta, key);
                        }
                        Ok(())
                    }
                    Command::CoordinatorCommit { gid, ts, writes } => {
                        match self.outcome_in(&outcomes, gid)? {
                            Some(None) => Err(Error::Aborted(format!(
                                "transaction {} was aborted by a participant's resolution",
                                GlobalTxnId(gid)
                            ))),
                            Some(Some(decided)) if decided != ts => Err(Error::Internal(format!(
                                "transaction {} was already committed at {decided}",
                                GlobalTxnId(gid)
                            ))),
                            _ => self.check_writes(&spans, &writes).map(|()| {
                                self.write_effects(&mut batch, &mut spans, ts, &writes);
                                max_ts = max_ts.max(ts);
                                outcomes.insert(gid, Some(Some(ts)));
                                batch.put(
                                    Space::Meta,
                                    record_key(self.group, OUTCOME, gid),
                                    encode_outcome(Some(ts)),
                                );
                            }),
                        }
                    }
                    Command::Resolve { gid } => {
                        if self.outcome_in(&outcomes, gid)?.is_none() {
                            outcomes.insert(gid, Some(None));
                            batch.put(
                                Space::Meta,
                                record_key(self.group, OUTCOME, gid),
                                encode_outcome(None),
                            );
                        }
                        Ok(())
                    }
                    Command::Forget { gid } => {
                        outcomes.insert(gid, None);
                        batch.delete(Space::Meta, record_key(self.group, OUTCOME, gid));
                        Ok(())
                    }
                    Command::Ingest {
                        start,
                        end,
                        versions,
                    } => {
                        for (key, value) in versions {
                            batch.put(Space::Data, key, value);
                        }
                        spans.incoming.add(start, end);
                        Ok(())
                    }
                };
                results.push((*id, result));
            }
            applied = entry.slot;
        }
        if applied == self.applied {
            return Ok(results);
        }
        batch.put(
            Space::Meta,
            applied_key(self.group),
            encode_applied(applied, max_ts),
        );
        if spans != before {
            batch.put(
                Space::Meta,
                spans_key(self.group),
                postcard::to_allocvec(&spans).expect("spans always encode"),
            );
            self.spans.set(spans);
        }
        self.engine.write(batch, Durability::Buffered)?;
        self.applied = applied;
        self.max_ts = max_ts;
        self.prepared = prepared;
        Ok(results)
    }

    /// `Ok` if the group serves every key `writes` write (control keys
    /// must be this group's and hold a span change).
    fn check_writes(&self, spans: &Spans, writes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        for (key, value) in writes {
            match control_group(key) {
                Some(group) if group == self.group => {
                    SpanChange::decode(value.as_deref().unwrap_or_default())?;
                }
                Some(group) => {
                    return Err(Error::Internal(format!(
                        "group {}: a control key of group {group}",
                        self.group
                    )))
                }
                None => spans.check_key(self.group, key)?,
            }
        }
        Ok(())
    }

    /// Adds `writes` at `ts` to `batch`: data keys as versions, control
    /// keys as the span changes they hold.
    fn write_effects(
        &self,
        batch: &mut WriteBatch,
        spans: &mut Spans,
        ts: Timestamp,
        writes: &[(Vec<u8>, Option<Vec<u8>>)],
    ) {
        for (key, value) in writes {
            if control_group(key).is_none() {
                put_version(batch, key, ts, value.as_deref());
                continue;
            }
            let change = match SpanChange::decode(value.as_deref().unwrap_or_default()) {
                Ok(change) => change,
                Err(err) => {
                    // Checked before it was logged or prepared.
                    tracing::error!(group = self.group, %err, "skipped a span change");
                    continue;
                }
            };
            tracing::info!(group = self.group, ?change, %ts, "span change");
            spans.apply(&change);
        }
    }

    /// A stored prepare record.
    fn stored_record(&self, key: &[u8]) -> Result<PreparedEntry> {
        let bytes = self.engine.get(Space::Meta, key)?.ok_or_else(|| {
            Error::Internal(format!("group {}: a prepare record is missing", self.group))
        })?;
        decode_prepared(self.group, &bytes)
    }

    /// The outcome of `gid` recorded here (`Some(None)`: aborted), with
    /// the batch's own changes.
    fn outcome_in(
        &self,
        pending: &BTreeMap<u128, Option<Option<Timestamp>>>,
        gid: u128,
    ) -> Result<Option<Option<Timestamp>>> {
        match pending.get(&gid) {
            Some(outcome) => Ok(*outcome),
            None => stored_outcome(&self.engine, self.group, GlobalTxnId(gid)),
        }
    }

    /// A snapshot of the state machine's data (for [`Replica::compact`]).
    ///
    /// [`Replica::compact`]: meridian_paxos::Replica::compact
    pub fn dump(&self) -> Result<Vec<u8>> {
        let spans = self.spans.get();
        let (versions, records) = self.stored(&spans)?;
        let data = SnapshotData {
            max_ts: self.max_ts,
            versions,
            records,
            spans,
        };
        Ok(postcard::to_allocvec(&data).expect("snapshots always encode"))
    }

    /// What the group stores on this node: the raw versions in the ranges
    /// `spans` serve or copy in ([`Space::Data`]) and its two-phase commit
    /// records ([`Space::Meta`]).
    fn stored(&self, spans: &Spans) -> Result<(Vec<KvPair>, Vec<KvPair>)> {
        let versions = spans
            .stored()
            .iter()
            .flat_map(|span| {
                self.engine
                    .scan(Space::Data, &versioned_range(span), ScanDirection::Forward)
            })
            .collect::<Result<_>>()?;
        Ok((versions, self.stored_records()?))
    }

    /// The group's two-phase commit records, as raw [`Space::Meta`] pairs.
    fn stored_records(&self) -> Result<Vec<KvPair>> {
        [PREPARED, OUTCOME]
            .into_iter()
            .flat_map(|kind| {
                let prefix = record_prefix(self.group, kind);
                self.engine.scan(
                    Space::Meta,
                    &KeyRange::prefix(&prefix),
                    ScanDirection::Forward,
                )
            })
            .collect()
    }

    /// Replaces the state machine's data with `snapshot`'s, synced, in one
    /// batch with `with` (the replica's snapshot record). A snapshot with no
    /// data (the bootstrap membership) only moves the applied index.
    pub fn install(&mut self, snapshot: &Snapshot, with: WriteBatch) -> Result<()> {
        if snapshot.index <= self.applied && snapshot.data.is_empty() {
            return self.engine.write(with, Durability::Sync);
        }
        let data: SnapshotData = if snapshot.data.is_empty() {
            SnapshotData {
                max_ts: self.max_ts,
                versions: Vec::new(),
                records: Vec::new(),
                spans: self.spans.get(),
            }
        } else {
            postcard::from_bytes(&snapshot.data).map_err(|e| {
                Error::Corruption(format!(
                    "group {}: snapshot at slot {}: {e}",
                    self.group, snapshot.index
                ))
            })?
        };
        let mut batch = with;
        // Versions are immutable facts: what the store holds of the group's
        // ranges is a subset of the snapshot's (up to garbage collection),
        // and another group's replica on this node may share them (a range
        // moving between two groups), so none is deleted.
        for (key, _) in self.stored_records()? {
            batch.delete(Space::Meta, key);
        }
        for (key, value) in data.versions {
            batch.put(Space::Data, key, value);
        }
        let mut prepared = BTreeMap::new();
        for (key, value) in data.records {
            if key.starts_with(&record_prefix(self.group, PREPARED)) {
                let entry = decode_prepared(self.group, &value)?;
                prepared.insert(entry.gid, entry.prepare_ts);
            }
            batch.put(Space::Meta, key, value);
        }
        batch.put(
            Space::Meta,
            applied_key(self.group),
            encode_applied(snapshot.index, data.max_ts),
        );
        batch.put(
            Space::Meta,
            spans_key(self.group),
            postcard::to_allocvec(&data.spans).expect("spans always encode"),
        );
        self.spans.set(data.spans);
        self.engine.write(batch, Durability::Sync)?;
        self.applied = snapshot.index;
        self.max_ts = data.max_ts;
        self.prepared = prepared;
        Ok(())
    }
}

/// Adds to `batch` the deletion of `group`'s state machine records (applied
/// index, spans, prepare and outcome records): what a node forgets when its
/// replica leaves the group. Versions stay, as they do when a range moves
/// away (module docs, *Spans*).
pub fn erase(group: u64, batch: &mut WriteBatch) {
    batch.delete(Space::Meta, applied_key(group));
    batch.delete(Space::Meta, spans_key(group));
    for kind in [PREPARED, OUTCOME] {
        let prefix = record_prefix(group, kind);
        let end = prefix_successor(&prefix).expect("a record prefix ends with '/'");
        batch.delete_range(Space::Meta, prefix, end);
    }
}

/// The prepare records `group` holds in `engine`: the transactions
/// prepared there whose outcome it has not applied.
pub fn stored_prepare_records<E: Engine>(engine: &E, group: u64) -> Result<Vec<PreparedEntry>> {
    let prefix = record_prefix(group, PREPARED);
    engine
        .scan(
            Space::Meta,
            &KeyRange::prefix(&prefix),
            ScanDirection::Forward,
        )
        .map(|item| decode_prepared(group, &item?.1))
        .collect()
}

/// How many outcome records `group` keeps in `engine` (transactions it
/// coordinated whose outcome some participant may still ask for, and
/// aborts).
pub fn stored_outcome_count<E: Engine>(engine: &E, group: u64) -> Result<usize> {
    let prefix = record_prefix(group, OUTCOME);
    engine
        .scan(
            Space::Meta,
            &KeyRange::prefix(&prefix),
            ScanDirection::Forward,
        )
        .try_fold(0, |count, item| item.map(|_| count + 1))
}

/// A stored prepare record of `group`.
fn decode_prepared(group: u64, bytes: &[u8]) -> Result<PreparedEntry> {
    postcard::from_bytes(bytes)
        .map_err(|e| Error::Corruption(format!("group {group}: prepare record: {e}")))
}

/// The outcome of `gid` as the coordinator `group` recorded it in
/// `engine`, if it did.
pub fn read_outcome<E: Engine>(
    engine: &E,
    group: u64,
    gid: GlobalTxnId,
) -> Result<Option<Outcome>> {
    Ok(
        stored_outcome(engine, group, gid)?.map(|outcome| match outcome {
            Some(ts) => Outcome::Committed(ts),
            None => Outcome::Aborted,
        }),
    )
}

/// The outcome record of `gid` in `group`, as stored: `Some(None)` is an
/// abort, `Some(Some(s))` a commit at `s`.
fn stored_outcome<E: Engine>(
    engine: &E,
    group: u64,
    gid: GlobalTxnId,
) -> Result<Option<Option<Timestamp>>> {
    let Some(bytes) = engine.get(Space::Meta, &record_key(group, OUTCOME, gid.0))? else {
        return Ok(None);
    };
    postcard::from_bytes(&bytes)
        .map(Some)
        .map_err(|e| Error::Corruption(format!("group {group}: outcome of {gid}: {e}")))
}

/// `/<group BE>/applied` in [`Space::Meta`] (beside the Paxos records).
fn applied_key(group: u64) -> Vec<u8> {
    record_prefix(group, b"/applied")
}

/// `/<group BE>/spans` in [`Space::Meta`]: what the group serves.
fn spans_key(group: u64) -> Vec<u8> {
    record_prefix(group, b"/spans")
}

/// The kind of prepare records.
const PREPARED: &[u8] = b"/prepared/";
/// The kind of outcome records.
const OUTCOME: &[u8] = b"/outcome/";

/// `/<group BE><kind>` in [`Space::Meta`] (also the group's other keys
/// there, `kind` naming them).
fn record_prefix(group: u64, kind: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + kind.len() + 16);
    key.push(b'/');
    key.extend_from_slice(&group.to_be_bytes());
    key.extend_from_slice(kind);
    key
}

/// `/<group BE><kind><gid BE>` in [`Space::Meta`].
fn record_key(group: u64, kind: &[u8], gid: u128) -> Vec<u8> {
    let mut key = record_prefix(group, kind);
    key.extend_from_slice(&gid.to_be_bytes());
    key
}

fn encode_outcome(commit_ts: Option<Timestamp>) -> Vec<u8> {
    postcard::to_allocvec(&commit_ts).expect("outcomes always encode")
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

    fn all() -> Vec<KeyRange> {
        vec![KeyRange::all()]
    }

    fn entry(slot: Slot, id: u64, command: Command) -> Entry {
        Entry {
            slot,
            ballot: Ballot::new(1, 1),
            value: Value::Command {
                id,
                data: command.encode(),
            },
        }
    }

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
        let mut state = GroupState::load(engine.clone(), 7, all()).unwrap();
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
        let ids: Vec<u64> = ids
            .into_iter()
            .map(|(id, r)| r.map(|()| id).unwrap())
            .collect();
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
        let reloaded = GroupState::load(engine, 7, all()).unwrap();
        assert_eq!(reloaded.applied(), 3);
        assert_eq!(reloaded.max_ts(), Timestamp::from_nanos(200));
    }

    #[test]
    fn a_gap_or_a_damaged_command_stops_the_state_machine() {
        let mut state = GroupState::load(Arc::new(MemoryEngine::new()), 1, all()).unwrap();
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
    fn a_snapshot_brings_a_lagging_replica_up_to_date_and_keeps_what_the_node_shares() {
        let source = Arc::new(MemoryEngine::new());
        let mut leader = GroupState::load(source.clone(), 1, all()).unwrap();
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
        let mut lagging = GroupState::load(target.clone(), 1, all()).unwrap();
        // A version another group's replica on this node holds (a range
        // moving between the two groups): the snapshot must not remove it.
        Mvcc::new(target.clone())
            .unwrap()
            .write(
                Timestamp::from_nanos(5),
                [(b"shared".to_vec(), Some(b"1".to_vec()))],
                Durability::Sync,
            )
            .unwrap();
        lagging.install(&snapshot, WriteBatch::new()).unwrap();
        assert_eq!(
            (lagging.applied(), lagging.max_ts()),
            (1, Timestamp::from_nanos(10))
        );
        let mvcc = Mvcc::new(target).unwrap();
        assert_eq!(
            mvcc.get(b"x", Timestamp::MAX).unwrap(),
            Some(b"new".to_vec())
        );
        assert_eq!(
            mvcc.get(b"shared", Timestamp::MAX).unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(lagging.spans.get(), leader.spans.get());
    }

    #[test]
    fn a_prepared_transaction_holds_safe_time_below_it_until_decided() {
        let engine = Arc::new(MemoryEngine::new());
        let mut state = GroupState::load(engine.clone(), 2, all()).unwrap();
        let prepared = PreparedEntry {
            gid: 5,
            coordinator: 1,
            start_ts: Timestamp::from_nanos(90),
            prepare_ts: Timestamp::from_nanos(100),
            writes: vec![(b"p".to_vec(), Some(b"1".to_vec()))],
            locks: vec![LoggedLock {
                start: b"p".to_vec(),
                end: None,
                exclusive: true,
            }],
        };
        state
            .apply(&[
                entry(1, 1, Command::Prepare(prepared.clone())),
                commit(2, 2, 150, &[("q", Some("2"))]),
            ])
            .unwrap();
        assert_eq!(state.max_ts(), Timestamp::from_nanos(150));
        assert_eq!(state.safe_ts(), Timestamp::from_nanos(99));
        // A restart finds the record again.
        let reloaded = GroupState::load(engine.clone(), 2, all()).unwrap();
        assert_eq!(reloaded.safe_ts(), Timestamp::from_nanos(99));
        assert_eq!(reloaded.prepared_records().unwrap(), vec![prepared.clone()]);
        assert_eq!(
            prepared.to_record().locks,
            vec![(LockTarget::Key(b"p".to_vec()), LockMode::Exclusive)]
        );

        state
            .apply(&[entry(
                3,
                3,
                Command::Decide {
                    gid: 5,
                    commit_ts: Some(Timestamp::from_nanos(120)),
                },
            )])
            .unwrap();
        assert_eq!(state.safe_ts(), Timestamp::from_nanos(150));
        assert!(state.prepared_records().unwrap().is_empty());
        let mvcc = Mvcc::new(engine).unwrap();
        assert_eq!(
            mvcc.get(b"p", Timestamp::from_nanos(120)).unwrap(),
            Some(b"1".to_vec())
        );
        assert_eq!(mvcc.get(b"p", Timestamp::from_nanos(119)).unwrap(), None);
    }

    #[test]
    fn the_first_of_a_coordinator_commit_and_a_resolution_wins() {
        let engine = Arc::new(MemoryEngine::new());
        let mut state = GroupState::load(engine.clone(), 1, all()).unwrap();
        let coordinator_commit = |slot, id, gid| {
            entry(
                slot,
                id,
                Command::CoordinatorCommit {
                    gid,
                    ts: Timestamp::from_nanos(50),
                    writes: vec![(b"c".to_vec(), Some(vec![gid as u8]))],
                },
            )
        };
        let results = state
            .apply(&[
                entry(1, 1, Command::Resolve { gid: 7 }),
                coordinator_commit(2, 2, 7),
                coordinator_commit(3, 3, 8),
                entry(4, 4, Command::Resolve { gid: 8 }),
            ])
            .unwrap();
        assert!(results[0].1.is_ok());
        assert!(matches!(results[1].1, Err(Error::Aborted(_))));
        assert!(results[2].1.is_ok() && results[3].1.is_ok());
        assert_eq!(
            read_outcome(&engine, 1, GlobalTxnId(7)).unwrap(),
            Some(Outcome::Aborted)
        );
        assert_eq!(
            read_outcome(&engine, 1, GlobalTxnId(8)).unwrap(),
            Some(Outcome::Committed(Timestamp::from_nanos(50)))
        );
        let mvcc = Mvcc::new(engine).unwrap();
        assert_eq!(mvcc.get(b"c", Timestamp::MAX).unwrap(), Some(vec![8]));
    }

    #[test]
    fn a_forgotten_outcome_is_gone_and_a_later_resolution_records_an_abort_in_one_batch_or_many() {
        let entries = [
            entry(
                1,
                1,
                Command::CoordinatorCommit {
                    gid: 9,
                    ts: Timestamp::from_nanos(50),
                    writes: vec![(b"c".to_vec(), Some(vec![9]))],
                },
            ),
            entry(2, 2, Command::Forget { gid: 9 }),
            entry(3, 3, Command::Resolve { gid: 9 }),
            entry(4, 4, Command::Forget { gid: 9 }),
        ];
        // Replicas may apply the same entries in different batches: the
        // records after each slot are the same either way.
        for batches in [vec![&entries[..]], entries.chunks(1).collect()] {
            let engine = Arc::new(MemoryEngine::new());
            let mut state = GroupState::load(engine.clone(), 1, all()).unwrap();
            let mut seen = Vec::new();
            for batch in batches {
                state.apply(batch).unwrap();
                seen.push(read_outcome(&engine, 1, GlobalTxnId(9)).unwrap());
            }
            if seen.len() == 4 {
                assert_eq!(
                    seen,
                    [
                        Some(Outcome::Committed(Timestamp::from_nanos(50))),
                        None,
                        Some(Outcome::Aborted),
                        None
                    ]
                );
            }
            assert_eq!(stored_outcome_count(&engine, 1).unwrap(), 0);
            // The commit's writes stay.
            let mvcc = Mvcc::new(engine).unwrap();
            assert_eq!(mvcc.get(b"c", Timestamp::MAX).unwrap(), Some(vec![9]));
        }
        // In one batch, the resolution after the forget records an abort
        // just as it does on its own.
        let engine = Arc::new(MemoryEngine::new());
        let mut state = GroupState::load(engine.clone(), 1, all()).unwrap();
        state.apply(&entries[..3]).unwrap();
        assert_eq!(
            read_outcome(&engine, 1, GlobalTxnId(9)).unwrap(),
            Some(Outcome::Aborted)
        );
    }

    #[test]
    fn a_range_moves_by_control_keys_and_writes_outside_the_spans_are_refused() {
        use crate::spans::control_key;
        let engine = Arc::new(MemoryEngine::new());
        let g = vec![KeyRange::new(b"a".to_vec(), b"m".to_vec())];
        let mut from = GroupState::load(engine.clone(), 2, g).unwrap();
        let mut to = GroupState::load(engine.clone(), 3, Vec::new()).unwrap();
        // A write outside the group's ranges is refused, effect-free.
        let applied = to.apply(&[commit(1, 7, 10, &[("c", Some("no"))])]).unwrap();
        assert_eq!(
            applied,
            vec![(
                7,
                Err(Error::RangeMoved {
                    group: 3,
                    moved_to: None
                })
            )]
        );
        let mvcc = Mvcc::new(engine.clone()).unwrap();
        assert_eq!(mvcc.get(b"c", Timestamp::MAX).unwrap(), None);
        from.apply(&[commit(1, 1, 10, &[("c", Some("old"))])])
            .unwrap();

        // The copy is stored at the receiver but not served.
        let versions = engine
            .scan(
                Space::Data,
                &versioned_range(&KeyRange::new(b"c".to_vec(), b"d".to_vec())),
                ScanDirection::Forward,
            )
            .collect::<Result<Vec<_>>>()
            .unwrap();
        let ingest = Command::Ingest {
            start: b"c".to_vec(),
            end: Some(b"f".to_vec()),
            versions,
        };
        to.apply(&[entry(2, 2, ingest)]).unwrap();
        assert!(to.spans.check_key(3, b"c").is_err());
        assert_eq!(to.spans.get().stored().len(), 1);

        // The hand-over's writes: release at one, adopt at the other.
        let release = SpanChange::Release {
            start: b"c".to_vec(),
            end: Some(b"f".to_vec()),
            to: 3,
        };
        let adopt = SpanChange::Adopt {
            start: b"c".to_vec(),
            end: Some(b"f".to_vec()),
            from: 2,
        };
        let hand_over = |group: u64, change: &SpanChange| Command::Commit {
            ts: Timestamp::from_nanos(20),
            writes: vec![(control_key(group, b"c"), Some(change.encode()))],
        };
        from.apply(&[entry(2, 3, hand_over(2, &release))]).unwrap();
        to.apply(&[entry(3, 4, hand_over(3, &adopt))]).unwrap();
        assert_eq!(
            from.spans.check_key(2, b"d"),
            Err(Error::RangeMoved {
                group: 2,
                moved_to: Some(3)
            })
        );
        from.spans.check_key(2, b"b").unwrap();
        to.spans.check_key(3, b"d").unwrap();
        // Writes follow: refused at the old group, applied at the new.
        let refused = from
            .apply(&[commit(3, 5, 30, &[("d", Some("x"))])])
            .unwrap();
        assert!(matches!(refused[0].1, Err(Error::RangeMoved { .. })));
        to.apply(&[commit(4, 6, 30, &[("d", Some("y"))])]).unwrap();
        assert_eq!(mvcc.get(b"d", Timestamp::MAX).unwrap(), Some(b"y".to_vec()));
        assert_eq!(
            mvcc.get(b"c", Timestamp::MAX).unwrap(),
            Some(b"old".to_vec())
        );
        // A control key of another group is a bug, refused.
        let wrong = Command::Commit {
            ts: Timestamp::from_nanos(40),
            writes: vec![(control_key(2, b"c"), Some(adopt.encode()))],
        };
        let applied = to.apply(&[entry(5, 8, wrong)]).unwrap();
        assert!(matches!(applied[0].1, Err(Error::Internal(_))));
        // The spans survive a restart.
        let reloaded = GroupState::load(engine, 3, Vec::new()).unwrap();
        assert_eq!(reloaded.spans.get(), to.spans.get());
    }

    #[test]
    fn a_snapshot_covers_only_the_groups_own_ranges() {
        let source = Arc::new(MemoryEngine::new());
        let mine = vec![KeyRange::new(b"a".to_vec(), b"m".to_vec())];
        let mut group = GroupState::load(source.clone(), 3, mine.clone()).unwrap();
        group
            .apply(&[commit(1, 1, 10, &[("b", Some("mine"))])])
            .unwrap();
        // Another group's data on the same node.
        let mut other = GroupState::load(
            source.clone(),
            4,
            vec![KeyRange::new(b"m".to_vec(), b"z".to_vec())],
        )
        .unwrap();
        other
            .apply(&[commit(1, 1, 10, &[("n", Some("theirs"))])])
            .unwrap();
        let snapshot = Snapshot {
            index: 1,
            membership: Membership::new([1, 2, 3]),
            membership_slot: 0,
            data: group.dump().unwrap(),
        };
        // Installed on a node that has group 4's data too: it stays.
        let target = Arc::new(MemoryEngine::new());
        let mut theirs = GroupState::load(
            target.clone(),
            4,
            vec![KeyRange::new(b"m".to_vec(), b"z".to_vec())],
        )
        .unwrap();
        theirs
            .apply(&[commit(1, 1, 10, &[("n", Some("theirs"))])])
            .unwrap();
        let mut lagging = GroupState::load(target.clone(), 3, mine).unwrap();
        lagging.install(&snapshot, WriteBatch::new()).unwrap();
        let mvcc = Mvcc::new(target).unwrap();
        assert_eq!(
            mvcc.get(b"b", Timestamp::MAX).unwrap(),
            Some(b"mine".to_vec())
        );
        assert_eq!(
            mvcc.get(b"n", Timestamp::MAX).unwrap(),
            Some(b"theirs".to_vec())
        );
    }
}
