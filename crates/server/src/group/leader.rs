//! [`LeaderReplication`]: how a group leader's transaction engine logs its
//! commits through Paxos and knows whether it may serve.
//!
//! **Admission.** The engine may serve only while this replica leads with
//! the ballot the engine was built for and its lease is valid. Every
//! timestamp it issues must also lie below the end of the lease in true
//! time, so that the next leader, whose lease starts after this one ended
//! (lease disjointness, `meridian-paxos` crate docs), issues only larger
//! ones (Spanner §4.1.1). The lease ends at a local monotonic time; with
//! `d` local nanoseconds left and clocks drifting at most `ρ`, at least
//! `d (1 - ρ)` of true time is left, and true time now is at least
//! `TT.now().earliest`, so the bound is `TT.now().earliest + d (1 - ρ)`.
//! Admission is checked before a command is queued, and the leadership may
//! end (and the same node lead again, with a new engine) before the driver
//! takes it; so every command carries the engine's ballot and the driver
//! refuses one whose ballot is not the replica's current leadership. The
//! new engine knows only the locks the log gave it: a late command of the
//! old one, logged under the new leadership, would commit writes whose
//! locks nobody held (a lost update).
//!
//! **Commit.** The writes become a [`Command::Commit`] queued for the
//! driver at once (the engine calls in timestamp order, so the log holds
//! commit records in timestamp order: what a follower's safe time rests
//! on); the answer comes when the entry is applied on this node. A
//! proposal the replica refused, or dropped with its leadership before it
//! had a slot (`Ready::dropped`), never entered the log: a definite,
//! retryable failure. Once proposed, the outcome is known only when it is
//! applied: if leadership is lost meanwhile, the next leader may still
//! commit the entry (phase 1 recovers it) and this replica applies it as a
//! follower, which answers the waiter too. If nothing is learned within
//! `commit_timeout`, the outcome is unknown: [`Error::AmbiguousCommit`],
//! never a silent retry.
//!
//! **Two-phase commit.** Prepare records, outcomes at a participant, the
//! coordinator's commit and resolutions are log commands like a commit
//! ([`Command`]); a resolution's answer is the outcome the state machine
//! recorded, read from the node's store once the command is applied here.

use std::time::Duration;

