//! A deterministic, seeded simulation of transactions spanning Paxos groups
//! under faults (Spanner §4.2.1 two-phase commit, §4.1.2 commit wait,
//! §4.1.1 leader leases), judged by the history checkers of
//! `meridian_txn::check`.
//!
//! **The cluster.** Four groups own four ranges of the keyspace. Each group
//! has a simulated Paxos log ([`Log`]) that keeps what a real log keeps
//! across a change of leader: the writes it applied (into the group's MVCC
//! store, which successive leaders share), the prepare records not yet
//! decided, the outcomes of the transactions the group coordinated, and the
//! largest timestamp it logged. The group's leader is a [`LocalEngine`]
//! built with [`LocalEngine::with_replication`] over a [`LogHandle`]: the
//! handle of one leadership (epoch). Appending checks the epoch, so a
//! deposed leader's transactions fail; it takes a random replication
//! latency, and a leader deposed during it cannot tell whether its entry was
//! chosen ([`Error::AmbiguousCommit`]). Leaders hold a lease (renewed every
//! [`LEASE_RENEWAL`]), every timestamp they issue lies below it, and a new
//! leader is elected only once the old lease has ended, with `issued` at
//! least the old lease's end and the largest logged timestamp: timestamps
//! stay monotonic across leaders (§4.1.1, disjointness). The new leader then
//! restores every undecided prepare record ([`LocalEngine::restore_prepared`]).
//!
//! **Time.** One virtual true time, tokio's paused clock: the runtime jumps
//! to the next timer whenever every task waits, so runs take no real time,
//! lock waits really wait, and a run replays exactly from its seed (one
//! thread, no real IO, every random choice from seeded `StdRng`s). Every
//! leader and every gateway reads its own clock ([`SimClock`]), off true time
//! by a seeded offset within ±ε, and claims ε: commit wait is what keeps
//! external consistency. (Tokio's timer has millisecond granularity, so
//! sleeps, log latencies included, end on a millisecond tick.)
//!
//! **Gateways.** Clients run [`DistEngine`]s over three [`Gateway`]s (each
//! with its own clock) implementing [`Groups`]. The calls that a real
//! gateway makes by RPC to a leader (commit, prepare, coordinator commit,
//! decide, resolve) run in their own task, so a gateway that gives up or
//! crashes cannot cancel a leader's work halfway. Once every participant has
//! a commit, the gateway has the coordinator forget its outcome record
//! (through its log, in the background), as the server's gateway does.
//!
//! **Faults** ([`Faults`]), all seeded: leader failover of a random group at
//! random times (often in the middle of two-phase commit); leadership
//! hand-overs (the leader's engine stops, waits a little for its read-only
//! votes and logs a marker above everything it issued,
//! [`LocalEngine::hand_over`]; the next leader is elected at once, without
//! waiting for the old lease, its timestamps above the marker); a log entry lost
//! with its leader (the leader is deposed, the entry never happened, the
//! caller hears "ambiguous"); decide messages dropped; a gateway crashing
//! just before the coordinator's commit, or while announcing the outcome;
//! clock skew within ε. A background resolver plays the participants'
//! timeout: a transaction prepared for longer than [`RESOLVE_AFTER`] is
//! resolved at its coordinator group ([`LocalEngine::resolve`], which
//! records an abort unless the commit is logged) and decided at the
//! participant. A participant that only read votes read-only and logs
//! nothing; its locks go once its lease bound has passed
//! ([`LocalEngine::expire_read_only_votes`], on the cluster loop's tick).
//!
//! **Workloads and checkers.** The bank (money moves between accounts in
//! different groups; read-write, strong read-only and past snapshot reads
//! of every balance) is checked by [`check_bank`] on every read and once
//! more after the run, with all prepared transactions resolved. List-append
//! (Elle) transactions are checked for strict serializability by
//! [`check_list_append`], with invocation and completion in virtual true
//! time and ambiguous commits as `Unknown`, plus a final read that must hold
//! every acknowledged append. Both histories are checked for external
//! consistency ([`check_external_consistency`]). Each run must commit a
//! minimum number of transactions, so a run where nothing happens fails.
//! Negative tests break the protocol on purpose (no two-phase commit; clocks
//! outside their ε) and require the checkers to notice.
//!
//! Replay a failing run with `MERIDIAN_SIM_SEED=<seed> cargo test -p
//! meridian-txn --all-features --test sim_two_phase`.
//!
//! Left out: followers serving reads (every read goes to the leader, and a
//! deposed leader's snapshot reads keep reading the shared store, which the
//! lease keeps correct); message reordering and duplication apart from
//! decides arriving twice (coordinator and resolution); crash of a whole
//! node (a failover is the leader's crash, the log survives); garbage
//! collection.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meridian_error::{Error, Result};
use meridian_storage::{Durability, KeyRange, KvPair, MemoryEngine, Mvcc, ScanDirection};
use meridian_truetime::{ClockReading, ClockSource, Timestamp, TrueTime, TtInterval};
use meridian_txn::check::{
    check_bank, check_external_consistency, check_list_append, BankRead, ListAppendTxn, MicroOp,
    Outcome as Seen, TimestampedTxn,
};
use meridian_txn::testing::TokioSleeper;
use meridian_txn::{
    tell_participants, CommitFuture, DistEngine, GlobalTxnId, GroupTxn, Groups, LocalConfig,
    LocalEngine, LocalTxn, LockStrength, Outcome, OutcomeFuture, PrepareRecord, Priority, RangeMap,
    ReadTime, Replication, Transaction, TxnEngine, TxnId, TxnMode, Vote, Writes,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Groups in the cluster; group `g` (1-based) holds the keys starting with
/// the digit `g - 1`.
const GROUPS: u64 = 4;
/// Gateways the clients are spread over, each with its own clock.
const GATEWAYS: u64 = 3;
/// The clocks' claimed uncertainty.
const EPSILON: Duration = Duration::from_millis(2);
/// How long a lease lasts past its last renewal.
const LEASE: Duration = Duration::from_millis(10);
/// How often the cluster loop renews leases and elects leaders.
const LEASE_RENEWAL: Duration = Duration::from_millis(1);
/// The longest time a log append takes to be known chosen, microseconds.
const MAX_LOG_LATENCY_US: u64 = 400;
/// A read-write transaction's wait for one lock.
const LOCK_TIMEOUT: Duration = Duration::from_millis(20);
/// How long a gateway waits for a group to begin a transaction (a snapshot
/// read may wait for a prepared transaction).
const BEGIN_TIMEOUT: Duration = Duration::from_millis(100);
/// How long a client waits for its commit before calling it unknown.
const COMMIT_DEADLINE: Duration = Duration::from_millis(200);
/// How long a transaction stays prepared before its participant asks the
/// coordinator group.
const RESOLVE_AFTER: Duration = Duration::from_millis(30);
/// How often the resolver looks.
const RESOLVE_TICK: Duration = Duration::from_millis(5);
/// True time when the simulation starts.
const START: u64 = 1_700_000_000_000_000_000;
/// Concurrent clients.
const CLIENTS: u64 = 8;
/// Transactions each client runs.
const TXNS_PER_CLIENT: u64 = 30;
/// Seeds run when `MERIDIAN_SIM_SEED` is not set.
const SEEDS: u64 = 20;
/// The id of the final read of a run, after everything.
const FINAL_READ: u64 = 999_999;

/// Which faults a run injects, and whether the protocol is broken on purpose.
#[derive(Clone, Copy, Debug)]
struct Faults {
    /// Mean time between leader failovers (`None`: no failovers).
    failover_every: Option<Duration>,
    /// Mean time between leadership hand-overs (`None`: none).
    handover_every: Option<Duration>,
    /// The longest an election takes once the old lease has ended.
    max_election: Duration,
    /// Probability that a log append is lost along with its leader.
    lost_entry: f64,
    /// Probability that a gateway's decide message is dropped.
    drop_decide: f64,
    /// Probability that a gateway crashes just before the coordinator commit.
    crash_before_commit: f64,
    /// Probability, per decide message, that the gateway crashes instead of
    /// sending it (and the client never hears back).
    crash_while_announcing: f64,
    /// How far each clock is off true time at most (`ZERO`: no skew). Within
    /// [`EPSILON`] the TrueTime guarantee holds.
    skew: Duration,
    /// Broken on purpose: participants commit at once instead of preparing,
    /// and coordinators sometimes fail afterwards.
    no_two_phase: bool,
    /// Broken on purpose: gateway `i`'s clock runs `i` times this far
    /// behind true time, beyond the ε it claims (`ZERO`: none).
    gateway_lag: Duration,
}

impl Faults {
    /// Every fault, within the protocol's assumptions.
    fn all() -> Self {
        Faults {
            failover_every: Some(Duration::from_millis(25)),
            handover_every: Some(Duration::from_millis(50)),
            max_election: Duration::from_millis(5),
            lost_entry: 0.01,
            drop_decide: 0.1,
            crash_before_commit: 0.03,
            crash_while_announcing: 0.02,
            skew: EPSILON,
            no_two_phase: false,
            gateway_lag: Duration::ZERO,
        }
    }
}

/// What happened during a run, for the summary and the fingerprint.
#[derive(Clone, Debug, Default)]
struct Stats {
    /// Leaders deposed by the fault loop.
    failovers: u64,
    /// Leaderships handed over (the new leader elected at once).
    handovers: u64,
    /// Log entries lost with their leader.
    lost_entries: u64,
    /// Appends whose leader was deposed before they were known chosen.
    ambiguous_appends: u64,
    /// Decide messages dropped.
    dropped_decides: u64,
    /// Gateway crashes.
    crashes: u64,
    /// Coordinator outcome records forgotten once every participant had
    /// the outcome.
    forgotten: u64,
    /// Prepared transactions resolved as committed by the resolver.
    resolved_committed: u64,
    /// Prepared transactions resolved as aborted by the resolver.
    resolved_aborted: u64,
    /// Transactions committed, as the clients saw it.
    committed: u64,
    /// Of those, the ones that wrote (a commit timestamp came back).
    committed_writes: u64,
    /// Prepare records logged (two-phase commits that got that far).
    prepares: u64,
    /// Transactions aborted with a retryable error, by error kind.
    retryable: BTreeMap<&'static str, u64>,
    /// Commits whose outcome the client never learned.
    unknown: u64,
}

/// True time, and the random choices of faults and latencies.
struct Shared {
    /// Tokio's (paused) instant standing for [`START`].
    origin: tokio::time::Instant,
    /// Every random choice not made by a client.
    rng: Mutex<StdRng>,
    /// The faults to inject.
    faults: Faults,
    /// Faults are injected only while this is set (cleared to heal).
    faults_on: AtomicBool,
    /// Hand-overs under way (the cluster has not settled while one is).
    handing_over: AtomicU64,
    /// Counters.
    stats: Mutex<Stats>,
}

impl Shared {
    /// The simulation's true time.
    fn truth(&self) -> Timestamp {
        Timestamp::from_nanos(START).saturating_add(self.origin.elapsed())
    }

    /// A fault with probability `p`, while faults are on.
    fn roll(&self, p: f64) -> bool {
        p > 0.0 && self.faults_on.load(Ordering::SeqCst) && self.rng().random_bool(p)
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, StdRng> {
        self.rng.lock().expect("rng poisoned")
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().expect("stats poisoned")
    }

    /// A random duration in `[0, max]`.
    fn up_to(&self, max: Duration) -> Duration {
        Duration::from_nanos(self.rng().random_range(0..=max.as_nanos() as u64))
    }

    /// TrueTime for a new node: true time off by a seeded offset within the
    /// configured skew, and `lag` behind that, claiming [`EPSILON`].
    fn clock(&self, lag: Duration) -> TrueTime {
        let skew = self.faults.skew.as_nanos() as i64;
        let offset_nanos = if skew == 0 {
            0
        } else {
            self.rng().random_range(-skew..=skew)
        } - lag.as_nanos() as i64;
        TrueTime::new(Arc::new(SimClock {
            origin: self.origin,
            offset_nanos,
        }))
    }
}

/// A node's clock: true time plus a fixed offset, claiming [`EPSILON`].
#[derive(Debug)]
struct SimClock {
    /// Tokio's instant standing for [`START`].
    origin: tokio::time::Instant,
    /// This clock's error, nanoseconds.
    offset_nanos: i64,
}

impl ClockSource for SimClock {
    fn read(&self) -> ClockReading {
        let truth = START as i128 + self.origin.elapsed().as_nanos() as i128;
        ClockReading {
            now: Timestamp::from_nanos((truth + self.offset_nanos as i128) as u64),
            epsilon: EPSILON,
        }
    }
}

/// What a group's Paxos log keeps durably, across leaders.
struct Log {
    /// The group.
    group: u64,
    /// The current leadership; handles of other epochs are fenced.
    epoch: u64,
    /// Whether the current epoch's leader is elected and serving.
    leader_up: bool,
    /// The end of the latest lease: no leader issued a timestamp at or past it.
    lease_end: Timestamp,
    /// True time after which a new leader may be elected.
    elect_at: Timestamp,
    /// Prepare records logged and not yet decided.
    prepared: BTreeMap<GlobalTxnId, PrepareRecord>,
    /// Outcomes of the transactions this group coordinated (or resolved).
    outcomes: HashMap<GlobalTxnId, Outcome>,
    /// The largest commit or prepare timestamp logged.
    max_ts: Timestamp,
    /// Whether the deposed leader handed its leadership over (capped what
    /// it issued with a marker in the log): the next leader need not wait
    /// for its lease to end.
    handed_over: bool,
}

impl Log {
    /// Deposes the current leader: its handle is fenced from now on.
    fn depose(&mut self, shared: &Shared) {
        self.epoch += 1;
        self.leader_up = false;
        self.elect_at = shared
            .truth()
            .saturating_add(shared.up_to(shared.faults.max_election));
    }

    fn not_leader(&self) -> Error {
        Error::NotLeader {
            group: self.group,
            leader: None,
        }
    }
}

/// One leadership's access to its group's log: the engine's [`Replication`].
struct LogHandle {
    /// Randomness and counters.
    shared: Arc<Shared>,
    /// The log.
    log: Arc<Mutex<Log>>,
    /// The group's store, where applied writes go.
    mvcc: Arc<Mvcc<MemoryEngine>>,
    /// The leadership this handle belongs to.
    epoch: u64,
}

impl LogHandle {
    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().expect("log poisoned")
    }

    /// Appends an entry: `apply` runs now, in log order, unless the leader
    /// was deposed (a certain failure) or the entry is lost with its leader.
    /// The answer comes after the replication latency, and is ambiguous if
    /// the leader was deposed meanwhile.
    fn append<T: Send + 'static>(
        &self,
        apply: impl FnOnce(&mut Log, &Mvcc<MemoryEngine>) -> Result<T>,
    ) -> Pin<Box<dyn Future<Output = Result<T>> + Send>> {
        let mut log = self.log();
        if log.epoch != self.epoch || !log.leader_up {
            return Box::pin(std::future::ready(Err(log.not_leader())));
        }
        let group = log.group;
        let applied = if self.shared.roll(self.shared.faults.lost_entry) {
            log.depose(&self.shared);
            self.shared.stats().lost_entries += 1;
            None
        } else {
            match apply(&mut log, &self.mvcc) {
                Ok(value) => Some(value),
                Err(err) => return Box::pin(std::future::ready(Err(err))),
            }
        };
        drop(log);
        let latency = Duration::from_micros(self.shared.rng().random_range(0..=MAX_LOG_LATENCY_US));
        let (shared, log, epoch) = (self.shared.clone(), self.log.clone(), self.epoch);
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            let deposed = log.lock().expect("log poisoned").epoch != epoch;
            match applied {
                Some(value) if !deposed => Ok(value),
                _ => {
                    shared.stats().ambiguous_appends += 1;
                    Err(Error::AmbiguousCommit(format!(
                        "group {group}: the leader was deposed before its log entry was known chosen"
                    )))
                }
            }
        })
    }
}

