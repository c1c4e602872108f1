//! The simulator's adversary and clients: faults (crashes, partitions,
//! membership changes), client reads and writes, and the marker write that
//! shows the healed group makes progress.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::Rng;

use super::linearizability::{Call, Op};
use super::{encode_put, Event, PendingWrite, Sim};
use crate::config::{MILLI, SECOND};
use crate::replica::RoleKind;
use crate::types::{MembershipChange, NodeId};

impl Sim {
    /// After the heal: proposes a marker write at the leader, again every
    /// 100 ms until someone applies one.
    pub(super) fn marker(&mut self) {
        if self.marker_slot.is_some() {
            return;
        }
        let now = self.now;
        let id = self.next_marker;
        let leader = self.nodes.values_mut().find_map(|n| {
            let local = n.clock.local(now);
            let replica = n.replica.as_mut()?;
            replica
                .propose(local, id, encode_put(u64::MAX, id))
                .ok()
                .map(|_| n.id)
        });
        if let Some(leader) = leader {
            self.next_marker += 1;
            self.pump(leader);
        }
        self.schedule(100 * MILLI, Event::Marker);
    }

    /// Injects one random fault.
    pub(super) fn fault(&mut self) {
        if self.trace {
            eprintln!("fault at {}", self.now);
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let pick = |rng: &mut StdRng| ids[rng.random_range(0..ids.len())];
        let mut crashed = Vec::new();
        let leaders: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| {
                n.replica
                    .as_ref()
                    .is_some_and(|r| r.role() == RoleKind::Leader)
            })
            .map(|n| n.id)
            .collect();
        let kind = if self.rng.random_bool(self.cfg.isolate_leader) {
            10
        } else if self.rng.random_bool(self.cfg.handover) {
            13
        } else {
            self.rng.random_range(0..14)
        };
        match kind {
            0 => crashed.push(pick(&mut self.rng)),
            10 => {
                // Cut the leaders off (from everyone, or from one node).
                for &l in &leaders {
                    let one = self.rng.random_bool(0.3).then(|| pick(&mut self.rng));
                    for &other in &ids {
                        if other != l && one.is_none_or(|o| o == other) {
                            self.blocked.insert((l, other));
                            self.blocked.insert((other, l));
                        }
                    }
                }
            }
            11 => {
                // A leader loses one follower; once that follower's grant
                // has run out, the leader is cut off and another follower
                // crashes and is back almost at once (it forgot the lease
                // it granted the leader).
                if let Some(&l) = leaders.first() {
                    let others: Vec<NodeId> = ids.iter().copied().filter(|&n| n != l).collect();
                    let b = others[self.rng.random_range(0..others.len())];
                    self.blocked.insert((l, b));
                    self.blocked.insert((b, l));
                    let a = others[self.rng.random_range(0..others.len())];
                    let incarnation = self.nodes[&a].incarnation;
                    let lease = self.cfg.lease;
                    let at = lease + self.rng.random_range(0..lease);
                    let restart = self.rng.random_range(MILLI..30 * MILLI);
                    self.schedule(
                        at,
                        Event::Crash {
                            node: a,
                            incarnation,
                            restart,
                            isolate: Some(l),
                        },
                    );
                }
            }
            1 => {
                // The leaders, and anyone with a write in progress.
                for node in self.nodes.values() {
                    let leads = node
                        .replica
                        .as_ref()
                        .is_some_and(|r| r.role() == RoleKind::Leader);
                    if leads || (node.persisting.is_some() && self.rng.random_bool(0.5)) {
                        crashed.push(node.id);
                    }
                }
            }
            2 => {
                // A power failure of many nodes at once.
                for &id in &ids {
                    if self.rng.random_bool(0.6) {
                        crashed.push(id);
                    }
                }
            }
            3 => {
                // Isolate one node.
                let id = pick(&mut self.rng);
                for &other in &ids {
                    if other != id {
                        self.blocked.insert((id, other));
                        self.blocked.insert((other, id));
                    }
                }
            }
            4 => {
                // Split in two.
                let side: BTreeSet<NodeId> = ids
                    .iter()
                    .copied()
                    .filter(|_| self.rng.random_bool(0.5))
                    .collect();
                for &a in &ids {
                    for &b in &ids {
                        if side.contains(&a) != side.contains(&b) {
                            self.blocked.insert((a, b));
                        }
                    }
                }
            }
            5 => {
                // Asymmetric: a can't reach b.
                let (a, b) = (pick(&mut self.rng), pick(&mut self.rng));
                if a != b {
                    self.blocked.insert((a, b));
                }
            }
            6 | 7 => self.blocked.clear(),
            13 => self.hand_over(),
            _ => {
                if self.cfg.membership_changes {
                    self.change_membership();
                }
            }
        }
        for id in crashed {
            self.crash(id);
            let after = self.rng.random_range(20 * MILLI..1500 * MILLI);
            self.schedule(after, Event::Restart(id));
        }
    }

