//! The replica: its state, its public API (construction, `step`, `tick`,
//! `propose`, `ready`/`advance`), message validation, and the acceptor and
//! catch-up handlers that every role runs. Phase 1 is in `candidate.rs`,
//! phase 2 and leases in `leader.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use meridian_error::{Error, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::candidate::Candidate;
use crate::codec;
use crate::config::Config;
use crate::leader::{Handover, Leader};
use crate::log::Log;
use crate::message::{Envelope, Message, RejectReason, Rejection};
use crate::ready::{Lease, LeaseUpdate, Output, Ready};
use crate::types::{
    Ballot, Entry, HardState, Membership, MembershipChange, Nanos, NodeId, Slot, Snapshot, Value,
};

/// What a replica is doing, for status displays and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleKind {
    /// Accepting what a leader proposes.
    Follower,
    /// Running phase 1 to become leader.
    Candidate,
    /// Proposing (phase 2) with a ballot a quorum promised.
    Leader,
}

/// The role-specific state. Leader-only state (and so leader-only code) is
/// reachable only through [`Role::Leader`].
#[derive(Debug)]
pub(crate) enum Role {
    /// A follower, with the leader it last heard from.
    Follower(Option<NodeId>),
    /// A candidate running phase 1.
    Candidate(Candidate),
    /// The leader.
    Leader(Leader),
}

/// A lease this acceptor granted: it refuses to promise anyone else until
/// `until` on its own clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    /// The leader it is granted to; `None` after a restart (it may have
    /// granted one to anybody before it crashed).
    pub(crate) holder: Option<NodeId>,
    /// When it ends, local time.
    pub(crate) until: Nanos,
}

/// The state every role shares: the acceptor, the log, time and the output
/// being gathered for the next [`Ready`].
#[derive(Debug)]
pub(crate) struct Core {
    /// The configuration.
    pub(crate) cfg: Config,
    /// Seeded RNG for election jitter.
    rng: StdRng,
    /// The latest local time seen.
    pub(crate) now: Nanos,
    /// The highest ballot promised (durable).
    pub(crate) promised: Ballot,
    /// The log (durable) and commit index.
    pub(crate) log: Log,
    /// Committed entries handed to the driver up to here.
    pub(crate) delivered: Slot,
    /// Delivered entries the driver confirmed applied (by `advance`).
    pub(crate) applied: Slot,
    /// The value of `delivered` in the Ready awaiting `advance`.
    delivered_in_ready: Slot,
    /// The lease this acceptor grants, if any.
    pub(crate) grant: Option<Grant>,
    /// The highest ballot round seen anywhere, to campaign above it.
    pub(crate) highest_round: u64,
    /// When a follower or candidate next campaigns.
    pub(crate) election_deadline: Nanos,
    /// No catch-up request before this time (one in flight at a time).
    catchup_after: Nanos,
    /// Output gathered for the next Ready.
    pub(crate) out: Output,
    /// Whether the hard state changed since the last Ready.
    hard_dirty: bool,
    /// Requests from this replica's own role to its own acceptor.
    local_inbox: VecDeque<Message>,
    /// Responses to this replica from its own acceptor, sent only after the
    /// state they vouch for is persisted: released by the next `advance`.
    self_responses: Vec<Message>,
    /// Self responses of the Ready awaiting `advance`.
    awaiting_advance: Vec<Message>,
    /// The lease last reported in a Ready.
    reported_lease: Option<Lease>,
    /// Whether a Ready was handed out and not yet advanced.
    in_ready: bool,
    /// When each replica was last listed in [`Ready::snapshot_wanted`]:
    /// one snapshot per `election_timeout` at most, however often it asks.
    snapshot_asked: BTreeMap<NodeId, Nanos>,
}

/// A Multi-Paxos replica of one group. See the crate docs for the protocol
/// and the Ready/advance contract.
#[derive(Debug)]
pub struct Replica {
    /// Shared state.
    pub(crate) core: Core,
    /// Role-specific state.
    pub(crate) role: Role,
}