impl Replication for LogHandle {
    fn admit(&self) -> Result<Option<Timestamp>> {
        let log = self.log();
        if log.epoch != self.epoch || !log.leader_up {
            return Err(log.not_leader());
        }
        Ok(Some(log.lease_end))
    }

    fn commit(
        &self,
        _txn: TxnId,
        s: Timestamp,
        writes: Writes,
        decides: Option<GlobalTxnId>,
    ) -> CommitFuture {
        self.append(move |log, mvcc| {
            if let Some(gid) = decides {
                if log.outcomes.get(&gid) == Some(&Outcome::Aborted) {
                    return Err(Error::Aborted(format!(
                        "transaction {gid} was aborted by a participant's resolution"
                    )));
                }
                log.outcomes.insert(gid, Outcome::Committed(s));
            }
            mvcc.write(s, writes, Durability::Buffered)?;
            log.max_ts = log.max_ts.max(s);
            Ok(())
        })
    }

    fn prepare(&self, record: PrepareRecord) -> CommitFuture {
        let shared = self.shared.clone();
        self.append(move |log, _| {
            log.max_ts = log.max_ts.max(record.prepare_ts);
            log.prepared.insert(record.gid, record);
            shared.stats().prepares += 1;
            Ok(())
        })
    }

    fn decide(&self, record: &PrepareRecord, outcome: Outcome) -> CommitFuture {
        let gid = record.gid;
        self.append(move |log, mvcc| {
            if let Some(record) = log.prepared.remove(&gid) {
                if let Outcome::Committed(s) = outcome {
                    mvcc.write(s, record.writes, Durability::Buffered)?;
                    log.max_ts = log.max_ts.max(s);
                }
            }
            Ok(())
        })
    }

