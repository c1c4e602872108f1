//! [`LocalEngine`]: transactions in one process, over MVCC storage, the lock
//! table and TrueTime.
//!
//! This is Spanner's single-group transaction protocol without the
//! replication (§4.2.1 for read-write, §4.2.2 for read-only transactions):
//!
//! - **Read-write**: reads lock (shared or exclusive) and read the latest
//!   committed version; writes lock exclusively and are buffered. At commit
//!   the transaction is marked prepared in the lock table (from then on it
//!   cannot be wounded), picks `s >= TT.now().latest` and above every
//!   timestamp issued before, writes all its versions at `s` in one synced
//!   batch, **waits until `TT.after(s)`** (commit wait), then releases its
//!   locks. Anyone who learns of the commit afterwards gets a later
//!   timestamp: external consistency.
//! - **Wound-wait**: priority is the start timestamp. When a request wounds
//!   younger holders, the engine aborts them on the spot: their locks are
//!   released (their writes were only buffered, so nothing is undone) and
//!   their next operation fails with [`Error::Wounded`].
//! - **Read-only**: `s_read = TT.now().latest` (or the `AS OF` timestamp,
//!   which must not be in the future), read lock-free once every commit with
//!   a timestamp `<= s_read` has been applied: the engine's safe time. The
//!   read timestamp also counts as issued, so no later commit can land at or
//!   below it, and the snapshot never changes.
//!
//! Time and sleeping are injected ([`TrueTime`] and [`Sleeper`]): the server
//! passes the system clock and tokio's timer, tests a manual clock.
//!
//! # Replication
//!
//! Where a commit's writes go is the one thing that differs between the
//! embedded database and a Paxos group's leader, so it is a seam:
//! [`Replication`]. [`LocalEngine::new`] writes commits straight into local
//! storage as one synced batch; the server's group leader builds its engine
//! with [`LocalEngine::with_replication`], whose commits are logged through
//! Paxos and applied by every replica. The replication also decides whether
//! the engine may serve at all ([`Replication::admit`]): a leader that lost
//! its lease must not read under locks or hand out timestamps, and every
//! timestamp it issues must lie below the end of its lease, so that the
//! next leader's timestamps (issued after that lease ended, in true time)
//! are all larger: timestamps stay monotonic across leaders (Spanner §4.1.1,
//! "disjointness").
//!
//! # Two-phase commit
//!
//! A transaction that spans groups runs one `LocalTxn` at each group's
//! leader; the `two_phase` module coordinates them. The engine's part is in
//! the `participant` submodule: a participant's [`LocalTxn::prepare`] logs
//! its writes and locks with a prepare timestamp `p` and keeps the locks;
//! the coordinator's [`LocalTxn::commit_as_coordinator`] logs the commit
//! (and the outcome) at `s >= p` of every participant, then commit-waits;
//! [`LocalEngine::decide`] applies the outcome at a participant. Until
//! then `p` counts as a commit in flight: reads at or after `p` wait for
//! the outcome, which keeps `t_safe = min(t_paxos_safe, p - 1)`.
//!
//! Left out: moving the synced storage write off the async executor (the
//! server's engine does that).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::ops::Bound;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meridian_error::{Error, Result};
use meridian_storage::{Durability, Engine, KeyRange, KvPair, Mvcc, ScanDirection};
use meridian_truetime::{ManualClock, Timestamp, TrueTime, TtInterval};
use tokio::sync::Notify;

use crate::api::{LockStrength, ReadTime, Transaction, TxnEngine, TxnMode};
use crate::lock_table::{self, LockManager, LockMode, LockTarget, Priority, TxnId, Wound};
use crate::two_phase::{GlobalTxnId, Outcome, PrepareRecord};

mod participant;

pub use participant::PreparedInfo;
use participant::{PreparedTxn, ReadOnlyVote};

/// Sleeps: the engine's only way to let time pass (commit wait, lock
/// timeouts). The server uses tokio's timer; tests advance a manual clock.
pub trait Sleeper: Send + Sync + 'static {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// A [`Sleeper`] for tests and simulations: sleeping advances a manual clock
/// by the requested duration (then yields once), so commit waits and lock
/// timeouts take no real time and runs are deterministic.
#[derive(Clone, Debug)]
pub struct ManualSleeper {
    /// The clock that sleeping advances.
    clock: Arc<ManualClock>,
}

impl ManualSleeper {
    /// A sleeper advancing `clock`.
    pub fn new(clock: Arc<ManualClock>) -> Self {
        Self { clock }
    }
}

impl Sleeper for ManualSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.clock.advance(duration);
        let mut yielded = false;
        Box::pin(std::future::poll_fn(move |cx| {
            if yielded {
                std::task::Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }))
    }
}

