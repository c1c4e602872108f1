//! Moving a group's replicas between nodes: one voter at a time, through
//! the group's own log.
//!
//! # A move
//!
//! [`move_replica`] moves group `g`'s replica from node `from` to node `to`
//! (any node may run it: `meridian move-replica`, the `MoveReplica` call):
//!
//! 1. `to` starts an empty replica of `g` (`HostReplica`, [`Start::Join`]),
//!    remembered in its node record so that it survives a restart;
//! 2. the leader of `g` adds `to` to the voters (`ChangeVoters`, a
//!    membership change through the Paxos log: `Replica::propose_membership`)
//!    and `to` learns the group's state from the leader, by log or by
//!    snapshot;
//! 3. the move waits until `to` has applied what the leader had committed
//!    when the change was done (caught up);
//! 4. the leader removes `from` from the voters. If `from` leads, it first
//!    hands its leadership to another live voter ([`Group::transfer_leadership`])
//!    and the change is retried at the new leader;
//! 5. `from` stops its replica and erases its Paxos and state machine
//!    records (`DropReplica`); versions stay in its store, as they do when a
//!    range moves away.
//!
//! When `from` is down (its leader no longer hears it), steps 2-3 come after
//! step 4: adding a voter first would make the group's quorum need the new
//! voter before it caught up. Every membership change is refused at the
//! leader when the voters it heard from lately would no longer be a quorum
//! of the new membership ([`keeps_live_quorum`]), so a move never makes a
//! group unavailable by itself.
//!
//! A move makes `to` a voter and `from` not one ([`plan_move`]), and every
//! step can be repeated: a change the membership already shows is done at
//! once, hosting a replica that is there and dropping one that is gone are
//! no-ops. So a move that failed part way is finished by running it again.
//!
//! # Retired replicas
//!
//! A node that was down or cut off while it was removed does not learn it
//! (the leader stops talking to it) and its replica keeps campaigning, in
//! vain: the voters refuse ballots from nodes outside their membership.
//! Every [`RETIRE_INTERVAL`], each node asks the leader of every group
//! whose replica here has no leader (campaigning, or never added) whether
//! it is a voter, and drops the replica if not: at once for a replica that
//! believes it votes, after [`JOIN_GRACE`] for one that never joined (a
//! move abandoned between steps 1 and 2).
//!
//! # Replica rebalancing
//!
//! The node serving the first group moves one replica per round
//! ([`pick_replica_move`]): off a dead node, else from the node holding
//! the most replicas to one holding two fewer (a node just added holds
//! none).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use meridian_error::{Error, Result};
use meridian_paxos::{MembershipChange, NodeId, RoleKind};
use meridian_proto::v1;

use crate::group::{shows, Group};
use crate::node::{every, Node, DATA_GROUP};
use crate::route::{unexpected, ClusterGroups};

#[cfg(doc)]
use crate::group::Start;

/// How long a membership change may take to be chosen.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a new voter may take to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(300);

/// How often a move polls the new voter's progress.
const CATCH_UP_POLL: Duration = Duration::from_millis(50);

/// How often a node looks for replicas it should no longer hold.
pub const RETIRE_INTERVAL: Duration = Duration::from_secs(10);

/// How long a replica that never became a voter is kept.
pub const JOIN_GRACE: Duration = Duration::from_secs(300);

/// What a move still has to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Add the new voter, wait for it, then remove the old one (the old one
    /// is up: the group keeps its fault tolerance throughout).
    AddFirst,
    /// Remove the old voter, then add the new one (the old one is down:
    /// adding first would make the quorum need the new voter at once).
    RemoveFirst,
    /// Only remove the old voter: the new one is a voter already (a move
    /// stopped after adding it).
    RemoveOnly,
    /// Only add the new voter: the old one is gone already (a move stopped
    /// after removing it).
    AddOnly,
    /// The voters already show the move; only the old replica may be left
    /// to drop.
    Done,
}

/// What is left of moving a replica from `from` to `to` in a group whose
/// committed voters are `voters`, of which `live` answered the leader
/// lately. A move makes `to` a voter and `from` not one, so repeating a
/// move that stopped half way finishes it.
pub fn plan_move(voters: &[NodeId], live: &[NodeId], from: NodeId, to: NodeId) -> Result<Order> {
    if from == to {
        return Err(Error::InvalidInput(format!(
            "a replica cannot move from node {from} to itself"
        )));
    }
    Ok(match (voters.contains(&from), voters.contains(&to)) {
        (false, true) => Order::Done,
        (false, false) => Order::AddOnly,
        (true, true) => Order::RemoveOnly,
        (true, false) if live.contains(&from) => Order::AddFirst,
        (true, false) => Order::RemoveFirst,
    })
}

