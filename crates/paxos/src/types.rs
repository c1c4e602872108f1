//! The protocol's vocabulary: node ids, slots, ballots, log entries,
//! memberships, snapshots and the hard state.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A replica's id, unique within its cluster.
pub type NodeId = u64;

/// A position in the replicated log. Slot 0 is "before the first entry": the
/// first command goes to slot 1.
pub type Slot = u64;

/// Local monotonic time in nanoseconds, as read by the driver from the
/// replica's own clock. Clocks of different replicas are unrelated except for
/// their bounded drift rate (see [`crate::Config::max_drift_ppm`]).
pub type Nanos = u64;

/// A ballot (a Paxos "proposal number"): a round number, ties broken by the
/// proposing node. Ballots are totally ordered, and each belongs to exactly
/// one node, so two leaders never share one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// The round; 0 only in [`Ballot::ZERO`], which nobody owns.
    pub round: u64,
    /// The node that owns (and alone may lead with) this ballot.
    pub node: NodeId,
}

impl Ballot {
    /// The ballot every acceptor starts with; no leader ever uses it.
    pub const ZERO: Ballot = Ballot { round: 0, node: 0 };

    /// The ballot `round` owned by `node`.
    pub fn new(round: u64, node: NodeId) -> Self {
        Ballot { round, node }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.node)
    }
}

/// The set of voting replicas of the group. Every entry that changes it
/// carries the whole new set, so a replica that sees one such entry knows the
/// membership from there on without any history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The voters: the acceptors whose majorities form quorums.
    pub voters: BTreeSet<NodeId>,
}

impl Membership {
    /// A membership of the given voters.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership {
            voters: voters.into_iter().collect(),
        }
    }

    /// Whether `node` votes.
    pub fn contains(&self, node: NodeId) -> bool {
        self.voters.contains(&node)
    }

    /// How many votes make a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Whether `votes` (any superset of voters and others) holds a majority.
    pub fn is_quorum<'a>(&self, votes: impl IntoIterator<Item = &'a NodeId>) -> bool {
        votes.into_iter().filter(|n| self.contains(**n)).count() >= self.quorum()
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let voters: Vec<String> = self.voters.iter().map(|n| n.to_string()).collect();
        write!(f, "{{{}}}", voters.join(","))
    }
}

/// A membership change, proposed one at a time (see the crate docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Make `NodeId` a voter.
    Add(NodeId),
    /// Stop `NodeId` from voting.
    Remove(NodeId),
}

impl fmt::Display for MembershipChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipChange::Add(n) => write!(f, "add {n}"),
            MembershipChange::Remove(n) => write!(f, "remove {n}"),
        }
    }
}

/// What a slot holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Value {
    /// Nothing: fills a slot left open by a previous leader.
    Noop,
    /// An opaque client command. `id` is chosen by the proposer (the driver
    /// uses it to find the waiting client when the command is applied).
    Command {
        /// The proposer's id for the command.
        id: u64,
        /// The command itself, opaque to Paxos.
        data: Vec<u8>,
    },
    /// A membership change; the new membership governs the slots after this
    /// one.
    Config {
        /// What changed.
        change: MembershipChange,
        /// The whole membership after the change.
        membership: Membership,
    },
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Noop => write!(f, "noop"),
            Value::Command { id, data } => {
                write!(f, "cmd#{id}:{}", String::from_utf8_lossy(data))
            }
            Value::Config { change, membership } => write!(f, "config({change})={membership}"),
        }
    }
}

/// One log entry: the value an acceptor accepted in a slot, and the ballot it
/// accepted it in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The slot.
    pub slot: Slot,
    /// The ballot in which this acceptor accepted the value.
    pub ballot: Ballot,
    /// The value.
    pub value: Value,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}={}", self.slot, self.ballot, self.value)
    }
}

/// A snapshot of the replicated state machine after applying every slot up to
/// and including `index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last slot whose effect the snapshot includes.
    pub index: Slot,
    /// The membership in force after `index`.
    pub membership: Membership,
    /// The slot of the entry that set `membership` (0 for the bootstrap
    /// membership): the snapshot's configuration epoch.
    pub membership_slot: Slot,
    /// The state machine's state, opaque to Paxos.
    pub data: Vec<u8>,
}

impl Snapshot {
    /// The snapshot's index and membership, without its data: what a
    /// replica keeps and persists once the state machine holds the state.
    pub fn without_data(&self) -> Snapshot {
        Snapshot {
            index: self.index,
            membership: self.membership.clone(),
            membership_slot: self.membership_slot,
            data: Vec::new(),
        }
    }
}

/// What an acceptor must keep across restarts besides its log: persisted
/// (with the entries of the same [`crate::Ready`]) before any message that
/// depends on it is sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The highest ballot this acceptor promised: it never accepts or
    /// promises a lower one again.
    pub promised: Ballot,
    /// Every slot up to this one is known to be chosen (a lower bound; it may
    /// lag behind what the group has chosen).
    pub commit: Slot,
}
