//! The driver task of one replica (see the module docs of `group` for the
//! loop and its ordering).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use meridian_error::{Error, Result};
use meridian_paxos::{Ballot, MembershipChange, Nanos, RejectReason, Replica, RoleKind, Snapshot};
use meridian_storage::KeyRange;
use meridian_truetime::Timestamp;
use tokio::sync::{mpsc, oneshot, watch};

use super::leader::LeaderReplication;
use super::state::{GroupState, SharedSpans};
use super::{GroupEnv, GroupStatus, Input, LeaderEngine, Start, Storage};
use crate::paxos_log::PaxosStore;

/// At most this many queued inputs are taken before the replica's Ready is
/// processed (one persist covers them all).
const INPUT_BATCH: usize = 1024;

/// A membership change's proposer and the answer it gets.
type SettledChange = (oneshot::Sender<Result<()>>, Result<()>);

/// One replica's driver.
pub(super) struct Driver {
    /// The node's environment.
    env: GroupEnv,
    /// The group.
    group: u64,
    /// The protocol.
    replica: Replica,
    /// Its durable records.
    store: PaxosStore<Storage>,
    /// The state machine.
    state: GroupState<Storage>,
    /// Inputs.
    inputs: mpsc::Receiver<Input>,
    /// A handle on the inputs for the leader engine's proposals.
    proposals: mpsc::WeakSender<Input>,
    /// Where the status goes.
    status: watch::Sender<GroupStatus>,
    /// Proposers waiting for their command to be applied, by command id.
    waiters: HashMap<u64, oneshot::Sender<Result<()>>>,
    /// The next command id (random start: ids of an earlier run of this
    /// node, still in the log, must not match a new proposal).
    next_id: u64,
    /// A snapshot taken for compaction, to persist with the next Ready.
    compacted: Option<Snapshot>,
    /// The leader engine slot shared with the handle.
    leader: Arc<RwLock<Option<LeaderEngine>>>,
    /// The ballot of the engine in `leader`.
    leader_ballot: Option<Ballot>,
    /// When the last command was proposed (for idle safe time markers).
    last_proposal: Nanos,
    /// Commands applied since the last status was published, whose
    /// proposers are to be answered once it is.
    applied_ids: Vec<(u64, Result<()>)>,
    /// The largest cap of an engine stopped for a hand-over here: every
    /// later engine of this replica issues timestamps above it.
    floor: Timestamp,
    /// Whether the replica is handing its leadership over.
    handing_over: bool,
    /// The membership change proposed here and its proposer, until the
    /// committed membership shows it or the leadership ends.
    voters_change: Option<(MembershipChange, oneshot::Sender<Result<()>>)>,
    /// Set by [`Input::Stop`]: who waits for the driver to end.
    stopping: Option<oneshot::Sender<()>>,
}

impl Driver {
    /// Opens the replica from storage (or bootstraps it) and its first status.
    pub(super) fn open(
        env: GroupEnv,
        group: u64,
        spans: Vec<KeyRange>,
        start: Start,
        inputs: mpsc::Receiver<Input>,
        proposals: mpsc::WeakSender<Input>,
        leader: Arc<RwLock<Option<LeaderEngine>>>,
    ) -> Result<(Driver, watch::Receiver<GroupStatus>)> {
        let cfg = env.options.paxos_config(env.node, env.cluster, group);
        let store = PaxosStore::new(env.storage.clone(), group);
        let state = GroupState::load(env.storage.clone(), group, spans)?;
        let now = env.clock.now();
        let replica = match start {
            Start::Bootstrap(membership) => Replica::bootstrap(cfg, membership, now)?,
            Start::Join => Replica::join(cfg, now)?,
            Start::Recover => {
                // A received snapshot's record is written with the state it
                // installs, and a compaction's only once the state machine
                // holds its slots: the state machine is never behind it.
                let stored = store.load()?;
                Replica::recover(cfg, &stored, state.applied(), now)?
            }
        };
        let (status, receiver) = watch::channel(GroupStatus {
            group,
            role: replica.role(),
            leader: replica.leader(),
            commit: replica.commit(),
            applied: state.applied(),
            log_bytes: replica.log_bytes(),
            snapshot_index: replica.snapshot_index(),
            voters: replica.membership().voters.iter().copied().collect(),
            lease: None,
            safe_ts: state.safe_ts(),
            serving: false,
            live_voters: Vec::new(),
            failed: None,
        });
        let driver = Driver {
            env,
            group,
            replica,
            store,
            state,
            inputs,
            proposals,
            status,
            waiters: HashMap::new(),
            next_id: rand::random::<u64>() >> 1,
            compacted: None,
            leader,
            leader_ballot: None,
            last_proposal: 0,
            applied_ids: Vec::new(),
            floor: Timestamp::MIN,
            handing_over: false,
            voters_change: None,
            stopping: None,
        };
        Ok((driver, receiver))
    }

