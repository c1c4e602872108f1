//! Two sessions on one engine: the serializability guarantees of strict
//! two-phase locking with wound-wait, as seen through SQL.
//!
//! Time is tokio's paused clock (both TrueTime's readings and the engine's
//! sleeps), so lock waits and commit waits take no real time and every run
//! interleaves the same way. Barriers pin the interleavings that matter.

mod common;

use std::sync::Arc;
use std::time::Duration;

use meridian_error::Error;
use meridian_sql::{QueryResult, Session, TxnStatus, Value};
use meridian_storage::MemoryEngine;
use meridian_truetime::{ClockReading, ClockSource, Timestamp, TrueTime};
use meridian_txn::{LocalConfig, LocalEngine, Sleeper};
use tokio::sync::Barrier;

type Engine = LocalEngine<MemoryEngine>;

/// TrueTime readings from tokio's (paused) clock.
#[derive(Debug)]
struct TokioClock {
    /// When the test started.
    base: tokio::time::Instant,
}

impl ClockSource for TokioClock {
    fn read(&self) -> ClockReading {
        let elapsed = self.base.elapsed();
        ClockReading {
            now: Timestamp::from_nanos(1_700_000_000_000_000_000).saturating_add(elapsed),
            epsilon: Duration::from_millis(1),
        }
    }
}

