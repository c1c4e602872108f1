//! A node's replica of one Paxos group: the driver task that runs the pure
//! [`Replica`] against real storage, a real clock and the network, the
//! group's state machine, and the transaction engine of its leader.
//!
//! # The driver (one tokio task per replica)
//!
//! The task owns the [`Replica`], its [`PaxosStore`] and the [`GroupState`].
//! It waits for an input (a peer's message, a proposal, a timer tick from the
//! node's monotonic clock), takes every other input already queued, and then
//! follows the Ready/advance contract of `meridian-paxos` to the letter,
//! for as long as the replica has a Ready:
//!
//! 1. send `messages`;
//! 2. persist the Ready (and a snapshot the driver just took) as one synced
//!    RocksDB batch;
//! 3. send `persisted_messages` (promises and acceptances: vows about
//!    durable state);
//! 4. install a received snapshot, apply `committed` (one batch with the
//!    applied index) and answer the proposers waiting for those commands;
//! 5. `advance`.
//!
//! A storage failure or a damaged log record stops the replica (its status
//! reports the error) rather than apply anything doubtful.
//!
//! # Memory and snapshots
//!
//! The state machine is durable by itself (its applied index is written
//! with what it applies), so the log needs to hold only what replicas that
//! are behind still lack. When the log's entries take more than
//! `max_log_bytes`, the driver truncates it ([`Replica::compact`]), keeping
//! the newest half; the snapshot the replica keeps is only an index and a
//! membership. A peer that needs truncated slots gets a snapshot the driver
//! dumps from the state machine when the replica asks
//! (`Ready::snapshot_wanted`). A received snapshot is installed into the
//! state machine in one synced batch with the replica's snapshot record, so
//! a crash leaves both or neither.
//!
//! # The leader's transaction engine
//!
//! Once the replica leads with a valid lease and has applied everything its
//! phase 1 recovered ([`Replica::can_serve_reads`]), the driver builds a
//! [`LeaderEngine`] for that leadership (ballot): Spanner's single-group
//! transaction protocol over the node's MVCC store with a fresh lock table
//! (`meridian_txn::LocalEngine`), whose commits go through the log
//! ([`leader::LeaderReplication`]) and whose timestamps start above the
//! largest commit timestamp applied. When the leadership ends the engine is
//! dropped: its transactions fail retryably at their next step (they held
//! only locks at the old leader, which nobody else will honour), while any
//! commit record they had logged is recovered by the next leader's phase 1
//! and applied before that leader serves anything.
//!
//! # Safe time
//!
//! The leader's engine hands commit records to the log in timestamp order,
//! and every later leader issues larger timestamps, so the largest commit
//! timestamp a replica has applied is its safe time: nothing at or below
//! it is still to come. An idle leader logs an empty commit record (a safe
//! time marker, `LocalEngine::advance_safe_time`) every
//! `safe_time_interval`, so that followers' safe time follows the clock and
//! they can serve snapshot reads (`route`).
//!
//! # Two-phase commit
//!
//! A new leader's engine takes over the transactions prepared under
//! earlier leaders from their prepare records in the state machine (their
//! locks, and their prepare timestamps holding reads back) before it
//! serves anything. A follower's safe time is `min(max applied, min(p) -
//! 1)` over the prepared transactions it applied (`state`).
//!
//! # Leader hand-over
//!
//! [`Group::transfer_leadership`] moves a serving leadership to another
//! voter without waiting out the lease (Paxos: `Replica::transfer_leadership`).
//! Timestamps must still grow across the two leaders, and the next leader
//! has not waited for this one's lease to end, so this one first **caps**
//! what it issued: its engine stops (every request is refused with
//! `NotLeader` naming the target), waits briefly for its read-only votes to
//! be decided, and logs a last safe time marker at `cap`, above every
//! timestamp it issued and the bound of every vote still open
//! (`LocalEngine::hand_over`). Only once the marker is applied does the
//! replica hand over; the next leader applies the marker before it serves
//! and starts its engine above the largest timestamp applied, so above
//! `cap`. If the hand-over fails or is abandoned, the replica campaigns
//! again (a new ballot, whose phase 1 recovers whatever the stopped engine
//! had in flight) and its new engine also starts above `cap`.
//!
//! Left out: snapshot streaming (a snapshot is one message, dumped into
//! memory while it is built and sent, and the dump runs on the driver
//! task).