    /// The loop: inputs and ticks in, Readies out, until the handle is
    /// dropped or the replica fails.
    pub(super) async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.env.options.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                input = self.inputs.recv() => {
                    let Some(input) = input else { break };
                    self.input(input);
                    for _ in 0..INPUT_BATCH {
                        match self.inputs.try_recv() {
                            Ok(input) => self.input(input),
                            Err(_) => break,
                        }
                    }
                    if let Some(done) = self.stopping.take() {
                        self.stop(Error::Unavailable(format!(
                            "group {}: this node's replica was removed",
                            self.group
                        )));
                        // Nothing is written after this: the caller may
                        // erase the replica's records.
                        let _ = done.send(());
                        break;
                    }
                }
                _ = ticker.tick() => {
                    self.replica.tick(self.env.clock.now());
                    self.waiters.retain(|_, reply| !reply.is_closed());
                    self.mark_safe_time_if_idle();
                }
            }
            if let Err(err) = self.process() {
                tracing::error!(
                    node = self.env.node,
                    group = self.group,
                    %err,
                    "replica stopped: it will not apply or vote until restarted"
                );
                self.stop(err);
                break;
            }
            self.publish();
            // Proposers hear of their commit only once the status shows it.
            for (id, result) in std::mem::take(&mut self.applied_ids) {
                if let Some(reply) = self.waiters.remove(&id) {
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// Feeds one input to the replica.
    fn input(&mut self, input: Input) {
        let now = self.env.clock.now();
        match input {
            Input::Message(envelope) => {
                if let Err(rejection) = self.replica.step(now, envelope) {
                    match rejection.reason {
                        // Routine: late answers, stale leaders.
                        RejectReason::StaleBallot { .. } | RejectReason::NotApplicable(_) => {
                            tracing::trace!(group = self.group, %rejection, "refused a message")
                        }
                        _ => tracing::warn!(group = self.group, %rejection, "refused a message"),
                    }
                }
            }
            Input::Propose {
                data,
                ballot,
                reply,
            } => {
                let leads_at = self.replica.lease(now).map(|lease| lease.ballot);
                if ballot.is_some_and(|ballot| leads_at != Some(ballot)) {
                    // Made by the engine of an earlier leadership, which
                    // passed its admission just before the leadership ended.
                    let _ = reply.send(Err(Error::NotLeader {
                        group: self.group,
                        leader: self.replica.leader(),
                    }));
                    return;
                }
                self.last_proposal = now;
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                match self.replica.propose(now, id, data) {
                    Ok(()) => {
                        self.waiters.insert(id, reply);
                    }
                    Err(err) => {
                        let _ = reply.send(Err(self.not_leader(err)));
                    }
                }
            }
            Input::Campaign => self.replica.campaign(),
            Input::HandOver { target, cap, reply } => {
                self.floor = self.floor.max(cap);
                // Only the leadership whose engine stopped is handed over:
                // if it ended meanwhile, a later one is not this caller's.
                let began = if self.engine_handed_over() {
                    self.replica.transfer_leadership(now, target)
                } else {
                    Err(Error::NotLeader {
                        group: self.group,
                        leader: self.replica.leader(),
                    })
                };
                if began.is_ok() {
                    tracing::info!(group = self.group, target, "handing the leadership over");
                    self.handing_over = true;
                } else {
                    self.lead_again();
                }
                let _ = reply.send(began);
            }
            Input::LeadAgain { cap } => {
                self.floor = self.floor.max(cap);
                self.lead_again();
            }
            Input::Stop(done) => self.stopping = Some(done),
            Input::ChangeVoters { change, reply } => {
                if self.voters_change.is_some() {
                    let _ = reply.send(Err(Error::Aborted(format!(
                        "group {}: a membership change is already in flight; try again",
                        self.group
                    ))));
                    return;
                }
                match self.replica.propose_membership(now, change) {
                    Ok(()) => {
                        tracing::info!(group = self.group, %change, "proposed a membership change");
                        self.voters_change = Some((change, reply));
                    }
                    Err(err) => {
                        let _ = reply.send(Err(self.not_leader(err)));
                    }
                }
            }
        }
    }

    /// The answer to the proposer of a membership change, given the status
    /// about to be published: done once the committed membership shows it,
    /// or failed once this replica no longer leads (the change may still be
    /// chosen by the next leader). Sent after the status is published, so
    /// that the proposer sees the change in it.
    fn settle_voters_change(&mut self, status: &GroupStatus) -> Option<SettledChange> {
        let (change, _) = self.voters_change.as_ref()?;
        let outcome = if super::shows(&status.voters, *change) {
            Ok(())
        } else if status.role != RoleKind::Leader {
            Err(Error::NotLeader {
                group: self.group,
                leader: status.leader,
            })
        } else {
            return None;
        };
        let (_, reply) = self.voters_change.take()?;
        Some((reply, outcome))
    }

    /// After a hand-over that failed or was abandoned (the engine stopped
    /// for it serves nothing): campaigns again, so that the next engine
    /// starts in a new leadership whose phase 1 recovers whatever the
    /// stopped one had in flight.
    fn lead_again(&mut self) {
        self.handing_over = false;
        if self.replica.role() == RoleKind::Leader && self.engine_handed_over() {
            tracing::info!(group = self.group, "leading again after a failed hand-over");
            self.replica.campaign();
        }
    }

    /// Whether the leader engine is one stopped for a hand-over.
    fn engine_handed_over(&self) -> bool {
        self.leader
            .read()
            .expect("leader slot poisoned")
            .as_ref()
            .is_some_and(|engine| engine.handed_over())
    }

    /// Has the leader's engine log a safe time marker when nothing was
    /// proposed for `safe_time_interval` (it is queued as an input; nobody
    /// waits for it).
    fn mark_safe_time_if_idle(&mut self) {
        let now = self.env.clock.now();
        let interval = self.env.options.safe_time_interval.as_nanos() as Nanos;
        if now.saturating_sub(self.last_proposal) < interval {
            return;
        }
        let engine = self.leader.read().expect("leader slot poisoned").clone();
        if let Some(engine) = engine {
            // Dropping the future abandons only the wait for the answer.
            drop(engine.advance_safe_time());
            self.last_proposal = now;
        }
    }

    /// A proposal refused by the replica: the command never entered the log.
    fn not_leader(&self, err: Error) -> Error {
        match self.replica.role() {
            RoleKind::Leader => err,
            _ => Error::NotLeader {
                group: self.group,
                leader: self.replica.leader(),
            },
        }
    }

    /// Runs the Ready/advance contract until the replica has nothing more.
    fn process(&mut self) -> Result<()> {
        while self.replica.has_ready() {
            let ready = self.replica.ready();
            self.send(&ready.messages);
            if let Some(snapshot) = &ready.snapshot {
                // With its record, so that a crash leaves both or neither.
                self.state
                    .install(snapshot, self.store.snapshot_record(snapshot))?;
            }
            self.store.persist(&ready, self.compacted.take().as_ref())?;
            self.send(&ready.persisted_messages);
            let applied = self.state.apply(&ready.committed)?;
            self.applied_ids.extend(applied);
            for id in &ready.dropped {
                if let Some(reply) = self.waiters.remove(id) {
                    // Never given a slot: certainly not committed.
                    let _ = reply.send(Err(Error::NotLeader {
                        group: self.group,
                        leader: self.replica.leader(),
                    }));
                }
            }
            self.replica.advance();
            for to in ready.snapshot_wanted {
                let data = self.state.dump()?;
                let index = self.state.applied();
                let bytes = data.len();
                tracing::info!(group = self.group, to, index, bytes, "sending a snapshot");
                self.replica.send_snapshot(to, index, data)?;
            }
        }
        self.maybe_compact()
    }

    /// Queues messages for their addressees.
    fn send(&self, messages: &[meridian_paxos::Envelope]) {
        for envelope in messages {
            self.env.outbox.send(envelope.clone());
        }
    }

    /// Truncates the log once its entries take more than `max_log_bytes`,
    /// keeping the newest half. The state machine holds every applied slot
    /// durably (its batches precede the truncation in the one write-ahead
    /// log), so the snapshot is just the index and membership.
    fn maybe_compact(&mut self) -> Result<()> {
        let max = self.env.options.max_log_bytes;
        if self.replica.log_bytes() <= max || self.compacted.is_some() {
            return Ok(());
        }
        let Some(index) = self.replica.compaction_point(max / 2) else {
            return Ok(());
        };
        let snapshot = self.replica.compact(index)?.clone();
        tracing::debug!(group = self.group, index, "compacted the log");
        self.compacted = Some(snapshot);
        // The snapshot record is persisted with the Ready that carries the
        // truncation.
        self.process()
    }

    /// Publishes the status and keeps the leader engine in step with the
    /// replica's leadership.
    fn publish(&mut self) {
        if self.handing_over {
            if self.replica.role() != RoleKind::Leader {
                self.handing_over = false;
            } else if self.replica.handing_over().is_none() {
                // The target did not take over in time.
                self.lead_again();
            }
        }
        let now = self.env.clock.now();
        let lease = self.replica.lease(now);
        let serving = self.replica.can_serve_reads(now);
        let status = GroupStatus {
            group: self.group,
            role: self.replica.role(),
            leader: self.replica.leader(),
            commit: self.replica.commit(),
            applied: self.state.applied(),
            log_bytes: self.replica.log_bytes(),
            snapshot_index: self.replica.snapshot_index(),
            voters: self.replica.membership().voters.iter().copied().collect(),
            lease,
            safe_ts: self.state.safe_ts(),
            serving,
            live_voters: self.replica.live_voters(),
            failed: None,
        };
        let settled = self.settle_voters_change(&status);
        // The status first: a new engine checks its lease there.
        self.status.send_replace(status);
        if let Some((reply, outcome)) = settled {
            let _ = reply.send(outcome);
        }
        match lease.map(|l| l.ballot) {
            Some(ballot) if serving && self.leader_ballot != Some(ballot) => self.lead(ballot),
            _ if self.replica.role() != RoleKind::Leader && self.leader_ballot.is_some() => {
                tracing::info!(
                    node = self.env.node,
                    group = self.group,
                    "no longer the leader"
                );
                *self.leader.write().expect("leader slot poisoned") = None;
                self.leader_ballot = None;
            }
            _ => {}
        }
    }

    /// What the group serves, kept up to date by its state machine.
    pub(super) fn spans(&self) -> SharedSpans {
        self.state.spans()
    }

    /// Builds the transaction engine of a new leadership.
    fn lead(&mut self, ballot: Ballot) {
        let replication = LeaderReplication::new(
            self.group,
            ballot,
            self.proposals.clone(),
            self.status.subscribe(),
            self.state.spans(),
            &self.env,
        );
        let engine = LeaderEngine::with_replication(
            self.env.mvcc.clone(),
            self.env.tt.clone(),
            self.env.sleeper.clone(),
            self.env.options.txn.clone(),
            Arc::new(replication),
            self.state.max_ts().max(self.floor),
        );
        // Transactions prepared under earlier leaders keep their locks.
        let restored = self.state.prepared_records().and_then(|records| {
            records
                .iter()
                .try_for_each(|entry| engine.restore_prepared(entry.to_record()))
        });
        if let Err(err) = restored {
            tracing::error!(
                node = self.env.node,
                group = self.group,
                %err,
                "cannot restore the prepared transactions: not serving"
            );
            return;
        }
        tracing::info!(
            node = self.env.node,
            group = self.group,
            %ballot,
            "leading: serving transactions"
        );
        *self.leader.write().expect("leader slot poisoned") = Some(engine);
        self.leader_ballot = Some(ballot);
    }

    /// Stops the replica after a failure: nobody may use it any more.
    fn stop(&mut self, err: Error) {
        *self.leader.write().expect("leader slot poisoned") = None;
        for (id, result) in std::mem::take(&mut self.applied_ids) {
            if let Some(reply) = self.waiters.remove(&id) {
                let _ = reply.send(result);
            }
        }
        for (_, reply) in self.waiters.drain() {
            let _ = reply.send(Err(Error::AmbiguousCommit(format!(
                "the replica stopped: {err}"
            ))));
        }
        self.status.send_modify(|status| {
            status.serving = false;
            status.lease = None;
            status.failed = Some(err);
        });
    }
}