    fn resolve(&self, gid: GlobalTxnId) -> OutcomeFuture {
        self.append(move |log, _| Ok(*log.outcomes.entry(gid).or_insert(Outcome::Aborted)))
    }
}

/// A group: its store and log, which survive leaders, and its leader.
struct Group {
    /// The group's id.
    id: u64,
    /// The versions, shared by successive leaders (what the log applied).
    mvcc: Arc<Mvcc<MemoryEngine>>,
    /// The log.
    log: Arc<Mutex<Log>>,
    /// The latest leader elected, with its epoch.
    leader: Mutex<Option<(u64, LocalEngine<MemoryEngine>)>>,
}

/// The simulated cluster.
struct Sim {
    /// Time, randomness and counters.
    shared: Arc<Shared>,
    /// The groups by id.
    groups: BTreeMap<u64, Group>,
    /// Which group holds which keys.
    map: RangeMap,
    /// The last global transaction id handed out.
    last_gid: AtomicU64,
}

/// Runs `call` in its own task, like a request to a leader: the caller
/// giving up does not cancel it.
async fn rpc<T: Send + 'static>(
    call: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    match tokio::spawn(call).await {
        Ok(result) => result,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

impl Sim {
    /// A cluster holding `initial`, every group with a leader.
    fn new(seed: u64, faults: Faults, initial: &[(Vec<u8>, Vec<u8>)]) -> Arc<Sim> {
        let shared = Arc::new(Shared {
            origin: tokio::time::Instant::now(),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            faults,
            faults_on: AtomicBool::new(true),
            handing_over: AtomicU64::new(0),
            stats: Mutex::new(Stats::default()),
        });
        let map = RangeMap::new(
            (0..GROUPS)
                .map(|g| {
                    let start = if g == 0 {
                        Vec::new()
                    } else {
                        g.to_string().into_bytes()
                    };
                    (start, g + 1)
                })
                .collect(),
        )
        .expect("a valid range map");
        let loaded = Timestamp::from_nanos(START - 1_000_000_000);
        let groups = (1..=GROUPS)
            .map(|id| {
                let mvcc = Arc::new(Mvcc::new(MemoryEngine::new()).expect("memory store"));
                let rows = initial
                    .iter()
                    .filter(|(key, _)| map.group_of(key) == id)
                    .map(|(key, value)| (key.clone(), Some(value.clone())));
                mvcc.write(loaded, rows, Durability::Buffered)
                    .expect("initial load");
                let log = Log {
                    group: id,
                    epoch: 0,
                    leader_up: false,
                    lease_end: Timestamp::MIN,
                    elect_at: Timestamp::MIN,
                    prepared: BTreeMap::new(),
                    outcomes: HashMap::new(),
                    max_ts: loaded,
                    handed_over: false,
                };
                let group = Group {
                    id,
                    mvcc,
                    log: Arc::new(Mutex::new(log)),
                    leader: Mutex::new(None),
                };
                (id, group)
            })
            .collect();
        let sim = Arc::new(Sim {
            shared,
            groups,
            map,
            last_gid: AtomicU64::new(0),
        });
        for group in sim.groups.values() {
            sim.elect(group).expect("the first election");
        }
        sim
    }

    fn group(&self, id: u64) -> Result<&Group> {
        self.groups
            .get(&id)
            .ok_or_else(|| Error::Internal(format!("no group {id}")))
    }

    /// The serving leader of `group`.
    fn leader(&self, group: u64) -> Result<LocalEngine<MemoryEngine>> {
        let group = self.group(group)?;
        let log = group.log.lock().expect("log poisoned");
        match &*group.leader.lock().expect("leader poisoned") {
            Some((epoch, engine)) if log.leader_up && *epoch == log.epoch => Ok(engine.clone()),
            _ => Err(log.not_leader()),
        }
    }

    /// The log handle of `group`'s serving leadership: what its leader
    /// appends through.
    fn log_handle(&self, group: u64) -> Result<LogHandle> {
        let group = self.group(group)?;
        let log = group.log.lock().expect("log poisoned");
        if !log.leader_up {
            return Err(log.not_leader());
        }
        Ok(LogHandle {
            shared: self.shared.clone(),
            log: group.log.clone(),
            mvcc: group.mvcc.clone(),
            epoch: log.epoch,
        })
    }

    /// Elects a new leader of `group` (a new node, with its own clock) if
    /// it has none and may: the old lease has ended in true time. Its
    /// timestamps start above everything logged and the old lease's end; it
    /// takes over every undecided prepared transaction from the log.
    fn elect(&self, group: &Group) -> std::result::Result<(), String> {
        let mut log = group.log.lock().expect("log poisoned");
        let truth = self.shared.truth();
        if log.leader_up || truth < log.elect_at || (truth <= log.lease_end && !log.handed_over) {
            return Ok(());
        }
        // After a hand-over the old leader's marker caps what it issued.
        let issued = if log.handed_over {
            log.max_ts
        } else {
            log.max_ts.max(log.lease_end)
        };
        log.handed_over = false;
        let handle = LogHandle {
            shared: self.shared.clone(),
            log: group.log.clone(),
            mvcc: group.mvcc.clone(),
            epoch: log.epoch,
        };
        let engine = LocalEngine::with_replication(
            group.mvcc.clone(),
            self.shared.clock(Duration::ZERO),
            Arc::new(TokioSleeper),
            LocalConfig {
                lock_timeout: LOCK_TIMEOUT,
                durability: Durability::Buffered,
            },
            Arc::new(handle),
            issued,
        );
        for record in log.prepared.values() {
            engine.restore_prepared(record.clone()).map_err(|err| {
                format!(
                    "group {}: the new leader could not restore {}: {err}",
                    group.id, record.gid
                )
            })?;
        }
        log.leader_up = true;
        log.lease_end = truth
            .saturating_add(LEASE)
            .max(issued.saturating_add(LEASE));
        *group.leader.lock().expect("leader poisoned") = Some((log.epoch, engine));
        Ok(())
    }

    /// Renews the serving leaders' leases, expires their read-only votes and
    /// elects leaders where needed.
    fn tick(&self) -> std::result::Result<(), String> {
        let truth = self.shared.truth();
        for group in self.groups.values() {
            {
                let mut log = group.log.lock().expect("log poisoned");
                if !log.leader_up {
                    drop(log);
                    self.elect(group)?;
                    continue;
                }
                log.lease_end = log.lease_end.max(truth.saturating_add(LEASE));
            }
            if let Ok(engine) = self.leader(group.id) {
                engine.expire_read_only_votes();
            }
        }
        Ok(())
    }

    /// Deposes the leader of a random group.
    fn fail_over_random_group(&self) {
        let id = self.shared.rng().random_range(1..=GROUPS);
        let group = &self.groups[&id];
        let mut log = group.log.lock().expect("log poisoned");
        if log.leader_up {
            log.depose(&self.shared);
            self.shared.stats().failovers += 1;
        }
    }

    /// Hands the leadership of a random group to a new leader: the old
    /// one's engine stops and caps what it issued with a marker in the log
    /// (`LocalEngine::hand_over`), then the next leader is elected at once,
    /// its timestamps above the marker rather than after the old lease.
    async fn hand_over_random_group(&self) {
        let id = self.shared.rng().random_range(1..=GROUPS);
        let group = &self.groups[&id];
        let Ok(engine) = self.leader(id) else {
            return;
        };
        let (epoch, refusal) = {
            let log = group.log.lock().expect("log poisoned");
            (log.epoch, log.not_leader())
        };
        let drain = self.shared.up_to(Duration::from_millis(3));
        self.shared.handing_over.fetch_add(1, Ordering::SeqCst);
        let handed = engine.hand_over(refusal, drain).await;
        let logged = match handed {
            Ok((_, marker)) => Some(marker.await),
            Err(_) => None,
        };
        self.finish_hand_over(group, epoch, logged);
        self.shared.handing_over.fetch_sub(1, Ordering::SeqCst);
    }

    /// Ends the hand-over of `group`'s leadership of `epoch` once the
    /// stopped engine's marker was logged, or not (`None`: it was stopped
    /// already).
    fn finish_hand_over(&self, group: &Group, epoch: u64, logged: Option<Result<()>>) {
        let Some(logged) = logged else {
            return;
        };
        let mut log = group.log.lock().expect("log poisoned");
        if log.epoch != epoch || !log.leader_up {
            return;
        }
        log.depose(&self.shared);
        if logged.is_ok() {
            log.handed_over = true;
            log.elect_at = self.shared.truth();
            self.shared.stats().handovers += 1;
        } else {
            // The marker never made it: an ordinary failover (the new
            // leader waits for the old lease).
            self.shared.stats().failovers += 1;
        }
    }

    /// The participants' timeout: every transaction prepared at least
    /// `min_age` ago asks its coordinator group for the outcome (which
    /// aborts it there unless it committed) and applies it.
    async fn resolve_abandoned(&self, min_age: Duration) {
        let truth = self.shared.truth();
        for &id in self.groups.keys() {
            let Ok(engine) = self.leader(id) else {
                continue;
            };
            for info in engine.prepared() {
                // A read-only vote logged nothing and needs no outcome: its
                // locks go once its lease bound has passed.
                if info.read_only || truth < info.prepare_ts.saturating_add(min_age) {
                    continue;
                }
                let Ok(coordinator) = self.leader(info.coordinator) else {
                    continue;
                };
                let gid = info.gid;
                let Ok(outcome) = rpc(async move { coordinator.resolve(gid).await }).await else {
                    continue;
                };
                let participant = engine.clone();
                if rpc(async move { participant.decide(gid, outcome).await })
                    .await
                    .is_ok()
                {
                    let mut stats = self.shared.stats();
                    match outcome {
                        Outcome::Committed(_) => stats.resolved_committed += 1,
                        Outcome::Aborted => stats.resolved_aborted += 1,
                    }
                }
            }
        }
    }

    /// Stops the faults and waits until every group has a leader and no
    /// transaction is prepared anywhere.
    async fn heal(&self) -> std::result::Result<(), String> {
        self.shared.faults_on.store(false, Ordering::SeqCst);
        for _ in 0..1_000 {
            self.tick()?;
            self.resolve_abandoned(Duration::ZERO).await;
            let mut settled = true;
            for &id in self.groups.keys() {
                match self.leader(id) {
                    Ok(engine) => settled &= engine.prepared().is_empty(),
                    Err(_) => settled = false,
                }
            }
            settled &= self.shared.handing_over.load(Ordering::SeqCst) == 0;
            if settled {
                return Ok(());
            }
            tokio::time::sleep(LEASE_RENEWAL).await;
        }
        let mut left = String::new();
        for &id in self.groups.keys() {
            let log = self.groups[&id].log.lock().expect("log poisoned");
            let _ = write!(
                left,
                " group {id}: leader_up={} prepared={:?};",
                log.leader_up,
                log.prepared.keys().collect::<Vec<_>>()
            );
        }
        Err(format!("the cluster did not settle:{left}"))
    }

    /// Starts the cluster loop, the fault loop and the resolver.
    fn start_background(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        let sim = self.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE_RENEWAL).await;
                if let Err(err) = sim.tick() {
                    panic!("{err}");
                }
            }
        }));
        if let Some(every) = self.shared.faults.handover_every {
            let sim = self.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(sim.shared.up_to(every * 2)).await;
                    if sim.shared.faults_on.load(Ordering::SeqCst) {
                        sim.hand_over_random_group().await;
                        let _ = sim.tick();
                    }
                }
            }));
        }
        if let Some(every) = self.shared.faults.failover_every {
            let sim = self.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(sim.shared.up_to(every * 2)).await;
                    if sim.shared.faults_on.load(Ordering::SeqCst) {
                        sim.fail_over_random_group();
                    }
                }
            }));
        }
        let sim = self.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(RESOLVE_TICK).await;
                sim.resolve_abandoned(RESOLVE_AFTER).await;
            }
        }));
        tasks
    }
}