/// What a replica persisted, as the driver read it back at restart: encoded
/// records, each checked on decode.
#[derive(Clone, Debug, Default)]
pub struct Stored {
    /// The hard state record, if one was written.
    pub hard_state: Option<Vec<u8>>,
    /// The latest snapshot record, if any.
    pub snapshot: Option<Vec<u8>>,
    /// The log entry records (any order).
    pub entries: Vec<Vec<u8>>,
}

impl Core {
    /// The envelope header for a message to `to`.
    fn envelope(&self, to: NodeId, message: Message) -> Envelope {
        Envelope {
            cluster: self.cfg.cluster,
            group: self.cfg.group,
            from: self.cfg.id,
            to,
            epoch: self.log.committed_config().0,
            message,
        }
    }

    /// Sends at once (the message vouches for nothing unpersisted).
    pub(crate) fn send(&mut self, to: NodeId, message: Message) {
        if to == self.cfg.id {
            self.local_inbox.push_back(message);
        } else {
            let env = self.envelope(to, message);
            self.out.messages.push(env);
        }
    }

    /// Sends once this Ready's state is persisted.
    pub(crate) fn send_after_persist(&mut self, to: NodeId, message: Message) {
        if to == self.cfg.id {
            self.self_responses.push(message);
        } else {
            let env = self.envelope(to, message);
            self.out.persisted_messages.push(env);
        }
    }

    /// Stores an entry in the log and queues it for persistence.
    pub(crate) fn persist_entry(&mut self, entry: Entry) {
        if self.log.put(entry.clone()) {
            self.out.entries.insert(entry.slot, entry);
        }
    }

    /// Asks the driver for a snapshot to send to `to`, unless one was asked
    /// for lately (building one reads the whole state machine).
    pub(crate) fn want_snapshot(&mut self, to: NodeId) {
        let now = self.now;
        let again_at = |asked: Nanos| asked.saturating_add(self.cfg.election_timeout);
        if self
            .snapshot_asked
            .get(&to)
            .is_some_and(|t| now < again_at(*t))
        {
            return;
        }
        self.snapshot_asked.insert(to, now);
        self.out.snapshot_wanted.push(to);
    }

    /// Marks the hard state for persistence.
    pub(crate) fn hard_changed(&mut self) {
        self.hard_dirty = true;
    }

    /// Raises the promised ballot (durable) if `ballot` is higher.
    pub(crate) fn promise(&mut self, ballot: Ballot) {
        self.highest_round = self.highest_round.max(ballot.round);
        if ballot > self.promised {
            self.promised = ballot;
            self.hard_dirty = true;
        }
    }

    /// Picks a new randomized election deadline.
    pub(crate) fn reset_election_timer(&mut self) {
        let t = self.cfg.election_timeout;
        let jitter = self.rng.random_range(0..t.max(1));
        self.election_deadline = self.now.saturating_add(t + jitter);
    }

    /// The nodes of every membership in force or pending: the committed one
    /// and those of accepted, unchosen changes.
    pub(crate) fn active_configs(&self) -> Vec<Membership> {
        let mut configs = vec![self.log.committed_config().1.clone()];
        for (_, m) in self.log.open_configs() {
            if !configs.contains(m) {
                configs.push(m.clone());
            }
        }
        configs
    }

    /// Whether this replica votes in its committed membership.
    pub(crate) fn is_voter(&self) -> bool {
        self.log.committed_config().1.contains(self.cfg.id)
    }

    /// Whether the acceptor's lease grant forbids promising `candidate`.
    pub(crate) fn grant_blocks(&self, candidate: NodeId) -> Option<Grant> {
        self.grant
            .filter(|g| self.now < g.until && g.holder != Some(candidate))
    }

    /// Asks `from` for chosen entries after our commit index, unless a
    /// request is already in flight.
    pub(crate) fn request_catch_up(&mut self, from: NodeId, force: bool) {
        if from == self.cfg.id || (!force && self.now < self.catchup_after) {
            return;
        }
        self.catchup_after = self.now + self.cfg.heartbeat_interval;
        let first = self.log.commit + 1;
        self.send(from, Message::CatchUpRequest { from: first });
    }