mod driver;
pub mod leader;
pub mod state;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use meridian_error::{Error, Result};
use meridian_paxos::{
    Ballot, Envelope, Lease, Membership, MembershipChange, Nanos, NodeId, RoleKind, Slot,
};
use meridian_storage::{Engine, KeyRange, Mvcc};
use meridian_truetime::{Timestamp, TrueTime};
use meridian_txn::{LocalConfig, LocalEngine, LocalTxn, Sleeper};
use tokio::sync::{mpsc, oneshot, watch};

pub use state::{Command, GroupState, SharedSpans};

#[cfg(doc)]
use crate::paxos_log::PaxosStore;
#[cfg(doc)]
use meridian_paxos::Replica;

/// A node's storage, shared by all its replicas.
pub type Storage = Arc<dyn Engine>;

/// The transaction engine of a group's leader.
pub type LeaderEngine = LocalEngine<Storage>;

/// A transaction run by a group's leader.
pub type LeaderTxn = LocalTxn<Storage>;

/// The node's monotonic clock, in nanoseconds since the node started: the
/// only time the Paxos replicas see.
#[derive(Clone, Copy, Debug)]
pub struct MonoClock {
    /// When the node started.
    origin: Instant,
}

impl MonoClock {
    /// A clock reading 0 now.
    pub fn new() -> Self {
        MonoClock {
            origin: Instant::now(),
        }
    }

    /// Nanoseconds since the clock was made.
    pub fn now(&self) -> Nanos {
        self.origin.elapsed().as_nanos() as Nanos
    }
}

impl Default for MonoClock {
    fn default() -> Self {
        MonoClock::new()
    }
}

/// Where a replica's outbound messages go (the node's per-peer queues).
pub trait Outbox: Send + Sync + 'static {
    /// Queues `envelope` for its addressee. Never blocks; may drop (Paxos
    /// retransmits).
    fn send(&self, envelope: Envelope);
}

/// How the replicas of a node run.
#[derive(Clone, Debug)]
pub struct ReplicationOptions {
    /// How long a lease lasts on the granting replica's clock.
    pub lease: Duration,
    /// How often a leader sends heartbeats.
    pub heartbeat: Duration,
    /// A follower campaigns after hearing no leader for a random time in
    /// `[election_timeout, 2 * election_timeout)`.
    pub election_timeout: Duration,
    /// The bound on clock drift, in parts per million.
    pub max_drift_ppm: u64,
    /// How often the driver ticks its replica.
    pub tick: Duration,
    /// The memory a replica's log may take: past it, the driver truncates
    /// the log, keeping the newest half for replicas a little behind (one
    /// further behind is sent a snapshot of the state machine).
    pub max_log_bytes: usize,
    /// How long a commit waits for its log entry to be applied before its
    /// outcome is declared unknown.
    pub commit_timeout: Duration,
    /// An idle leader logs a safe time marker this often, so that
    /// followers can serve fresh snapshot reads.
    pub safe_time_interval: Duration,
    /// The leader's transaction settings (lock timeout).
    pub txn: LocalConfig,
    /// How long old versions are kept: reads (`AS OF SYSTEM TIME`) may go
    /// this far back; the node's garbage collector removes what no read
    /// at or after `now - gc_retention` can see.
    pub gc_retention: Duration,
    /// A range whose versions take more than this many bytes is split in
    /// two by the leader of its group (0: never).
    pub max_range_bytes: u64,
    /// How often a node looks whether it leads more groups than its share
    /// and hands one over (`rebalance`; zero: never).
    pub leader_rebalance_interval: Duration,
    /// How often the node serving the first group looks whether a replica
    /// should move: off a node that is dead, or from the node holding the
    /// most replicas to one holding two fewer (`replicas`; zero: never).
    pub replica_rebalance_interval: Duration,
    /// A node that has not answered for this long is dead: its replicas
    /// are moved to other nodes.
    pub dead_node_timeout: Duration,
}

