//! The single-process transaction engine: strict 2PL with wound-wait, commit
//! wait, lock-free read-only snapshots. Time is a manual clock, so every run
//! is deterministic in what it checks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meridian_error::Error;
use meridian_storage::{Durability, KeyRange, MemoryEngine, Mvcc, ScanDirection};
use meridian_truetime::{ManualClock, Timestamp, TrueTime};
use meridian_txn::{
    testing, CommitFuture, GlobalTxnId, LocalConfig, LocalEngine, LockStrength, ManualSleeper,
    Outcome, OutcomeFuture, PrepareRecord, ReadTime, Replication, Transaction, TxnEngine, TxnId,
    TxnMode, Writes,
};

const S: LockStrength = LockStrength::Shared;
const X: LockStrength = LockStrength::Exclusive;
const RW: TxnMode = TxnMode::ReadWrite;
const RO: TxnMode = TxnMode::ReadOnly(ReadTime::Strong);

fn engine_with(config: LocalConfig) -> (Arc<ManualClock>, LocalEngine<MemoryEngine>) {
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_nanos(1_700_000_000_000_000_000),
        Duration::from_millis(2),
    ));
    let engine = LocalEngine::new(
        MemoryEngine::new(),
        TrueTime::new(clock.clone()),
        Arc::new(ManualSleeper::new(clock.clone())),
        config,
    )
    .unwrap();
    (clock, engine)
}

fn engine() -> (Arc<ManualClock>, LocalEngine<MemoryEngine>) {
    engine_with(LocalConfig::default())
}