/// A gateway: [`Groups`] over the simulated cluster, with its own clock.
struct Gateway {
    /// The cluster.
    sim: Arc<Sim>,
    /// The gateway's TrueTime.
    tt: TrueTime,
}

/// A transaction at one group's leader, as a gateway drives it.
struct SimTxn {
    /// The leader's transaction.
    txn: LocalTxn<MemoryEngine>,
    /// The cluster (for faults).
    sim: Arc<Sim>,
}

impl Transaction for SimTxn {
    fn id(&self) -> u64 {
        self.txn.id()
    }

    fn mode(&self) -> TxnMode {
        self.txn.mode()
    }

    fn start_ts(&self) -> Timestamp {
        self.txn.start_ts()
    }

    fn read_ts(&self) -> Option<Timestamp> {
        self.txn.read_ts()
    }

    async fn get(&mut self, key: &[u8], lock: LockStrength) -> Result<Option<Vec<u8>>> {
        self.txn.get(key, lock).await
    }

    async fn scan(
        &mut self,
        range: KeyRange,
        direction: ScanDirection,
        limit: Option<usize>,
        lock: LockStrength,
    ) -> Result<Vec<KvPair>> {
        self.txn.scan(range, direction, limit, lock).await
    }

    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.txn.put(key, value).await
    }

    async fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.txn.delete(key).await
    }

    async fn commit(self) -> Result<Option<Timestamp>> {
        let txn = self.txn;
        rpc(async move { txn.commit().await }).await
    }

    async fn rollback(self) -> Result<()> {
        self.txn.rollback().await
    }
}

