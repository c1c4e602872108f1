//! The checkers run on every simulation: vows survive crashes, leases are
//! disjoint in true time, the healed group converges (and with agreement,
//! checked at every apply in the simulator, nothing committed is lost).

use std::collections::BTreeMap;

use super::Sim;
use crate::codec;
use crate::types::{Nanos, NodeId};

impl Sim {
    /// A crashing node's disk holds every promise and acceptance it sent.
    pub(super) fn check_vows(&self, id: NodeId) -> Result<(), String> {
        let Some(vows) = self.vows.get(&id) else {
            return Ok(());
        };
        let disk = &self.nodes[&id].disk;
        let hard = disk
            .hard_state
            .as_ref()
            .map(|b| codec::decode_hard_state(b).expect("own disk"));
        let promised = hard.map(|h| h.promised).unwrap_or_default();
        if promised < vows.promised {
            return Err(format!(
                "n{id} crashed with promise {promised} on disk but had sent a promise of {}",
                vows.promised
            ));
        }
        let snap = disk
            .snapshot
            .as_ref()
            .map_or(0, |b| codec::decode_snapshot(b).expect("own disk").index);
        for (&slot, &ballot) in vows.accepted.range(snap + 1..) {
            let on_disk = disk
                .entries
                .get(&slot)
                .map(|b| codec::decode_entry(b).expect("own disk").ballot);
            if on_disk.is_none_or(|b| b < ballot) {
                return Err(format!(
                    "n{id} crashed without slot {slot} accepted in {ballot} on disk, but had said it accepted it"
                ));
            }
        }
        Ok(())
    }

    /// Opens, extends and closes lease intervals in true time.
    pub(super) fn observe_leases(&mut self) {
        let now = self.now;
        let trace = self.trace;
        for node in self.nodes.values_mut() {
            let local = node.clock.local(now);
            let current = node.replica.as_ref().and_then(|r| r.lease(local));
            if let Some((start, ballot, expires)) = node.lease {
                let expired = expires <= local;
                let changed = current.is_none_or(|l| l.ballot != ballot);
                if expired || changed {
                    let end = node.clock.true_time(expires).min(now);
                    if std::env::var_os("MERIDIAN_SIM_TRACE").is_some() {
                        eprintln!(
                            "lease close n{} {ballot} [{start}, {end}] expired={expired} now={now}",
                            node.id
                        );
                    }
                    self.leases.push((start, end, node.id, ballot));
                    node.lease = None;
                } else if let Some(l) = current {
                    node.lease = Some((start, ballot, l.expires.max(expires)));
                }
            }
            if node.lease.is_none() {
                if let Some(l) = current {
                    if trace {
                        eprintln!("lease open n{} {} at {now}", node.id, l.ballot);
                    }
                    node.lease = Some((now, l.ballot, l.expires));
                }
            }
        }
    }

    pub(super) fn close_all_leases(&mut self) {
        let now = self.now;
        for node in self.nodes.values_mut() {
            if let Some((start, ballot, expires)) = node.lease.take() {
                let end = node.clock.true_time(expires).min(now);
                self.leases.push((start, end, node.id, ballot));
            }
        }
    }

    /// At most one leaseholder at any instant of true time.
    pub(super) fn check_leases(&mut self) -> Result<(), String> {
        self.leases.sort();
        let mut last: Option<(Nanos, NodeId, crate::Ballot)> = None;
        self.stats.closest_handover = u64::MAX;
        for &(start, end, node, ballot) in &self.leases {
            if let Some((prev_end, prev_node, prev_ballot)) = last {
                if start < prev_end {
                    return Err(format!(
                        "seed {}: leases overlap: n{prev_node} (ballot {prev_ballot}) until t={}ns, n{node} (ballot {ballot}) from t={}ns",
                        self.seed, prev_end, start
                    ));
                }
            }
            if let Some((prev_end, prev_node, _)) = last {
                if prev_node != node {
                    self.stats.closest_handover = self.stats.closest_handover.min(start - prev_end);
                }
            }
            if last.is_none_or(|(e, _, _)| end >= e) {
                last = Some((end, node, ballot));
            }
        }
        Ok(())
    }

    /// After the settle period every voter has applied every chosen slot and
    /// the state machines agree.
    pub(super) fn check_converged(&self) -> Result<(), String> {
        let max = self.chosen.keys().next_back().copied().unwrap_or(0);
        // The membership of the most advanced node is the group's.
        let best = self
            .nodes
            .values()
            .filter_map(|n| n.replica.as_ref())
            .max_by_key(|r| r.commit())
            .expect("some node");
        let voters = best.membership().voters.clone();
        let mut reference: Option<&BTreeMap<u64, u64>> = None;
        let Some(marker) = self.marker_slot else {
            return Err(format!(
                "seed {}: the healed group made no progress: no write proposed after the heal was applied\n{}",
                self.seed,
                self.status()
            ));
        };
        for id in voters {
            let node = &self.nodes[&id];
            if node.applied < marker {
                return Err(format!(
                    "seed {}: n{id} did not apply the write proposed after the heal (slot {marker})\n{}",
                    self.seed,
                    self.status()
                ));
            }
            let replica = node.replica.as_ref().expect("all restarted");
            if node.applied < max {
                return Err(format!(
                    "seed {}: n{id} did not converge: applied {} of {max} chosen slots\n{}",
                    self.seed,
                    node.applied,
                    self.status()
                ));
            }
            let _ = replica;
            if node.applied == max {
                match reference {
                    Some(kv) if kv != &node.kv => {
                        return Err(format!("seed {}: n{id}'s state machine differs", self.seed));
                    }
                    _ => reference = Some(&node.kv),
                }
            }
        }
        Ok(())
    }
}