impl Default for ReplicationOptions {
    fn default() -> Self {
        let cfg = meridian_paxos::Config::new(1, 0, 0, 0);
        ReplicationOptions {
            lease: Duration::from_nanos(cfg.lease_duration),
            heartbeat: Duration::from_nanos(cfg.heartbeat_interval),
            election_timeout: Duration::from_nanos(cfg.election_timeout),
            max_drift_ppm: cfg.max_drift_ppm,
            tick: Duration::from_millis(20),
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            commit_timeout: Duration::from_secs(30),
            safe_time_interval: Duration::from_nanos(cfg.heartbeat_interval),
            txn: LocalConfig::default(),
            gc_retention: DEFAULT_GC_RETENTION,
            max_range_bytes: DEFAULT_MAX_RANGE_BYTES,
            leader_rebalance_interval: DEFAULT_LEADER_REBALANCE_INTERVAL,
            replica_rebalance_interval: DEFAULT_REPLICA_REBALANCE_INTERVAL,
            dead_node_timeout: DEFAULT_DEAD_NODE_TIMEOUT,
        }
    }
}

impl ReplicationOptions {
    /// Short timers for tests and the demo's fast failover: 2 s leases.
    pub fn fast() -> Self {
        ReplicationOptions {
            lease: Duration::from_secs(2),
            heartbeat: Duration::from_millis(100),
            election_timeout: Duration::from_millis(500),
            tick: Duration::from_millis(10),
            commit_timeout: Duration::from_secs(10),
            safe_time_interval: Duration::from_millis(100),
            ..ReplicationOptions::default()
        }
    }

    /// The Paxos configuration of replica `node` of `group`.
    pub fn paxos_config(&self, node: NodeId, cluster: u64, group: u64) -> meridian_paxos::Config {
        meridian_paxos::Config {
            lease_duration: self.lease.as_nanos() as Nanos,
            heartbeat_interval: self.heartbeat.as_nanos() as Nanos,
            election_timeout: self.election_timeout.as_nanos() as Nanos,
            max_drift_ppm: self.max_drift_ppm,
            ..meridian_paxos::Config::new(node, cluster, group, rand::random())
        }
    }
}

/// The size beyond which a range is split by default (versions' keys and
/// values as stored).
pub const DEFAULT_MAX_RANGE_BYTES: u64 = 64 << 20;

/// How often a node rebalances leaderships by default.
pub const DEFAULT_LEADER_REBALANCE_INTERVAL: Duration = Duration::from_secs(10);

/// How often replicas are rebalanced by default.
pub const DEFAULT_REPLICA_REBALANCE_INTERVAL: Duration = Duration::from_secs(30);

/// How long a node may not answer before its replicas move, by default.
pub const DEFAULT_DEAD_NODE_TIMEOUT: Duration = Duration::from_secs(300);

/// The memory a replica's log may take by default.
pub const DEFAULT_MAX_LOG_BYTES: usize = 8 << 20;

/// How long old versions are kept by default: an hour of history for
/// `AS OF SYSTEM TIME`.
pub const DEFAULT_GC_RETENTION: Duration = Duration::from_secs(3600);

/// What a replica's driver needs from its node.
#[derive(Clone)]
pub struct GroupEnv {
    /// This node.
    pub node: NodeId,
    /// The cluster.
    pub cluster: u64,
    /// The node's storage.
    pub storage: Storage,
    /// The MVCC view of it that leaders read.
    pub mvcc: Arc<Mvcc<Storage>>,
    /// TrueTime.
    pub tt: TrueTime,
    /// How transactions sleep (commit wait, lock waits).
    pub sleeper: Arc<dyn Sleeper>,
    /// The replicas' clock.
    pub clock: MonoClock,
    /// Where messages go.
    pub outbox: Arc<dyn Outbox>,
    /// Timers and limits.
    pub options: ReplicationOptions,
}