/// A transaction's buffered writes, in key order: `None` is a delete.
pub type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The outcome of a commit handed to a [`Replication`].
pub type CommitFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// The outcome of a [`Replication::resolve`].
pub type OutcomeFuture = Pin<Box<dyn Future<Output = Result<Outcome>> + Send>>;

/// Where a [`LocalEngine`]'s commits go, and whether it may serve: the seam
/// between Spanner's transaction protocol and replication (see the module
/// docs).
pub trait Replication: Send + Sync + 'static {
    /// Whether the engine may serve now: `Err` (retryable) when it must not,
    /// else the bound every timestamp it issues must stay below (`None`: no
    /// bound). Called before every locked read and before a timestamp is
    /// issued.
    fn admit(&self) -> Result<Option<Timestamp>>;

    /// Whether the engine serves the keys of `range` (a sharded group
    /// serves some ranges only; a range that moved away answers
    /// [`Error::RangeMoved`]). Called after every read (what was read
    /// counts only if the range was still served once it was read) and
    /// after a write's lock is taken. The default serves everything.
    fn serves(&self, range: &KeyRange) -> Result<()> {
        let _ = range;
        Ok(())
    }

    /// Makes `writes` durable at commit timestamp `s` and applies them to the
    /// MVCC store the engine reads; resolves once they are applied. An
    /// error says whether the commit certainly did not happen (a retryable
    /// error) or may have ([`Error::AmbiguousCommit`]).
    ///
    /// With `decides`, this is the commit record of a two-phase commit's
    /// coordinator: it also records the outcome of that transaction as
    /// committed at `s`, unless an abort of it was recorded first
    /// ([`Replication::resolve`]), in which case nothing is written and the
    /// commit fails with [`Error::Aborted`].
    ///
    /// The engine calls this in timestamp order, under its timestamp lock:
    /// a replication that orders commits (a log) must fix their order in
    /// this call, not when the future is polled; one that does not should
    /// do its work in the future, off the lock. Empty `writes` (and no
    /// `decides`) is a safe time marker ([`LocalEngine::advance_safe_time`]).
    fn commit(
        &self,
        txn: TxnId,
        s: Timestamp,
        writes: Writes,
        decides: Option<GlobalTxnId>,
    ) -> CommitFuture;

    /// Makes a participant's prepare record durable (two-phase commit's
    /// first phase): from then on its locks and writes survive a change of
    /// leader, until [`Replication::decide`] logs the outcome. Called under
    /// the timestamp lock, like `commit`.
    fn prepare(&self, record: PrepareRecord) -> CommitFuture;

    /// Logs the outcome of the prepared transaction `record` at this
    /// participant: its writes are applied at the commit timestamp, or
    /// dropped.
    fn decide(&self, record: &PrepareRecord, outcome: Outcome) -> CommitFuture;

    /// At a coordinator: the outcome of transaction `gid`, recording an
    /// abort first if none was decided (a participant asking about a
    /// transaction its coordinator never finished).
    fn resolve(&self, gid: GlobalTxnId) -> OutcomeFuture;
}

/// The replication of the embedded database: none. A commit is one batch
/// written to local storage with the configured durability. Two-phase
/// commit works (tests run participants and coordinators on local engines),
/// but its prepare records and outcomes live in memory only: the embedded
/// database is one group and never needs them.
struct Unreplicated<E: Engine> {
    /// The store written.
    mvcc: Arc<Mvcc<E>>,
    /// Synced unless the data is disposable.
    durability: Durability,
    /// Outcomes of the transactions this engine coordinated.
    decisions: Mutex<HashMap<GlobalTxnId, Outcome>>,
}

impl<E: Engine + 'static> Replication for Unreplicated<E> {
    fn admit(&self) -> Result<Option<Timestamp>> {
        Ok(None)
    }

    fn commit(
        &self,
        _txn: TxnId,
        s: Timestamp,
        writes: Writes,
        decides: Option<GlobalTxnId>,
    ) -> CommitFuture {
        if let Some(gid) = decides {
            let mut decisions = self.decisions.lock().expect("decisions poisoned");
            if decisions.get(&gid) == Some(&Outcome::Aborted) {
                return Box::pin(std::future::ready(Err(Error::Aborted(format!(
                    "transaction {gid} was aborted by a participant's resolution"
                )))));
            }
            decisions.insert(gid, Outcome::Committed(s));
        }
        Box::pin(std::future::ready(self.mvcc.write(
            s,
            writes,
            self.durability,
        )))
    }

    fn prepare(&self, _record: PrepareRecord) -> CommitFuture {
        Box::pin(std::future::ready(Ok(())))
    }

    fn decide(&self, record: &PrepareRecord, outcome: Outcome) -> CommitFuture {
        let written = match outcome {
            Outcome::Committed(s) => self.mvcc.write(s, record.writes.clone(), self.durability),
            Outcome::Aborted => Ok(()),
        };
        Box::pin(std::future::ready(written))
    }

    fn resolve(&self, gid: GlobalTxnId) -> OutcomeFuture {
        let outcome = *self
            .decisions
            .lock()
            .expect("decisions poisoned")
            .entry(gid)
            .or_insert(Outcome::Aborted);
        Box::pin(std::future::ready(Ok(outcome)))
    }
}