impl GroupTxn for SimTxn {
    async fn prepare(self, gid: GlobalTxnId, coordinator: u64) -> Result<Vote> {
        let txn = self.txn;
        if self.sim.shared.faults.no_two_phase {
            // Broken on purpose: commit here and now, whatever the others do.
            let start = txn.start_ts();
            return rpc(async move { txn.commit().await })
                .await
                .map(|s| Vote::Prepared {
                    prepare_ts: s.unwrap_or(start),
                });
        }
        rpc(async move { txn.prepare(gid, coordinator).await }).await
    }

    async fn commit_as_coordinator(
        self,
        gid: GlobalTxnId,
        min_ts: Timestamp,
        below: Option<Timestamp>,
    ) -> Result<Timestamp> {
        let shared = &self.sim.shared;
        if shared.faults.no_two_phase && shared.roll(0.3) {
            return Err(Error::Aborted(format!(
                "the coordinator of {gid} lost its lease (injected)"
            )));
        }
        if shared.roll(shared.faults.crash_before_commit) {
            // The gateway dies between the votes and the commit: the
            // coordinator's part is abandoned, the participants stay
            // prepared until they ask.
            shared.stats().crashes += 1;
            drop(self.txn);
            return std::future::pending().await;
        }
        let txn = self.txn;
        rpc(async move { txn.commit_as_coordinator(gid, min_ts, below).await }).await
    }
}

impl Groups for Gateway {
    type Txn = SimTxn;

    fn group_of(&self, key: &[u8]) -> Result<u64> {
        Ok(self.sim.map.group_of(key))
    }

    fn locate(&self, range: &KeyRange) -> Result<Vec<(u64, KeyRange)>> {
        Ok(self.sim.map.locate(range))
    }

    async fn ranges(&self) -> Result<Vec<meridian_txn::RangeInfo>> {
        Ok(self.sim.map.infos())
    }

    async fn begin(
        &self,
        group: u64,
        mode: TxnMode,
        priority: Priority,
        _strong: bool,
    ) -> Result<SimTxn> {
        let engine = self.sim.leader(group)?;
        let begun = tokio::time::timeout(
            BEGIN_TIMEOUT,
            engine.begin_with_priority(mode, Some(priority)),
        )
        .await
        .map_err(|_| Error::Unavailable(format!("group {group} did not begin in time")))??;
        Ok(SimTxn {
            txn: begun,
            sim: self.sim.clone(),
        })
    }

    async fn decide(&self, group: u64, gid: GlobalTxnId, outcome: Outcome) -> Result<()> {
        let shared = &self.sim.shared;
        if shared.roll(shared.faults.crash_while_announcing) {
            shared.stats().crashes += 1;
            return std::future::pending().await;
        }
        if shared.roll(shared.faults.drop_decide) {
            shared.stats().dropped_decides += 1;
            return Err(Error::Unavailable(format!(
                "the decide of {gid} to group {group} was dropped"
            )));
        }
        let engine = self.sim.leader(group)?;
        rpc(async move { engine.decide(gid, outcome).await }).await
    }

    /// Tells the participants; once every one has a commit, the
    /// coordinator forgets its outcome record (through its log, as the
    /// server's `Forget` command): a late resolution then finds nothing and
    /// records an abort, which every participant, having decided, ignores.
    /// The checkers catch any transaction that this splits.
    async fn announce(
        &self,
        coordinator: u64,
        gid: GlobalTxnId,
        participants: Vec<u64>,
        outcome: Outcome,
    ) {
        let told = tell_participants(self, gid, &participants, outcome).await;
        if !told || !matches!(outcome, Outcome::Committed(_)) {
            return;
        }
        let Ok(handle) = self.sim.log_handle(coordinator) else {
            return;
        };
        // In the background, as the server's gateway does: the client has
        // its answer already.
        let shared = self.sim.shared.clone();
        tokio::spawn(async move {
            let forgot = handle
                .append(move |log, _| {
                    log.outcomes.remove(&gid);
                    Ok(())
                })
                .await;
            if forgot.is_ok() {
                shared.stats().forgotten += 1;
            }
        });
    }

    fn new_gid(&self) -> GlobalTxnId {
        GlobalTxnId(u128::from(
            self.sim.last_gid.fetch_add(1, Ordering::SeqCst) + 1,
        ))
    }

    fn now(&self) -> TtInterval {
        self.tt.now()
    }
}

/// How a client's transaction ended.
enum Fate {
    /// Committed, at this timestamp if it wrote.
    Committed(Option<Timestamp>),
    /// Aborted with a retryable error.
    Aborted,
    /// The outcome is unknown.
    Unknown,
}

/// The kind of a retryable error, for the counters.
fn kind(err: &Error) -> &'static str {
    match err {
        Error::Wounded { .. } => "wounded",
        Error::LockTimeout { .. } => "lock timeout",
        Error::NotLeader { .. } => "not leader",
        Error::Unavailable(_) => "unavailable",
        Error::Aborted(_) => "aborted",
        _ => "other",
    }
}

/// One client run: its history, and the violations it saw on the spot.
#[derive(Default)]
struct History {
    /// Bank snapshot reads.
    bank_reads: Vec<BankRead>,
    /// List-append transactions.
    list_txns: Vec<ListAppendTxn>,
    /// Transactions with a timestamp, for external consistency.
    timestamped: Vec<TimestampedTxn>,
    /// Errors no client may see (neither retryable nor ambiguous).
    unexpected: Vec<String>,
    /// The next operation id.
    next_id: u64,
}

/// A client's view: its engine, the history, the counters.
struct Client {
    /// The client's number.
    id: u64,
    /// Its gateway's engine.
    db: DistEngine<Gateway>,
    /// The cluster.
    sim: Arc<Sim>,
    /// What everyone saw.
    history: Arc<Mutex<History>>,
    /// The client's choices.
    rng: StdRng,
}

impl Client {
    fn truth(&self) -> u64 {
        self.sim.shared.truth().as_nanos()
    }

    fn next_id(&self) -> u64 {
        let mut history = self.history.lock().expect("history poisoned");
        history.next_id += 1;
        history.next_id
    }

    /// Sorts an error: retryable (counted), ambiguous, or a violation.
    fn fate_of(&self, err: Error) -> Fate {
        if let Error::AmbiguousCommit(_) = err {
            self.sim.shared.stats().unknown += 1;
            return Fate::Unknown;
        }
        if err.is_retryable() {
            *self
                .sim
                .shared
                .stats()
                .retryable
                .entry(kind(&err))
                .or_default() += 1;
        } else {
            self.history
                .lock()
                .expect("history poisoned")
                .unexpected
                .push(format!("client {}: {err}", self.id));
        }
        Fate::Aborted
    }