fn v(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

async fn put(engine: &LocalEngine<MemoryEngine>, key: &str, value: &str) -> Timestamp {
    let mut txn = engine.begin(RW).await.unwrap();
    txn.put(key.into(), value.into()).await.unwrap();
    txn.commit().await.unwrap().unwrap()
}

#[tokio::test]
async fn writes_are_private_until_commit_then_visible_after_commit_wait() {
    let (clock, engine) = engine();
    let tt = TrueTime::new(clock.clone());
    let mut t1 = engine.begin(RW).await.unwrap();
    t1.put(b"k".to_vec(), b"1".to_vec()).await.unwrap();
    assert_eq!(t1.get(b"k", S).await.unwrap(), v("1"));
    // A read-only transaction does not see the uncommitted write, and does
    // not wait for the writer's lock either.
    let mut ro = engine.begin(RO).await.unwrap();
    assert_eq!(ro.get(b"k", S).await.unwrap(), None);
    let start = t1.start_ts();
    let s = t1.commit().await.unwrap().unwrap();
    assert!(s >= start);
    assert!(tt.after(s), "commit returned before commit wait ended");
    // A strong read reads at the last commit (nothing is prepared).
    let mut ro = engine.begin(RO).await.unwrap();
    assert_eq!(ro.read_ts().unwrap(), s);
    assert_eq!(ro.get(b"k", S).await.unwrap(), v("1"));
}

#[tokio::test]
async fn commit_timestamps_increase_and_snapshots_read_the_past() {
    let (_clock, engine) = engine();
    let s1 = put(&engine, "k", "old").await;
    let s2 = put(&engine, "k", "new").await;
    assert!(s2 > s1);
    let mut past = engine
        .begin(TxnMode::ReadOnly(ReadTime::At(s1)))
        .await
        .unwrap();
    assert_eq!(past.get(b"k", S).await.unwrap(), v("old"));
    let mut before = engine
        .begin(TxnMode::ReadOnly(ReadTime::At(s1.prev())))
        .await
        .unwrap();
    assert_eq!(before.get(b"k", S).await.unwrap(), None);
    let future = engine.now().latest.saturating_add(Duration::from_secs(60));
    let err = engine
        .begin(TxnMode::ReadOnly(ReadTime::At(future)))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

#[tokio::test]
async fn read_only_transactions_refuse_writes() {
    let (_clock, engine) = engine();
    let mut ro = engine.begin(RO).await.unwrap();
    let err = ro.put(b"k".to_vec(), b"v".to_vec()).await.unwrap_err();
    assert!(matches!(err, Error::ReadOnlyTransaction(_)), "{err:?}");
    let err = ro.delete(b"k".to_vec()).await.unwrap_err();
    assert!(matches!(err, Error::ReadOnlyTransaction(_)), "{err:?}");
}

#[tokio::test]
async fn an_older_transaction_wounds_a_younger_holder() {
    let (clock, engine) = engine();
    let mut older = engine.begin(RW).await.unwrap();
    clock.advance(Duration::from_millis(1));
    let mut younger = engine.begin(RW).await.unwrap();
    younger.put(b"k".to_vec(), b"young".to_vec()).await.unwrap();
    // The older transaction wounds the younger and gets the lock at once:
    // the younger one's locks are released on the spot.
    older.put(b"k".to_vec(), b"old".to_vec()).await.unwrap();
    let err = younger.get(b"other", S).await.unwrap_err();
    assert!(matches!(err, Error::Wounded { .. }), "{err:?}");
    assert!(err.is_retryable());
    let err = younger.commit().await.unwrap_err();
    assert!(matches!(err, Error::Wounded { .. }), "{err:?}");
    older.commit().await.unwrap();
    let mut ro = engine.begin(RO).await.unwrap();
    assert_eq!(ro.get(b"k", S).await.unwrap(), v("old"));
}

#[tokio::test]
async fn a_younger_transaction_waits_for_an_older_holder() {
    // Real (tokio) time: the wait lasts until the holder commits.
    let engine = testing::memory_engine(Duration::from_secs(30));
    let mut older = engine.begin(RW).await.unwrap();
    older.put(b"k".to_vec(), b"1".to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let mut younger = engine.begin(RW).await.unwrap();
    let waiter = tokio::spawn(async move {
        let seen = younger.get(b"k", X).await;
        (younger, seen)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished());
    older.commit().await.unwrap();
    let (younger, seen) = waiter.await.unwrap();
    assert_eq!(seen.unwrap(), v("1"));
    younger.rollback().await.unwrap();
}

#[tokio::test]
async fn lock_waits_time_out_with_a_retryable_error() {
    let config = LocalConfig {
        lock_timeout: Duration::from_millis(50),
        ..LocalConfig::default()
    };
    let (clock, engine) = engine_with(config);
    let mut older = engine.begin(RW).await.unwrap();
    older.get(b"k", X).await.unwrap();
    clock.advance(Duration::from_millis(1));
    let mut younger = engine.begin(RW).await.unwrap();
    let err = younger.get(b"k", S).await.unwrap_err();
    assert!(matches!(err, Error::LockTimeout { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn scans_merge_own_writes_and_lock_out_phantoms() {
    let engine = testing::memory_engine(Duration::from_secs(30));
    for k in ["a", "b", "d", "e"] {
        put(&engine, k, k).await;
    }
    let mut t1 = engine.begin(RW).await.unwrap();
    t1.delete(b"b".to_vec()).await.unwrap();
    t1.put(b"c".to_vec(), b"c1".to_vec()).await.unwrap();
    let fwd = t1
        .scan(KeyRange::new("a", "e"), ScanDirection::Forward, Some(3), S)
        .await
        .unwrap();
    let keys: Vec<_> = fwd.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [b"a", b"c", b"d"]);
    let rev = t1
        .scan(KeyRange::all(), ScanDirection::Reverse, Some(2), S)
        .await
        .unwrap();
    let keys: Vec<_> = rev.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [b"e", b"d"]);
    // A younger transaction cannot insert into the scanned range: it waits.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let mut t2 = engine.begin(RW).await.unwrap();
    let inserter = tokio::spawn(async move {
        let r = t2.put(b"bb".to_vec(), b"x".to_vec()).await;
        (t2, r)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!inserter.is_finished());
    t1.commit().await.unwrap();
    let (t2, r) = inserter.await.unwrap();
    r.unwrap();
    t2.commit().await.unwrap();
}

#[tokio::test]
async fn dropping_a_transaction_releases_its_locks() {
    let (clock, engine) = engine();
    {
        let mut t1 = engine.begin(RW).await.unwrap();
        t1.put(b"k".to_vec(), b"lost".to_vec()).await.unwrap();
    }
    clock.advance(Duration::from_millis(1));
    let mut t2 = engine.begin(RW).await.unwrap();
    assert_eq!(t2.get(b"k", X).await.unwrap(), None);
    assert_eq!(engine.locks().inspect(|t| t.txn_ids().len()), 1);
}

/// Concurrent transfers between accounts, retried on retryable errors, and
/// concurrent read-only audits: the total never changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_transfers_conserve_the_total() {
    const ACCOUNTS: u64 = 5;
    const INITIAL: u64 = 100;
    let engine = testing::memory_engine(Duration::from_secs(30));
    let account = |i: u64| format!("acct/{i}").into_bytes();
    let mut setup = engine.begin(RW).await.unwrap();
    for i in 0..ACCOUNTS {
        setup
            .put(account(i), INITIAL.to_be_bytes().to_vec())
            .await
            .unwrap();
    }
    setup.commit().await.unwrap();

    let decode = |v: Option<Vec<u8>>| u64::from_be_bytes(v.unwrap().try_into().unwrap());
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let engine = engine.clone();
        workers.push(tokio::spawn(async move {
            let mut retries = 0;
            for n in 0..40u64 {
                let (from, to) = ((w + n) % ACCOUNTS, (w + 2 * n + 1) % ACCOUNTS);
                if from == to {
                    continue;
                }
                loop {
                    let mut txn = engine.begin(RW).await.unwrap();
                    let attempt = async {
                        let a = decode(txn.get(&account(from), X).await?);
                        let b = decode(txn.get(&account(to), X).await?);
                        let amount = a.min(7);
                        txn.put(account(from), (a - amount).to_be_bytes().to_vec())
                            .await?;
                        txn.put(account(to), (b + amount).to_be_bytes().to_vec())
                            .await?;
                        Ok::<_, Error>(())
                    }
                    .await;
                    match attempt {
                        Ok(()) => match txn.commit().await {
                            Ok(_) => break,
                            Err(e) if e.is_retryable() => retries += 1,
                            Err(e) => panic!("{e}"),
                        },
                        Err(e) if e.is_retryable() => {
                            txn.rollback().await.unwrap();
                            retries += 1;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            retries
        }));
    }
    let auditor = {
        let engine = engine.clone();
        tokio::spawn(async move {
            for _ in 0..50 {
                let mut ro = engine.begin(RO).await.unwrap();
                let rows = ro
                    .scan(KeyRange::prefix(b"acct/"), ScanDirection::Forward, None, S)
                    .await
                    .unwrap();
                let total: u64 = rows.into_iter().map(|(_, v)| decode(Some(v))).sum();
                assert_eq!(total, ACCOUNTS * INITIAL);
                tokio::task::yield_now().await;
            }
        })
    };
    for worker in workers {
        worker.await.unwrap();
    }
    auditor.await.unwrap();
    let mut ro = engine.begin(RO).await.unwrap();
    let rows = ro
        .scan(KeyRange::prefix(b"acct/"), ScanDirection::Forward, None, S)
        .await
        .unwrap();
    assert_eq!(rows.len() as u64, ACCOUNTS);
    let total: u64 = rows.into_iter().map(|(_, v)| decode(Some(v))).sum();
    assert_eq!(total, ACCOUNTS * INITIAL);
}

#[tokio::test]
async fn a_limited_scan_locks_only_the_span_it_read() {
    let engine = testing::memory_engine(Duration::from_secs(30));
    for k in ["b", "d", "f"] {
        put(&engine, k, k).await;
    }
    let mut reader = engine.begin(RW).await.unwrap();
    let first = reader
        .scan(KeyRange::all(), ScanDirection::Forward, Some(1), S)
        .await
        .unwrap();
    assert_eq!(first, vec![(b"b".to_vec(), b"b".to_vec())]);
    let last = reader
        .scan(KeyRange::all(), ScanDirection::Reverse, Some(1), S)
        .await
        .unwrap();
    assert_eq!(last, vec![(b"f".to_vec(), b"f".to_vec())]);
    tokio::time::sleep(Duration::from_millis(1)).await;

    // Past the span read, a younger writer goes ahead at once ...
    let mut writer = engine.begin(RW).await.unwrap();
    writer.put(b"c".to_vec(), b"c".to_vec()).await.unwrap();
    writer.commit().await.unwrap();

    // ... but inside it (before "b", or after "f"), it waits for the reader.
    for key in ["a", "g"] {
        let mut writer = engine.begin(RW).await.unwrap();
        let insert = tokio::spawn(async move {
            let r = writer.put(key.into(), b"x".to_vec()).await;
            (writer, r)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!insert.is_finished(), "insert of {key} did not wait");
        insert.abort();
    }
    reader.commit().await.unwrap();
}

#[tokio::test]
async fn a_limited_scan_locks_through_its_first_visible_row() {
    let engine = testing::memory_engine(Duration::from_secs(30));
    for k in ["a", "b", "c"] {
        put(&engine, k, k).await;
    }
    // The reader's own delete of "a" is merged in: its first row is "b",
    // so the span through "b" is locked; "c" stays free.
    let mut reader = engine.begin(RW).await.unwrap();
    reader.delete(b"a".to_vec()).await.unwrap();
    let first = reader
        .scan(KeyRange::all(), ScanDirection::Forward, Some(1), X)
        .await
        .unwrap();
    assert_eq!(first, vec![(b"b".to_vec(), b"b".to_vec())]);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let mut writer = engine.begin(RW).await.unwrap();
    writer.put(b"c".to_vec(), b"c2".to_vec()).await.unwrap();
    writer.commit().await.unwrap();
    reader.commit().await.unwrap();
}

/// A replication whose commit records apply only when the test lets them
/// through: a log entry on its way to being chosen. The first record let
/// through fails ambiguously if `ambiguous` is set; `leading` is what
/// `admit` answers.
#[derive(Clone)]
struct Gated {
    mvcc: Arc<Mvcc<MemoryEngine>>,
    /// One permit per record let through.
    gate: Arc<tokio::sync::Semaphore>,
    /// Signalled when a record is handed over.
    handed: Arc<tokio::sync::Notify>,
    ambiguous: Arc<AtomicBool>,
    leading: Arc<AtomicBool>,
}

impl Gated {
    fn new() -> Self {
        Gated {
            mvcc: Arc::new(Mvcc::new(MemoryEngine::new()).unwrap()),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
            handed: Arc::new(tokio::sync::Notify::new()),
            ambiguous: Arc::new(AtomicBool::new(false)),
            leading: Arc::new(AtomicBool::new(true)),
        }
    }

    /// An engine over this replication on tokio's clock, holding `k = 0`.
    fn engine(&self) -> LocalEngine<MemoryEngine> {
        let start = Timestamp::from_nanos(1_700_000_000_000_000_000);
        self.mvcc
            .write(
                start,
                [(b"k".to_vec(), Some(b"0".to_vec()))],
                Durability::Sync,
            )
            .unwrap();
        let clock = testing::TokioClock::new(start, Duration::from_millis(1));
        LocalEngine::with_replication(
            self.mvcc.clone(),
            TrueTime::new(Arc::new(clock)),
            Arc::new(testing::TokioSleeper),
            LocalConfig::default(),
            Arc::new(self.clone()),
            start,
        )
    }
}

impl Replication for Gated {
    fn admit(&self) -> meridian_error::Result<Option<Timestamp>> {
        if self.leading.load(Ordering::SeqCst) {
            Ok(None)
        } else {
            Err(Error::NotLeader {
                group: 1,
                leader: None,
            })
        }
    }

    fn commit(
        &self,
        _txn: TxnId,
        s: Timestamp,
        writes: Writes,
        _decides: Option<GlobalTxnId>,
    ) -> CommitFuture {
        self.handed.notify_one();
        let this = self.clone();
        Box::pin(async move {
            this.gate.acquire().await.unwrap().forget();
            if this.ambiguous.swap(false, Ordering::SeqCst) {
                return Err(Error::AmbiguousCommit("the test says so".into()));
            }
            this.mvcc.write(s, writes, Durability::Sync)
        })
    }

    fn prepare(&self, _: PrepareRecord) -> CommitFuture {
        unreachable!("no two-phase commit here")
    }

    fn decide(&self, _: &PrepareRecord, _: Outcome) -> CommitFuture {
        unreachable!("no two-phase commit here")
    }

    fn resolve(&self, _: GlobalTxnId) -> OutcomeFuture {
        unreachable!("no two-phase commit here")
    }
}

/// Begins a writer of `k = value` and starts its commit, then stops
/// waiting for it (a cancelled statement, a dropped call) once the record
/// is handed to the replication.
async fn commit_and_walk_away(engine: &LocalEngine<MemoryEngine>, gated: &Gated, value: &str) {
    let mut writer = engine.begin(RW).await.unwrap();
    writer.put(b"k".to_vec(), value.into()).await.unwrap();
    tokio::select! {
        _ = writer.commit() => panic!("the commit finished with its record held back"),
        () = gated.handed.notified() => {}
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_commit_nobody_waits_for_keeps_its_locks_until_its_record_applies() {
    let gated = Gated::new();
    let engine = gated.engine();
    commit_and_walk_away(&engine, &gated, "1").await;

    // A younger transaction reading `k` under a lock must not see the value
    // the dropped commit overwrites: it waits for the record ...
    let mut reader = engine.begin(RW).await.unwrap();
    let read = tokio::spawn(async move { reader.get(b"k", X).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !read.is_finished(),
        "a locked read went past a commit in flight"
    );
    // ... and reads it once it applied.
    gated.gate.add_permits(1);
    assert_eq!(read.await.unwrap().unwrap(), v("1"));
}

#[tokio::test(start_paused = true)]
async fn an_ambiguous_commit_keeps_its_locks_while_the_engine_leads() {
    let gated = Gated::new();
    let engine = gated.engine();
    gated.ambiguous.store(true, Ordering::SeqCst);
    let mut writer = engine.begin(RW).await.unwrap();
    writer.put(b"k".to_vec(), b"1".to_vec()).await.unwrap();
    gated.gate.add_permits(1);
    assert!(matches!(
        writer.commit().await,
        Err(Error::AmbiguousCommit(_))
    ));

    // The record may still apply: while the engine leads, `k` stays locked.
    let mut reader = engine.begin(RW).await.unwrap();
    let read = tokio::spawn(async move { reader.get(b"k", X).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !read.is_finished(),
        "a locked read went past an ambiguous commit"
    );
    // Deposed, the engine serves nobody: the reader is refused, not
    // answered with what the ambiguous commit may have overwritten.
    gated.leading.store(false, Ordering::SeqCst);
    assert!(matches!(read.await.unwrap(), Err(Error::NotLeader { .. })));
}

/// The error a handed-over engine answers with in these tests.
fn handed_to_2() -> Error {
    Error::NotLeader {
        group: 1,
        leader: Some(2),
    }
}

#[tokio::test]
async fn a_handed_over_engine_issues_nothing_more_and_its_marker_is_above_all_it_issued() {
    let (clock, engine) = engine();
    let s = put(&engine, "k", "1").await;
    let mut reader = engine.begin(RO).await.unwrap();
    assert_eq!(reader.get(b"k", S).await.unwrap(), v("1"));
    let read_ts = reader.read_ts().unwrap();
    let writer = engine.begin(RW).await.unwrap();

    let (cap, marker) = engine
        .hand_over(handed_to_2(), Duration::ZERO)
        .await
        .unwrap();
    marker.await.unwrap();
    assert!(
        cap > s && cap > read_ts,
        "cap {cap}, commit {s}, read {read_ts}"
    );

    // Nothing issues a timestamp any more: not a read, not a commit, not a
    // safe time marker, not a second hand-over.
    clock.advance(Duration::from_millis(50));
    let err = engine.begin(RO).await.err().unwrap();
    assert_eq!(err, handed_to_2());
    let mut writer = writer;
    writer.put(b"k".to_vec(), b"2".to_vec()).await.unwrap();
    assert_eq!(writer.commit().await.unwrap_err(), handed_to_2());
    assert!(engine.advance_safe_time().is_none());
    let again = engine.hand_over(handed_to_2(), Duration::ZERO).await;
    assert_eq!(again.err().unwrap(), handed_to_2());
}

/// A replication whose leader's lease ends at a fixed timestamp: read-only
/// votes carry it as their bound.
#[derive(Clone)]
struct Leased {
    mvcc: Arc<Mvcc<MemoryEngine>>,
    lease_end: Timestamp,
}

impl Replication for Leased {
    fn admit(&self) -> meridian_error::Result<Option<Timestamp>> {
        Ok(Some(self.lease_end))
    }

    fn commit(
        &self,
        _: TxnId,
        s: Timestamp,
        writes: Writes,
        _: Option<GlobalTxnId>,
    ) -> CommitFuture {
        Box::pin(std::future::ready(self.mvcc.write(
            s,
            writes,
            Durability::Sync,
        )))
    }

    fn prepare(&self, _: PrepareRecord) -> CommitFuture {
        unreachable!("only read-only votes here")
    }

    fn decide(&self, _: &PrepareRecord, _: Outcome) -> CommitFuture {
        unreachable!("only read-only votes here")
    }

    fn resolve(&self, _: GlobalTxnId) -> OutcomeFuture {
        unreachable!("only read-only votes here")
    }
}

/// An engine whose lease ends 10 s after its clock's start, with a
/// read-only vote of transaction `gid` open (it read `k` under a lock).
async fn engine_with_a_read_only_vote(gid: GlobalTxnId) -> (Timestamp, LocalEngine<MemoryEngine>) {
    let start = Timestamp::from_nanos(1_700_000_000_000_000_000);
    let clock = Arc::new(ManualClock::new(start, Duration::from_millis(2)));
    let replication = Leased {
        mvcc: Arc::new(Mvcc::new(MemoryEngine::new()).unwrap()),
        lease_end: start.saturating_add(Duration::from_secs(10)),
    };
    let engine = LocalEngine::with_replication(
        replication.mvcc.clone(),
        TrueTime::new(clock.clone()),
        Arc::new(ManualSleeper::new(clock)),
        LocalConfig::default(),
        Arc::new(replication.clone()),
        Timestamp::MIN,
    );
    let mut txn = engine.begin(RW).await.unwrap();
    assert_eq!(txn.get(b"k", S).await.unwrap(), None);
    let vote = txn.prepare(gid, 2).await.unwrap();
    assert_eq!(
        vote,
        meridian_txn::Vote::ReadOnly {
            until: Some(replication.lease_end)
        }
    );
    (replication.lease_end, engine)
}

#[tokio::test]
async fn a_hand_over_waits_for_open_read_only_votes_and_stays_above_the_undecided() {
    // Decided while the hand-over waits: the cap owes it nothing.
    let gid = GlobalTxnId(7);
    let (lease_end, engine) = engine_with_a_read_only_vote(gid).await;
    let (handed, decided) = tokio::join!(
        engine.hand_over(handed_to_2(), Duration::from_millis(100)),
        engine.decide(gid, Outcome::Committed(lease_end.prev()))
    );
    decided.unwrap();
    let (cap, _) = handed.unwrap();
    assert!(cap < lease_end, "cap {cap}, lease end {lease_end}");

    // Still open when the wait ends: its coordinator may commit anywhere
    // below the lease's end, so the cap is above it.
    let (lease_end, engine) = engine_with_a_read_only_vote(gid).await;
    let (cap, _) = engine
        .hand_over(handed_to_2(), Duration::from_millis(100))
        .await
        .unwrap();
    assert!(cap >= lease_end, "cap {cap}, lease end {lease_end}");

    // And nothing is read under locks after the hand-over: the next
    // leader knows nothing of this engine's locks.
    let mut late = engine.begin(RW).await.unwrap();
    assert_eq!(late.get(b"j", S).await.unwrap_err(), handed_to_2());
    // Nor is a vote given.
    let idle = engine.begin(RW).await.unwrap();
    let refused = idle.prepare(GlobalTxnId(8), 2).await;
    assert_eq!(refused.unwrap_err(), handed_to_2());
}

/// A transaction that only read under locks commits by releasing them; if
/// the leader lost its lease meanwhile, another leader may have written
/// under those locks, so the commit fails (retryably) instead.
#[tokio::test(start_paused = true)]
async fn a_reading_transaction_fails_to_commit_once_its_leader_lost_the_lease() {
    let gated = Gated::new();
    let engine = gated.engine();
    let mut reader = engine.begin(RW).await.unwrap();
    assert_eq!(reader.get(b"k", S).await.unwrap(), v("0"));
    gated.leading.store(false, Ordering::SeqCst);
    let err = reader.commit().await.unwrap_err();
    assert!(matches!(err, Error::NotLeader { .. }), "{err}");
    assert!(err.is_retryable());
}

/// Spanner's `LastTS()`: with nothing prepared, a strong read reads at the
/// last finished commit, so a commit still in flight (replicating, or in
/// commit wait) does not hold it back; once that commit finishes, the next
/// strong read is at it and sees it.
#[tokio::test(start_paused = true)]
async fn a_strong_read_reads_at_the_last_commit_without_waiting_for_one_in_flight() {
    let gated = Gated::new();
    let engine = gated.engine();
    let mut writer = engine.begin(RW).await.unwrap();
    writer.put(b"k".to_vec(), b"1".to_vec()).await.unwrap();
    let commit = tokio::spawn(async move { writer.commit().await });
    gated.handed.notified().await;
    tokio::time::sleep(Duration::from_millis(5)).await;

    let mut reader = tokio::time::timeout(Duration::from_millis(1), engine.begin(RO))
        .await
        .expect("a strong read waited for a commit in flight")
        .unwrap();
    assert_eq!(reader.get(b"k", S).await.unwrap(), v("0"));
    let before = reader.read_ts().unwrap();

    gated.gate.add_permits(1);
    let s = commit.await.unwrap().unwrap().unwrap();
    assert!(before < s);
    let mut reader = engine.begin(RO).await.unwrap();
    assert_eq!(reader.read_ts(), Some(s));
    assert_eq!(reader.get(b"k", S).await.unwrap(), v("1"));
}
