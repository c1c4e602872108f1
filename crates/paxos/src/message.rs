//! Messages between the replicas of one group, and the reasons a replica
//! refuses one.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::types::{Ballot, Entry, NodeId, Slot, Snapshot};

/// A message with its routing header. The header is checked before the body
/// is looked at (see [`RejectReason`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The cluster the sender belongs to; a replica refuses other clusters.
    pub cluster: u64,
    /// The group the message is about (a node hosts replicas of many groups).
    pub group: u64,
    /// The sender.
    pub from: NodeId,
    /// The addressee.
    pub to: NodeId,
    /// The sender's configuration epoch: the slot of the membership entry it
    /// has committed (0 for the bootstrap membership). A replica that does
    /// not know the sender accepts it only when this is newer than its own
    /// epoch (the sender was added in a change it has not seen yet).
    pub epoch: Slot,
    /// The body.
    pub message: Message,
}

/// The protocol messages (Paxos Made Simple §2.2 and §3, plus leases and
/// catch-up).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1a, once per leadership: "promise me `ballot` for every slot
    /// above `commit`, and tell me what you accepted there".
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// The candidate's commit index: it needs nothing at or below it.
        commit: Slot,
        /// The ballot of the leader that handed its leadership to the
        /// candidate ([`Message::TimeoutNow`]), if it did: an acceptor whose
        /// lease grant is held by that leader, and whose promise is that
        /// ballot, promises despite the grant (the leader gave its lease up
        /// before it handed over).
        handover: Option<Ballot>,
    },
    /// Phase 1b: the promise, with everything accepted above the requested
    /// commit index.
    Promise {
        /// The promised ballot (the candidate's).
        ballot: Ballot,
        /// The acceptor's commit index: its entries up to here are chosen.
        commit: Slot,
        /// The acceptor's snapshot index: it can no longer report slots at or
        /// below it. If that is above the candidate's commit index, the
        /// candidate is behind and must catch up first.
        snapshot_index: Slot,
        /// Every entry the acceptor holds above the candidate's commit index.
        entries: Vec<Entry>,
    },
    /// A prepare refused because the acceptor still grants a lease to
    /// another leader (or just restarted and may have): the candidate must
    /// wait it out. The refusal changes nothing at the acceptor.
    LeaseHeld {
        /// The refused ballot.
        ballot: Ballot,
        /// Whom the lease is granted to (`None`: unknown, after a restart).
        holder: Option<NodeId>,
        /// How long, on the acceptor's clock, the lease has left.
        remaining: u64,
    },
    /// The sender already promised a higher ballot: the addressee's ballot is
    /// stale and it must stop leading (or campaign higher).
    Nack {
        /// The refused ballot.
        ballot: Ballot,
        /// The higher ballot the sender promised.
        promised: Ballot,
    },
    /// Phase 2a for a run of slots: "accept these values in `ballot`".
    Accept {
        /// The leader's ballot; every entry carries it too.
        ballot: Ballot,
        /// The entries, consecutive slots in ascending order.
        entries: Vec<Entry>,
        /// The leader's commit index (commit notification piggybacked).
        commit: Slot,
    },
    /// Phase 2b: the acceptor accepted (and persisted) slots `first..=last`.
    Accepted {
        /// The ballot they were accepted in.
        ballot: Ballot,
        /// The first slot.
        first: Slot,
        /// The last slot.
        last: Slot,
    },
    /// The leader's heartbeat: commit notification and lease extension.
    Heartbeat {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's commit index.
        commit: Slot,
        /// The lease round this heartbeat requests.
        lease_round: u64,
    },
    /// The answer to a heartbeat: grants the lease round.
    HeartbeatAck {
        /// The leader's ballot.
        ballot: Ballot,
        /// The lease round granted.
        lease_round: u64,
        /// The acceptor's commit index.
        commit: Slot,
    },
    /// A leader hands its leadership to the addressee: it stepped down in
    /// `ballot`, having given up its lease, once every slot it had proposed
    /// was chosen and the addressee knew it. The addressee campaigns at once,
    /// naming `ballot` in its prepares (see [`Message::Prepare`]).
    TimeoutNow {
        /// The ballot the sender led with.
        ballot: Ballot,
    },
    /// A lagging replica asks for the chosen entries from slot `from` on.
    CatchUpRequest {
        /// The first slot the requester lacks.
        from: Slot,
    },
    /// Chosen entries, in ascending consecutive slots, for a lagging replica.
    CatchUp {
        /// The entries (all chosen).
        entries: Vec<Entry>,
        /// The sender's commit index (there may be more to fetch).
        commit: Slot,
    },
    /// The sender's latest snapshot, for a replica that needs slots the
    /// sender's log no longer has.
    InstallSnapshot {
        /// The snapshot.
        snapshot: Snapshot,
    },
}