    /// Learns a leader's commit index: slots up to it whose entry here was
    /// accepted in the leader's ballot hold the chosen value. For the rest,
    /// asks the leader for the chosen entries.
    pub(crate) fn learn_commit(&mut self, leader: NodeId, ballot: Ballot, commit: Slot) {
        if self.log.commit_through(commit, Some(ballot)) {
            self.hard_dirty = true;
        }
        if self.log.commit < commit {
            self.request_catch_up(leader, false);
        }
    }
}

impl Replica {
    fn with(cfg: Config, snapshot: Snapshot, now: Nanos) -> Result<Self> {
        cfg.validate()?;
        let rng = StdRng::seed_from_u64(cfg.seed);
        let mut core = Core {
            rng,
            now,
            promised: Ballot::ZERO,
            log: Log::new(snapshot),
            delivered: 0,
            applied: 0,
            delivered_in_ready: 0,
            grant: None,
            highest_round: 0,
            election_deadline: now,
            catchup_after: 0,
            out: Output::default(),
            hard_dirty: false,
            local_inbox: VecDeque::new(),
            self_responses: Vec::new(),
            awaiting_advance: Vec::new(),
            reported_lease: None,
            in_ready: false,
            snapshot_asked: BTreeMap::new(),
            cfg,
        };
        core.reset_election_timer();
        Ok(Replica {
            core,
            role: Role::Follower(None),
        })
    }

    /// A replica of a new group whose first membership is `membership`. Its
    /// first [`Ready`] carries that membership as a snapshot at index 0, to be
    /// persisted like any other.
    pub fn bootstrap(cfg: Config, membership: Membership, now: Nanos) -> Result<Self> {
        if membership.voters.is_empty() {
            return Err(Error::InvalidInput(
                "paxos: empty bootstrap membership".into(),
            ));
        }
        let snapshot = Snapshot {
            index: 0,
            membership,
            membership_slot: 0,
            data: Vec::new(),
        };
        let mut replica = Replica::with(cfg, snapshot.clone(), now)?;
        replica.core.out.snapshot = Some(snapshot);
        replica.core.hard_dirty = true;
        Ok(replica)
    }

    /// A new, empty replica that is about to be added to an existing group:
    /// it knows no membership, never campaigns until a chosen membership
    /// names it, and learns the group's state from the leader (log or
    /// snapshot).
    pub fn join(cfg: Config, now: Nanos) -> Result<Self> {
        Replica::with(
            cfg,
            Snapshot {
                index: 0,
                membership: Membership::default(),
                membership_slot: 0,
                data: Vec::new(),
            },
            now,
        )
    }

    /// A replica restarting from what it persisted. `applied` is the slot the
    /// driver's state machine reflects (at least the snapshot's index):
    /// committed entries after it are delivered again by the first Ready.
    ///
    /// A record that fails its checksum is [`Error::Corruption`]: the replica
    /// does not start rather than use damaged state. After a restart the
    /// replica refuses to promise any ballot for one `lease_duration`: it may
    /// have granted a lease before it crashed and has forgotten to whom.
    pub fn recover(cfg: Config, stored: &Stored, applied: Slot, now: Nanos) -> Result<Self> {
        let snapshot = match &stored.snapshot {
            Some(bytes) => codec::decode_snapshot(bytes)?,
            None => Snapshot {
                index: 0,
                membership: Membership::default(),
                membership_slot: 0,
                data: Vec::new(),
            },
        };
        let hard = match &stored.hard_state {
            Some(bytes) => codec::decode_hard_state(bytes)?,
            None => HardState::default(),
        };
        let mut entries = Vec::with_capacity(stored.entries.len());
        for bytes in &stored.entries {
            entries.push(codec::decode_entry(bytes)?);
        }
        if applied < snapshot.index {
            return Err(Error::InvalidInput(format!(
                "paxos: applied index {applied} is below the snapshot's {}",
                snapshot.index
            )));
        }
        let snapshot_index = snapshot.index;
        let mut replica = Replica::with(cfg, snapshot.without_data(), now)?;
        let core = &mut replica.core;
        for entry in entries {
            core.log.put(entry);
        }
        core.promised = hard.promised;
        core.highest_round = hard.promised.round;
        // The commit index is only a hint of what is chosen: it is valid
        // for the entries present (all persisted with it).
        core.log.commit_through(hard.commit, None);
        if core.log.commit < hard.commit.max(snapshot_index) && hard.commit > snapshot_index {
            return Err(Error::Corruption(format!(
                "paxos: hard state says slot {} is committed but the log ends at {}",
                hard.commit, core.log.commit
            )));
        }
        if applied > core.log.commit {
            return Err(Error::InvalidInput(format!(
                "paxos: applied index {applied} is above the commit index {}",
                core.log.commit
            )));
        }
        core.delivered = applied;
        core.applied = applied;
        core.delivered_in_ready = applied;
        core.grant = Some(Grant {
            holder: None,
            until: now.saturating_add(core.cfg.lease_duration),
        });
        Ok(replica)
    }

