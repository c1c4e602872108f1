//! Two-phase commit across groups (Spanner §4.2.1) on local engines: one
//! commit timestamp for every group, commit wait, one wound-wait priority
//! everywhere, prepared transactions holding reads back, resolution of an
//! abandoned transaction, and a new leader taking over a prepared one.
//! Time is a manual clock shared by every group, so runs are deterministic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use meridian_error::Error;
use meridian_storage::{KeyRange, MemoryEngine, ScanDirection};
use meridian_truetime::{ManualClock, Timestamp, TrueTime};
use meridian_txn::testing::LocalGroups;
use meridian_txn::{
    DistEngine, GlobalTxnId, Groups, LocalConfig, LocalEngine, LockMode, LockStrength, LockTarget,
    ManualSleeper, Outcome, RangeMap, ReadTime, Transaction, TxnEngine, TxnMode, Vote,
};

const S: LockStrength = LockStrength::Shared;
const RW: TxnMode = TxnMode::ReadWrite;
const RO: TxnMode = TxnMode::ReadOnly(ReadTime::Strong);

/// Three groups: keys below "h" in group 1, below "p" in group 2, the rest
/// in group 3; each over its own memory store.
struct Cluster {
    clock: Arc<ManualClock>,
    stores: BTreeMap<u64, MemoryEngine>,
    groups: Arc<LocalGroups<MemoryEngine>>,
    db: DistEngine<LocalGroups<MemoryEngine>>,
}

fn engine(clock: &Arc<ManualClock>, store: MemoryEngine) -> LocalEngine<MemoryEngine> {
    LocalEngine::new(
        store,
        TrueTime::new(clock.clone()),
        Arc::new(ManualSleeper::new(clock.clone())),
        LocalConfig {
            lock_timeout: Duration::from_millis(50),
            ..LocalConfig::default()
        },
    )
    .unwrap()
}

fn cluster() -> Cluster {
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_nanos(1_700_000_000_000_000_000),
        Duration::from_millis(2),
    ));
    let stores: BTreeMap<u64, MemoryEngine> = (1..=3).map(|g| (g, MemoryEngine::new())).collect();
    let engines = stores
        .iter()
        .map(|(&g, store)| (g, engine(&clock, store.clone())))
        .collect();
    let map = RangeMap::new(vec![
        (Vec::new(), 1),
        (b"h".to_vec(), 2),
        (b"p".to_vec(), 3),
    ])
    .unwrap();
    let groups = Arc::new(LocalGroups::new(engines, map, TrueTime::new(clock.clone())));
    Cluster {
        clock,
        stores,
        db: DistEngine::new(groups.clone()),
        groups,
    }
}

fn v(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

#[tokio::test]
async fn a_transaction_over_three_groups_commits_everywhere_at_one_timestamp() {
    let c = cluster();
    let tt = TrueTime::new(c.clock.clone());
    let mut txn = c.db.begin(RW).await.unwrap();
    for key in ["a", "k", "x"] {
        txn.put(key.into(), format!("v-{key}").into_bytes())
            .await
            .unwrap();
    }
    let s = txn.commit().await.unwrap().expect("it wrote");
    // Commit wait: the timestamp is in the past everywhere once commit returns.
    assert!(tt.after(s));
    for (group, key) in [(1, "a"), (2, "k"), (3, "x")] {
        let mvcc = c.groups.engine(group).unwrap().mvcc();
        assert_eq!(mvcc.get(key.as_bytes(), s).unwrap(), v(&format!("v-{key}")));
        assert_eq!(mvcc.get(key.as_bytes(), s.prev()).unwrap(), None);
        assert!(c.groups.engine(group).unwrap().prepared().is_empty());
    }
    // A snapshot read across the groups sees all of it, in key order.
    let mut ro = c.db.begin(RO).await.unwrap();
    let rows = ro
        .scan(KeyRange::all(), ScanDirection::Forward, None, S)
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|(k, _)| k.as_slice()).collect::<Vec<_>>(),
        [b"a", b"k", b"x"]
    );
    let reversed = ro
        .scan(KeyRange::all(), ScanDirection::Reverse, Some(2), S)
        .await
        .unwrap();
    assert_eq!(
        reversed
            .iter()
            .map(|(k, _)| k.as_slice())
            .collect::<Vec<_>>(),
        [b"x", b"k"]
    );
    // Nothing from before the commit.
    let mut old =
        c.db.begin(TxnMode::ReadOnly(ReadTime::At(s.prev())))
            .await
            .unwrap();
    assert!(old
        .scan(KeyRange::all(), ScanDirection::Forward, None, S)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(c.stores.len(), 3);
}

