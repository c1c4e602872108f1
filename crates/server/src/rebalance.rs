//! Leader rebalancing: each node hands leaderships it holds beyond its
//! share to the voters that lead the fewest groups.
//!
//! Leaders end up unevenly spread after failures: when a node goes down,
//! the groups it led elect leaders among the survivors, and when it comes
//! back it leads nothing. Every `leader_rebalance_interval`, each node counts
//! who leads each of the cluster's groups (its replicas' statuses say it for
//! the groups it hosts; for the others, the peers that serve them say so)
//! and, if it leads at least two more than a live voter of one of its
//! groups, hands that group's leadership over to the least loaded such voter
//! ([`Group::transfer_leadership`], which does not wait out the lease). One
//! hand-over per node per interval: nodes act on views that lag each other,
//! and small steps converge without thrashing. Only voters that answered
//! the leader's recent heartbeats are targets, so a node that is down is
//! never handed anything.
//!
//! Left out: weighing groups by load (every group counts as one). Replicas
//! move in [`crate::replicas`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Weak;

use meridian_paxos::{NodeId, RoleKind};

use crate::group::GroupStatus;
use crate::node::{every, Node};

#[cfg(doc)]
use crate::group::Group;

/// What a node knows of one group it hosts, for rebalancing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leadership {
    /// The group.
    pub group: u64,
    /// Its leader, as this node's replica knows it.
    pub leader: Option<NodeId>,
    /// Whether this node leads it and serves (only then can it hand over).
    pub serving_here: bool,
    /// If this node leads it: the voters that answered its recent
    /// heartbeats, this node included.
    pub live_voters: Vec<NodeId>,
}

impl Leadership {
    /// The view of a group from its replica's status.
    pub fn of(status: &GroupStatus) -> Self {
        Leadership {
            group: status.group,
            leader: status.leader,
            serving_here: status.role == RoleKind::Leader && status.serving,
            live_voters: status.live_voters.clone(),
        }
    }
}

/// The hand-over that best evens out leaderships, as node `me` sees them:
/// `(group, target)` for a group `me` leads, to the live voter of that
/// group leading the fewest groups, if `me` leads at least two more than
/// it. `None` when leaderships are even (within one) as far as `me` can
/// help. Ties go to the lowest group and node ids.
pub fn pick_hand_over(me: NodeId, view: &[Leadership]) -> Option<(u64, NodeId)> {
    let mut led: BTreeMap<NodeId, usize> = BTreeMap::new();
    for group in view {
        if let Some(leader) = group.leader {
            *led.entry(leader).or_default() += 1;
        }
    }
    let load = |node: NodeId| led.get(&node).copied().unwrap_or(0);
    let mine = load(me);
    view.iter()
        .filter(|g| g.serving_here && g.leader == Some(me))
        .flat_map(|g| g.live_voters.iter().map(move |&voter| (g.group, voter)))
        .filter(|&(_, voter)| voter != me && load(voter) + 2 <= mine)
        .min_by_key(|&(group, voter)| (load(voter), group, voter))
}

/// Who leads each of the cluster's groups, as this node sees it: its
/// replicas' statuses for the groups it hosts, and for the others (groups
/// on a subset of the nodes) the peers that say they serve them.
async fn cluster_view(node: &Node) -> Vec<Leadership> {
    let mut missing = BTreeSet::new();
    let mut view = Vec::new();
    for id in node.known_groups() {
        match node.group(id) {
            Some(group) => view.push(Leadership::of(&group.status())),
            None => {
                missing.insert(id);
            }
        }
    }
    for peer in node.peer_ids() {
        if missing.is_empty() {
            break;
        }
        let Some(api) = node.peer(peer) else { continue };
        let Ok(status) = api.status().await else {
            continue;
        };
        for group in status.groups {
            if group.serving && missing.remove(&group.group) {
                view.push(Leadership {
                    group: group.group,
                    leader: Some(peer),
                    serving_here: false,
                    live_voters: Vec::new(),
                });
            }
        }
    }
    view
}

/// Rebalances this node's leaderships every `leader_rebalance_interval`
/// (never when it is zero) while the node lives.
pub(crate) async fn rebalance_leaders(node: Weak<Node>) {
    let interval = match node.upgrade() {
        Some(node) => node.replication_options().leader_rebalance_interval,
        None => return,
    };
    every(node, interval, |node| async move {
        let view = cluster_view(&node).await;
        let Some((id, target)) = pick_hand_over(node.id(), &view) else {
            return;
        };
        let Some(group) = node.group(id) else {
            return;
        };
        tracing::info!(
            group = id,
            target,
            "rebalancing: handing the leadership over"
        );
        if let Err(err) = group.transfer_leadership(target).await {
            tracing::info!(group = id, target, %err, "rebalancing: the hand-over failed");
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led(group: u64, leader: NodeId, me: NodeId, live: &[NodeId]) -> Leadership {
        Leadership {
            group,
            leader: Some(leader),
            serving_here: leader == me,
            live_voters: if leader == me {
                live.to_vec()
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn a_node_leading_two_more_than_a_live_voter_hands_one_over() {
        // Node 1 leads 3 groups, node 2 one, node 3 none (it just restarted).
        let view = [
            led(1, 1, 1, &[1, 2, 3]),
            led(2, 1, 1, &[1, 2, 3]),
            led(3, 1, 1, &[1, 2, 3]),
            led(4, 2, 1, &[]),
        ];
        assert_eq!(pick_hand_over(1, &view), Some((1, 3)));
        // Node 2 leads one group: nothing to give.
        assert_eq!(pick_hand_over(2, &view), None);
    }

    #[test]
    fn even_leaderships_stay_where_they_are() {
        let view = [
            led(1, 1, 1, &[1, 2, 3]),
            led(2, 1, 1, &[1, 2, 3]),
            led(3, 2, 1, &[]),
            led(4, 3, 1, &[]),
        ];
        assert_eq!(pick_hand_over(1, &view), None);
    }

    #[test]
    fn a_voter_that_is_down_or_not_in_the_group_gets_nothing() {
        // Node 3 leads nothing, but it answers no heartbeats (it is down):
        // only node 2, leading one, is a target, and 3 - 1 >= 2.
        let view = [
            led(1, 1, 1, &[1, 2]),
            led(2, 1, 1, &[1, 2]),
            led(3, 1, 1, &[1, 2]),
            led(4, 2, 1, &[]),
        ];
        assert_eq!(pick_hand_over(1, &view), Some((1, 2)));
        // With node 2 leading two, nobody is two below node 1.
        let view = [
            led(1, 1, 1, &[1, 2]),
            led(2, 1, 1, &[1, 2]),
            led(3, 1, 1, &[1, 2]),
            led(4, 2, 1, &[]),
            led(5, 2, 1, &[]),
        ];
        assert_eq!(pick_hand_over(1, &view), None);
    }

    #[test]
    fn only_groups_this_node_serves_are_handed_over() {
        let mut view = vec![
            led(1, 1, 1, &[1, 2, 3]),
            led(2, 1, 1, &[1, 2, 3]),
            led(3, 1, 1, &[1, 2, 3]),
        ];
        for group in &mut view {
            group.serving_here = false;
        }
        assert_eq!(pick_hand_over(1, &view), None);
    }
}