    // ---- Queries ----

    /// This replica's node id.
    pub fn id(&self) -> NodeId {
        self.core.cfg.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.core.cfg
    }

    /// The current role.
    pub fn role(&self) -> RoleKind {
        match self.role {
            Role::Follower(_) => RoleKind::Follower,
            Role::Candidate(_) => RoleKind::Candidate,
            Role::Leader(_) => RoleKind::Leader,
        }
    }

    /// The leader this replica knows of (itself if leading).
    pub fn leader(&self) -> Option<NodeId> {
        match &self.role {
            Role::Follower(leader) => *leader,
            Role::Candidate(_) => None,
            Role::Leader(_) => Some(self.core.cfg.id),
        }
    }

    /// The highest ballot promised.
    pub fn promised(&self) -> Ballot {
        self.core.promised
    }

    /// The commit index: every slot up to it is chosen and known here.
    pub fn commit(&self) -> Slot {
        self.core.log.commit
    }

    /// The index the driver confirmed applied.
    pub fn applied(&self) -> Slot {
        self.core.applied
    }

    /// The committed membership.
    pub fn membership(&self) -> &Membership {
        self.core.log.committed_config().1
    }

    /// The latest snapshot's index (the log holds only slots above it).
    pub fn snapshot_index(&self) -> Slot {
        self.core.log.snapshot.index
    }

    /// The memory the log's entries take, in bytes (payloads plus a fixed
    /// allowance per entry): what [`Replica::compact`] frees.
    pub fn log_bytes(&self) -> usize {
        self.core.log.bytes()
    }

    /// Where to compact to free memory while the newest `keep` bytes of
    /// entries stay in the log, so that a replica a little behind catches
    /// up from entries rather than a snapshot: a slot at most the applied
    /// index, or `None` if that frees nothing.
    pub fn compaction_point(&self, keep: usize) -> Option<Slot> {
        self.core.log.compaction_point(keep, self.core.applied)
    }

    /// The leader's lease as of local time `now`: `Some` only on a leader
    /// whose lease, granted by a quorum, has not expired.
    pub fn lease(&self, now: Nanos) -> Option<Lease> {
        match &self.role {
            Role::Leader(leader) => leader.lease_at(now),
            _ => None,
        }
    }

    /// The voter a hand-over is in progress to, on a leader handing over
    /// ([`Replica::transfer_leadership`]).
    pub fn handing_over(&self) -> Option<NodeId> {
        match &self.role {
            Role::Leader(leader) => leader.handover.map(|h| h.target),
            _ => None,
        }
    }

    /// On a leader: the voters of its committed membership that answered a
    /// heartbeat sent within the last `election_timeout` (itself included),
    /// i.e. that are up and reachable, as far as it knows. Empty on other
    /// replicas.
    pub fn live_voters(&self) -> Vec<NodeId> {
        let Role::Leader(leader) = &self.role else {
            return Vec::new();
        };
        let me = self.core.cfg.id;
        let since = self.core.now.saturating_sub(self.core.cfg.election_timeout);
        self.core
            .log
            .committed_config()
            .1
            .voters
            .iter()
            .copied()
            .filter(|&v| v == me || leader.heard_from_since(v, since))
            .collect()
    }

    /// Whether this replica may serve a linearizable read from its applied
    /// state at local time `now` without a round trip: it leads with a valid
    /// lease and has applied every slot its phase 1 recovered.
    pub fn can_serve_reads(&self, now: Nanos) -> bool {
        match &self.role {
            Role::Leader(leader) => {
                leader.lease_at(now).is_some() && self.core.applied >= leader.recovery_end
            }
            _ => false,
        }
    }