/// Whether the voters `live` (answering the leader lately) stay a quorum of
/// the membership `voters` changed by `change`. An added voter counts as
/// live: it is there to catch up.
pub fn keeps_live_quorum(voters: &[NodeId], live: &[NodeId], change: MembershipChange) -> bool {
    let mut after: BTreeSet<NodeId> = voters.iter().copied().collect();
    let mut up: BTreeSet<NodeId> = live.iter().copied().collect();
    match change {
        MembershipChange::Add(node) => {
            after.insert(node);
            up.insert(node);
        }
        MembershipChange::Remove(node) => {
            after.remove(&node);
            up.remove(&node);
        }
    }
    let answering = after.intersection(&up).count();
    !after.is_empty() && answering > after.len() / 2
}

/// The `ChangeVoters` call at the group's leader (this node's replica,
/// which serves): makes the change, if any, and reports the voters.
pub(crate) async fn change_voters_at_leader(
    node: &Node,
    group: &Group,
    op: v1::ChangeVotersOp,
) -> Result<v1::Voters> {
    let id = group.id();
    let change = match (op.add, op.remove) {
        (0, 0) => None,
        (add, 0) => Some(MembershipChange::Add(add)),
        (0, remove) => Some(MembershipChange::Remove(remove)),
        _ => {
            return Err(Error::InvalidInput(
                "a membership change adds or removes one voter, not both".into(),
            ))
        }
    };
    if let Some(change) = change {
        let status = group.status();
        if !shows(&status.voters, change) {
            if let MembershipChange::Add(new) = change {
                if new != node.id() && node.peer(new).is_none() {
                    return Err(Error::InvalidInput(format!(
                        "node {new} is not a member of the cluster"
                    )));
                }
            }
            if !keeps_live_quorum(&status.voters, &status.live_voters, change) {
                return Err(Error::Aborted(format!(
                    "group {id}: refused '{change}': the voters answering the leader \
                     ({:?}) would not be a majority of the voters after it",
                    status.live_voters
                )));
            }
            if change == MembershipChange::Remove(node.id()) {
                // A leader that removed itself would step down and leave the
                // group leaderless for a lease: hand over first, and let the
                // caller ask the new leader.
                let target = status
                    .live_voters
                    .iter()
                    .copied()
                    .find(|&v| v != node.id())
                    .ok_or_else(|| {
                        Error::Aborted(format!(
                            "group {id}: no other live voter to hand the leadership to"
                        ))
                    })?;
                group.transfer_leadership(target).await?;
                return Err(Error::NotLeader {
                    group: id,
                    leader: Some(target),
                });
            }
            group.change_voters(change, CHANGE_TIMEOUT).await?;
        }
    }
    let status = group.status();
    Ok(v1::Voters {
        voters: status.voters,
        commit: status.commit,
        live: status.live_voters,
    })
}

/// Asks `group`'s leader to make `change` (none: only report the voters).
async fn change_voters(
    groups: &ClusterGroups,
    group: u64,
    change: Option<MembershipChange>,
) -> Result<v1::Voters> {
    let op = v1::ChangeVotersOp {
        add: match change {
            Some(MembershipChange::Add(node)) => node,
            _ => 0,
        },
        remove: match change {
            Some(MembershipChange::Remove(node)) => node,
            _ => 0,
        },
    };
    let what = match change {
        Some(_) => "a membership change",
        None => "a membership query",
    };
    match groups
        .group_call(group, what, v1::txn_request::Op::ChangeVoters(op))
        .await?
    {
        v1::txn_reply::Result::Voters(voters) => Ok(voters),
        other => Err(unexpected(&other)),
    }
}

/// The committed voters of `group`, as its leader tells.
pub(crate) async fn voters(groups: &ClusterGroups, group: u64) -> Result<Vec<NodeId>> {
    Ok(change_voters(groups, group, None).await?.voters)
}

