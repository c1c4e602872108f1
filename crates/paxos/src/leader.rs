//! The leader: phase 2 (accept/accepted) per slot, commit, heartbeats,
//! retransmission, and the lease (see the crate docs for the lease
//! invariant and its argument).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::message::Message;
use crate::ready::Lease;
use crate::replica::Core;
use crate::types::{Ballot, Entry, Membership, Nanos, NodeId, Slot, Value};

/// How many recent lease rounds a leader remembers the send time of.
const LEASE_ROUNDS_KEPT: usize = 64;

/// Lease rounds of one leadership: each heartbeat is a lease request, a
/// round, sent at a local time; an acceptor's answer grants
/// the round. The lease runs to `sent(r) + leader_lease`, where `r` is the
/// latest round such that a majority of every active membership granted `r`
/// or a later round.
#[derive(Debug, Default)]
pub(crate) struct LeaseTracker {
    /// The last round started.
    next_round: u64,
    /// Recent rounds and their send times.
    sent: VecDeque<(u64, Nanos)>,
    /// The latest round each acceptor granted.
    acked: BTreeMap<NodeId, u64>,
    /// The lease's end, local time, once a quorum granted a round.
    expires: Option<Nanos>,
}

impl LeaseTracker {
    /// Starts a round sent at `now`.
    pub(crate) fn new_round(&mut self, now: Nanos) -> u64 {
        self.next_round += 1;
        self.sent.push_back((self.next_round, now));
        if self.sent.len() > LEASE_ROUNDS_KEPT {
            self.sent.pop_front();
        }
        self.next_round
    }

    /// Records that `node` granted `round`.
    pub(crate) fn ack(&mut self, node: NodeId, round: u64) {
        if round == 0 || round > self.next_round {
            return;
        }
        let acked = self.acked.entry(node).or_insert(0);
        *acked = (*acked).max(round);
    }

    /// Whether `node` granted a round sent at or after local time `since`.
    pub(crate) fn answered_since(&self, node: NodeId, since: Nanos) -> bool {
        let Some(&round) = self.acked.get(&node) else {
            return false;
        };
        self.sent
            .iter()
            .any(|&(r, sent)| r == round && sent >= since)
    }

    /// Recomputes the expiry over `configs`.
    pub(crate) fn recompute(&mut self, configs: &[Membership], leader_lease: Nanos) {
        let mut round = u64::MAX;
        for config in configs {
            let mut rounds: Vec<u64> = config
                .voters
                .iter()
                .map(|n| self.acked.get(n).copied().unwrap_or(0))
                .collect();
            rounds.sort_unstable_by(|a, b| b.cmp(a));
            round = round.min(rounds.get(config.quorum() - 1).copied().unwrap_or(0));
        }
        if round == 0 || round == u64::MAX {
            return;
        }
        if let Some(&(_, sent)) = self.sent.iter().find(|(r, _)| *r == round) {
            let expires = sent.saturating_add(leader_lease);
            self.expires = Some(self.expires.map_or(expires, |e| e.max(expires)));
        }
    }
}

/// A leader's state.
#[derive(Debug)]
pub(crate) struct Leader {
    /// The ballot it leads with.
    pub(crate) ballot: Ballot,
    /// Its lease rounds.
    lease: LeaseTracker,
    /// The next slot to propose in.
    next_slot: Slot,
    /// The last slot recovered by phase 1: reads wait until it is applied.
    pub(crate) recovery_end: Slot,
    /// Acceptors that accepted each open slot in this ballot.
    votes: BTreeMap<Slot, BTreeSet<NodeId>>,
    /// Open slots known chosen, waiting for the commit index to reach them.
    chosen: BTreeSet<Slot>,
    /// Proposals not yet assigned a slot.
    pub(crate) pending: VecDeque<Value>,
    /// When to send the next heartbeat.
    heartbeat_at: Nanos,
    /// `next_slot` at the previous heartbeat: only slots proposed before it
    /// are retransmitted (younger ones may simply not be acknowledged yet).
    retransmit_below: Slot,
    /// The commit index each acceptor reported in its latest heartbeat
    /// acknowledgement.
    acked_commit: BTreeMap<NodeId, Slot>,
    /// A hand-over of the leadership in progress.
    pub(crate) handover: Option<Handover>,
}