    /// Whether [`Replica::ready`] has anything to hand out.
    pub fn has_ready(&self) -> bool {
        let out = &self.core.out;
        self.core.hard_dirty
            || !out.entries.is_empty()
            || out.snapshot.is_some()
            || out.compact.is_some()
            || !out.messages.is_empty()
            || !out.persisted_messages.is_empty()
            || !out.dropped.is_empty()
            || !out.snapshot_wanted.is_empty()
            || !self.core.self_responses.is_empty()
            || self.core.log.commit > self.core.delivered
            || self.lease(self.core.now) != self.core.reported_lease
            || matches!(&self.role, Role::Leader(l) if l.has_pending_to_flush(&self.core))
    }

    // ---- Inputs ----

    /// Moves local time forward and runs the timers: elections, phase 1
    /// retries, heartbeats.
    pub fn tick(&mut self, now: Nanos) {
        self.core.now = self.core.now.max(now);
        let now = self.core.now;
        match &mut self.role {
            Role::Follower(_) => {
                if now >= self.core.election_deadline {
                    if self.core.is_voter() {
                        self.campaign();
                    } else {
                        self.core.reset_election_timer();
                    }
                }
            }
            Role::Candidate(c) => {
                if now >= self.core.election_deadline {
                    self.campaign();
                } else if now >= c.retry_at || c.lease_retry.is_some_and(|t| now >= t) {
                    c.send_prepares(&mut self.core);
                }
            }
            Role::Leader(l) => {
                if l.handover.is_some_and(|h| now >= h.deadline) {
                    // The target did not catch up in time: lead on.
                    l.handover = None;
                }
                l.tick(&mut self.core);
                self.hand_over_if_ready();
            }
        }
        self.drain_local();
    }

    /// Starts phase 1 with a ballot above every ballot seen. Called by the
    /// election timer; public so a driver (or test) can start an election
    /// here (it waits out any other leader's lease: to move the leadership
    /// without waiting, the leader calls [`Replica::transfer_leadership`]).
    pub fn campaign(&mut self) {
        self.start_campaign(None);
    }

    /// Hands the leadership to the voter `target` (leader only, inside its
    /// lease): the leader stops taking proposals, waits until every slot it
    /// proposed is chosen and `target` has committed them (it heartbeats at
    /// once to learn it), then gives its lease up, steps down and sends
    /// `target` a `TimeoutNow`, on which `target` campaigns at once and is
    /// promised despite the leader's lease grants (see the crate docs,
    /// *Leader hand-over*). If that does not happen within one
    /// `election_timeout` the leader leads on. Refused while a membership
    /// change is in flight, or if `target` is not a voter or is this node.
    pub fn transfer_leadership(&mut self, now: Nanos, target: NodeId) -> Result<()> {
        self.core.now = self.core.now.max(now);
        let now = self.core.now;
        let me = self.core.cfg.id;
        let is_target_voter = self.core.log.committed_config().1.contains(target);
        let config_open = self.core.log.open_configs().next().is_some();
        let Role::Leader(leader) = &mut self.role else {
            return Err(self.not_leader());
        };
        if leader.lease_at(now).is_none() {
            return Err(Error::Aborted(
                "paxos: the leader's lease is not valid; try again".into(),
            ));
        }
        if target == me || !is_target_voter {
            return Err(Error::InvalidInput(format!(
                "paxos: cannot hand the leadership to node {target}: not another voter"
            )));
        }
        if config_open || leader.config_pending() {
            return Err(Error::Aborted(
                "paxos: a membership change is in flight; try again".into(),
            ));
        }
        let round = leader.heartbeat_now(&mut self.core);
        leader.handover = Some(Handover {
            target,
            deadline: now.saturating_add(self.core.cfg.election_timeout),
            round,
        });
        self.hand_over_if_ready();
        self.drain_local();
        Ok(())
    }