/// How a [`LocalEngine`] behaves.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// How long a read-write transaction waits for one lock before failing
    /// with a (retryable) lock timeout.
    pub lock_timeout: Duration,
    /// Durability of commits written by [`LocalEngine::new`]: `Sync` unless
    /// the data is disposable. (A replicated engine's durability is its
    /// log's.)
    pub durability: Durability,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(10),
            durability: Durability::Sync,
        }
    }
}

/// The single-process transaction engine. Cheap to clone.
pub struct LocalEngine<E: Engine> {
    /// Everything the transactions share.
    inner: Arc<Inner<E>>,
}

impl<E: Engine> Clone for LocalEngine<E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// The shared state of a [`LocalEngine`].
struct Inner<E: Engine> {
    /// The versions.
    mvcc: Arc<Mvcc<E>>,
    /// Where commits go, and whether the engine may serve.
    replication: Arc<dyn Replication>,
    /// The lock table.
    locks: LockManager,
    /// Time.
    tt: TrueTime,
    /// How to wait.
    sleeper: Arc<dyn Sleeper>,
    /// Settings.
    config: LocalConfig,
    /// The next transaction id.
    next_txn: AtomicU64,
    /// Timestamps issued and commits in flight.
    clock: Mutex<IssuedTimestamps>,
    /// Signalled whenever an in-flight commit has been applied.
    applied: Notify,
    /// Transactions aborted by a wound, until they notice.
    wounded: Mutex<HashMap<TxnId, TxnId>>,
    /// Commits with writes made so far.
    commits: AtomicU64,
    /// The time commit wait added to them, in nanoseconds of TrueTime.
    commit_wait_nanos: AtomicU64,
    /// Transactions prepared here whose outcome is not applied yet.
    prepared: Mutex<HashMap<GlobalTxnId, PreparedTxn>>,
    /// Read-only votes whose outcome has not come.
    read_only_votes: Mutex<HashMap<GlobalTxnId, ReadOnlyVote>>,
}

/// What commit wait has cost an engine so far (Spanner §4.1.2: about 2ε per
/// read-write commit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitWaitStats {
    /// Commits with writes.
    pub commits: u64,
    /// The total time commit wait added to them.
    pub waited: Duration,
}

/// The timestamps the engine handed out.
#[derive(Debug, Default)]
struct IssuedTimestamps {
    /// The largest commit or read timestamp issued so far.
    last: Timestamp,
    /// Commit timestamps issued whose writes are not applied yet.
    in_flight: BTreeSet<Timestamp>,
    /// The largest timestamp whose commit finished (applied and waited
    /// out, or abandoned), or the engine's first timestamp: Spanner's
    /// `LastTS()`, what a strong read reads at while nothing is prepared.
    last_finished: Timestamp,
    /// Set by [`LocalEngine::hand_over`]: the engine issues nothing more
    /// and answers every request with this error.
    handed_over: Option<Error>,
}

impl IssuedTimestamps {
    /// Fails once the engine has handed its leadership over.
    fn check_serving(&self) -> Result<()> {
        match &self.handed_over {
            Some(refusal) => Err(refusal.clone()),
            None => Ok(()),
        }
    }
}

