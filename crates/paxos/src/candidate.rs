//! Phase 1 (prepare/promise), run once per leadership for every slot above
//! the candidate's commit index (Paxos Made Simple §3; Lamport's "Paxos
//! Made Simple" calls the ballots proposal numbers).
//!
//! The candidate needs promises from a majority of **every membership that
//! may govern an open slot**: its committed membership, every membership in
//! a change it holds above its commit index, and every membership in a
//! change some promise reports. Membership changes it discovers in promises
//! widen the quorum it needs (and the nodes it asks), so a lagging candidate
//! cannot miss values chosen under memberships it has not heard of (see the
//! crate docs, membership).
//!
//! When the quorum is complete the candidate merges the promises: per slot,
//! a value some acceptor knows is chosen wins outright, otherwise the value
//! of the highest ballot; slots nobody reports are filled with no-ops. It
//! then leads, re-proposing all of them in its own ballot.

use std::collections::{BTreeMap, BTreeSet};

use crate::leader::Leader;
use crate::message::{Message, RejectReason};
use crate::replica::{Core, Replica, Role};
use crate::types::{Ballot, Entry, Membership, Nanos, NodeId, Slot, Value};

/// A promise received: the acceptor's commit index and its entries above
/// the candidate's commit index.
#[derive(Debug)]
struct Promised {
    /// The acceptor's commit index.
    commit: Slot,
    /// Its entries above the candidate's commit index.
    entries: Vec<Entry>,
}

/// A candidate's phase-1 state.
#[derive(Debug)]
pub(crate) struct Candidate {
    /// The ballot it campaigns with.
    pub(crate) ballot: Ballot,
    /// Its commit index when it started: the promises cover slots above.
    prepare_commit: Slot,
    /// The promises so far, by acceptor.
    promises: BTreeMap<NodeId, Promised>,
    /// Memberships learned from promises.
    discovered: Vec<Membership>,
    /// When to ask the acceptors that have not promised again.
    pub(crate) retry_at: Nanos,
    /// When the earliest lease that refused us runs out: ask again then.
    pub(crate) lease_retry: Option<Nanos>,
    /// The ballot of the leader that handed its leadership to us, if one did.
    handover: Option<Ballot>,
}

impl Candidate {
    /// A candidate for `ballot`, handed the leadership by the leader of
    /// `handover` if that is `Some`.
    pub(crate) fn new(ballot: Ballot, handover: Option<Ballot>, core: &Core) -> Self {
        Candidate {
            ballot,
            prepare_commit: core.log.commit,
            promises: BTreeMap::new(),
            discovered: Vec::new(),
            retry_at: core.now,
            lease_retry: None,
            handover,
        }
    }

    /// Whether `node` is in a membership learned from promises.
    pub(crate) fn knows(&self, node: NodeId) -> bool {
        self.discovered.iter().any(|m| m.contains(node))
    }

    /// Every membership whose majority must promise.
    fn required(&self, core: &Core) -> Vec<Membership> {
        let mut configs = core.active_configs();
        for m in &self.discovered {
            if !configs.contains(m) {
                configs.push(m.clone());
            }
        }
        configs
    }

    /// Sends the prepare to every acceptor of the required memberships that
    /// has not promised yet, itself included.
    pub(crate) fn send_prepares(&mut self, core: &mut Core) {
        self.retry_at = core.now + core.cfg.heartbeat_interval;
        self.lease_retry = None;
        let nodes: BTreeSet<NodeId> = self
            .required(core)
            .iter()
            .flat_map(|m| m.voters.iter().copied())
            .collect();
        for node in nodes {
            if !self.promises.contains_key(&node) {
                let prepare = Message::Prepare {
                    ballot: self.ballot,
                    commit: self.prepare_commit,
                    handover: self.handover,
                };
                core.send(node, prepare);
            }
        }
    }

    /// Whether a majority of every required membership promised.
    fn complete(&self, core: &Core) -> bool {
        self.required(core)
            .iter()
            .all(|m| m.is_quorum(self.promises.keys()))
    }
}

impl Replica {
    /// A promise for our candidacy (late ones for our leadership are
    /// ignored).
    pub(crate) fn on_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        snapshot_index: Slot,
        entries: Vec<Entry>,
    ) -> Result<(), RejectReason> {
        let candidate = match &mut self.role {
            Role::Candidate(c) if c.ballot == ballot => c,
            Role::Leader(l) if l.ballot == ballot => return Ok(()),
            Role::Leader(l) => {
                return Err(RejectReason::StaleBallot {
                    ballot,
                    current: l.ballot,
                })
            }
            Role::Candidate(c) => {
                return Err(RejectReason::StaleBallot {
                    ballot,
                    current: c.ballot,
                })
            }
            Role::Follower(_) => {
                return Err(RejectReason::NotApplicable(
                    "a response, and this replica leads nothing",
                ))
            }
        };
        if entries
            .first()
            .is_some_and(|e| e.slot <= candidate.prepare_commit)
        {
            return Err(RejectReason::Malformed(
                "promise reports slots already committed".into(),
            ));
        }
        if snapshot_index > candidate.prepare_commit {
            // The acceptor truncated slots we lack: we cannot lead before we
            // catch up from it.
            self.set_role(Role::Follower(None));
            self.core.reset_election_timer();
            self.core.request_catch_up(from, true);
            return Ok(());
        }
        let mut new_members = false;
        for e in &entries {
            if let Value::Config { membership, .. } = &e.value {
                if !candidate.discovered.contains(membership) {
                    let asked: BTreeSet<NodeId> = candidate
                        .required(&self.core)
                        .iter()
                        .flat_map(|m| m.voters.clone())
                        .collect();
                    new_members |= membership.voters.iter().any(|n| !asked.contains(n));
                    candidate.discovered.push(membership.clone());
                }
            }
        }
        candidate
            .promises
            .insert(from, Promised { commit, entries });
        if new_members {
            candidate.send_prepares(&mut self.core);
        }
        if candidate.complete(&self.core) {
            self.become_leader();
        }
        Ok(())
    }

    /// Phase 1 is complete: merge the promises and lead.
    fn become_leader(&mut self) {
        let Role::Candidate(candidate) = std::mem::replace(&mut self.role, Role::Follower(None))
        else {
            unreachable!("become_leader on a candidate only");
        };
        // Our own log counts as one more report, even if the quorum formed
        // without our own promise: every entry in it has a ballot below
        // ours, so taking the highest-ballot value over a superset of a
        // quorum is still safe, and it leaves no stale entry of ours above
        // the recovered range.
        let own = Promised {
            commit: self.core.log.commit,
            entries: self
                .core
                .log
                .range(candidate.prepare_commit + 1..)
                .cloned()
                .collect(),
        };
        // Per slot: (entry, known chosen).
        let mut merged: BTreeMap<Slot, (Entry, bool)> = BTreeMap::new();
        for promised in candidate.promises.into_values().chain([own]) {
            for entry in promised.entries {
                let chosen = entry.slot <= promised.commit;
                match merged.get(&entry.slot) {
                    Some((_, true)) => {}
                    Some((old, false)) if !chosen && old.ballot >= entry.ballot => {}
                    _ => {
                        merged.insert(entry.slot, (entry, chosen));
                    }
                }
            }
        }
        let leader = Leader::new(candidate.ballot, merged, &mut self.core);
        self.set_role(Role::Leader(leader));
    }
}