    /// Commits `txn` within the client's deadline.
    async fn commit(&self, txn: meridian_txn::DistTxn<Gateway>) -> Fate {
        match tokio::time::timeout(COMMIT_DEADLINE, txn.commit()).await {
            Ok(Ok(ts)) => {
                let mut stats = self.sim.shared.stats();
                stats.committed += 1;
                stats.committed_writes += u64::from(ts.is_some());
                drop(stats);
                Fate::Committed(ts)
            }
            Ok(Err(err)) => self.fate_of(err),
            Err(_) => {
                self.sim.shared.stats().unknown += 1;
                Fate::Unknown
            }
        }
    }

    /// Records a transaction with a timestamp for external consistency
    /// (where a snapshot read counts only as the later transaction; see
    /// `check_external_consistency`).
    fn timestamped(&self, id: u64, ts: Timestamp, invoked_at: u64, read_only: bool) {
        let completed_at = self.truth();
        self.history
            .lock()
            .expect("history poisoned")
            .timestamped
            .push(TimestampedTxn {
                id,
                commit_ts: ts.as_nanos(),
                invoked_at,
                completed_at,
                read_only,
            });
    }
}

// ---------------------------------------------------------------------------
// The bank.

/// Accounts, spread round-robin over the groups.
const ACCOUNTS: usize = 8;
/// Each account's opening balance.
const OPENING: i64 = 100;

fn account(i: usize) -> Vec<u8> {
    format!("{}/acct{i:02}", i as u64 % GROUPS).into_bytes()
}

fn parse_balance(value: Option<Vec<u8>>) -> Result<i64> {
    let value = value.ok_or_else(|| Error::Internal("an account vanished".into()))?;
    String::from_utf8_lossy(&value)
        .parse()
        .map_err(|err| Error::Internal(format!("a balance that is not a number: {err}")))
}

/// Reads every balance in `txn`.
async fn read_balances<T: Transaction>(txn: &mut T) -> Result<Vec<i64>> {
    let mut balances = Vec::with_capacity(ACCOUNTS);
    for i in 0..ACCOUNTS {
        balances.push(parse_balance(
            txn.get(&account(i), LockStrength::Shared).await?,
        )?);
    }
    Ok(balances)
}

impl Client {
    /// Runs the bank workload's transactions.
    async fn bank(mut self) {
        for _ in 0..TXNS_PER_CLIENT {
            let think = Duration::from_micros(self.rng.random_range(0..1_000));
            tokio::time::sleep(think).await;
            match self.rng.random_range(0..10) {
                0..6 => self.transfer().await,
                6..8 => self.read_all(TxnMode::ReadWrite).await,
                8 => self.read_all(TxnMode::ReadOnly(ReadTime::Strong)).await,
                _ => {
                    let back = Duration::from_micros(self.rng.random_range(0..20_000));
                    let ts = self.db.now().earliest.saturating_sub(back);
                    self.read_all(TxnMode::ReadOnly(ReadTime::At(ts))).await
                }
            }
        }
    }

