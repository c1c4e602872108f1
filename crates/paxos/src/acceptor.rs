//! Message handling: structural validation, dispatch, and the handlers
//! every role runs: the acceptor (phase 1b, phase 2b, lease grants, nacks)
//! and catch-up (serving and installing chosen entries and snapshots).
//!
//! An acceptor keeps Paxos's two rules (Paxos Made Simple §2.2): it never
//! promises or accepts a ballot below one it promised, and it reports what it
//! accepted when it promises. Everything it vows in a reply (a promise, an
//! acceptance, a lease grant) is sent only after the state behind it is
//! persisted ([`crate::Ready::persisted_messages`]).

use crate::message::{Envelope, Message, RejectReason};
use crate::replica::{Grant, Replica, Role};
use crate::types::{Ballot, Entry, NodeId, Slot, Snapshot, Value};

impl Replica {
    /// Whether `node` is in a membership this replica knows (or this replica
    /// knows none, or votes in none: it is being added and must listen).
    pub(crate) fn knows(&self, node: NodeId) -> bool {
        if !self.core.is_voter() {
            return true;
        }
        let log = &self.core.log;
        if log.committed_config().1.contains(node)
            || log.open_configs().any(|(_, m)| m.contains(node))
        {
            return true;
        }
        matches!(&self.role, Role::Candidate(c) if c.knows(node))
    }