    /// Asks every leader to hand its leadership to another voter.
    pub(super) fn hand_over(&mut self) {
        let now = self.now;
        let mut asked = Vec::new();
        for node in self.nodes.values_mut() {
            let local = node.clock.local(now);
            let Some(replica) = node.replica.as_mut() else {
                continue;
            };
            if replica.role() != RoleKind::Leader {
                continue;
            }
            let others: Vec<NodeId> = replica
                .membership()
                .voters
                .iter()
                .copied()
                .filter(|&v| v != node.id)
                .collect();
            if others.is_empty() {
                continue;
            }
            let target = others[self.rng.random_range(0..others.len())];
            // Refused while the lease is not valid or a membership change
            // is in flight: the adversary just tries again later.
            let _ = replica.transfer_leadership(local, target);
            asked.push(node.id);
        }
        for id in asked {
            self.pump(id);
        }
    }

    pub(super) fn change_membership(&mut self) {
        let now = self.now;
        let all: Vec<NodeId> = self.nodes.keys().copied().collect();
        let rng = &mut self.rng;
        let Some(node) = self.nodes.values_mut().find(|n| {
            n.replica
                .as_ref()
                .is_some_and(|r| r.lease(n.clock.local(now)).is_some())
        }) else {
            return;
        };
        let local = node.clock.local(now);
        let replica = node.replica.as_mut().expect("alive");
        let voters = replica.membership().voters.clone();
        let change = if voters.len() <= 3 || (voters.len() < 5 && rng.random_bool(0.5)) {
            let candidates: Vec<NodeId> = all
                .iter()
                .copied()
                .filter(|n| !voters.contains(n))
                .collect();
            if candidates.is_empty() {
                return;
            }
            MembershipChange::Add(candidates[rng.random_range(0..candidates.len())])
        } else {
            let list: Vec<NodeId> = voters.iter().copied().collect();
            MembershipChange::Remove(list[rng.random_range(0..list.len())])
        };
        let id = node.id;
        let _ = replica.propose_membership(local, change);
        self.pump(id);
    }

    pub(super) fn client_op(&mut self, client: u64) {
        if self.busy.contains(&client) {
            return;
        }
        let now = self.now;
        let key = self.rng.random_range(0..self.cfg.keys);
        let leaders: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| {
                n.replica
                    .as_ref()
                    .is_some_and(|r| r.role() == RoleKind::Leader)
            })
            .map(|n| n.id)
            .collect();
        let id = if leaders.is_empty() || self.rng.random_bool(0.1) {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            ids[self.rng.random_range(0..ids.len())]
        } else {
            leaders[self.rng.random_range(0..leaders.len())]
        };
        let write = self.rng.random_bool(0.5);
        let node = self.nodes.get_mut(&id).expect("node");
        let local = node.clock.local(now);
        let incarnation = node.incarnation;
        let mut retry = true;
        if let Some(replica) = node.replica.as_mut() {
            if write {
                let value = self.next_value;
                let cmd = value;
                if replica.propose(local, cmd, encode_put(key, value)).is_ok() {
                    self.next_value += 1;
                    self.history.push(Call {
                        key,
                        op: Op::Write(value),
                        invoke: now,
                        response: u64::MAX,
                    });
                    let call = self.history.len() - 1;
                    self.writes.insert(
                        cmd,
                        PendingWrite {
                            client,
                            call,
                            node: id,
                            incarnation,
                        },
                    );
                    self.busy.insert(client);
                    self.schedule(3 * SECOND, Event::ClientGiveUp { client, call });
                    retry = false;
                }
            } else if replica.can_serve_reads(local) {
                let value = node.kv.get(&key).copied();
                self.history.push(Call {
                    key,
                    op: Op::Read(value),
                    invoke: now,
                    response: now,
                });
                self.stats.reads += 1;
            }
        }
        self.pump(id);
        if retry {
            let after = self.rng.random_range(5 * MILLI..60 * MILLI);
            self.schedule(after, Event::Client(client));
        }
    }

    pub(super) fn client_done(&mut self, client: u64) {
        self.busy.remove(&client);
        let after = self.rng.random_range(MILLI..40 * MILLI);
        self.schedule(after, Event::Client(client));
    }
}
