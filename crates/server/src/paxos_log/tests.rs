//! Tests of [`PaxosStore`]: a real single-voter [`Replica`] persists through
//! it, and recovers from what it loads.

use std::sync::Arc;

use meridian_error::Error;
use meridian_paxos::{Config, Entry, Membership, Replica, RoleKind, Value, SECOND};
use meridian_storage::{
    Durability, Engine, KeyRange, MemoryEngine, RocksEngine, RocksOptions, ScanDirection, Space,
    WriteBatch,
};

use super::PaxosStore;

/// A replica of `group` driven through a store, with its clock.
struct Node<E: Engine> {
    /// The replica.
    replica: Replica,
    /// Its durable storage.
    store: PaxosStore<E>,
    /// Local time, in nanoseconds.
    now: u64,
    /// Every committed entry delivered so far, in order.
    applied: Vec<Entry>,
}

fn config(group: u64) -> Config {
    Config::new(1, 7, group, 42)
}

impl<E: Engine> Node<E> {
    /// Bootstraps a single-voter group and makes it leader with a lease.
    fn bootstrap(engine: E, group: u64) -> Self {
        let replica = Replica::bootstrap(config(group), Membership::new([1]), 0).unwrap();
        let mut node = Node {
            replica,
            store: PaxosStore::new(engine, group),
            now: 0,
            applied: Vec::new(),
        };
        node.drive();
        node.replica.campaign();
        node.drive();
        for _ in 0..10 {
            if node.replica.can_serve_reads(node.now) {
                break;
            }
            node.now += SECOND / 2;
            node.replica.tick(node.now);
            node.drive();
        }
        assert_eq!(node.replica.role(), RoleKind::Leader);
        assert!(node.replica.can_serve_reads(node.now));
        node
    }

    /// Runs the Ready/advance loop until the replica is quiet.
    fn drive(&mut self) {
        while self.replica.has_ready() {
            let ready = self.replica.ready();
            assert!(ready.messages.is_empty() && ready.persisted_messages.is_empty());
            self.store.persist(&ready, None).unwrap();
            self.applied.extend(ready.committed.iter().cloned());
            self.replica.advance();
        }
    }

    /// Proposes commands and drives them to commit.
    fn propose(&mut self, ids: std::ops::Range<u64>) {
        for id in ids {
            let data = format!("put k{id}=v{id}").into_bytes();
            self.replica.propose(self.now, id, data).unwrap();
        }
        self.drive();
    }

    /// The commands applied so far, by id.
    fn commands(&self) -> Vec<u64> {
        commands(&self.applied)
    }
}

fn commands(entries: &[Entry]) -> Vec<u64> {
    entries
        .iter()
        .filter_map(|e| match e.value {
            Value::Command { id, .. } => Some(id),
            _ => None,
        })
        .collect()
}

/// Recovers a replica of `group` from `engine` with nothing applied yet
/// (`applied` = the snapshot index) and returns it with the committed
/// entries its first Ready redelivers.
fn recover<E: Engine>(engine: E, group: u64) -> (Replica, Vec<Entry>) {
    let store = PaxosStore::new(engine, group);
    let stored = store.load().unwrap();
    let snapshot_index = stored
        .snapshot
        .as_ref()
        .map(|b| meridian_paxos::codec::decode_snapshot(b).unwrap().index)
        .unwrap_or(0);
    let mut replica =
        Replica::recover(config(group), &stored, snapshot_index, 100 * SECOND).unwrap();
    let mut committed = Vec::new();
    while replica.has_ready() {
        let ready = replica.ready();
        store.persist(&ready, None).unwrap();
        committed.extend(ready.committed);
        replica.advance();
    }
    (replica, committed)
}

/// A replica persisted through the store and recovered from it has the
/// same durable state and redelivers the same committed entries.
fn round_trip<E: Engine + Clone>(engine: E) {
    let mut node = Node::bootstrap(engine.clone(), 1);
    node.propose(1..6);
    assert_eq!(node.commands(), vec![1, 2, 3, 4, 5]);
    let before = node.replica.durable_state();
    let (recovered, committed) = recover(engine, 1);
    assert_eq!(recovered.durable_state(), before);
    assert_eq!(recovered.promised(), node.replica.promised());
    assert_eq!(recovered.commit(), node.replica.commit());
    assert_eq!(committed, node.applied);
}

#[test]
fn round_trip_memory() {
    round_trip(Arc::new(MemoryEngine::new()));
}

#[test]
fn round_trip_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    let engine = RocksEngine::open(dir.path(), RocksOptions::default()).unwrap();
    round_trip(engine);
}

#[test]
fn groups_sharing_an_engine_are_separate() {
    let engine = Arc::new(MemoryEngine::new());
    let mut a = Node::bootstrap(engine.clone(), 1);
    let mut b = Node::bootstrap(engine.clone(), 2);
    a.propose(1..4);
    b.propose(100..102);
    let (ra, ca) = recover(engine.clone(), 1);
    let (rb, cb) = recover(engine.clone(), 2);
    assert_eq!(commands(&ca), vec![1, 2, 3]);
    assert_eq!(commands(&cb), vec![100, 101]);
    assert_eq!(ra.durable_state(), a.replica.durable_state());
    assert_eq!(rb.durable_state(), b.replica.durable_state());
    // A group never written has nothing stored.
    let empty = PaxosStore::new(engine, 3).load().unwrap();
    assert!(empty.hard_state.is_none() && empty.snapshot.is_none() && empty.entries.is_empty());
}