    /// Moves money between two random accounts (if the first has enough).
    async fn transfer(&mut self) {
        let from = self.rng.random_range(0..ACCOUNTS);
        let to = (from + self.rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
        let amount = self.rng.random_range(1..=30);
        let id = self.next_id();
        let invoked_at = self.truth();
        let mut txn = match self.db.begin(TxnMode::ReadWrite).await {
            Ok(txn) => txn,
            Err(err) => {
                self.fate_of(err);
                return;
            }
        };
        let moved: Result<()> = async {
            let a = parse_balance(txn.get(&account(from), LockStrength::Exclusive).await?)?;
            let b = parse_balance(txn.get(&account(to), LockStrength::Exclusive).await?)?;
            if a >= amount {
                txn.put(account(from), (a - amount).to_string().into_bytes())
                    .await?;
                txn.put(account(to), (b + amount).to_string().into_bytes())
                    .await?;
            }
            Ok(())
        }
        .await;
        if let Err(err) = moved {
            let _ = txn.rollback().await;
            self.fate_of(err);
            return;
        }
        if let Fate::Committed(Some(s)) = self.commit(txn).await {
            self.timestamped(id, s, invoked_at, false);
        }
    }

    /// Reads every balance in one transaction of `mode`.
    async fn read_all(&mut self, mode: TxnMode) {
        let id = self.next_id();
        let invoked_at = self.truth();
        let mut txn = match self.db.begin(mode).await {
            Ok(txn) => txn,
            Err(err) => {
                self.fate_of(err);
                return;
            }
        };
        let balances = match read_balances(&mut txn).await {
            Ok(balances) => balances,
            Err(err) => {
                let _ = txn.rollback().await;
                self.fate_of(err);
                return;
            }
        };
        let read_ts = txn.read_ts();
        // Locked reads count only if the locks held to the end.
        if let Fate::Committed(_) = self.commit(txn).await {
            let mut history = self.history.lock().expect("history poisoned");
            history.bank_reads.push(BankRead { id, balances });
            drop(history);
            if mode == TxnMode::ReadOnly(ReadTime::Strong) {
                let ts = read_ts.expect("a read-only transaction has a snapshot");
                self.timestamped(id, ts, invoked_at, true);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// List-append.

/// Keys of the list-append workload, spread round-robin over the groups.
const LIST_KEYS: u64 = 8;

fn list_key(k: u64) -> Vec<u8> {
    format!("{}/list{k:02}", k % GROUPS).into_bytes()
}

fn parse_list(value: Option<Vec<u8>>) -> Vec<u64> {
    match value {
        None => Vec::new(),
        Some(bytes) => String::from_utf8_lossy(&bytes)
            .split(',')
            .map(|v| v.parse().expect("list elements are numbers"))
            .collect(),
    }
}

fn encode_list(list: &[u64]) -> Vec<u8> {
    list.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes()
}

/// One planned micro-operation.
#[derive(Clone, Copy)]
enum Step {
    /// Read a key's list.
    Read(u64),
    /// Append a value to a key's list.
    Append(u64, u64),
}

impl Client {
    /// Runs the list-append workload's transactions.
    async fn list_append(mut self) {
        let mut appended = 0;
        for _ in 0..TXNS_PER_CLIENT {
            let think = Duration::from_micros(self.rng.random_range(0..1_000));
            tokio::time::sleep(think).await;
            let read_only = self.rng.random_bool(0.2);
            let steps: Vec<Step> = (0..self.rng.random_range(1..=4))
                .map(|_| {
                    let key = self.rng.random_range(0..LIST_KEYS);
                    if read_only || self.rng.random_bool(0.5) {
                        Step::Read(key)
                    } else {
                        appended += 1;
                        Step::Append(key, self.id * 1_000_000 + appended)
                    }
                })
                .collect();
            self.list_txn(read_only, steps).await;
        }
    }

    /// Runs one list-append transaction and records it.
    async fn list_txn(&mut self, read_only: bool, steps: Vec<Step>) {
        let id = self.next_id();
        let invoked_at = self.truth();
        let mode = if read_only {
            TxnMode::ReadOnly(ReadTime::Strong)
        } else {
            TxnMode::ReadWrite
        };
        let mut ops = Vec::new();
        let fate = match self.db.begin(mode).await {
            Err(err) => self.fate_of(err),
            Ok(mut txn) => {
                let ran: Result<()> = async {
                    for step in &steps {
                        match *step {
                            Step::Read(key) => {
                                let value = txn.get(&list_key(key), LockStrength::Shared).await?;
                                ops.push(MicroOp::Read(key, parse_list(value)));
                            }
                            Step::Append(key, value) => {
                                // Recorded first: an append that may have
                                // been buffered is part of the attempt.
                                ops.push(MicroOp::Append(key, value));
                                let k = list_key(key);
                                let mut list =
                                    parse_list(txn.get(&k, LockStrength::Exclusive).await?);
                                list.push(value);
                                txn.put(k, encode_list(&list)).await?;
                            }
                        }
                    }
                    Ok(())
                }
                .await;
                match ran {
                    Err(err) => {
                        let _ = txn.rollback().await;
                        self.fate_of(err)
                    }
                    Ok(()) => {
                        let read_ts = txn.read_ts();
                        let fate = self.commit(txn).await;
                        match (&fate, read_ts) {
                            (Fate::Committed(Some(s)), _) => {
                                self.timestamped(id, *s, invoked_at, false)
                            }
                            (Fate::Committed(None), Some(r)) => {
                                self.timestamped(id, r, invoked_at, true)
                            }
                            _ => {}
                        }
                        fate
                    }
                }
            }
        };
        let outcome = match fate {
            Fate::Committed(_) => Seen::Committed,
            Fate::Aborted => Seen::Aborted,
            Fate::Unknown => Seen::Unknown,
        };
        let completed_at = self.truth();
        self.history
            .lock()
            .expect("history poisoned")
            .list_txns
            .push(ListAppendTxn {
                id,
                outcome,
                ops,
                invoked_at,
                completed_at,
            });
    }
}

// ---------------------------------------------------------------------------
// Runs.

/// Which workload a run drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    /// Transfers and balance reads.
    Bank,
    /// Elle's list-append.
    ListAppend,
}

/// The result of one seeded run.
struct Report {
    /// The seed.
    seed: u64,
    /// The counters.
    stats: Stats,
    /// Every consistency violation the checkers found.
    violations: Vec<String>,
    /// Errors no client should see (neither retryable nor ambiguous), and
    /// a cluster that would not settle.
    errors: Vec<String>,
    /// A digest of everything observable, to compare replays.
    fingerprint: String,
    /// Virtual time the run took.
    elapsed: Duration,
}

impl Report {
    fn summary(&self) -> String {
        let s = &self.stats;
        format!(
            "seed {}: {:?} virtual; committed {}, unknown {}, retryable {:?}; failovers {}, \
             hand-overs {}, lost entries {}, ambiguous appends {}, dropped decides {}, crashes {}, resolved \
             {} committed / {} aborted",
            self.seed,
            self.elapsed,
            s.committed,
            s.unknown,
            s.retryable,
            s.failovers,
            s.handovers,
            s.lost_entries,
            s.ambiguous_appends,
            s.dropped_decides,
            s.crashes,
            s.resolved_committed,
            s.resolved_aborted,
        )
    }
}

/// Runs `workload` under `faults` with `seed`, on a fresh single-threaded
/// runtime with paused time, and checks the history.
fn run(seed: u64, workload: Workload, faults: Faults) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(simulate(seed, workload, faults))
}

async fn simulate(seed: u64, workload: Workload, faults: Faults) -> Report {
    let initial: Vec<(Vec<u8>, Vec<u8>)> = match workload {
        Workload::Bank => (0..ACCOUNTS)
            .map(|i| (account(i), OPENING.to_string().into_bytes()))
            .collect(),
        Workload::ListAppend => Vec::new(),
    };
    let sim = Sim::new(seed, faults, &initial);
    let gateways: Vec<Arc<Gateway>> = (0..GATEWAYS)
        .map(|i| {
            Arc::new(Gateway {
                sim: sim.clone(),
                tt: sim.shared.clock(faults.gateway_lag * i as u32),
            })
        })
        .collect();
    let background = sim.start_background();
    let history = Arc::new(Mutex::new(History::default()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let client = Client {
                id,
                db: DistEngine::new(gateways[(id % GATEWAYS) as usize].clone()),
                sim: sim.clone(),
                history: history.clone(),
                rng: StdRng::seed_from_u64(seed.wrapping_mul(1_000).wrapping_add(id)),
            };
            match workload {
                Workload::Bank => tokio::spawn(client.bank()),
                Workload::ListAppend => tokio::spawn(client.list_append()),
            }
        })
        .collect();
    for client in clients {
        if let Err(err) = client.await {
            std::panic::resume_unwind(err.into_panic());
        }
    }

    let mut violations = Vec::new();
    let mut errors = Vec::new();
    if let Err(err) = sim.heal().await {
        errors.push(err);
    }
    for task in &background {
        task.abort();
    }
    // A final strong read through a fresh gateway, after everything.
    let db = DistEngine::new(Arc::new(Gateway {
        sim: sim.clone(),
        tt: sim.shared.clock(Duration::ZERO),
    }));
    let mut history = std::mem::take(&mut *history.lock().expect("history poisoned"));
    errors.extend(history.unexpected.iter().cloned());
    let invoked_at = sim.shared.truth().as_nanos();
    let mut last = db
        .begin(TxnMode::ReadOnly(ReadTime::Strong))
        .await
        .expect("a final read begins");
    match workload {
        Workload::Bank => {
            match read_balances(&mut last).await {
                Ok(balances) => history.bank_reads.push(BankRead {
                    id: FINAL_READ,
                    balances,
                }),
                Err(err) => errors.push(format!("the final read failed: {err}")),
            }
            if let Err(violation) = check_bank(ACCOUNTS as i64 * OPENING, &history.bank_reads) {
                violations.push(format!("bank: {violation}"));
            }
        }
        Workload::ListAppend => {
            let mut ops = Vec::new();
            for k in 0..LIST_KEYS {
                match last.get(&list_key(k), LockStrength::Shared).await {
                    Ok(value) => ops.push(MicroOp::Read(k, parse_list(value))),
                    Err(err) => errors.push(format!("the final read failed: {err}")),
                }
            }
            // Every acknowledged append must be in the final read (Elle
            // orders only what some read saw, so it cannot tell by itself).
            let finals: BTreeMap<u64, &Vec<u64>> = ops
                .iter()
                .filter_map(|op| match op {
                    MicroOp::Read(k, list) => Some((*k, list)),
                    MicroOp::Append(..) => None,
                })
                .collect();
            for txn in history
                .list_txns
                .iter()
                .filter(|t| t.outcome == Seen::Committed)
            {
                for op in &txn.ops {
                    if let MicroOp::Append(k, v) = op {
                        if finals.get(k).is_some_and(|list| !list.contains(v)) {
                            violations.push(format!(
                                "lost write: T{} appended {v} to key {k}, committed, but the \
                                 final read does not have it",
                                txn.id
                            ));
                        }
                    }
                }
            }
            let completed_at = sim.shared.truth().as_nanos();
            history.list_txns.push(ListAppendTxn {
                id: FINAL_READ,
                outcome: Seen::Committed,
                ops,
                invoked_at,
                completed_at,
            });
            if let Err(violation) = check_list_append(&history.list_txns) {
                violations.push(format!("list-append: {violation}"));
            }
        }
    }
    if let Err(violation) = check_external_consistency(&history.timestamped) {
        violations.push(violation.to_string());
    }

    let stats = sim.shared.stats().clone();
    let mut fingerprint = format!("{stats:?}");
    for read in &history.bank_reads {
        let _ = write!(fingerprint, "|{}:{:?}", read.id, read.balances);
    }
    for txn in &history.list_txns {
        let _ = write!(
            fingerprint,
            "|{}:{:?}:{:?}:{}:{}",
            txn.id, txn.outcome, txn.ops, txn.invoked_at, txn.completed_at
        );
    }
    for txn in &history.timestamped {
        let _ = write!(fingerprint, "|{txn:?}");
    }
    Report {
        seed,
        stats,
        violations,
        errors,
        fingerprint,
        elapsed: sim.shared.origin.elapsed(),
    }
}

/// The seeds to run: `MERIDIAN_SIM_SEED` alone if set, else `1..=SEEDS`.
fn seeds() -> Vec<u64> {
    match std::env::var("MERIDIAN_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("MERIDIAN_SIM_SEED is a number")],
        Err(_) => (1..=SEEDS).collect(),
    }
}

/// Runs every seed and fails, naming the seed, on the first violation or a
/// run that committed fewer than `min_committed` transactions (half of
/// them writes). Over several seeds, every fault must have happened and
/// every path of two-phase commit been taken, so that no test passes
/// vacuously.
fn run_seeds(workload: Workload, faults: Faults, min_committed: u64) {
    let seeds = seeds();
    let mut total = Stats::default();
    for &seed in &seeds {
        println!("running {workload:?} seed {seed}");
        let report = run(seed, workload, faults);
        println!("{}", report.summary());
        assert!(
            report.violations.is_empty() && report.errors.is_empty(),
            "{workload:?} seed {seed} failed (replay with MERIDIAN_SIM_SEED={seed}):\n{}\n{}",
            [&report.violations[..], &report.errors[..]]
                .concat()
                .join("\n"),
            report.summary()
        );
        let s = &report.stats;
        assert!(
            s.committed >= min_committed && s.committed_writes >= min_committed / 2,
            "{workload:?} seed {seed} made too little progress (replay with \
             MERIDIAN_SIM_SEED={seed}): {}",
            report.summary()
        );
        total.failovers += s.failovers;
        total.handovers += s.handovers;
        total.lost_entries += s.lost_entries;
        total.ambiguous_appends += s.ambiguous_appends;
        total.dropped_decides += s.dropped_decides;
        total.crashes += s.crashes;
        total.forgotten += s.forgotten;
        total.resolved_committed += s.resolved_committed;
        total.resolved_aborted += s.resolved_aborted;
        total.prepares += s.prepares;
        total.unknown += s.unknown;
    }
    if seeds.len() > 1 {
        let t = &total;
        let happened = [
            ("failovers", t.failovers),
            ("hand-overs", t.handovers),
            ("lost log entries", t.lost_entries),
            ("ambiguous appends", t.ambiguous_appends),
            ("dropped decides", t.dropped_decides),
            ("gateway crashes", t.crashes),
            ("forgotten outcomes", t.forgotten),
            ("resolutions to commit", t.resolved_committed),
            ("resolutions to abort", t.resolved_aborted),
            ("prepares", t.prepares),
            ("unknown outcomes", t.unknown),
        ];
        for (what, count) in happened {
            assert!(
                count > 0,
                "{workload:?}: no {what} in {} seeds",
                seeds.len()
            );
        }
    }
}

#[test]
fn bank_money_is_conserved_across_failovers_lost_decides_and_crashed_gateways() {
    run_seeds(Workload::Bank, Faults::all(), 60);
}

#[test]
fn list_append_is_strictly_serializable_and_externally_consistent_under_faults() {
    run_seeds(Workload::ListAppend, Faults::all(), 60);
}

#[test]
fn a_seed_replays_the_same_run() {
    let seed = seeds()[0];
    for workload in [Workload::Bank, Workload::ListAppend] {
        let first = run(seed, workload, Faults::all());
        let second = run(seed, workload, Faults::all());
        assert_eq!(
            first.fingerprint, second.fingerprint,
            "{workload:?} seed {seed} did not replay"
        );
    }
}

/// The checkers are not vacuous: with participants committing on their own
/// (no two-phase commit) and coordinators failing after them, money appears
/// or vanishes and aborted appends become visible, and the checkers say so.
#[test]
fn without_two_phase_commit_the_checkers_see_torn_transactions() {
    let broken = Faults {
        no_two_phase: true,
        ..Faults::all()
    };
    for seed in 1..=5 {
        for workload in [Workload::Bank, Workload::ListAppend] {
            let report = run(seed, workload, broken);
            println!("broken {workload:?}: {}", report.summary());
            assert!(
                !report.violations.is_empty(),
                "{workload:?} seed {seed}: the checkers missed transactions committed in part"
            );
            println!("  caught: {}", report.violations[0]);
        }
    }
}

/// The same for clocks: when gateways' clocks run behind true time by ten
/// times the ε they claim, a strong read's snapshot (`TT.now().latest`) can
/// be older than a commit acknowledged before the read began, and the
/// checkers notice (external consistency, or a real-time cycle in Elle's
/// graph).
#[test]
fn clocks_outside_their_bound_break_external_consistency_and_the_checkers_see_it() {
    let lagging = Faults {
        gateway_lag: EPSILON * 10,
        ..Faults::all()
    };
    for seed in 1..=5 {
        for workload in [Workload::Bank, Workload::ListAppend] {
            let report = run(seed, workload, lagging);
            println!("lagging {workload:?}: {}", report.summary());
            assert!(
                !report.violations.is_empty(),
                "{workload:?} seed {seed}: the checkers missed clocks beyond their bound"
            );
            println!("  caught: {}", report.violations[0]);
        }
    }
}

/// Spanner §4.1.2: "the coordinator leader ensures that clients cannot see
/// any data committed by Ti until TT.after(si) is true". A snapshot read at
/// or above a commit's timestamp must therefore wait until the commit's
/// wait is over. If it sees the writes earlier, a strong read at a gateway
/// whose clock is ahead (its `TT.now().latest` is past `s`) sees a commit
/// that a later strong read at a gateway whose clock is behind misses: the
/// G-single-realtime cycle the list-append simulation finds with seed 7
/// (`T56 -rt-> T61 -rw-> T52 -wr-> T56`: T52 commits at s; T56, invoked
/// and completed before T52's commit wait ended, reads it; T61, invoked
/// after T56 completed, does not).
#[test]
fn a_snapshot_read_does_not_see_a_commit_before_its_commit_wait_is_over() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let tt = TrueTime::new(Arc::new(SimClock {
            origin: tokio::time::Instant::now(),
            offset_nanos: 0,
        }));
        let engine = LocalEngine::new(
            MemoryEngine::new(),
            tt.clone(),
            Arc::new(TokioSleeper),
            LocalConfig::default(),
        )
        .expect("an engine");
        let mut writer = engine.begin(TxnMode::ReadWrite).await.unwrap();
        writer.put(b"k".to_vec(), b"v".to_vec()).await.unwrap();
        let writer = tokio::spawn(async move { writer.commit().await });
        // The writer picks s = TT.now().latest, logs, and commit-waits.
        tokio::task::yield_now().await;
        assert_eq!(engine.commit_wait_stats().commits, 0, "commit wait is 2ε");
        // A strong read from a gateway whose clock is a little ahead.
        let snapshot = tt.now().latest.saturating_add(EPSILON / 2);
        let mut reader = engine
            .begin(TxnMode::ReadOnly(ReadTime::At(snapshot)))
            .await
            .unwrap();
        let seen = reader.get(b"k", LockStrength::Shared).await.unwrap();
        assert!(
            seen.is_none() || engine.commit_wait_stats().commits == 1,
            "a snapshot read at {snapshot} saw a commit before its commit wait was over \
             (TT.now() is {})",
            tt.now()
        );
        let s = writer.await.unwrap().unwrap().expect("it wrote");
        assert!(s <= snapshot);
    });
}