/// Moves `group`'s replica from node `from` to node `to` (module docs) and
/// returns the group's voters after it.
pub async fn move_replica(
    groups: &ClusterGroups,
    group: u64,
    from: NodeId,
    to: NodeId,
) -> Result<Vec<NodeId>> {
    let node = groups.node();
    if !node.known_groups().contains(&group) {
        return Err(Error::InvalidInput(format!(
            "the cluster has no group {group}"
        )));
    }
    for id in [from, to] {
        if id != node.id() && node.peer(id).is_none() {
            return Err(Error::InvalidInput(format!(
                "node {id} is not a member of the cluster"
            )));
        }
    }
    let request = v1::ReplicaRequest {
        cluster: node.cluster(),
        group,
    };
    let now = change_voters(groups, group, None).await?;
    let order = plan_move(&now.voters, &now.live, from, to)?;
    tracing::info!(group, from, to, ?order, "moving a replica");
    let add = || async move {
        groups.api_of(to)?.host_replica(request).await?;
        let added = change_voters(groups, group, Some(MembershipChange::Add(to))).await?;
        caught_up(groups, request, to, added.commit).await
    };
    let remove = || change_voters(groups, group, Some(MembershipChange::Remove(from)));
    match order {
        Order::AddFirst => {
            add().await?;
            remove().await?;
        }
        Order::RemoveFirst => {
            remove().await?;
            add().await?;
        }
        Order::RemoveOnly => {
            remove().await?;
        }
        Order::AddOnly => add().await?,
        Order::Done => {}
    }
    if let Err(err) = groups.api_of(from)?.drop_replica(request).await {
        // The voters no longer name it: it retires by itself once it is
        // back (module docs, *Retired replicas*).
        tracing::warn!(group, from, %err, "the old replica could not be dropped yet");
    }
    let voters = voters(groups, group).await?;
    tracing::info!(group, from, to, ?voters, "moved a replica");
    Ok(voters)
}

/// Waits until node `to`'s replica of the group `hosting` names has
/// applied `slot`. If `to` has no replica (it retired an old one just as
/// the move began), it is asked to host one again.
async fn caught_up(
    groups: &ClusterGroups,
    hosting: v1::ReplicaRequest,
    to: NodeId,
    slot: u64,
) -> Result<()> {
    let group = hosting.group;
    let api = groups.api_of(to)?;
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        if let Ok(status) = api.status().await {
            match status.groups.iter().find(|g| g.group == group) {
                Some(replica) if replica.applied >= slot => return Ok(()),
                Some(_) => {}
                None => api.host_replica(hosting).await?,
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::Unavailable(format!(
                "node {to}'s new replica of group {group} did not catch up within \
                 {CATCH_UP_TIMEOUT:?}; it stays a voter: run the move again to finish it"
            )));
        }
        tokio::time::sleep(CATCH_UP_POLL).await;
    }
}

/// Drops, every [`RETIRE_INTERVAL`] while the node lives, the replicas the
/// voters of their group no longer name (module docs, *Retired replicas*).
pub(crate) async fn retire_removed(node: Weak<Node>) {
    every(node, RETIRE_INTERVAL, |node| async move {
        retire_once(&node).await
    })
    .await
}

/// One round of [`retire_removed`].
async fn retire_once(node: &Arc<Node>) {
    let groups = ClusterGroups::new(node.clone());
    for replica in node.hosted() {
        let group = replica.id();
        let status = replica.status();
        let leaderless = status.role == RoleKind::Candidate || status.leader.is_none();
        let believes_voter = status.voters.contains(&node.id());
        if !leaderless || (!believes_voter && replica.started().elapsed() < JOIN_GRACE) {
            continue;
        }
        match voters(&groups, group).await {
            Ok(voters) if !voters.contains(&node.id()) => {
                tracing::info!(
                    group,
                    ?voters,
                    "retiring a replica the voters no longer name"
                );
                if let Err(err) = node.drop_replica_here(group).await {
                    tracing::warn!(group, %err, "cannot retire the replica");
                }
            }
            Ok(_) => {}
            Err(err) => tracing::debug!(group, %err, "cannot ask whether this replica votes"),
        }
    }
}

/// A group's voters, as its leader told the rebalancer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The group.
    pub group: u64,
    /// Its committed voters.
    pub voters: Vec<NodeId>,
}