    /// Completes a hand-over whose conditions hold: the leader gives up its
    /// lease by stepping down, then tells the target.
    pub(crate) fn hand_over_if_ready(&mut self) {
        let Role::Leader(leader) = &self.role else {
            return;
        };
        let Some(handover) = leader.handover else {
            return;
        };
        if !leader.ready_to_hand_over(&self.core, &handover) {
            return;
        }
        let ballot = leader.ballot;
        self.set_role(Role::Follower(Some(handover.target)));
        self.core.reset_election_timer();
        self.core
            .send(handover.target, Message::TimeoutNow { ballot });
    }

    /// Starts phase 1 with a ballot above every ballot seen, handed the
    /// leadership by the leader of `handover` if that is `Some`.
    pub(crate) fn start_campaign(&mut self, handover: Option<Ballot>) {
        self.core.reset_election_timer();
        if !self.core.is_voter() {
            self.set_role(Role::Follower(None));
            return;
        }
        let round = self.core.highest_round.max(self.core.promised.round) + 1;
        let ballot = Ballot::new(round, self.core.cfg.id);
        self.core.highest_round = round;
        let mut candidate = Candidate::new(ballot, handover, &self.core);
        candidate.send_prepares(&mut self.core);
        self.set_role(Role::Candidate(candidate));
        self.drain_local();
    }

    /// Proposes a command (leader only, inside its lease). It is batched with
    /// other proposals into the next accept round; the driver learns its fate
    /// when the entry with this `id` is committed (or never, if leadership is
    /// lost first: then the client must ask again).
    pub fn propose(&mut self, now: Nanos, id: u64, data: Vec<u8>) -> Result<()> {
        self.core.now = self.core.now.max(now);
        self.propose_value(Value::Command { id, data })
    }

    /// Proposes a membership change (leader only, inside its lease). Refused
    /// while another change is in flight, if it changes nothing, or if it
    /// would leave no voter.
    pub fn propose_membership(&mut self, now: Nanos, change: MembershipChange) -> Result<()> {
        self.core.now = self.core.now.max(now);
        let Role::Leader(leader) = &self.role else {
            return Err(self.not_leader());
        };
        if self.core.log.open_configs().next().is_some() || leader.config_pending() {
            return Err(Error::InvalidInput(
                "paxos: a membership change is already in flight".into(),
            ));
        }
        let mut membership = self.core.log.committed_config().1.clone();
        let changed = match change {
            MembershipChange::Add(n) => n != 0 && membership.voters.insert(n),
            MembershipChange::Remove(n) => membership.voters.remove(&n),
        };
        if !changed || membership.voters.is_empty() {
            return Err(Error::InvalidInput(format!(
                "paxos: membership change '{change}' is a no-op or leaves no voter"
            )));
        }
        self.propose_value(Value::Config { change, membership })
    }

    fn propose_value(&mut self, value: Value) -> Result<()> {
        let now = self.core.now;
        match &mut self.role {
            Role::Leader(Leader {
                handover: Some(Handover { target, .. }),
                ..
            }) => {
                let target = *target;
                Err(Error::Aborted(format!(
                    "paxos: handing the leadership to node {target}; try node {target}"
                )))
            }
            Role::Leader(leader) if leader.lease_at(now).is_some() => {
                leader.pending.push_back(value);
                Ok(())
            }
            Role::Leader(_) => Err(Error::Aborted(
                "paxos: the leader's lease is not valid; try again".into(),
            )),
            _ => Err(self.not_leader()),
        }
    }

    /// Changes role. A leader's proposals that never got a slot are lost
    /// with its leadership: their ids go out in [`Ready::dropped`], so the
    /// driver can tell their proposers at once that they were not chosen.
    pub(crate) fn set_role(&mut self, role: Role) {
        if let Role::Leader(leader) = std::mem::replace(&mut self.role, role) {
            for value in leader.pending {
                if let Value::Command { id, .. } = value {
                    self.core.out.dropped.push(id);
                }
            }
        }
    }

    fn not_leader(&self) -> Error {
        Error::Aborted(match self.leader() {
            Some(l) => format!("paxos: not the leader; try node {l}"),
            None => "paxos: not the leader; no leader known".into(),
        })
    }