#[tokio::test]
async fn a_participant_that_cannot_prepare_aborts_the_whole_transaction() {
    let c = cluster();
    let mut older = c.db.begin(RW).await.unwrap();
    c.clock.advance(Duration::from_millis(1));
    let mut younger = c.db.begin(RW).await.unwrap();
    assert!(older.start_ts() < younger.start_ts());
    // The younger transaction writes in groups 1 and 3...
    younger.put(b"a".to_vec(), b"young".to_vec()).await.unwrap();
    younger.put(b"x".to_vec(), b"young".to_vec()).await.unwrap();
    // ...and the older one wounds it in group 3 (same priority everywhere).
    older.put(b"x".to_vec(), b"old".to_vec()).await.unwrap();
    let err = younger.commit().await.unwrap_err();
    assert!(matches!(err, Error::Wounded { .. }), "{err}");
    assert!(err.is_retryable());
    // Group 1's part was rolled back: its lock is free for the older one.
    older.put(b"a".to_vec(), b"old".to_vec()).await.unwrap();
    let s = older.commit().await.unwrap().unwrap();
    for (group, key) in [(1, "a"), (3, "x")] {
        let mvcc = c.groups.engine(group).unwrap().mvcc();
        assert_eq!(mvcc.get(key.as_bytes(), Timestamp::MAX).unwrap(), v("old"));
        assert_eq!(
            mvcc.get(key.as_bytes(), s.prev()).unwrap(),
            None,
            "the wounded transaction wrote nothing"
        );
    }
}

#[tokio::test]
async fn a_prepared_transaction_holds_reads_back_until_its_outcome() {
    let c = cluster();
    let g1 = c.groups.engine(1).unwrap().clone();
    let mut txn = g1.begin(RW).await.unwrap();
    txn.put(b"a".to_vec(), b"1".to_vec()).await.unwrap();
    let gid = GlobalTxnId(7);
    let p = prepared(txn.prepare(gid, 2).await.unwrap());
    assert_eq!(g1.prepared().len(), 1);
    assert_eq!(g1.prepared()[0].prepare_ts, p);

    // A read before p does not wait; a read at or after p waits.
    let mut early = g1
        .begin(TxnMode::ReadOnly(ReadTime::At(p.prev())))
        .await
        .unwrap();
    assert_eq!(early.get(b"a", S).await.unwrap(), None);
    let reader = {
        let g1 = g1.clone();
        tokio::spawn(async move {
            let mut ro = g1.begin(TxnMode::ReadOnly(ReadTime::At(p))).await.unwrap();
            ro.get(b"a", S).await.unwrap()
        })
    };
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!reader.is_finished(), "the read must wait for the outcome");
    // A writer waits for the lock (and times out: the manual clock jumps).
    let mut writer = g1.begin(RW).await.unwrap();
    let err = writer.put(b"a".to_vec(), b"2".to_vec()).await.unwrap_err();
    assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
    drop(writer);

    // The reader's snapshot is at p, where the commit lands.
    let s = p;
    g1.decide(gid, Outcome::Committed(s)).await.unwrap();
    assert_eq!(reader.await.unwrap(), v("1"));
    assert_eq!(g1.mvcc().get(b"a", s).unwrap(), v("1"));
    assert!(g1.prepared().is_empty());
    // Deciding again is a no-op.
    g1.decide(gid, Outcome::Aborted).await.unwrap();
    assert_eq!(g1.mvcc().get(b"a", Timestamp::MAX).unwrap(), v("1"));
    // The issued timestamps moved past s: the next commit is above it.
    let mut next = g1.begin(RW).await.unwrap();
    next.put(b"a".to_vec(), b"3".to_vec()).await.unwrap();
    assert!(next.commit().await.unwrap().unwrap() > s);
}