impl<E: Engine + 'static> LocalEngine<E> {
    /// An engine over `engine`'s storage, with time from `tt` and sleeps from
    /// `sleeper`.
    pub fn new(
        engine: E,
        tt: TrueTime,
        sleeper: Arc<dyn Sleeper>,
        config: LocalConfig,
    ) -> Result<Self> {
        let mvcc = Arc::new(Mvcc::new(engine)?);
        let replication = Arc::new(Unreplicated {
            mvcc: mvcc.clone(),
            durability: config.durability,
            decisions: Mutex::new(HashMap::new()),
        });
        // Every commit an earlier engine over this data acknowledged lies
        // below `TT.now().latest` (it waited out its commit wait): strong
        // reads start there.
        let issued = tt.now().latest;
        Ok(Self::with_replication(
            mvcc,
            tt,
            sleeper,
            config,
            replication,
            issued,
        ))
    }

    /// An engine reading `mvcc` whose commits go through `replication` (a
    /// Paxos group's leader). `issued` is the largest timestamp any earlier
    /// engine over the same data may have issued (a new leader passes the
    /// largest commit timestamp it applied): every timestamp this one issues
    /// is above it.
    pub fn with_replication(
        mvcc: Arc<Mvcc<E>>,
        tt: TrueTime,
        sleeper: Arc<dyn Sleeper>,
        config: LocalConfig,
        replication: Arc<dyn Replication>,
        issued: Timestamp,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                mvcc,
                replication,
                locks: LockManager::new(),
                tt,
                sleeper,
                config,
                next_txn: AtomicU64::new(1),
                clock: Mutex::new(IssuedTimestamps {
                    last: issued,
                    last_finished: issued,
                    ..IssuedTimestamps::default()
                }),
                applied: Notify::new(),
                wounded: Mutex::new(HashMap::new()),
                commits: AtomicU64::new(0),
                commit_wait_nanos: AtomicU64::new(0),
                prepared: Mutex::new(HashMap::new()),
                read_only_votes: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// What commit wait has cost so far.
    pub fn commit_wait_stats(&self) -> CommitWaitStats {
        CommitWaitStats {
            commits: self.inner.commits.load(Ordering::Relaxed),
            waited: Duration::from_nanos(self.inner.commit_wait_nanos.load(Ordering::Relaxed)),
        }
    }

    /// The MVCC store underneath (for garbage collection and inspection).
    pub fn mvcc(&self) -> &Mvcc<E> {
        &self.inner.mvcc
    }

    /// The lock table (for inspection).
    pub fn locks(&self) -> &LockManager {
        &self.inner.locks
    }

    /// Issues a timestamp with nothing to commit and hands it to the
    /// replication as a safe time marker: once applied, a replica knows no
    /// commit at or below it is still to come (every later one is issued
    /// above it, and earlier ones came before it in the log). A leader calls
    /// this while idle so that followers' safe time keeps up with the clock.
    /// Does nothing (returns `None`) while a commit is in flight (its record
    /// advances safe time) or when the engine may not serve.
    pub fn advance_safe_time(&self) -> Option<CommitFuture> {
        let inner = &self.inner;
        let bound = inner.replication.admit().ok()?;
        let latest = inner.tt.now().latest;
        let mut clock = inner.clock.lock().expect("clock lock poisoned");
        if !clock.in_flight.is_empty() || clock.handed_over.is_some() {
            return None;
        }
        let s = latest.max(clock.last.next());
        check_bound(s, bound).ok()?;
        clock.last = s;
        Some(inner.replication.commit(TxnId(0), s, Writes::new(), None))
    }

    /// Whether [`LocalEngine::hand_over`] stopped this engine.
    pub fn handed_over(&self) -> bool {
        self.inner
            .clock
            .lock()
            .expect("clock lock poisoned")
            .handed_over
            .is_some()
    }

    /// Ends this engine's service for a leadership hand-over, so that the
    /// next leader may start issuing timestamps right away instead of after
    /// this leader's lease (see `docs/architecture/server.md`, *Leader
    /// hand-over*). From now on every request that would issue a timestamp,
    /// vote or log an outcome fails with `refusal`. The read-only votes
    /// given so far are waited for, up to `drain`: their coordinators may
    /// still commit below their bound, the end of this leader's lease.
    /// Then the engine issues one last safe time marker at `cap`, above
    /// every timestamp it issued and the bound of every vote still open,
    /// and hands it to the replication. Returns `cap` and the marker's
    /// commit: once the marker is in the log, a leader that has applied it
    /// (and so starts its engine above `cap`) never issues a timestamp at
    /// or below one this engine used.
    pub async fn hand_over(
        &self,
        refusal: Error,
        drain: Duration,
    ) -> Result<(Timestamp, CommitFuture)> {
        let inner = &self.inner;
        {
            let mut clock = inner.clock.lock().expect("clock lock poisoned");
            clock.check_serving()?;
            clock.handed_over = Some(refusal);
        }
        let deadline = inner.tt.now().earliest.saturating_add(drain);
        while !inner
            .read_only_votes
            .lock()
            .expect("votes poisoned")
            .is_empty()
            && inner.tt.now().earliest < deadline
        {
            inner.sleeper.sleep(HAND_OVER_POLL).await;
        }
        let open_bound = inner
            .read_only_votes
            .lock()
            .expect("votes poisoned")
            .values()
            .filter_map(|vote| vote.until)
            .max()
            .unwrap_or(Timestamp::MIN);
        let latest = inner.tt.now().latest;
        let mut clock = inner.clock.lock().expect("clock lock poisoned");
        let cap = latest.max(clock.last.next()).max(open_bound);
        clock.last = cap;
        let marker = inner.replication.commit(TxnId(0), cap, Writes::new(), None);
        Ok((cap, marker))
    }
}