/// Sleeps on tokio's timer.
struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(
        &self,
        duration: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

fn engine() -> Engine {
    let clock = Arc::new(TokioClock {
        base: tokio::time::Instant::now(),
    });
    LocalEngine::new(
        MemoryEngine::new(),
        TrueTime::new(clock),
        Arc::new(TokioSleeper),
        LocalConfig::default(),
    )
    .unwrap()
}

/// Runs one statement; its result.
async fn run(s: &mut Session<Engine>, sql: &str) -> Result<QueryResult, Error> {
    let mut results = s.execute(sql).await;
    assert_eq!(results.len(), 1, "{sql}");
    results.pop().unwrap()
}

/// Runs one statement that must succeed.
async fn ok(s: &mut Session<Engine>, sql: &str) -> QueryResult {
    run(s, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The single integer a query returns.
async fn int(s: &mut Session<Engine>, sql: &str) -> i64 {
    match ok(s, sql).await {
        QueryResult::Rows { rows, .. } => match rows[0][0] {
            Value::Int(i) => i,
            ref other => panic!("{sql}: {other:?}"),
        },
        other => panic!("{sql}: {other:?}"),
    }
}

/// Whether `e` is a lost conflict (SQLSTATE 40001).
fn is_serialization_failure(e: &Error) -> bool {
    e.is_retryable() && e.sqlstate() == "40001"
}

/// Read-modify-write increment in a transaction; retries on 40001. The
/// barrier (first attempt only) makes both sessions read before either
/// writes. Returns the number of retries.
async fn increment(s: &mut Session<Engine>, barrier: Arc<Barrier>) -> usize {
    let mut retries = 0;
    loop {
        ok(s, "BEGIN").await;
        let attempt: Result<(), Error> = async {
            let n = match run(s, "SELECT n FROM counter WHERE id = 1").await? {
                QueryResult::Rows { rows, .. } => match rows[0][0] {
                    Value::Int(n) => n,
                    _ => unreachable!(),
                },
                _ => unreachable!(),
            };
            if retries == 0 {
                barrier.wait().await;
            }
            run(s, &format!("UPDATE counter SET n = {} WHERE id = 1", n + 1)).await?;
            run(s, "COMMIT").await?;
            Ok(())
        }
        .await;
        match attempt {
            Ok(()) => return retries,
            Err(e) => {
                assert!(is_serialization_failure(&e), "unexpected error: {e}");
                assert_eq!(s.transaction_status(), TxnStatus::Failed);
                ok(s, "ROLLBACK").await;
                retries += 1;
                assert!(retries < 10, "no progress");
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn lost_update_is_prevented() {
    let engine = engine();
    let mut a = Session::new(engine.clone());
    let mut b = Session::new(engine);
    ok(&mut a, "CREATE TABLE counter (id INT PRIMARY KEY, n INT)").await;
    ok(&mut a, "INSERT INTO counter VALUES (1, 0)").await;
    let barrier = Arc::new(Barrier::new(2));
    let (ra, rb) = tokio::join!(
        increment(&mut a, barrier.clone()),
        increment(&mut b, barrier)
    );
    // Both increments count; one of them had to retry.
    assert_eq!(int(&mut a, "SELECT n FROM counter WHERE id = 1").await, 2);
    assert_eq!(ra + rb, 1, "exactly one transaction lost the conflict");
}

/// The on-call doctor: goes off call if someone else is still on call.
async fn go_off_call(s: &mut Session<Engine>, name: &str, barrier: Arc<Barrier>) {
    let mut first = true;
    loop {
        ok(s, "BEGIN").await;
        let attempt: Result<(), Error> = async {
            let on_call = match run(s, "SELECT count(*) FROM doctors WHERE on_call").await? {
                QueryResult::Rows { rows, .. } => rows[0][0].clone(),
                _ => unreachable!(),
            };
            if first {
                barrier.wait().await;
            }
            if on_call == Value::Int(2) {
                run(
                    s,
                    &format!("UPDATE doctors SET on_call = false WHERE name = '{name}'"),
                )
                .await?;
            }
            run(s, "COMMIT").await?;
            Ok(())
        }
        .await;
        first = false;
        match attempt {
            Ok(()) => return,
            Err(e) => {
                assert!(is_serialization_failure(&e), "unexpected error: {e}");
                ok(s, "ROLLBACK").await;
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn write_skew_is_prevented() {
    let engine = engine();
    let mut a = Session::new(engine.clone());
    let mut b = Session::new(engine);
    ok(
        &mut a,
        "CREATE TABLE doctors (name TEXT PRIMARY KEY, on_call BOOL NOT NULL)",
    )
    .await;
    ok(
        &mut a,
        "INSERT INTO doctors VALUES ('alice', true), ('bob', true)",
    )
    .await;
    let barrier = Arc::new(Barrier::new(2));
    tokio::join!(
        go_off_call(&mut a, "alice", barrier.clone()),
        go_off_call(&mut b, "bob", barrier)
    );
    // Serializable: one went off call, the other saw that and stayed.
    assert_eq!(
        int(&mut a, "SELECT count(*) FROM doctors WHERE on_call").await,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn wound_wait_aborts_the_younger_transaction() {
    let engine = engine();
    let mut old = Session::new(engine.clone());
    let mut young = Session::new(engine);
    ok(&mut old, "CREATE TABLE t (k INT PRIMARY KEY, v INT)").await;
    ok(&mut old, "INSERT INTO t VALUES (1, 0)").await;

    // The older transaction begins first (at its first statement).
    ok(&mut old, "BEGIN").await;
    ok(&mut old, "SELECT 1").await;
    ok(&mut young, "BEGIN").await;
    ok(&mut young, "UPDATE t SET v = 1 WHERE k = 1").await;

    // The older one needs the row: it wounds the younger holder at once.
    let before = tokio::time::Instant::now();
    ok(&mut old, "UPDATE t SET v = 2 WHERE k = 1").await;
    assert!(
        before.elapsed() < Duration::from_millis(100),
        "the older transaction did not wait"
    );

    // The younger one learns at its next statement: a retryable 40001.
    let err = run(&mut young, "SELECT v FROM t WHERE k = 1")
        .await
        .unwrap_err();
    assert!(is_serialization_failure(&err), "{err}");
    assert_eq!(young.transaction_status(), TxnStatus::Failed);
    assert!(matches!(
        run(&mut young, "SELECT 1").await,
        Err(Error::InFailedTransaction)
    ));
    assert_eq!(
        ok(&mut young, "COMMIT").await,
        QueryResult::Command {
            tag: "ROLLBACK".into()
        }
    );

    ok(&mut old, "COMMIT").await;
    assert_eq!(int(&mut young, "SELECT v FROM t WHERE k = 1").await, 2);
}

#[tokio::test(start_paused = true)]
async fn younger_transaction_waits_for_the_older() {
    let engine = engine();
    let mut old = Session::new(engine.clone());
    let mut young = Session::new(engine);
    ok(&mut old, "CREATE TABLE t (k INT PRIMARY KEY, v INT)").await;
    ok(&mut old, "INSERT INTO t VALUES (1, 0)").await;

    ok(&mut old, "BEGIN").await;
    ok(&mut old, "UPDATE t SET v = v + 1 WHERE k = 1").await;
    ok(&mut young, "BEGIN").await;
    ok(&mut young, "SELECT 1").await;

    // The younger one blocks on the older one's lock until it commits,
    // then reads the committed value.
    let waiter = async {
        let r = run(&mut young, "UPDATE t SET v = v * 10 WHERE k = 1").await;
        ok(&mut young, "COMMIT").await;
        r
    };
    let committer = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        ok(&mut old, "COMMIT").await;
    };
    let (r, ()) = tokio::join!(waiter, committer);
    r.unwrap();
    assert_eq!(int(&mut old, "SELECT v FROM t WHERE k = 1").await, 10);
}

#[tokio::test(start_paused = true)]
async fn read_only_transactions_do_not_block_on_writers() {
    let engine = engine();
    let mut writer = Session::new(engine.clone());
    let mut reader = Session::new(engine);
    ok(&mut writer, "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)").await;
    ok(&mut writer, "INSERT INTO t VALUES (1, 'committed')").await;

    ok(&mut writer, "BEGIN").await;
    ok(&mut writer, "UPDATE t SET v = 'uncommitted' WHERE k = 1").await;
    ok(&mut writer, "INSERT INTO t VALUES (2, 'new')").await;

    let before = tokio::time::Instant::now();
    // An implicit SELECT is a strong read-only transaction: no locks taken,
    // no waiting, and the committed snapshot.
    let r = ok(&mut reader, "SELECT k, v FROM t ORDER BY k").await;
    assert_eq!(
        r,
        QueryResult::Rows {
            columns: r_columns(&r),
            rows: vec![vec![Value::Int(1), Value::Text("committed".into())]],
        }
    );
    // So does an explicit READ ONLY block.
    ok(&mut reader, "BEGIN READ ONLY").await;
    assert_eq!(int(&mut reader, "SELECT count(*) FROM t").await, 1);
    ok(&mut reader, "COMMIT").await;
    assert!(
        before.elapsed() < Duration::from_millis(100),
        "a reader waited for a lock"
    );

    ok(&mut writer, "COMMIT").await;
    assert_eq!(int(&mut reader, "SELECT count(*) FROM t").await, 2);
}

fn r_columns(r: &QueryResult) -> Vec<meridian_sql::Column> {
    match r {
        QueryResult::Rows { columns, .. } => columns.clone(),
        _ => vec![],
    }
}

#[tokio::test(start_paused = true)]
async fn as_of_system_time_reads_old_data() {
    let engine = engine();
    let mut s = Session::new(engine);
    ok(&mut s, "CREATE TABLE t (k INT PRIMARY KEY, v INT)").await;
    ok(&mut s, "INSERT INTO t VALUES (1, 100)").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    ok(&mut s, "UPDATE t SET v = 200 WHERE k = 1").await;
    assert_eq!(int(&mut s, "SELECT v FROM t WHERE k = 1").await, 200);
    assert_eq!(
        int(
            &mut s,
            "SELECT v FROM t AS OF SYSTEM TIME '-5s' WHERE k = 1"
        )
        .await,
        100
    );
    // A prepared statement with the snapshot as a parameter.
    let stmt = s
        .prepare("SELECT v FROM t AS OF SYSTEM TIME $1 WHERE k = $2", &[])
        .await
        .unwrap();
    let r = s
        .execute_prepared(&stmt, vec![Value::Text("-5s".into()), Value::Int(1)])
        .await
        .unwrap();
    assert!(
        matches!(r, QueryResult::Rows { ref rows, .. } if rows == &vec![vec![Value::Int(100)]])
    );
}

#[tokio::test(start_paused = true)]
async fn implicit_transactions_retry_lost_conflicts() {
    let engine = engine();
    let mut old = Session::new(engine.clone());
    let mut young = Session::new(engine);
    ok(&mut old, "CREATE TABLE t (k INT PRIMARY KEY, v INT)").await;
    ok(&mut old, "INSERT INTO t VALUES (1, 0), (2, 0)").await;
    // An explicit older transaction and many implicit single-statement
    // increments: every increment lands, the client never sees a 40001.
    ok(&mut old, "BEGIN").await;
    ok(&mut old, "SELECT 1").await;
    let implicit = async {
        for _ in 0..5 {
            ok(&mut young, "UPDATE t SET v = v + 1 WHERE k = 1").await;
        }
    };
    let explicit = async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        ok(&mut old, "UPDATE t SET v = v + 100 WHERE k = 1").await;
        ok(&mut old, "COMMIT").await;
    };
    tokio::join!(implicit, explicit);
    assert_eq!(int(&mut young, "SELECT v FROM t WHERE k = 1").await, 105);
}

/// An engine whose reads fail with `Unavailable` (no leader answered)
/// while `down` is set, counting the transactions begun.
#[derive(Clone)]
struct Outage {
    inner: Engine,
    down: Arc<std::sync::atomic::AtomicBool>,
    begun: Arc<std::sync::atomic::AtomicUsize>,
}

struct OutageTxn {
    inner: meridian_txn::LocalTxn<MemoryEngine>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl OutageTxn {
    fn check(&self) -> meridian_error::Result<()> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Unavailable("no leader answered".into()));
        }
        Ok(())
    }
}

impl meridian_txn::TxnEngine for Outage {
    type Txn = OutageTxn;

    async fn begin(&self, mode: meridian_txn::TxnMode) -> meridian_error::Result<OutageTxn> {
        self.begun.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(OutageTxn {
            inner: self.inner.begin(mode).await?,
            down: self.down.clone(),
        })
    }

    fn now(&self) -> meridian_truetime::TtInterval {
        self.inner.now()
    }
}

impl meridian_txn::Transaction for OutageTxn {
    fn id(&self) -> u64 {
        self.inner.id()
    }
    fn mode(&self) -> meridian_txn::TxnMode {
        self.inner.mode()
    }
    fn start_ts(&self) -> Timestamp {
        self.inner.start_ts()
    }
    fn read_ts(&self) -> Option<Timestamp> {
        self.inner.read_ts()
    }
    async fn get(
        &mut self,
        key: &[u8],
        lock: meridian_txn::LockStrength,
    ) -> meridian_error::Result<Option<Vec<u8>>> {
        self.check()?;
        self.inner.get(key, lock).await
    }
    async fn scan(
        &mut self,
        range: meridian_storage::KeyRange,
        direction: meridian_storage::ScanDirection,
        limit: Option<usize>,
        lock: meridian_txn::LockStrength,
    ) -> meridian_error::Result<Vec<meridian_storage::KvPair>> {
        self.check()?;
        self.inner.scan(range, direction, limit, lock).await
    }
    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> meridian_error::Result<()> {
        self.inner.put(key, value).await
    }
    async fn delete(&mut self, key: Vec<u8>) -> meridian_error::Result<()> {
        self.inner.delete(key).await
    }
    async fn commit(self) -> meridian_error::Result<Option<Timestamp>> {
        self.inner.commit().await
    }
    async fn rollback(self) -> meridian_error::Result<()> {
        self.inner.rollback().await
    }
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_group_is_reported_not_retried() {
    use std::sync::atomic::Ordering;
    let outage = Outage {
        inner: engine(),
        down: Arc::default(),
        begun: Arc::default(),
    };
    let mut s = Session::new(outage.clone());
    assert!(s.execute("CREATE TABLE t (k INT PRIMARY KEY, v INT)").await[0].is_ok());
    outage.down.store(true, Ordering::SeqCst);
    let before = outage.begun.load(Ordering::SeqCst);
    let results = s.execute("SELECT v FROM t WHERE k = 1").await;
    let err = results.last().unwrap().as_ref().unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
    // The engine already waited for a leader: one attempt, not six.
    assert_eq!(outage.begun.load(Ordering::SeqCst) - before, 1);
    outage.down.store(false, Ordering::SeqCst);
    assert!(s.execute("SELECT v FROM t WHERE k = 1").await[0].is_ok());
}