#[tokio::test]
async fn an_abandoned_transaction_is_resolved_by_its_coordinator_as_aborted() {
    let c = cluster();
    let (g1, g2) = (
        c.groups.engine(1).unwrap().clone(),
        c.groups.engine(2).unwrap().clone(),
    );
    let gid = GlobalTxnId(42);
    // The gateway prepared group 1, then died before the coordinator (group
    // 2) committed.
    let mut part = g1.begin(RW).await.unwrap();
    part.put(b"a".to_vec(), b"lost".to_vec()).await.unwrap();
    let p = prepared(part.prepare(gid, 2).await.unwrap());
    let mut coordinator_part = g2.begin(RW).await.unwrap();
    coordinator_part
        .put(b"k".to_vec(), b"lost".to_vec())
        .await
        .unwrap();

    // Group 1 asks the coordinator, which records an abort...
    assert_eq!(g2.resolve(gid).await.unwrap(), Outcome::Aborted);
    g1.decide(gid, Outcome::Aborted).await.unwrap();
    assert!(g1.prepared().is_empty());
    assert_eq!(g1.mvcc().get(b"a", Timestamp::MAX).unwrap(), None);
    // ...so a late commit of the coordinator fails, writing nothing.
    let err = coordinator_part
        .commit_as_coordinator(gid, p, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Aborted(_)), "{err}");
    assert_eq!(g2.mvcc().get(b"k", Timestamp::MAX).unwrap(), None);

    // A decided transaction resolves to its outcome.
    let gid = GlobalTxnId(43);
    let mut decided = g2.begin(RW).await.unwrap();
    decided.put(b"k".to_vec(), b"kept".to_vec()).await.unwrap();
    let s = decided.commit_as_coordinator(gid, p, None).await.unwrap();
    assert!(s >= p);
    assert_eq!(g2.resolve(gid).await.unwrap(), Outcome::Committed(s));
}

#[tokio::test]
async fn a_new_leader_takes_over_a_prepared_transaction_from_its_record() {
    let c = cluster();
    let old = c.groups.engine(1).unwrap().clone();
    let mut part = old.begin(RW).await.unwrap();
    let part_start = part.start_ts();
    part.get(b"b", S).await.unwrap();
    part.put(b"a".to_vec(), b"1".to_vec()).await.unwrap();
    let gid = GlobalTxnId(9);
    let p = prepared(part.prepare(gid, 2).await.unwrap());
    // What the log holds.
    let logged = old.prepare_record(gid).unwrap();
    assert_eq!((logged.prepare_ts, logged.coordinator), (p, 2));
    assert_eq!(logged.start_ts, part_start);
    assert!(logged
        .locks
        .contains(&(LockTarget::key(b"b".to_vec()), LockMode::Shared)));

    // A new leader over the same data restores the transaction from its
    // prepare record: its locks, shared ones too, are held again.
    let new = engine(&c.clock, c.stores[&1].clone());
    new.restore_prepared(logged).unwrap();
    let mut writer = new.begin(RW).await.unwrap();
    let err = writer.put(b"b".to_vec(), b"2".to_vec()).await.unwrap_err();
    assert!(
        matches!(err, Error::LockTimeout { .. }),
        "the shared lock was restored: {err}"
    );
    drop(writer);
    let s = p.next();
    new.decide(gid, Outcome::Committed(s)).await.unwrap();
    assert_eq!(new.mvcc().get(b"a", s).unwrap(), v("1"));
    let mut writer = new.begin(RW).await.unwrap();
    writer.put(b"b".to_vec(), b"2".to_vec()).await.unwrap();
    assert!(writer.commit().await.unwrap().unwrap() > s);
}

/// The prepare timestamp of a participant that wrote.
fn prepared(vote: Vote) -> Timestamp {
    match vote {
        Vote::Prepared { prepare_ts } => prepare_ts,
        Vote::ReadOnly { .. } => panic!("a participant that wrote voted read-only"),
    }
}