impl Message {
    /// The message's kind, for logs and rejections.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Prepare { .. } => "prepare",
            Message::Promise { .. } => "promise",
            Message::LeaseHeld { .. } => "lease-held",
            Message::Nack { .. } => "nack",
            Message::Accept { .. } => "accept",
            Message::Accepted { .. } => "accepted",
            Message::Heartbeat { .. } => "heartbeat",
            Message::HeartbeatAck { .. } => "heartbeat-ack",
            Message::TimeoutNow { .. } => "timeout-now",
            Message::CatchUpRequest { .. } => "catch-up-request",
            Message::CatchUp { .. } => "catch-up",
            Message::InstallSnapshot { .. } => "install-snapshot",
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn entries(e: &[Entry]) -> String {
            let list: Vec<String> = e.iter().map(|e| e.to_string()).collect();
            format!("[{}]", list.join(" "))
        }
        match self {
            Message::Prepare {
                ballot,
                commit,
                handover,
            } => {
                write!(f, "prepare b={ballot} commit={commit}")?;
                match handover {
                    Some(h) => write!(f, " handover={h}"),
                    None => Ok(()),
                }
            }
            Message::Promise {
                ballot,
                commit,
                snapshot_index,
                entries: e,
            } => write!(
                f,
                "promise b={ballot} commit={commit} snap={snapshot_index} {}",
                entries(e)
            ),
            Message::LeaseHeld {
                ballot,
                holder,
                remaining,
            } => match holder {
                Some(h) => write!(
                    f,
                    "lease-held b={ballot} holder={h} remaining={}ms",
                    remaining / 1_000_000
                ),
                None => write!(
                    f,
                    "lease-held b={ballot} holder=? remaining={}ms",
                    remaining / 1_000_000
                ),
            },
            Message::Nack { ballot, promised } => write!(f, "nack b={ballot} promised={promised}"),
            Message::Accept {
                ballot,
                entries: e,
                commit,
            } => {
                write!(f, "accept b={ballot} commit={commit} {}", entries(e))
            }
            Message::Accepted {
                ballot,
                first,
                last,
            } => {
                write!(f, "accepted b={ballot} slots={first}..={last}")
            }
            Message::Heartbeat {
                ballot,
                commit,
                lease_round,
            } => {
                write!(
                    f,
                    "heartbeat b={ballot} commit={commit} lease#{lease_round}"
                )
            }
            Message::HeartbeatAck {
                ballot,
                lease_round,
                commit,
            } => {
                write!(
                    f,
                    "heartbeat-ack b={ballot} lease#{lease_round} commit={commit}"
                )
            }
            Message::TimeoutNow { ballot } => write!(f, "timeout-now b={ballot}"),
            Message::CatchUpRequest { from } => write!(f, "catch-up-request from={from}"),
            Message::CatchUp { entries: e, commit } => {
                write!(f, "catch-up commit={commit} {}", entries(e))
            }
            Message::InstallSnapshot { snapshot } => write!(
                f,
                "install-snapshot index={} membership={}",
                snapshot.index, snapshot.membership
            ),
        }
    }
}

impl fmt::Display for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}→{} {}", self.from, self.to, self.message)
    }
}

/// Why a replica refused a message. A refused message changes no state of
/// the replica (it may still answer a stale leader with a [`Message::Nack`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The bytes do not decode, fail their checksum, or the message breaks a
    /// structural rule (e.g. non-consecutive slots).
    Malformed(String),
    /// The sender belongs to another cluster.
    WrongCluster {
        /// The cluster the message named.
        cluster: u64,
    },
    /// The message is about another group.
    WrongGroup {
        /// The group the message named.
        group: u64,
    },
    /// The message is addressed to another replica, or claims to come from
    /// this one.
    Misrouted,
    /// The sender is in no membership this replica knows, and is not newer.
    UnknownNode,
    /// The ballot cannot be right: owned by another node than the sender, or
    /// round 0, or a response for a ballot this replica never used.
    ImpossibleBallot(Ballot),
    /// The ballot is lower than one this replica promised (a stale leader),
    /// or the message answers a candidacy or leadership this replica no
    /// longer runs (a late response).
    StaleBallot {
        /// The message's ballot.
        ballot: Ballot,
        /// The ballot the replica has promised or is leading with.
        current: Ballot,
    },
    /// The replica cannot act on the message now (it is not the leader, or
    /// does not know its membership yet).
    NotApplicable(&'static str),
}

/// A refused message: who sent it and why it was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The claimed sender (0 if the bytes did not decode).
    pub from: NodeId,
    /// The message kind ("bytes" if the bytes did not decode).
    pub kind: &'static str,
    /// The reason.
    pub reason: RejectReason,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused {} from {}: ", self.kind, self.from)?;
        match &self.reason {
            RejectReason::Malformed(why) => write!(f, "malformed: {why}"),
            RejectReason::WrongCluster { cluster } => write!(f, "from another cluster ({cluster})"),
            RejectReason::WrongGroup { group } => write!(f, "about another group ({group})"),
            RejectReason::Misrouted => write!(f, "misrouted"),
            RejectReason::UnknownNode => write!(f, "unknown node"),
            RejectReason::ImpossibleBallot(b) => write!(f, "impossible ballot {b}"),
            RejectReason::StaleBallot { ballot, current } => {
                write!(f, "stale ballot {ballot} (current {current})")
            }
            RejectReason::NotApplicable(why) => write!(f, "not applicable: {why}"),
        }
    }
}

impl std::error::Error for Rejection {}