    /// Structural checks of a message body, before any state is touched.
    pub(crate) fn validate(&self, env: &Envelope) -> std::result::Result<(), RejectReason> {
        let me = self.core.cfg.id;
        let from = env.from;
        let leader_ballot = |b: &Ballot| {
            if b.node != from || b.round == 0 {
                Err(RejectReason::ImpossibleBallot(*b))
            } else {
                Ok(())
            }
        };
        let own_ballot = |b: &Ballot| {
            if b.node != me || b.round == 0 {
                Err(RejectReason::ImpossibleBallot(*b))
            } else {
                Ok(())
            }
        };
        let consecutive = |entries: &[Entry], ballot: Option<Ballot>| {
            let mut prev: Option<Slot> = None;
            for e in entries {
                if e.slot == 0 || prev.is_some_and(|p| e.slot != p + 1) {
                    return Err(RejectReason::Malformed(
                        "entries not in consecutive slots".into(),
                    ));
                }
                if ballot.is_some_and(|b| e.ballot != b) {
                    return Err(RejectReason::Malformed(
                        "entry ballot differs from the message's".into(),
                    ));
                }
                if let Value::Config { membership, .. } = &e.value {
                    if membership.voters.is_empty() {
                        return Err(RejectReason::Malformed("empty membership".into()));
                    }
                }
                prev = Some(e.slot);
            }
            Ok(())
        };
        match &env.message {
            Message::Prepare {
                ballot, handover, ..
            } => {
                leader_ballot(ballot)?;
                match handover {
                    Some(h) if h >= ballot || h.round == 0 => {
                        Err(RejectReason::ImpossibleBallot(*h))
                    }
                    _ => Ok(()),
                }
            }
            Message::Heartbeat { ballot, .. } | Message::TimeoutNow { ballot } => {
                leader_ballot(ballot)
            }
            Message::Accept {
                ballot, entries, ..
            } => {
                leader_ballot(ballot)?;
                if entries.is_empty() {
                    return Err(RejectReason::Malformed("accept without entries".into()));
                }
                consecutive(entries, Some(*ballot))
            }
            Message::Promise {
                ballot, entries, ..
            } => {
                own_ballot(ballot)?;
                let mut prev = 0;
                for e in entries {
                    if e.slot <= prev {
                        return Err(RejectReason::Malformed(
                            "promise entries out of order".into(),
                        ));
                    }
                    prev = e.slot;
                }
                Ok(())
            }
            Message::Accepted {
                ballot,
                first,
                last,
            } => {
                own_ballot(ballot)?;
                if *first == 0 || first > last {
                    return Err(RejectReason::Malformed(format!(
                        "bad slot range {first}..={last}"
                    )));
                }
                Ok(())
            }
            Message::HeartbeatAck { ballot, .. } | Message::LeaseHeld { ballot, .. } => {
                own_ballot(ballot)
            }
            Message::Nack { ballot, promised } => {
                own_ballot(ballot)?;
                if promised <= ballot {
                    return Err(RejectReason::ImpossibleBallot(*promised));
                }
                Ok(())
            }
            Message::CatchUpRequest { from } => {
                if *from == 0 {
                    return Err(RejectReason::Malformed("catch-up from slot 0".into()));
                }
                Ok(())
            }
            Message::CatchUp { entries, .. } => consecutive(entries, None),
            Message::InstallSnapshot { snapshot } => {
                if snapshot.membership.voters.is_empty()
                    || snapshot.membership_slot > snapshot.index
                {
                    return Err(RejectReason::Malformed(
                        "snapshot without a valid membership".into(),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Dispatches a (validated, or local) message.
    pub(crate) fn handle(
        &mut self,
        from: NodeId,
        message: Message,
    ) -> std::result::Result<(), RejectReason> {
        match message {
            Message::Prepare {
                ballot,
                commit,
                handover,
            } => self.on_prepare(from, ballot, commit, handover),
            Message::TimeoutNow { ballot } => self.on_timeout_now(ballot),
            Message::Accept {
                ballot,
                entries,
                commit,
            } => self.on_accept(from, ballot, entries, commit),
            Message::Heartbeat {
                ballot,
                commit,
                lease_round,
            } => self.on_heartbeat(from, ballot, commit, lease_round),
            Message::Nack { ballot, promised } => {
                self.on_nack(ballot, promised);
                Ok(())
            }
            Message::CatchUpRequest { from: first } => {
                self.on_catch_up_request(from, first);
                Ok(())
            }
            Message::CatchUp { entries, commit } => {
                self.on_catch_up(from, entries, commit);
                Ok(())
            }
            Message::InstallSnapshot { snapshot } => {
                self.on_install_snapshot(snapshot);
                Ok(())
            }
            Message::Promise {
                ballot,
                commit,
                snapshot_index,
                entries,
            } => self.on_promise(from, ballot, commit, snapshot_index, entries),
            Message::LeaseHeld {
                ballot, remaining, ..
            } => match &mut self.role {
                Role::Candidate(c) if c.ballot == ballot => {
                    // Ask again right when that lease runs out.
                    let at = self
                        .core
                        .now
                        .saturating_add(remaining.saturating_add(crate::MILLI));
                    c.lease_retry = Some(c.lease_retry.map_or(at, |t| t.min(at)));
                    Ok(())
                }
                _ => Err(self.stale(ballot)),
            },
            Message::Accepted {
                ballot,
                first,
                last,
            } => match &mut self.role {
                Role::Leader(l) if l.ballot == ballot => {
                    l.on_accepted(&mut self.core, from, first, last);
                    self.after_commit_change();
                    Ok(())
                }
                _ => Err(self.stale(ballot)),
            },
            Message::HeartbeatAck {
                ballot,
                lease_round,
                commit,
            } => match &mut self.role {
                Role::Leader(l) if l.ballot == ballot => {
                    l.on_lease_ack(&self.core, from, lease_round, commit);
                    self.hand_over_if_ready();
                    Ok(())
                }
                _ => Err(self.stale(ballot)),
            },
        }
    }

    /// The rejection of a response to a ballot this replica no longer runs.
    fn stale(&self, ballot: Ballot) -> RejectReason {
        match &self.role {
            Role::Leader(l) => RejectReason::StaleBallot {
                ballot,
                current: l.ballot,
            },
            Role::Candidate(c) => RejectReason::StaleBallot {
                ballot,
                current: c.ballot,
            },
            Role::Follower(_) => {
                RejectReason::NotApplicable("a response, and this replica leads nothing")
            }
        }
    }

    /// Refuses a leader message with a ballot below the promise: answers
    /// with a Nack so the stale leader stops, changes nothing else.
    fn refuse_stale(&mut self, from: NodeId, ballot: Ballot) -> RejectReason {
        let promised = self.core.promised;
        self.core.send(from, Message::Nack { ballot, promised });
        RejectReason::StaleBallot {
            ballot,
            current: promised,
        }
    }

    /// Follows `leader` (whose message in `ballot` this acceptor took),
    /// stepping down from a lower candidacy or leadership.
    fn follow(&mut self, leader: NodeId, ballot: Ballot) {
        if leader == self.core.cfg.id {
            return;
        }
        // A candidate whose acceptor takes a leader's message stops
        // campaigning, whatever its ballot: that leader is alive.
        let step_down = match &self.role {
            Role::Follower(_) | Role::Candidate(_) => true,
            Role::Leader(l) => l.ballot < ballot,
        };
        if step_down {
            self.set_role(Role::Follower(Some(leader)));
            self.core.reset_election_timer();
        }
    }

    // ---- Acceptor (every role) ----

    fn on_prepare(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        handover: Option<Ballot>,
    ) -> std::result::Result<(), RejectReason> {
        self.core.highest_round = self.core.highest_round.max(ballot.round);
        if ballot < self.core.promised {
            return Err(self.refuse_stale(from, ballot));
        }
        // A grant held by a leader that handed its leadership to the
        // candidate protects nothing: that leader gave its lease up before
        // it sent the TimeoutNow. Our promise still being its ballot shows
        // the grant is from that leadership (a later one of the same node
        // would have raised the promise), and a node never leads again in a
        // ballot it handed over.
        let handed_over = |grant: &Grant| {
            handover.is_some_and(|h| grant.holder == Some(h.node) && self.core.promised == h)
        };
        if let Some(grant) = self.core.grant_blocks(from).filter(|g| !handed_over(g)) {
            // Wait out the lease: answer, change nothing.
            let remaining = grant.until - self.core.now;
            self.core.send(
                from,
                Message::LeaseHeld {
                    ballot,
                    holder: grant.holder,
                    remaining,
                },
            );
            return Ok(());
        }
        // A promise grants no lease: competing candidates must not lock
        // each other out. The lease comes with the new leader's heartbeats.
        self.core.promise(ballot);
        if from != self.core.cfg.id {
            match &self.role {
                Role::Leader(l) if l.ballot < ballot => {
                    self.set_role(Role::Follower(None));
                    self.core.reset_election_timer();
                }
                Role::Candidate(c) if c.ballot < ballot => {
                    self.set_role(Role::Follower(None));
                    self.core.reset_election_timer();
                }
                Role::Follower(_) => self.core.reset_election_timer(),
                _ => {}
            }
        }
        let log = &self.core.log;
        let snapshot_index = log.snapshot.index;
        let entries = if snapshot_index > commit {
            Vec::new()
        } else {
            log.range(commit + 1..).cloned().collect()
        };
        let promise = Message::Promise {
            ballot,
            commit: log.commit,
            snapshot_index,
            entries,
        };
        self.core.send_after_persist(from, promise);
        Ok(())
    }

    fn on_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        entries: Vec<Entry>,
        commit: Slot,
    ) -> std::result::Result<(), RejectReason> {
        self.core.highest_round = self.core.highest_round.max(ballot.round);
        if ballot < self.core.promised {
            return Err(self.refuse_stale(from, ballot));
        }
        self.core.promise(ballot);
        self.follow(from, ballot);
        let (first, last) = (entries[0].slot, entries[entries.len() - 1].slot);
        for entry in entries {
            self.core.persist_entry(entry);
        }
        self.core.send_after_persist(
            from,
            Message::Accepted {
                ballot,
                first,
                last,
            },
        );
        if from != self.core.cfg.id {
            self.core.learn_commit(from, ballot, commit);
            self.after_commit_change();
        }
        Ok(())
    }

    fn on_heartbeat(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        lease_round: u64,
    ) -> std::result::Result<(), RejectReason> {
        self.core.highest_round = self.core.highest_round.max(ballot.round);
        if ballot < self.core.promised {
            return Err(self.refuse_stale(from, ballot));
        }
        self.core.promise(ballot);
        // A leader whose ballot we accept has completed phase 1, so every
        // lease granted to a lower ballot has ended (see the crate docs).
        // Round 0 is a commit notification only, not a lease request.
        if lease_round > 0 {
            self.core.grant = Some(Grant {
                holder: Some(from),
                until: self.core.now + self.core.cfg.lease_duration,
            });
        }
        self.follow(from, ballot);
        if from != self.core.cfg.id {
            self.core.learn_commit(from, ballot, commit);
            self.after_commit_change();
        }
        if lease_round > 0 {
            let ack = Message::HeartbeatAck {
                ballot,
                lease_round,
                commit: self.core.log.commit,
            };
            self.core.send_after_persist(from, ack);
        }
        Ok(())
    }

    fn on_nack(&mut self, ballot: Ballot, promised: Ballot) {
        self.core.highest_round = self.core.highest_round.max(promised.round);
        match &self.role {
            // A leader that meets a higher promise campaigns again at once:
            // if its lease grants are still in force, no one else can win,
            // and it is back in one round trip.
            Role::Leader(l) if l.ballot == ballot => self.campaign(),
            Role::Candidate(c) if c.ballot == ballot => {
                self.set_role(Role::Follower(None));
                self.core.reset_election_timer();
            }
            _ => {}
        }
    }

    /// The leader of `ballot` handed its leadership to us: campaign now,
    /// naming its ballot so that its acceptors' grants do not stop us.
    fn on_timeout_now(&mut self, ballot: Ballot) -> std::result::Result<(), RejectReason> {
        if ballot < self.core.promised {
            return Err(RejectReason::StaleBallot {
                ballot,
                current: self.core.promised,
            });
        }
        if matches!(self.role, Role::Leader(_)) {
            return Err(RejectReason::NotApplicable("already leading"));
        }
        if !self.core.is_voter() {
            return Err(RejectReason::NotApplicable("not a voter"));
        }
        self.start_campaign(Some(ballot));
        Ok(())
    }

    // ---- Catch-up (every role) ----

    fn on_catch_up_request(&mut self, from: NodeId, first: Slot) {
        let log = &self.core.log;
        if first <= log.snapshot.index {
            self.core.want_snapshot(from);
            return;
        }
        if first > log.commit {
            return;
        }
        let last = log.commit.min(first + self.core.cfg.max_batch as Slot - 1);
        let entries: Vec<Entry> = log.range(first..=last).cloned().collect();
        let commit = log.commit;
        self.core.send(from, Message::CatchUp { entries, commit });
    }

    fn on_catch_up(&mut self, from: NodeId, entries: Vec<Entry>, commit: Slot) {
        let mut moved = false;
        for entry in entries {
            if entry.slot == self.core.log.commit + 1 {
                let slot = entry.slot;
                // Keep our own entry if it holds the same (chosen) value: its
                // ballot may be higher, and what we accepted stays accepted.
                if self
                    .core
                    .log
                    .get(slot)
                    .is_none_or(|e| e.value != entry.value)
                {
                    self.core.persist_entry(entry);
                }
                self.core.log.commit_through(slot, None);
                moved = true;
            }
        }
        if moved {
            self.core.hard_changed();
            self.after_commit_change();
        }
        if self.core.log.commit < commit {
            self.core.request_catch_up(from, true);
        }
    }

    fn on_install_snapshot(&mut self, snapshot: Snapshot) {
        if snapshot.index <= self.core.log.commit {
            return;
        }
        let index = snapshot.index;
        self.core.log.install_snapshot(snapshot.without_data());
        self.core.out.entries.retain(|slot, _| *slot > index);
        self.core.out.compact = Some(index);
        self.core.out.snapshot = Some(snapshot);
        self.core.delivered = index;
        self.core.hard_changed();
        self.after_commit_change();
    }

    /// Reacts to a commit index that moved: a leader dropped from the
    /// membership steps down; a replica that is no longer a voter stops
    /// campaigning.
    pub(crate) fn after_commit_change(&mut self) {
        if self.core.is_voter() {
            return;
        }
        match &self.role {
            Role::Leader(leader) => {
                // A last commit notification (round 0: no lease request), so
                // the others learn of the change that removed us.
                let (ballot, commit) = (leader.ballot, self.core.log.commit);
                for peer in self
                    .core
                    .active_configs()
                    .iter()
                    .flat_map(|m| m.voters.iter())
                {
                    let heartbeat = Message::Heartbeat {
                        ballot,
                        commit,
                        lease_round: 0,
                    };
                    if *peer != self.core.cfg.id {
                        self.core.send(*peer, heartbeat);
                    }
                }
                self.set_role(Role::Follower(None));
                self.core.reset_election_timer();
            }
            Role::Candidate(_) => {
                self.set_role(Role::Follower(None));
                self.core.reset_election_timer();
            }
            Role::Follower(_) => {}
        }
    }
}