/// How a replica comes to life.
#[derive(Clone, Debug)]
pub enum Start {
    /// A founding replica of a new group with this membership.
    Bootstrap(Membership),
    /// A restart from what the node persisted.
    Recover,
    /// A new, empty replica about to be added to the running group: it
    /// learns the group's state from the leader (log or snapshot), and
    /// votes once a chosen membership names it.
    Join,
}

/// A replica's state as its driver last published it.
#[derive(Clone, Debug)]
pub struct GroupStatus {
    /// The group.
    pub group: u64,
    /// Leader, candidate or follower.
    pub role: RoleKind,
    /// The leader this replica knows of.
    pub leader: Option<NodeId>,
    /// The commit index.
    pub commit: Slot,
    /// The last slot applied to the state machine.
    pub applied: Slot,
    /// The memory the replica's log takes, in bytes (bounded by
    /// [`ReplicationOptions::max_log_bytes`] once applied).
    pub log_bytes: usize,
    /// The log is truncated up to here: a replica lacking this slot needs
    /// a snapshot.
    pub snapshot_index: Slot,
    /// The voters of the committed membership.
    pub voters: Vec<NodeId>,
    /// The lease, while this replica leads with one.
    pub lease: Option<Lease>,
    /// The replica's safe time: every commit at or below it is applied
    /// here, and none will come (the largest commit or safe-time timestamp
    /// applied, the log holding them in timestamp order, but below every
    /// undecided prepare timestamp).
    pub safe_ts: Timestamp,
    /// Whether the replica serves transactions (leader, lease, caught up).
    pub serving: bool,
    /// On a leader, the voters that answered its recent heartbeats (itself
    /// included): those a hand-over may go to.
    pub live_voters: Vec<NodeId>,
    /// Why the replica stopped, if it did.
    pub failed: Option<Error>,
}

/// An input of a replica's driver.
pub(crate) enum Input {
    /// A message from a peer.
    Message(Envelope),
    /// A command to log (leader only); the reply comes once it is applied
    /// here, or at once if it could not be proposed.
    Propose {
        /// The command.
        data: Vec<u8>,
        /// The leadership whose engine made it, if one did: it is refused
        /// unless the replica still leads at that ballot. An engine's
        /// commands rest on its lock table, which the engine of a later
        /// leadership does not have (it restores only what the log holds
        /// when it starts), so they must never enter the log under another
        /// leadership, however late the engine hands them over.
        ballot: Option<Ballot>,
        /// Where the outcome goes.
        reply: oneshot::Sender<Result<()>>,
    },
    /// Start an election now.
    Campaign,
    /// Hand the leadership to `target`: the engine stopped, and its last
    /// marker at `cap` is applied.
    HandOver {
        /// The voter to hand over to.
        target: NodeId,
        /// The stopped engine's cap: later engines here start above it.
        cap: Timestamp,
        /// Whether the replica began the hand-over.
        reply: oneshot::Sender<Result<()>>,
    },
    /// A hand-over failed after the engine stopped (its marker was not
    /// applied): campaign again, and start the next engine above `cap`.
    LeadAgain {
        /// The stopped engine's cap.
        cap: Timestamp,
    },
    /// Propose a membership change (leader only); the reply comes once the
    /// committed membership shows it, or at once if it could not be
    /// proposed, or when the leadership is lost first (then the change may
    /// or may not be chosen: the caller looks again).
    ChangeVoters {
        /// The change.
        change: MembershipChange,
        /// Where the outcome goes.
        reply: oneshot::Sender<Result<()>>,
    },
    /// Stop for good (the node drops the replica): answered once the
    /// driver has written its last.
    Stop(oneshot::Sender<()>),
}

/// How long a hand-over waits for the leader's open read-only votes to be
/// decided before it caps above their bound instead (then the next leader's
/// first commits wait for this leader's lease to pass).
const HAND_OVER_DRAIN: Duration = Duration::from_millis(500);