/// How often [`LocalEngine::hand_over`] looks whether the read-only votes
/// are all decided.
const HAND_OVER_POLL: Duration = Duration::from_millis(2);

impl<E: Engine + 'static> TxnEngine for LocalEngine<E> {
    type Txn = LocalTxn<E>;

    fn begin(&self, mode: TxnMode) -> impl Future<Output = Result<Self::Txn>> + Send {
        self.begin_with_priority(mode, None)
    }

    fn now(&self) -> TtInterval {
        self.inner.tt.now()
    }
}

impl<E: Engine + 'static> LocalEngine<E> {
    /// Begins a transaction whose wound-wait priority is `priority` (a
    /// transaction spanning groups has one priority everywhere, so that the
    /// same one wins every conflict: no distributed deadlock), or a start
    /// timestamp of `TT.now().latest` when `None`.
    ///
    /// A read at [`ReadTime::At`] may lie up to the clock's uncertainty
    /// (`latest - earliest`) past `TT.now().latest`: another node's
    /// `TT.now().latest` can be that far ahead of this one's.
    pub fn begin_with_priority(
        &self,
        mode: TxnMode,
        priority: Option<Priority>,
    ) -> impl Future<Output = Result<LocalTxn<E>>> + Send {
        let inner = self.inner.clone();
        async move {
            let bound = inner.replication.admit()?;
            let id = TxnId(inner.next_txn.fetch_add(1, Ordering::Relaxed));
            let now = inner.tt.now();
            let priority = priority.unwrap_or_else(|| now.latest.into());
            let start_ts = priority.start_ts;
            let read_ts = match mode {
                TxnMode::ReadWrite => {
                    inner.locks.begin(id, priority)?;
                    None
                }
                TxnMode::ReadOnly(ReadTime::Strong) => {
                    let ts = inner.strong_read_ts(start_ts);
                    Some(inner.issue_read_ts(ts, bound).await?)
                }
                TxnMode::ReadOnly(ReadTime::MaxStaleness(_)) => {
                    Some(inner.issue_read_ts(start_ts, bound).await?)
                }
                TxnMode::ReadOnly(ReadTime::At(ts)) => {
                    let horizon = now
                        .latest
                        .saturating_add(now.latest.duration_since(now.earliest));
                    if ts > horizon {
                        return Err(Error::InvalidInput(format!(
                            "cannot read as of {ts}: it is in the future (now is at most {})",
                            now.latest
                        )));
                    }
                    inner.mvcc.check_readable(ts)?;
                    Some(inner.issue_read_ts(ts, bound).await?)
                }
            };
            Ok(LocalTxn {
                inner,
                id,
                mode,
                start_ts,
                read_ts,
                writes: BTreeMap::new(),
                finished: false,
            })
        }
    }
}

impl<E: Engine> Inner<E> {
    /// Fails once the engine has handed its leadership over.
    fn check_serving(&self) -> Result<()> {
        self.clock
            .lock()
            .expect("clock lock poisoned")
            .check_serving()
    }

    /// Whether a read under locks may go ahead: the replication admits it
    /// and the engine has not handed its leadership over.
    fn admit_locked_read(&self) -> Result<()> {
        self.check_serving()?;
        self.replication.admit()?;
        Ok(())
    }

    /// Registers `ts` as a read timestamp (no later commit may land at or
    /// below it) and waits until every commit at or below it is applied.
    /// `bound` is the replication's limit on issued timestamps.
    async fn issue_read_ts(&self, ts: Timestamp, bound: Option<Timestamp>) -> Result<Timestamp> {
        check_bound(ts, bound)?;
        {
            let mut clock = self.clock.lock().expect("clock lock poisoned");
            clock.check_serving()?;
            clock.last = clock.last.max(ts);
        }
        loop {
            // Register for the signal before checking, so none is missed.
            let applied = self.applied.notified();
            let safe = {
                let clock = self.clock.lock().expect("clock lock poisoned");
                clock.in_flight.first().is_none_or(|&first| first > ts)
            };
            if safe {
                return Ok(ts);
            }
            applied.await;
        }
    }

    /// Picks a commit timestamp (at least `TT.now().latest`, above every
    /// timestamp issued, below the replication's bound), records it as in
    /// flight, and hands `writes` to the replication at it. Picking and
    /// handing over happen under one lock, so the replication receives
    /// commits in timestamp order (a follower's safe time relies on it).
    ///
    /// `s` is also at least `min_ts` (a coordinator's commit timestamp is
    /// at least every participant's prepare timestamp) and below `below`
    /// (the read-only voters' bound), and the commit records the outcome of
    /// `decides` (see [`Replication::commit`]).
    fn issue_and_commit(
        &self,
        txn: TxnId,
        writes: Writes,
        min_ts: Timestamp,
        below: Option<Timestamp>,
        decides: Option<GlobalTxnId>,
    ) -> Result<(Timestamp, CommitFuture)> {
        self.issue_in_flight(min_ts, below, |s| {
            self.replication.commit(txn, s, writes, decides)
        })
    }