    /// Truncates the log up to `index` (at most the applied index): the
    /// driver's state machine holds the effect of every slot up to it, and
    /// keeps it (the state machine is durable, or the driver persists it
    /// now). Returns the new snapshot, which holds the index and membership
    /// but no data: the driver persists it before it persists the next
    /// Ready, whose `compact` truncates the log. A replica that later needs
    /// the truncated slots is sent a snapshot the driver builds on request
    /// ([`Ready::snapshot_wanted`]), so the replica itself never holds the
    /// state machine's data.
    pub fn compact(&mut self, index: Slot) -> Result<&Snapshot> {
        if index > self.core.applied || index <= self.core.log.snapshot.index {
            return Err(Error::InvalidInput(format!(
                "paxos: cannot snapshot at {index}: applied {}, snapshot {}",
                self.core.applied, self.core.log.snapshot.index
            )));
        }
        let (membership_slot, membership) = self.core.log.config_at(index + 1);
        let snapshot = Snapshot {
            index,
            membership: membership.clone(),
            membership_slot,
            data: Vec::new(),
        };
        self.core.log.install_snapshot(snapshot);
        self.core.out.entries.retain(|slot, _| *slot > index);
        self.core.out.compact = Some(index);
        Ok(&self.core.log.snapshot)
    }

    /// Sends `to` (a node listed in [`Ready::snapshot_wanted`]) the state
    /// machine's `data` as applied through `index`: at least the log's
    /// snapshot index (the slots `to` lacks) and at most the applied index
    /// (chosen and known here). The membership goes with it.
    ///
    /// A snapshot below the log's snapshot index is not sent, and that is
    /// not an error: a snapshot this replica received was installed after
    /// the Ready that asked (the driver may step messages while it
    /// persists), so its state machine is behind until it installs that one
    /// too. `to` asks again.
    pub fn send_snapshot(&mut self, to: NodeId, index: Slot, data: Vec<u8>) -> Result<()> {
        if index < self.core.log.snapshot.index && index <= self.core.applied {
            return Ok(());
        }
        if index > self.core.applied {
            return Err(Error::InvalidInput(format!(
                "paxos: cannot send a snapshot at {index}: applied {}, snapshot {}",
                self.core.applied, self.core.log.snapshot.index
            )));
        }
        let (membership_slot, membership) = self.core.log.config_at(index + 1);
        let snapshot = Snapshot {
            index,
            membership: membership.clone(),
            membership_slot,
            data,
        };
        self.core.send(to, Message::InstallSnapshot { snapshot });
        Ok(())
    }

    /// Decodes and steps a message from the network. Damaged bytes are
    /// refused as malformed.
    pub fn step_bytes(&mut self, now: Nanos, bytes: &[u8]) -> std::result::Result<(), Rejection> {
        match codec::decode_message(bytes) {
            Ok(env) => self.step(now, env),
            Err(why) => Err(Rejection {
                from: 0,
                kind: "bytes",
                reason: RejectReason::Malformed(why),
            }),
        }
    }

    /// Steps a message from another replica at local time `now`. A refused
    /// message changes no state; the rejection says why (the driver logs it).
    pub fn step(&mut self, now: Nanos, env: Envelope) -> std::result::Result<(), Rejection> {
        self.core.now = self.core.now.max(now);
        let reject = |reason| Rejection {
            from: env.from,
            kind: env.message.kind(),
            reason,
        };
        if env.cluster != self.core.cfg.cluster {
            return Err(reject(RejectReason::WrongCluster {
                cluster: env.cluster,
            }));
        }
        if env.group != self.core.cfg.group {
            return Err(reject(RejectReason::WrongGroup { group: env.group }));
        }
        if env.to != self.core.cfg.id || env.from == self.core.cfg.id || env.from == 0 {
            return Err(reject(RejectReason::Misrouted));
        }
        if !self.knows(env.from) && env.epoch <= self.core.log.committed_config().0 {
            return Err(reject(RejectReason::UnknownNode));
        }
        self.validate(&env).map_err(reject)?;
        let kind = env.message.kind();
        let result = self
            .handle(env.from, env.message)
            .map_err(|reason| Rejection {
                from: env.from,
                kind,
                reason,
            });
        self.drain_local();
        result
    }

    /// Processes this replica's messages to itself.
    pub(crate) fn drain_local(&mut self) {
        while let Some(message) = self.core.local_inbox.pop_front() {
            let me = self.core.cfg.id;
            let _ = self.handle(me, message);
        }
    }