/// A leader handing its leadership to another voter
/// ([`crate::Replica::transfer_leadership`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Handover {
    /// The voter to hand over to.
    pub(crate) target: NodeId,
    /// When to give up (local time) and lead on.
    pub(crate) deadline: Nanos,
    /// The lease round of the heartbeat sent when it began: the target's
    /// answer to it (or a later one) shows it is up and caught up now.
    pub(crate) round: u64,
}

impl Leader {
    /// Takes over after phase 1: re-proposes every open slot in `ballot` (a
    /// value known chosen, else the highest-ballot value, else a no-op).
    pub(crate) fn new(
        ballot: Ballot,
        merged: BTreeMap<Slot, (Entry, bool)>,
        core: &mut Core,
    ) -> Self {
        let end = merged
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(core.log.commit);
        let mut leader = Leader {
            ballot,
            lease: LeaseTracker::default(),
            next_slot: end + 1,
            recovery_end: end,
            votes: BTreeMap::new(),
            chosen: BTreeSet::new(),
            pending: VecDeque::new(),
            heartbeat_at: core.now,
            retransmit_below: 0,
            acked_commit: BTreeMap::new(),
            handover: None,
        };
        let mut batch = Vec::new();
        for slot in core.log.commit + 1..=end {
            let (value, chosen) = match merged.get(&slot) {
                Some((entry, chosen)) => (entry.value.clone(), *chosen),
                None => (Value::Noop, false),
            };
            if chosen {
                leader.chosen.insert(slot);
            }
            let entry = Entry {
                slot,
                ballot,
                value,
            };
            core.persist_entry(entry.clone());
            batch.push(entry);
        }
        leader.advance_commit(core);
        leader.broadcast_accepts(core, batch);
        // The first heartbeat (lease request) goes out at once.
        leader.tick(core);
        leader
    }

    /// The next slot to propose in.
    pub(crate) fn next_slot(&self) -> Slot {
        self.next_slot
    }

    /// The lease at local time `now`, if valid.
    pub(crate) fn lease_at(&self, now: Nanos) -> Option<Lease> {
        self.lease
            .expires
            .filter(|e| now < *e)
            .map(|expires| Lease {
                ballot: self.ballot,
                expires,
            })
    }

    /// Every node of an active membership (this one included).
    fn peers(core: &Core) -> BTreeSet<NodeId> {
        core.active_configs()
            .iter()
            .flat_map(|m| m.voters.iter().copied())
            .chain([core.cfg.id])
            .collect()
    }

    /// Sends `entries` (consecutive) to every peer in batches.
    fn broadcast_accepts(&self, core: &mut Core, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let peers = Leader::peers(core);
        for chunk in entries.chunks(core.cfg.max_batch) {
            for &peer in &peers {
                let accept = Message::Accept {
                    ballot: self.ballot,
                    entries: chunk.to_vec(),
                    commit: core.log.commit,
                };
                core.send(peer, accept);
            }
        }
    }

    /// Heartbeats and retransmission, when due.
    pub(crate) fn tick(&mut self, core: &mut Core) {
        if core.now < self.heartbeat_at {
            return;
        }
        self.heartbeat_at = core.now + core.cfg.heartbeat_interval;
        let round = self.lease.new_round(core.now);
        for peer in Leader::peers(core) {
            let heartbeat = Message::Heartbeat {
                ballot: self.ballot,
                commit: core.log.commit,
                lease_round: round,
            };
            core.send(peer, heartbeat);
            if peer != core.cfg.id {
                self.retransmit(core, peer);
            }
        }
        self.retransmit_below = self.next_slot;
    }

    /// Re-sends open slots `peer` has not accepted, from the first one, one
    /// batch at most.
    fn retransmit(&self, core: &mut Core, peer: NodeId) {
        let first = (core.log.commit + 1..self.retransmit_below).find(|s| {
            !self.chosen.contains(s) && !self.votes.get(s).is_some_and(|v| v.contains(&peer))
        });
        let Some(first) = first else { return };
        let last = (self.next_slot - 1).min(first + core.cfg.max_batch as Slot - 1);
        let entries: Vec<Entry> = core.log.range(first..=last).cloned().collect();
        if entries.is_empty() || entries.len() as Slot != last - first + 1 {
            return;
        }
        core.send(
            peer,
            Message::Accept {
                ballot: self.ballot,
                entries,
                commit: core.log.commit,
            },
        );
    }