    /// Picks a timestamp for a record that will apply writes (a commit or a
    /// prepare): at least `TT.now().latest` and `min_ts`, above every
    /// timestamp issued, below the replication's bound and `below`; records
    /// it as in flight and calls `hand` with it under the timestamp lock,
    /// so that records reach the replication in timestamp order.
    fn issue_in_flight(
        &self,
        min_ts: Timestamp,
        below: Option<Timestamp>,
        hand: impl FnOnce(Timestamp) -> CommitFuture,
    ) -> Result<(Timestamp, CommitFuture)> {
        let bound = self.replication.admit()?;
        let latest = self.tt.now().latest;
        let mut clock = self.clock.lock().expect("clock lock poisoned");
        clock.check_serving()?;
        let s = latest.max(clock.last.next()).max(min_ts);
        check_bound(s, bound)?;
        if let Some(below) = below.filter(|&b| s >= b) {
            return Err(Error::Aborted(format!(
                "the commit timestamp {s} would not be below a read-only participant's \
                 lease end ({below}); try again"
            )));
        }
        clock.last = s;
        clock.in_flight.insert(s);
        Ok((s, hand(s)))
    }

    /// Marks the commit at `s` as applied (or abandoned).
    fn finish_commit(&self, s: Timestamp) {
        {
            let mut clock = self.clock.lock().expect("clock lock poisoned");
            clock.in_flight.remove(&s);
            clock.last_finished = clock.last_finished.max(s);
        }
        self.applied.notify_waiters();
    }

    /// Notes writes applied at `s` by a commit this engine did not issue
    /// (a participant's decided outcome, whose logging raised the issued
    /// timestamps to `s`): later strong reads read at or above `s`.
    fn note_finished(&self, s: Timestamp) {
        let mut clock = self.clock.lock().expect("clock lock poisoned");
        clock.last_finished = clock.last_finished.max(s);
    }

    /// The timestamp of a strong read that began at `now_latest` (Spanner
    /// §4.2.2): with no transaction prepared here, the last commit
    /// timestamp (`LastTS()`): every commit acknowledged before the read
    /// began is at or below it, and every later one above it, so the read
    /// need not wait for commits in flight; else `now_latest`, which
    /// prepared transactions hold reads below.
    fn strong_read_ts(&self, now_latest: Timestamp) -> Timestamp {
        if !self
            .prepared
            .lock()
            .expect("prepared table poisoned")
            .is_empty()
        {
            return now_latest;
        }
        self.clock
            .lock()
            .expect("clock lock poisoned")
            .last_finished
    }

    /// Aborts the transactions a lock request wounded: their locks go now.
    fn abort_wounded(&self, wounds: &[Wound]) {
        for wound in wounds {
            self.wounded
                .lock()
                .expect("wound lock poisoned")
                .insert(wound.txn, wound.by);
            self.locks.release_all(wound.txn);
            tracing::debug!(txn = %wound.txn, by = %wound.by, "wounded");
        }
    }

    /// Fails if `txn` was wounded.
    /// Whether the replication serves `key`.
    fn serves_key(&self, key: &[u8]) -> Result<()> {
        let mut end = key.to_vec();
        end.push(0);
        self.replication.serves(&KeyRange::new(key.to_vec(), end))
    }

    fn check_not_wounded(&self, txn: TxnId) -> Result<()> {
        match self.wounded.lock().expect("wound lock poisoned").get(&txn) {
            Some(by) => Err(Wound { txn, by: *by }.error()),
            None => Ok(()),
        }
    }

    /// Takes a lock, waiting (with wound-wait and the lock timeout) if needed.
    async fn lock(&self, txn: TxnId, target: LockTarget, mode: LockMode) -> Result<()> {
        self.check_not_wounded(txn)?;
        let now = self.tt.now().earliest;
        let deadline = now.saturating_add(self.config.lock_timeout);
        let wait = match self.locks.acquire(txn, target, mode, now, deadline) {
            Ok(wait) => wait,
            Err(err) => {
                // The table forgets a wounded transaction once its locks are
                // released; report the wound rather than "unknown".
                self.check_not_wounded(txn)?;
                return Err(err);
            }
        };
        self.abort_wounded(wait.wounded());
        if wait.is_granted_now() {
            return Ok(());
        }
        let mut wait = wait;
        loop {
            let remaining = deadline.duration_since(self.tt.now().earliest);
            let sleep = self.sleeper.sleep(remaining.max(Duration::from_millis(1)));
            match first(&mut wait, sleep).await {
                Some(outcome) => {
                    self.check_not_wounded(txn)?;
                    return outcome;
                }
                None => {
                    self.locks.expire_waiters(self.tt.now().earliest);
                }
            }
        }
    }
}