/// The replica move that repairs or evens out the placement `groups` over
/// the cluster's `members`, of which `down` do not answer now and `dead`
/// (among them) have not answered for the dead-node timeout:
/// `(group, from, to)`.
///
/// First a dead voter is replaced, by the answering node outside the group
/// holding the fewest replicas. Otherwise, if the answering node holding
/// the most replicas holds at least two more than another that could take
/// one of its groups, one such group moves there (never a group with a
/// voter down: it is short of fault tolerance already). Ties go to the
/// lowest ids.
pub fn pick_replica_move(
    members: &[NodeId],
    down: &BTreeSet<NodeId>,
    dead: &BTreeSet<NodeId>,
    groups: &[Placed],
) -> Option<(u64, NodeId, NodeId)> {
    let held = |node: NodeId| groups.iter().filter(|g| g.voters.contains(&node)).count();
    let up: Vec<NodeId> = members
        .iter()
        .copied()
        .filter(|n| !down.contains(n) && !dead.contains(n))
        .collect();
    // The answering node outside `group` that holds the fewest replicas.
    let target = |group: &Placed| {
        up.iter()
            .copied()
            .filter(|n| !group.voters.contains(n))
            .min_by_key(|&n| (held(n), n))
    };
    for group in groups {
        if let Some(&gone) = group.voters.iter().find(|v| dead.contains(v)) {
            if let Some(to) = target(group) {
                return Some((group.group, gone, to));
            }
        }
    }
    let most = up
        .iter()
        .copied()
        .max_by_key(|&n| (held(n), std::cmp::Reverse(n)))?;
    groups
        .iter()
        .filter(|g| g.voters.contains(&most))
        .filter(|g| {
            !g.voters
                .iter()
                .any(|v| down.contains(v) || dead.contains(v))
        })
        .filter_map(|g| Some((g.group, target(g)?)))
        .filter(|&(_, to)| held(to) + 2 <= held(most))
        .min_by_key(|&(group, to)| (held(to), group, to))
        .map(|(group, to)| (group, most, to))
}

/// Every `replica_rebalance_interval` (never when zero) while the node
/// lives: if this node serves the first group (one decider at a time),
/// makes the move [`pick_replica_move`] picks, if any. Nodes are judged by
/// whether they answer `Hello`; one down for `dead_node_timeout` is dead.
pub(crate) async fn rebalance_replicas(node: Weak<Node>) {
    let (interval, dead_after) = match node.upgrade() {
        Some(node) => {
            let options = node.replication_options();
            (
                options.replica_rebalance_interval,
                options.dead_node_timeout,
            )
        }
        None => return,
    };
    let down_since = Arc::new(Mutex::new(BTreeMap::new()));
    every(node, interval, |node| {
        let down_since = down_since.clone();
        async move {
            let decides = node
                .group(DATA_GROUP)
                .is_some_and(|g| g.leader_engine().is_some());
            if decides {
                rebalance_once(&node, &down_since, dead_after).await;
            } else {
                // Another node decides, by its own view of who is down.
                down_since.lock().expect("down_since poisoned").clear();
            }
        }
    })
    .await
}