    /// Whether `node` answered a heartbeat sent at or after `since`.
    pub(crate) fn heard_from_since(&self, node: NodeId, since: Nanos) -> bool {
        self.lease.answered_since(node, since)
    }

    /// Sends a heartbeat (a new lease round) now and returns its round.
    pub(crate) fn heartbeat_now(&mut self, core: &mut Core) -> u64 {
        self.heartbeat_at = core.now;
        self.tick(core);
        self.lease.next_round
    }

    /// Whether the leadership can be handed over now: every slot proposed
    /// is chosen, nothing waits for a slot, and the target answered a
    /// heartbeat of the hand-over (it is up) having committed every slot (so
    /// its phase 1 recovers nothing and needs no snapshot).
    pub(crate) fn ready_to_hand_over(&self, core: &Core, handover: &Handover) -> bool {
        let target = handover.target;
        self.pending.is_empty()
            && core.log.commit + 1 == self.next_slot
            && self
                .lease
                .acked
                .get(&target)
                .is_some_and(|&round| round >= handover.round)
            && self
                .acked_commit
                .get(&target)
                .is_some_and(|&c| c >= core.log.commit)
    }

    /// Whether a membership change waits in the proposal queue.
    pub(crate) fn config_pending(&self) -> bool {
        self.pending
            .iter()
            .any(|v| matches!(v, Value::Config { .. }))
    }

    /// Whether `flush` would assign anything.
    pub(crate) fn has_pending_to_flush(&self, core: &Core) -> bool {
        !self.pending.is_empty() && !self.blocked(core)
    }

    /// New proposals wait while a membership change is not chosen (one
    /// change at a time; the slots after it belong to the new membership),
    /// and while too many slots are open.
    fn blocked(&self, core: &Core) -> bool {
        core.log.open_configs().next().is_some()
            || self.next_slot - core.log.commit > core.cfg.max_inflight
    }

    /// Assigns slots to queued proposals and sends them in one accept round.
    pub(crate) fn flush(&mut self, core: &mut Core) {
        let mut batch = Vec::new();
        while !self.pending.is_empty() && !self.blocked(core) {
            let value = self.pending.pop_front().expect("not empty");
            let is_config = matches!(value, Value::Config { .. });
            let entry = Entry {
                slot: self.next_slot,
                ballot: self.ballot,
                value,
            };
            self.next_slot += 1;
            core.persist_entry(entry.clone());
            batch.push(entry);
            if is_config {
                break;
            }
        }
        self.broadcast_accepts(core, batch);
    }

    /// `from` accepted `first..=last` in our ballot.
    pub(crate) fn on_accepted(&mut self, core: &mut Core, from: NodeId, first: Slot, last: Slot) {
        let lo = first.max(core.log.commit + 1);
        let hi = last.min(self.next_slot.saturating_sub(1));
        for slot in lo..=hi {
            if self.chosen.contains(&slot) {
                continue;
            }
            let votes = self.votes.entry(slot).or_default();
            votes.insert(from);
            if core.log.config_at(slot).1.is_quorum(votes.iter()) {
                self.chosen.insert(slot);
                self.votes.remove(&slot);
            }
        }
        self.advance_commit(core);
    }

    /// Moves the commit index over the chosen prefix.
    fn advance_commit(&mut self, core: &mut Core) {
        let before = core.log.commit;
        while self.chosen.remove(&(core.log.commit + 1)) {
            let slot = core.log.commit + 1;
            core.log.commit_through(slot, None);
            self.votes.remove(&slot);
            if core.log.commit != slot {
                break;
            }
        }
        if core.log.commit != before {
            core.hard_changed();
            // The membership may have changed: new peers need the open slots.
            self.lease
                .recompute(&core.active_configs(), core.cfg.leader_lease());
        }
    }

    /// `from` granted lease round `round`, and has committed through
    /// `commit`.
    pub(crate) fn on_lease_ack(&mut self, core: &Core, from: NodeId, round: u64, commit: Slot) {
        let acked = self.acked_commit.entry(from).or_insert(0);
        *acked = (*acked).max(commit);
        self.lease.ack(from, round);
        self.lease
            .recompute(&core.active_configs(), core.cfg.leader_lease());
    }
}