/// Fails (retryably) when `ts` is not below the replication's `bound`.
fn check_bound(ts: Timestamp, bound: Option<Timestamp>) -> Result<()> {
    match bound {
        Some(bound) if ts >= bound => Err(Error::Aborted(format!(
            "timestamp {ts} would not be below the end of the leader's lease ({bound}); \
             try again once the lease is extended"
        ))),
        _ => Ok(()),
    }
}

/// Polls `a` and `b` together: `Some(a's output)` if `a` finishes first,
/// `None` if `b` does.
async fn first<A, B>(a: &mut A, b: Pin<Box<B>>) -> Option<A::Output>
where
    A: Future + Unpin,
    B: Future<Output = ()> + Send + ?Sized,
{
    let mut b = b;
    std::future::poll_fn(move |cx| {
        if let std::task::Poll::Ready(out) = Pin::new(&mut *a).poll(cx) {
            return std::task::Poll::Ready(Some(out));
        }
        if b.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(None);
        }
        std::task::Poll::Pending
    })
    .await
}

/// A transaction of a [`LocalEngine`].
pub struct LocalTxn<E: Engine> {
    /// The engine.
    inner: Arc<Inner<E>>,
    /// Its id in the lock table.
    id: TxnId,
    /// Read-write or read-only.
    mode: TxnMode,
    /// When it began (its wound-wait priority).
    start_ts: Timestamp,
    /// The snapshot of a read-only transaction.
    read_ts: Option<Timestamp>,
    /// Buffered writes: `None` is a delete.
    writes: Writes,
    /// Set once committed or rolled back.
    finished: bool,
}

impl<E: Engine> LocalTxn<E> {
    fn ensure_writable(&self, what: &str) -> Result<()> {
        match self.mode {
            TxnMode::ReadWrite => Ok(()),
            TxnMode::ReadOnly(_) => Err(Error::ReadOnlyTransaction(what.to_string())),
        }
    }

    /// The first `limit` pairs of `range` in `direction` order as this
    /// transaction sees them: the latest committed data merged with its own
    /// writes. Takes no lock.
    fn read_merged(
        &self,
        range: &KeyRange,
        direction: ScanDirection,
        limit: Option<usize>,
    ) -> Result<Vec<KvPair>> {
        // Own writes in the range: each delete may hide a stored row, so
        // fetch that many more to still fill `limit` after merging.
        let own: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = self
            .writes
            .range::<Vec<u8>, _>((range.start.as_ref(), range.end.as_ref()))
            .collect();
        let stored_limit = limit.map(|l| l.saturating_add(own.len()));
        let stored = self
            .inner
            .mvcc
            .scan(range, Timestamp::MAX, direction, stored_limit)?;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = stored.into_iter().collect();
        for (key, value) in own {
            match value {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        // With the larger fetch limit, the first `limit` merged rows are
        // exactly the first `limit` rows the transaction can see.
        let mut rows: Vec<KvPair> = merged.into_iter().collect();
        if direction == ScanDirection::Reverse {
            rows.reverse();
        }
        if let Some(limit) = limit {
            rows.truncate(limit);
        }
        Ok(rows)
    }

    /// Ends the transaction's life in the lock table and the wound list.
    fn release(&mut self) {
        if !self.finished {
            self.finished = true;
            if self.mode == TxnMode::ReadWrite {
                self.inner.locks.release_all(self.id);
                self.inner
                    .wounded
                    .lock()
                    .expect("wound lock poisoned")
                    .remove(&self.id);
            }
        }
    }

    /// Ends this handle without releasing anything: its locks belong to
    /// someone else now (a prepared transaction's entry).
    fn disown(mut self) {
        self.finished = true;
    }
}

impl<E: Engine> Drop for LocalTxn<E> {
    fn drop(&mut self) {
        self.release();
    }
}

fn lock_mode(strength: LockStrength) -> LockMode {
    match strength {
        LockStrength::Shared => LockMode::Shared,
        LockStrength::Exclusive => LockMode::Exclusive,
    }
}

/// The part of `range` a scan in `direction` has read once it returned the
/// row at `last`: from the scan's starting end through `last`.
fn span_through(range: &KeyRange, direction: ScanDirection, last: &[u8]) -> KeyRange {
    match direction {
        ScanDirection::Forward => KeyRange {
            start: range.start.clone(),
            end: Bound::Included(last.to_vec()),
        },
        ScanDirection::Reverse => KeyRange {
            start: Bound::Included(last.to_vec()),
            end: range.end.clone(),
        },
    }
}

/// Whether every key of `inner` lies in `outer`.
fn covers(outer: &KeyRange, inner: &KeyRange) -> bool {
    let (outer_lo, outer_hi) = outer.to_half_open();
    let (inner_lo, inner_hi) = inner.to_half_open();
    let lo_ok = match (outer_lo, inner_lo) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => o <= i,
    };
    let hi_ok = match (outer_hi, inner_hi) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => o >= i,
    };
    lo_ok && hi_ok
}