#[test]
fn compaction_truncates_the_log_and_recovery_still_works() {
    let engine = Arc::new(MemoryEngine::new());
    let mut node = Node::bootstrap(engine.clone(), 1);
    node.propose(1..6);
    let stored = node.store.load().unwrap();
    let before = stored.entries.len();
    let compact_at = node.replica.applied() - 2;
    let snapshot = node.replica.compact(compact_at).unwrap().clone();
    let ready = node.replica.ready();
    assert_eq!(ready.compact, Some(compact_at));
    node.store.persist(&ready, Some(&snapshot)).unwrap();
    node.replica.advance();
    node.propose(6..8);

    let stored = node.store.load().unwrap();
    let slots: Vec<u64> = stored
        .entries
        .iter()
        .map(|b| meridian_paxos::codec::decode_entry(b).unwrap().slot)
        .collect();
    assert!(slots.iter().all(|&s| s > compact_at), "{slots:?}");
    assert_eq!(slots.len(), before - compact_at as usize + 2);
    let (recovered, committed) = recover(engine, 1);
    assert_eq!(recovered.snapshot_index(), compact_at);
    assert_eq!(recovered.durable_state(), node.replica.durable_state());
    // Redelivered: exactly the entries after the snapshot.
    let after: Vec<Entry> = node
        .applied
        .iter()
        .filter(|e| e.slot > compact_at)
        .cloned()
        .collect();
    assert_eq!(committed, after);
}

#[test]
fn a_damaged_entry_is_corruption_naming_the_slot() {
    let engine = Arc::new(MemoryEngine::new());
    let mut node = Node::bootstrap(engine.clone(), 9);
    node.propose(1..4);
    let (key, mut bytes) = engine
        .scan(Space::Log, &KeyRange::all(), ScanDirection::Forward)
        .nth(1)
        .unwrap()
        .unwrap();
    let slot = u64::from_be_bytes(key[10..18].try_into().unwrap());
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let mut batch = WriteBatch::new();
    batch.put(Space::Log, key, bytes);
    engine.write(batch, Durability::Sync).unwrap();

    let err = node.store.load().unwrap_err();
    let Error::Corruption(message) = &err else {
        panic!("expected corruption, got {err}");
    };
    assert!(message.contains(&format!("slot {slot}")), "{message}");
    assert!(message.contains("group 9"), "{message}");
    assert!(message.contains("checksum"), "{message}");
}

#[test]
fn persisted_state_survives_a_crash_without_flush() {
    let dir = tempfile::tempdir().unwrap();
    let (before, applied) = {
        let engine = RocksEngine::open(dir.path(), RocksOptions::default()).unwrap();
        let mut node = Node::bootstrap(engine, 4);
        node.propose(1..5);
        // Dropped without flush: only the synced WAL holds the records.
        (node.replica.durable_state(), node.applied)
    };
    let engine = RocksEngine::open(dir.path(), RocksOptions::default()).unwrap();
    let (recovered, committed) = recover(engine, 4);
    assert_eq!(recovered.durable_state(), before);
    assert_eq!(committed, applied);
    assert_eq!(commands(&committed), vec![1, 2, 3, 4]);
}

#[test]
fn an_entry_under_another_slots_key_is_corruption() {
    let engine = Arc::new(MemoryEngine::new());
    let mut node = Node::bootstrap(engine.clone(), 5);
    node.propose(1..3);
    let mut rows = engine.scan(Space::Log, &KeyRange::all(), ScanDirection::Forward);
    let (first_key, _) = rows.next().unwrap().unwrap();
    let (_, second) = rows.next().unwrap().unwrap();
    drop(rows);
    // A valid record, checksum and all, stored under the wrong slot.
    let mut batch = WriteBatch::new();
    batch.put(Space::Log, first_key.clone(), second);
    engine.write(batch, Durability::Sync).unwrap();
    let slot = u64::from_be_bytes(first_key[10..18].try_into().unwrap());
    let err = node.store.load().unwrap_err();
    assert!(
        matches!(&err, Error::Corruption(m) if m.contains(&format!("slot {slot}"))),
        "{err}"
    );
}

/// The environment variable that makes the test below the crashing child.
const CRASH_DIR: &str = "MERIDIAN_PAXOS_LOG_CRASH_DIR";

/// A real process crash: a child process persists through RocksDB and
/// aborts (no destructor, no close, no flush); the parent reopens and
/// recovers every entry the child saw committed.
#[test]
fn persisted_state_survives_a_process_abort() {
    if let Ok(dir) = std::env::var(CRASH_DIR) {
        let engine = RocksEngine::open(&dir, RocksOptions::default()).unwrap();
        let mut node = Node::bootstrap(engine, 6);
        node.propose(1..5);
        assert_eq!(node.commands(), vec![1, 2, 3, 4]);
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "paxos_log::tests::persisted_state_survives_a_process_abort",
            "--nocapture",
        ])
        .env(CRASH_DIR, dir.path())
        .status()
        .unwrap();
    assert!(!status.success(), "the child should have aborted");
    let engine = RocksEngine::open(dir.path(), RocksOptions::default()).unwrap();
    let (recovered, committed) = recover(engine, 6);
    assert_eq!(commands(&committed), vec![1, 2, 3, 4]);
    assert_eq!(recovered.commit(), committed.last().unwrap().slot);
}