    // ---- Ready / advance ----

    /// Takes what the driver must do next: see [`Ready`] and the crate docs
    /// for the order. Call [`Replica::advance`] when done, before the next
    /// `ready`.
    pub fn ready(&mut self) -> Ready {
        assert!(
            !self.core.in_ready,
            "paxos: ready() called again before advance()"
        );
        if let Role::Leader(leader) = &mut self.role {
            leader.flush(&mut self.core);
        }
        self.drain_local();
        let core = &mut self.core;
        core.in_ready = true;
        let hard_state = std::mem::take(&mut core.hard_dirty).then_some(HardState {
            promised: core.promised,
            commit: core.log.commit,
        });
        let mut committed = Vec::new();
        if core.log.commit > core.delivered {
            committed.extend(
                core.log
                    .range(core.delivered + 1..=core.log.commit)
                    .cloned(),
            );
            core.delivered = core.log.commit;
        }
        core.delivered_in_ready = core.delivered;
        core.awaiting_advance = std::mem::take(&mut core.self_responses);
        let out = std::mem::take(&mut core.out);
        let now = core.now;
        let lease_now = match &self.role {
            Role::Leader(l) => l.lease_at(now),
            _ => None,
        };
        let lease = if lease_now != self.core.reported_lease {
            self.core.reported_lease = lease_now;
            Some(match lease_now {
                Some(l) => LeaseUpdate::Held(l),
                None => LeaseUpdate::Lost,
            })
        } else {
            None
        };
        Ready {
            hard_state,
            snapshot: out.snapshot,
            compact: out.compact,
            entries: out.entries.into_values().collect(),
            messages: out.messages,
            persisted_messages: out.persisted_messages,
            committed,
            dropped: out.dropped,
            lease,
            snapshot_wanted: out.snapshot_wanted,
        }
    }

    /// Confirms the last [`Ready`] done: its state persisted, its messages
    /// sent, its committed entries applied (and its snapshot installed).
    pub fn advance(&mut self) {
        assert!(self.core.in_ready, "paxos: advance() without ready()");
        self.core.in_ready = false;
        self.core.applied = self.core.applied.max(self.core.delivered_in_ready);
        let me = self.core.cfg.id;
        for message in std::mem::take(&mut self.core.awaiting_advance) {
            let _ = self.handle(me, message);
        }
        self.drain_local();
    }

    /// A deterministic multi-line picture of the replica, for tests and
    /// debugging.
    pub fn status(&self) -> String {
        let c = &self.core;
        let mut s = String::new();
        let role = match &self.role {
            Role::Follower(Some(l)) => format!("follower(leader={l})"),
            Role::Follower(None) => "follower".to_string(),
            Role::Candidate(cand) => format!("candidate b={}", cand.ballot),
            Role::Leader(l) => format!(
                "leader b={} next={} pending={}{}",
                l.ballot,
                l.next_slot(),
                l.pending.len(),
                l.handover
                    .map(|h| format!(" handing-over-to={}", h.target))
                    .unwrap_or_default()
            ),
        };
        let _ = write!(
            s,
            "n{}: {role} promised={} commit={} applied={} snap={} members={}",
            c.cfg.id,
            c.promised,
            c.log.commit,
            c.applied,
            c.log.snapshot.index,
            c.log.committed_config().1
        );
        if let Some(lease) = self.lease(c.now) {
            let _ = write!(s, " lease={}ms", (lease.expires - c.now) / 1_000_000);
        }
        let entries: Vec<String> = c.log.range(..).map(|e| e.to_string()).collect();
        if !entries.is_empty() {
            let _ = write!(s, "\n    log: {}", entries.join(" "));
        }
        s
    }

    /// The durable state as one comparable value (tests: a refused message
    /// must not change it).
    pub fn durable_state(&self) -> (Ballot, Slot, Slot, Vec<Entry>, BTreeSet<NodeId>) {
        let c = &self.core;
        (
            c.promised,
            c.log.commit,
            c.log.snapshot.index,
            c.log.range(..).cloned().collect(),
            c.log.committed_config().1.voters.clone(),
        )
    }
}