#[tokio::test]
async fn a_participant_that_only_read_votes_without_a_record_and_keeps_its_locks() {
    let c = cluster();
    let g1 = c.groups.engine(1).unwrap().clone();
    let mut txn = g1.begin(RW).await.unwrap();
    assert_eq!(txn.get(b"a", S).await.unwrap(), None);
    let gid = GlobalTxnId(11);
    let vote = txn.prepare(gid, 2).await.unwrap();
    // Local engines have no lease: no bound.
    assert_eq!(vote, Vote::ReadOnly { until: None });
    assert!(g1.prepare_record(gid).is_none(), "nothing was logged");
    assert_eq!(g1.prepared().len(), 1);
    assert!(g1.prepared()[0].read_only);
    // Its shared lock holds until the outcome.
    let mut writer = g1.begin(RW).await.unwrap();
    let err = writer.put(b"a".to_vec(), b"2".to_vec()).await.unwrap_err();
    assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
    drop(writer);
    // Readers are not held back (nothing will be written).
    let mut ro = g1.begin(RO).await.unwrap();
    assert_eq!(ro.get(b"a", S).await.unwrap(), None);
    g1.decide(gid, Outcome::Committed(c.groups.now().latest))
        .await
        .unwrap();
    assert!(g1.prepared().is_empty());
    let mut writer = g1.begin(RW).await.unwrap();
    writer.put(b"a".to_vec(), b"2".to_vec()).await.unwrap();
    writer.commit().await.unwrap();

    // Through the engine: a transaction reading group 1 and writing group
    // 2 commits, group 1 voting read-only.
    let mut txn = c.db.begin(RW).await.unwrap();
    assert_eq!(txn.get(b"a", S).await.unwrap(), v("2"));
    txn.put(b"k".to_vec(), b"from-a".to_vec()).await.unwrap();
    let s = txn.commit().await.unwrap().unwrap();
    assert_eq!(
        c.groups.engine(2).unwrap().mvcc().get(b"k", s).unwrap(),
        v("from-a")
    );
    assert!(g1.prepared().is_empty(), "the vote's locks were released");
}

#[tokio::test]
async fn a_logged_prepare_record_no_engine_holds_is_decided_from_the_record() {
    let c = cluster();
    let g1 = c.groups.engine(1).unwrap().clone();
    // A prepare that reached the log although its leader reported it lost:
    // no engine holds its locks or its timestamp.
    let p = c.groups.now().latest;
    let record = |gid: u128, key: &str| meridian_txn::PrepareRecord {
        gid: GlobalTxnId(gid),
        coordinator: 2,
        start_ts: p,
        prepare_ts: p,
        writes: [(key.as_bytes().to_vec(), Some(b"orphan".to_vec()))]
            .into_iter()
            .collect(),
        locks: vec![(
            LockTarget::key(key.as_bytes().to_vec()),
            LockMode::Exclusive,
        )],
    };
    g1.decide_unheld(&record(21, "a"), Outcome::Aborted)
        .await
        .unwrap();
    assert_eq!(g1.mvcc().get(b"a", Timestamp::MAX).unwrap(), None);
    let s = p.next();
    g1.decide_unheld(&record(22, "b"), Outcome::Committed(s))
        .await
        .unwrap();
    assert_eq!(g1.mvcc().get(b"b", s).unwrap(), v("orphan"));
    // Later commits land above it.
    let mut next = g1.begin(RW).await.unwrap();
    next.put(b"c".to_vec(), b"1".to_vec()).await.unwrap();
    assert!(next.commit().await.unwrap().unwrap() > s);
    // A record the engine holds goes through `decide`.
    let mut held = g1.begin(RW).await.unwrap();
    held.put(b"d".to_vec(), b"held".to_vec()).await.unwrap();
    let gid = GlobalTxnId(23);
    prepared(held.prepare(gid, 2).await.unwrap());
    let logged = g1.prepare_record(gid).unwrap();
    g1.decide_unheld(&logged, Outcome::Aborted).await.unwrap();
    assert!(g1.prepared().is_empty(), "its locks were released");
}