/// One round of [`rebalance_replicas`]; `down_since` remembers since when
/// each node has not answered.
async fn rebalance_once(
    node: &Arc<Node>,
    down_since: &Mutex<BTreeMap<NodeId, Instant>>,
    dead_after: Duration,
) {
    let groups = ClusterGroups::new(node.clone());
    let mut down = BTreeSet::new();
    for id in node.peer_ids() {
        let answered = match groups.api_of(id) {
            Ok(api) => api.hello(v1::HelloRequest::default()).await.is_ok(),
            Err(_) => false,
        };
        if !answered {
            down.insert(id);
        }
    }
    let dead: BTreeSet<NodeId> = {
        let mut since = down_since.lock().expect("down_since poisoned");
        since.retain(|id, _| down.contains(id));
        for &id in &down {
            since.entry(id).or_insert_with(Instant::now);
        }
        since
            .iter()
            .filter(|(_, t)| t.elapsed() >= dead_after)
            .map(|(&id, _)| id)
            .collect()
    };
    let mut placed = Vec::new();
    for group in node.known_groups() {
        match voters(&groups, group).await {
            Ok(voters) => placed.push(Placed { group, voters }),
            Err(err) => {
                // No move on a partial view.
                tracing::debug!(group, %err, "replica rebalancing: no view of a group");
                return;
            }
        }
    }
    let mut members = node.peer_ids();
    members.push(node.id());
    let Some((group, from, to)) = pick_replica_move(&members, &down, &dead, &placed) else {
        return;
    };
    let why = if dead.contains(&from) {
        "its node is dead"
    } else {
        "to even out replicas"
    };
    tracing::info!(group, from, to, why, "rebalancing replicas: moving one");
    if let Err(err) = move_replica(&groups, group, from, to).await {
        tracing::warn!(group, from, to, %err, "rebalancing replicas: the move failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_adds_first_when_the_old_voter_is_up_and_removes_first_when_not() {
        let voters = [1, 2, 3];
        assert_eq!(
            plan_move(&voters, &[1, 2, 3], 2, 4).unwrap(),
            Order::AddFirst
        );
        assert_eq!(
            plan_move(&voters, &[1, 3], 2, 4).unwrap(),
            Order::RemoveFirst
        );
        // A repeated move finishes what a stopped one left.
        assert_eq!(
            plan_move(&[1, 3, 4], &[1, 3, 4], 2, 4).unwrap(),
            Order::Done
        );
        assert_eq!(
            plan_move(&[1, 2, 3, 4], &[1, 2, 3, 4], 2, 4).unwrap(),
            Order::RemoveOnly
        );
        assert_eq!(plan_move(&[1, 3], &[1, 3], 2, 4).unwrap(), Order::AddOnly);
        assert!(plan_move(&voters, &voters, 2, 2).is_err());
    }

    #[test]
    fn a_change_is_allowed_only_if_the_live_voters_stay_a_quorum() {
        use MembershipChange::{Add, Remove};
        // All up: any single change keeps a quorum.
        assert!(keeps_live_quorum(&[1, 2, 3], &[1, 2, 3], Add(4)));
        assert!(keeps_live_quorum(&[1, 2, 3], &[1, 2, 3], Remove(3)));
        // One of three down: removing it is fine, removing a live one is not.
        assert!(keeps_live_quorum(&[1, 2, 3], &[1, 2], Remove(3)));
        assert!(!keeps_live_quorum(&[1, 2, 3], &[1, 2], Remove(2)));
        // Adding with one down: 3 of 4 answering (the new one counted).
        assert!(keeps_live_quorum(&[1, 2, 3], &[1, 2], Add(4)));
        // Two of five down: adding leaves 4 of 6, removing a dead one 3 of 4.
        assert!(keeps_live_quorum(&[1, 2, 3, 4, 5], &[1, 2, 3], Add(6)));
        assert!(keeps_live_quorum(&[1, 2, 3, 4, 5], &[1, 2, 3], Remove(5)));
        assert!(!keeps_live_quorum(&[1, 2, 3, 4, 5], &[1, 2, 3], Remove(1)));
        // Never to no voter.
        assert!(!keeps_live_quorum(&[1], &[1], Remove(1)));
    }

    fn placed(groups: &[&[NodeId]]) -> Vec<Placed> {
        (1..)
            .zip(groups)
            .map(|(group, voters)| Placed {
                group,
                voters: voters.to_vec(),
            })
            .collect()
    }

    fn set(nodes: &[NodeId]) -> BTreeSet<NodeId> {
        nodes.iter().copied().collect()
    }

    #[test]
    fn a_dead_nodes_replicas_go_to_the_least_loaded_live_nodes() {
        let members = [1, 2, 3, 4, 5];
        let groups = placed(&[&[1, 2, 3], &[2, 3, 4], &[3, 4, 5], &[1, 4, 5]]);
        // Down but not dead yet: nothing moves (and no balancing of groups
        // with a voter down).
        assert_eq!(
            pick_replica_move(&members, &set(&[3]), &set(&[]), &groups),
            None
        );
        // Dead: group 1 loses node 3 to node 5 or 4; node 5 holds 2, node 4
        // holds 3, so node 5.
        assert_eq!(
            pick_replica_move(&members, &set(&[3]), &set(&[3]), &groups),
            Some((1, 3, 5))
        );
        // With nowhere to go (every live node holds the group), nothing.
        let full = placed(&[&[1, 2, 3]]);
        assert_eq!(
            pick_replica_move(&[1, 2, 3], &set(&[3]), &set(&[3]), &full),
            None
        );
    }

    #[test]
    fn replicas_even_out_to_within_one_per_node() {
        // Node 4 was added empty-handed (or emptied by hand): it gets one
        // from node 1, which holds the most.
        let groups = placed(&[&[1, 2, 3], &[1, 2, 3], &[1, 2, 3]]);
        assert_eq!(
            pick_replica_move(&[1, 2, 3, 4], &set(&[]), &set(&[]), &groups),
            Some((1, 1, 4))
        );
        // Within one: nothing to do.
        let even = placed(&[&[1, 2, 3], &[2, 3, 4], &[1, 3, 4]]);
        assert_eq!(
            pick_replica_move(&[1, 2, 3, 4], &set(&[]), &set(&[]), &even),
            None
        );
        // Applying the picks converges: 4 nodes, 4 groups of 3 end at 3 each.
        let mut groups = placed(&[&[1, 2, 3], &[1, 2, 3], &[1, 2, 3], &[1, 2, 3]]);
        let mut moves = 0;
        while let Some((g, from, to)) =
            pick_replica_move(&[1, 2, 3, 4], &set(&[]), &set(&[]), &groups)
        {
            let voters = &mut groups[g as usize - 1].voters;
            voters.retain(|&v| v != from);
            voters.push(to);
            moves += 1;
            assert!(moves <= 4, "no convergence: {groups:?}");
        }
        for node in 1..=4 {
            let held = groups.iter().filter(|g| g.voters.contains(&node)).count();
            assert_eq!(held, 3, "{groups:?}");
        }
    }
}