use meridian_error::{Error, Result};
use meridian_paxos::Ballot;
use meridian_storage::KeyRange;
use meridian_truetime::{Timestamp, TrueTime};
use meridian_txn::{
    CommitFuture, GlobalTxnId, Outcome, OutcomeFuture, PrepareRecord, Replication, TxnId, Writes,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::state::{self, PreparedEntry, SharedSpans};
use super::{Command, GroupEnv, GroupStatus, Input, MonoClock, Storage};

/// The [`Replication`] of one leadership of a group.
pub struct LeaderReplication {
    /// The group.
    group: u64,
    /// The leadership this engine belongs to.
    ballot: Ballot,
    /// The driver's inputs.
    proposals: mpsc::WeakSender<Input>,
    /// The driver's status (lease).
    status: watch::Receiver<GroupStatus>,
    /// The replica's clock.
    clock: MonoClock,
    /// TrueTime.
    tt: TrueTime,
    /// The drift bound, in parts per million.
    max_drift_ppm: u64,
    /// How long a commit may wait for its entry to be applied.
    commit_timeout: Duration,
    /// The node's store (where applied outcomes are read).
    storage: Storage,
    /// What the group serves.
    spans: SharedSpans,
}

impl LeaderReplication {
    /// The replication of leadership `ballot` of `group`.
    pub(super) fn new(
        group: u64,
        ballot: Ballot,
        proposals: mpsc::WeakSender<Input>,
        status: watch::Receiver<GroupStatus>,
        spans: SharedSpans,
        env: &GroupEnv,
    ) -> Self {
        LeaderReplication {
            group,
            ballot,
            proposals,
            status,
            clock: env.clock,
            tt: env.tt.clone(),
            max_drift_ppm: env.options.max_drift_ppm,
            commit_timeout: env.options.commit_timeout,
            storage: env.storage.clone(),
            spans,
        }
    }

    fn not_leader(&self, status: &GroupStatus) -> Error {
        Error::NotLeader {
            group: self.group,
            leader: status.leader,
        }
    }
}

impl Replication for LeaderReplication {
    fn admit(&self) -> Result<Option<Timestamp>> {
        let status = self.status.borrow();
        let now = self.clock.now();
        match status.lease {
            Some(lease) if lease.ballot == self.ballot && lease.expires > now => {
                let left = lease.expires - now;
                let ppm = u128::from(self.max_drift_ppm.min(999_999));
                let true_left = (u128::from(left) * (1_000_000 - ppm) / 1_000_000) as u64;
                Ok(Some(
                    self.tt
                        .now()
                        .earliest
                        .saturating_add(Duration::from_nanos(true_left)),
                ))
            }
            _ => Err(self.not_leader(&status)),
        }
    }

    fn serves(&self, range: &KeyRange) -> Result<()> {
        self.spans.check(self.group, range)
    }

    fn commit(
        &self,
        _txn: TxnId,
        s: Timestamp,
        writes: Writes,
        decides: Option<GlobalTxnId>,
    ) -> CommitFuture {
        let writes = writes.into_iter().collect();
        let command = match decides {
            None => Command::Commit { ts: s, writes },
            Some(gid) => Command::CoordinatorCommit {
                gid: gid.0,
                ts: s,
                writes,
            },
        };
        self.propose(command, format!("the commit record at {s}"))
    }

    fn prepare(&self, record: PrepareRecord) -> CommitFuture {
        let what = format!("the prepare record of {}", record.gid);
        self.propose(Command::Prepare(PreparedEntry::from(&record)), what)
    }

    fn decide(&self, record: &PrepareRecord, outcome: Outcome) -> CommitFuture {
        let command = Command::Decide {
            gid: record.gid.0,
            commit_ts: match outcome {
                Outcome::Committed(s) => Some(s),
                Outcome::Aborted => None,
            },
        };
        self.propose(command, format!("the outcome of {}", record.gid))
    }

    fn resolve(&self, gid: GlobalTxnId) -> OutcomeFuture {
        let logged = self.propose(
            Command::Resolve { gid: gid.0 },
            format!("the resolution of {gid}"),
        );
        let (storage, group) = (self.storage.clone(), self.group);
        Box::pin(async move {
            logged.await?;
            // Applied here: the record is in the node's store.
            state::read_outcome(&storage, group, gid)?.ok_or_else(|| {
                Error::Internal(format!(
                    "group {group}: no outcome of {gid} after resolving it"
                ))
            })
        })
    }
}

impl LeaderReplication {
    /// Queues `command` for the log at once (the engine calls in timestamp
    /// order, and the log keeps it) and answers once it is applied here.
    fn propose(&self, command: Command, what: String) -> CommitFuture {
        let group = self.group;
        let data = command.encode();
        let (reply, outcome) = oneshot::channel();
        let queued = match self.proposals.upgrade() {
            Some(proposals) => proposals
                .try_send(Input::Propose {
                    data,
                    ballot: Some(self.ballot),
                    reply,
                })
                .map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => {
                        Error::Aborted(format!("group {group}: too many commits queued; try again"))
                    }
                    mpsc::error::TrySendError::Closed(_) => {
                        Error::Aborted(format!("group {group}: the replica stopped"))
                    }
                }),
            None => Err(Error::Aborted(format!(
                "group {group}: the replica stopped"
            ))),
        };
        let timeout = self.commit_timeout;
        Box::pin(async move {
            queued?;
            super::applied(group, &what, outcome, timeout, Error::AmbiguousCommit).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use meridian_paxos::{Envelope, Membership};
    use meridian_storage::{MemoryEngine, Mvcc};
    use meridian_txn::Replication;

    use super::*;
    use crate::clock::SystemClock;
    use crate::group::{Group, MonoClock, Outbox, ReplicationOptions, Start};
    use crate::local::TokioSleeper;

    /// A node alone: nobody to send to.
    struct Alone;

    impl Outbox for Alone {
        fn send(&self, _: Envelope) {}
    }

    /// The ballot `group` serves at, once it does.
    async fn serving_ballot(group: &Group, other_than: Option<Ballot>) -> Ballot {
        let status = group
            .wait_for(Duration::from_secs(20), |s| {
                s.serving && s.lease.map(|l| l.ballot) != other_than
            })
            .await
            .expect("the replica leads");
        status.lease.expect("a leader has a lease").ballot
    }

    /// An engine can pass its admission just before its leadership ends and
    /// hand its command over after the same node leads again: the command
    /// rests on the old engine's locks, which the new engine does not hold,
    /// so it must not be logged.
    #[tokio::test]
    async fn a_command_of_an_earlier_leadership_is_refused() {
        let storage: Storage = Arc::new(MemoryEngine::new());
        let mvcc = Arc::new(Mvcc::new(storage.clone()).unwrap());
        let clock = Arc::new(SystemClock::new(Duration::from_millis(1)));
        let env = GroupEnv {
            node: 1,
            cluster: 7,
            storage,
            mvcc: mvcc.clone(),
            tt: TrueTime::new(clock),
            sleeper: Arc::new(TokioSleeper),
            clock: MonoClock::new(),
            outbox: Arc::new(Alone),
            options: ReplicationOptions {
                lease: Duration::from_millis(300),
                ..ReplicationOptions::fast()
            },
        };
        let group = Group::start(
            env.clone(),
            2,
            vec![KeyRange::all()],
            Start::Bootstrap(Membership::new([1])),
        )
        .unwrap();
        // The replication an engine of leadership `ballot` logs through.
        let replication = |ballot| {
            LeaderReplication::new(
                2,
                ballot,
                group.inputs.downgrade(),
                group.watch(),
                group.spans(),
                &env,
            )
        };
        let first = serving_ballot(&group, None).await;
        let earlier = replication(first);

        group.campaign();
        let second = serving_ballot(&group, Some(first)).await;
        assert_ne!(first, second);

        let s = env.tt.now().latest;
        let writes = [(b"k".to_vec(), Some(b"v".to_vec()))].into_iter().collect();
        let err = earlier
            .commit(TxnId(1), s, writes, None)
            .await
            .expect_err("an earlier leadership's commit was logged");
        assert!(matches!(err, Error::NotLeader { .. }), "{err}");
        assert_eq!(mvcc.get(b"k", Timestamp::MAX).unwrap(), None);

        // The current leadership's commands still go through.
        let current = replication(second);
        let writes = [(b"k".to_vec(), Some(b"v".to_vec()))].into_iter().collect();
        current.commit(TxnId(2), s, writes, None).await.unwrap();
        assert_eq!(mvcc.get(b"k", Timestamp::MAX).unwrap(), Some(b"v".to_vec()));
    }
}