/// The lock covering a storage key range (lock ranges are `[start, end)`).
fn lock_target(range: &KeyRange) -> LockTarget {
    let (start, end) = range.to_half_open();
    LockTarget::Range(lock_table::KeyRange {
        start: start.unwrap_or_default(),
        end,
    })
}

impl<E: Engine + 'static> Transaction for LocalTxn<E> {
    fn id(&self) -> u64 {
        self.id.0
    }

    fn mode(&self) -> TxnMode {
        self.mode
    }

    fn start_ts(&self) -> Timestamp {
        self.start_ts
    }

    fn read_ts(&self) -> Option<Timestamp> {
        self.read_ts
    }

    fn get(
        &mut self,
        key: &[u8],
        lock: LockStrength,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        let key = key.to_vec();
        async move {
            if let Some(read_ts) = self.read_ts {
                let value = self.inner.mvcc.get(&key, read_ts)?;
                self.inner.serves_key(&key)?;
                return Ok(value);
            }
            if let Some(own) = self.writes.get(&key) {
                self.inner.check_not_wounded(self.id)?;
                return Ok(own.clone());
            }
            self.inner
                .lock(self.id, LockTarget::Key(key.clone()), lock_mode(lock))
                .await?;
            // Under the lock, the latest committed version is stable; only a
            // replica that may serve (the leaseholder) has it all, and only
            // while its engine has not handed the leadership over.
            self.inner.admit_locked_read()?;
            let value = self.inner.mvcc.get(&key, Timestamp::MAX)?;
            self.inner.serves_key(&key)?;
            Ok(value)
        }
    }

    async fn scan(
        &mut self,
        range: KeyRange,
        direction: ScanDirection,
        limit: Option<usize>,
        lock: LockStrength,
    ) -> Result<Vec<KvPair>> {
        if let Some(read_ts) = self.read_ts {
            let rows = self.inner.mvcc.scan(&range, read_ts, direction, limit)?;
            self.inner.replication.serves(&range)?;
            return Ok(rows);
        }
        if range.is_empty() {
            return Ok(Vec::new());
        }
        // Lock only what the answer depends on: with a limit that is reached,
        // the span from the range's start through the last row returned (in
        // scan order); otherwise the whole range. The span is found by
        // reading, locked, and the read repeated under the lock; if rows
        // vanished meanwhile, the answer reaches further and the lock grows.
        let mut held: Option<KeyRange> = None;
        loop {
            self.inner.admit_locked_read()?;
            let rows = self.read_merged(&range, direction, limit)?;
            let needed = match (limit, rows.last()) {
                (Some(limit), Some((last, _))) if rows.len() >= limit => {
                    span_through(&range, direction, last)
                }
                _ => range.clone(),
            };
            if held.as_ref().is_some_and(|held| covers(held, &needed)) {
                self.inner.replication.serves(&range)?;
                return Ok(rows);
            }
            self.inner
                .lock(self.id, lock_target(&needed), lock_mode(lock))
                .await?;
            held = Some(needed);
        }
    }

    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.ensure_writable("INSERT or UPDATE")?;
        self.inner
            .lock(self.id, LockTarget::Key(key.clone()), LockMode::Exclusive)
            .await?;
        self.inner.serves_key(&key)?;
        self.writes.insert(key, Some(value));
        Ok(())
    }

    async fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.ensure_writable("DELETE")?;
        self.inner
            .lock(self.id, LockTarget::Key(key.clone()), LockMode::Exclusive)
            .await?;
        self.inner.serves_key(&key)?;
        self.writes.insert(key, None);
        Ok(())
    }

    async fn commit(mut self) -> Result<Option<Timestamp>> {
        if self.read_ts.is_some() {
            self.release();
            return Ok(None);
        }
        self.inner.check_not_wounded(self.id)?;
        if self.writes.is_empty() {
            // What it read under locks is serializable only if they held to
            // the end: if the engine lost its lease (or handed the
            // leadership over) meanwhile, another leader that knows nothing
            // of these locks may have written under them.
            let serving = self.inner.admit_locked_read();
            self.release();
            serving?;
            return Ok(None);
        }
        self.commit_at(Timestamp::MIN, None, None).await.map(Some)
    }

    fn rollback(mut self) -> impl Future<Output = Result<()>> + Send {
        self.release();
        std::future::ready(Ok(()))
    }
}