/// Waits for the answer to a proposal of `group`, which comes once the
/// command is applied here. If the replica stops first, or `timeout`
/// passes, the command may or may not be in the log: the error is
/// `unknown(why)`.
pub(crate) async fn applied(
    group: u64,
    what: &str,
    answer: oneshot::Receiver<Result<()>>,
    timeout: Duration,
    unknown: fn(String) -> Error,
) -> Result<()> {
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(unknown(format!(
            "group {group}: the replica stopped while {what} was in flight"
        ))),
        Err(_) => Err(unknown(format!(
            "group {group}: {what} was not applied within {timeout:?} \
             (leadership may have changed)"
        ))),
    }
}

/// Whether `voters` show `change` made.
pub(crate) fn shows(voters: &[NodeId], change: MembershipChange) -> bool {
    match change {
        MembershipChange::Add(node) => voters.contains(&node),
        MembershipChange::Remove(node) => !voters.contains(&node),
    }
}

/// A running replica: the handle to its driver task. Dropping it stops the
/// task (at an input boundary: never in the middle of a persist).
pub struct Group {
    /// The group id.
    id: u64,
    /// The driver's inputs.
    inputs: mpsc::Sender<Input>,
    /// The driver's published status.
    status: watch::Receiver<GroupStatus>,
    /// The leader engine, while this replica serves.
    leader: Arc<RwLock<Option<LeaderEngine>>>,
    /// What the group serves, as this replica applied it.
    spans: SharedSpans,
    /// The driver task.
    task: tokio::task::JoinHandle<()>,
    /// When the replica started on this node.
    started: Instant,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id)
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

/// How many inputs may queue for a driver; peer messages beyond it are
/// dropped (Paxos retransmits), proposals wait.
const INPUT_QUEUE: usize = 8192;

impl Group {
    /// Starts the replica of `group` on this node (must be called inside a
    /// tokio runtime).
    /// `spans` are the key ranges the group owns.
    pub fn start(env: GroupEnv, group: u64, spans: Vec<KeyRange>, start: Start) -> Result<Group> {
        let (inputs, receiver) = mpsc::channel(INPUT_QUEUE);
        let leader = Arc::new(RwLock::new(None));
        let (driver, status) = driver::Driver::open(
            env,
            group,
            spans,
            start,
            receiver,
            inputs.downgrade(),
            leader.clone(),
        )?;
        let spans = driver.spans();
        let task = tokio::spawn(driver.run());
        Ok(Group {
            id: group,
            inputs,
            status,
            leader,
            spans,
            task,
            started: Instant::now(),
        })
    }

    /// When the replica started on this node (this run of the node).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The group id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Hands the driver a peer's message (dropped if the queue is full).
    pub fn deliver(&self, envelope: Envelope) {
        if self.inputs.try_send(Input::Message(envelope)).is_err() {
            tracing::debug!(group = self.id, "input queue full; dropped a message");
        }
    }

    /// Asks the replica to campaign for leadership now.
    pub fn campaign(&self) {
        let _ = self.inputs.try_send(Input::Campaign);
    }

    /// Hands this replica's leadership to the voter `target` without
    /// waiting out its lease (see the module docs, *Leader hand-over*).
    /// Returns once the replica began the hand-over; it completes when
    /// `target` leads, or is abandoned after an election timeout (the
    /// replica then campaigns again). Fails with [`Error::NotLeader`] if
    /// this replica does not serve, and [`Error::InvalidInput`] if `target`
    /// is not another voter.
    pub async fn transfer_leadership(&self, target: NodeId) -> Result<()> {
        let group = self.id;
        let status = self.status();
        let engine = self.leader_engine().ok_or(Error::NotLeader {
            group,
            leader: status.leader,
        })?;
        // This replica leads, so `status.leader` is this node.
        if Some(target) == status.leader || !status.voters.contains(&target) {
            return Err(Error::InvalidInput(format!(
                "group {group}: node {target} is not another voter"
            )));
        }
        let refusal = Error::NotLeader {
            group,
            leader: Some(target),
        };
        let (cap, marker) = engine.hand_over(refusal, HAND_OVER_DRAIN).await?;
        let stopped = |_| Error::Unavailable(format!("group {group}: the replica stopped"));
        if let Err(err) = marker.await {
            self.inputs
                .send(Input::LeadAgain { cap })
                .await
                .map_err(stopped)?;
            return Err(err);
        }
        let (reply, answer) = oneshot::channel();
        self.inputs
            .send(Input::HandOver { target, cap, reply })
            .await
            .map_err(stopped)?;
        answer
            .await
            .map_err(|_| Error::Unavailable(format!("group {group}: the replica stopped")))?
    }

    /// Stops the driver for good and returns once it wrote its last (its
    /// records may then be erased). Users of the replica get
    /// [`Error::Unavailable`] from then on.
    pub async fn shut_down(&self) {
        let (done, stopped) = oneshot::channel();
        if self.inputs.send(Input::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    }

    /// The latest published status.
    pub fn status(&self) -> GroupStatus {
        self.status.borrow().clone()
    }

    /// A receiver of status changes.
    pub fn watch(&self) -> watch::Receiver<GroupStatus> {
        self.status.clone()
    }

    /// What the group serves, as this replica has applied it.
    pub fn spans(&self) -> SharedSpans {
        self.spans.clone()
    }

    /// Proposes `command` if this replica leads, and waits until it is
    /// applied here (at most `timeout`; then the outcome is unknown, said as
    /// [`Error::Unavailable`]: for commands that may be proposed again).
    pub async fn propose(&self, command: Command, timeout: Duration) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let group = self.id;
        self.inputs
            .send(Input::Propose {
                data: command.encode(),
                ballot: None,
                reply,
            })
            .await
            .map_err(|_| Error::Unavailable(format!("group {group}: the replica stopped")))?;
        applied(group, "a proposal", answer, timeout, Error::Unavailable).await
    }

    /// Changes the group's voters by one (leader only: [`Error::NotLeader`]
    /// elsewhere) and waits, at most `timeout`, until the committed
    /// membership shows the change. A change the membership already shows
    /// is done at once, so a caller may repeat one whose outcome it did not
    /// learn. One change at a time: while another is in flight the answer
    /// is [`Error::Aborted`] (try again).
    pub async fn change_voters(&self, change: MembershipChange, timeout: Duration) -> Result<()> {
        let group = self.id;
        if shows(&self.status().voters, change) {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.inputs
            .send(Input::ChangeVoters { change, reply })
            .await
            .map_err(|_| Error::Unavailable(format!("group {group}: the replica stopped")))?;
        applied(
            group,
            "a membership change",
            answer,
            timeout,
            Error::Unavailable,
        )
        .await
    }

    /// The leader's transaction engine, while this replica serves.
    pub fn leader_engine(&self) -> Option<LeaderEngine> {
        self.leader.read().expect("leader slot poisoned").clone()
    }

    /// Waits until the status satisfies `ready`, for at most `timeout`
    /// (zero: only looks).
    pub async fn wait_for(
        &self,
        timeout: Duration,
        ready: impl Fn(&GroupStatus) -> bool,
    ) -> Result<GroupStatus> {
        let mut status = self.status.clone();
        // What a status settles: ready, or the replica failed.
        let settled = |current: GroupStatus| -> Option<Result<GroupStatus>> {
            if ready(&current) {
                return Some(Ok(current));
            }
            current.failed.map(Err)
        };
        if timeout.is_zero() {
            // No timer: tokio rounds deadlines up to the next millisecond,
            // so even a zero timeout would sleep up to a millisecond when
            // the status is not ready (a strong read at a follower).
            return settled(status.borrow().clone()).unwrap_or_else(|| {
                Err(Error::Unavailable(format!(
                    "group {}: condition not reached",
                    self.id
                )))
            });
        }
        let waited = tokio::time::timeout(timeout, async {
            loop {
                if let Some(done) = settled(status.borrow_and_update().clone()) {
                    return done;
                }
                if status.changed().await.is_err() {
                    return Err(Error::Unavailable(format!("group {} stopped", self.id)));
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            Err(Error::Unavailable(format!(
                "group {}: condition not reached within {timeout:?}",
                self.id
            )))
        })
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.task.abort();
    }
}
