//! Transactions that span groups: two-phase commit with commit wait
//! (Spanner §4.2.1) and snapshot reads across groups (§4.2.2).
//!
//! The keyspace is cut into ranges, each served by one group; [`Groups`]
//! is what this module needs of the cluster: which group holds a key or a
//! part of a key range, a way to begin a transaction at a group's leader,
//! and a way to tell a group the outcome of a prepared transaction. The
//! server implements it over Paxos groups and the network; tests implement
//! it over [`LocalEngine`](crate::LocalEngine)s.
//!
//! A [`DistTxn`] opens one transaction per group it touches, lazily, all
//! with the same start timestamp: that is the transaction's wound-wait
//! priority at every group, so an older transaction wins every conflict
//! everywhere and no deadlock can span groups.
//!
//! **Commit.** A transaction that touched one group commits there (no
//! two-phase commit). One that touched several runs two-phase commit,
//! driven by the gateway that ran it:
//!
//! 1. the coordinator is a group the transaction wrote to; every other
//!    group (a participant) votes: one that wrote logs a prepare record at
//!    a prepare timestamp `p` and keeps its locks; one that only read logs
//!    nothing and keeps its shared locks, which its leader's lease protects
//!    (a read-only vote, [`Vote::ReadOnly`]);
//! 2. the coordinator commits its own part at `s >= max(p)`, `s >=
//!    TT.now().latest`, above everything it issued and below the lease end
//!    of every read-only voter, logging the outcome with it, and waits
//!    until `TT.after(s)` (commit wait);
//! 3. every participant logs the outcome, applies its writes at `s` and
//!    releases its locks; once every one has, the coordinator may forget
//!    its outcome record ([`Groups::announce`]): nobody can ask for it any
//!    more.
//!
//! If a participant cannot prepare, everyone aborts. If the coordinator's
//! outcome is unknown (its commit record may have been logged), the commit
//! is [`Error::AmbiguousCommit`]: the participants learn the outcome by
//! asking the coordinator group (resolution), and the client is told the
//! truth, never a retried commit at another timestamp. A participant whose
//! outcome never comes (the gateway died) asks the coordinator group after
//! a timeout; the coordinator records an abort unless it decided already.
//!
//! **Reads.** A read-only transaction reads every group at one snapshot
//! timestamp: `TT.now().latest` at its start (strong) or the timestamp the
//! client gave. A group serves it once every commit at or below the
//! timestamp is applied there (its safe time), which a prepared
//! transaction holds below its prepare timestamp.
//!
//! **Read-only votes.** A participant that only read must keep its shared
//! locks until the commit timestamp is chosen (else a writer could slip a
//! version below `s` under what the transaction read). Its leader holds them
//! in memory; if the leader loses them (a crash), its successor's lease,
//! hence every timestamp it issues, starts after the old lease ended, and
//! `s` was chosen below that end: any conflicting write lands above `s`, as
//! if it came after. So a read-only vote needs no log write, and its locks
//! can be dropped without asking anyone once `TT.after(until)`.
//!
//! **Single-group reads.** When the placement has one group
//! ([`Groups::single_group`]), a strong read's scope is that group: its
//! leader chooses the snapshot, the group's last commit timestamp when
//! nothing is prepared there (Spanner's `LastTS()`), else
//! `TT.now().latest`. With several groups a strong read's scope is not
//! known when it begins (a SQL statement reads the catalog, in the first
//! group, and then its tables), so it reads at `TT.now().latest`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::join_all;
use meridian_error::{Error, Result};
use meridian_storage::{Engine, KeyRange, KvPair, ScanDirection};
use meridian_truetime::{Timestamp, TtInterval};

use crate::api::{LockStrength, RangeInfo, ReadTime, Transaction, TxnEngine, TxnMode};
use crate::local::{LocalTxn, Writes};
use crate::lock_table::{LockMode, LockTarget, Priority};

/// A transaction's identity across the groups it touches, chosen by the
/// gateway that coordinates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GlobalTxnId(pub u128);

impl GlobalTxnId {
    /// The wound-wait priority of this transaction begun at `start_ts`, the
    /// same in every group: the id breaks ties between equal start
    /// timestamps (two gateways may read the same clock value).
    pub fn priority(self, start_ts: Timestamp) -> Priority {
        Priority {
            start_ts,
            tiebreak: self.0,
        }
    }
}

impl fmt::Display for GlobalTxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{:032x}", self.0)
    }
}

/// How a transaction spanning groups ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed at this timestamp.
    Committed(Timestamp),
    /// Aborted: no writes.
    Aborted,
}

/// What a participant logs when it prepares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrepareRecord {
    /// The transaction.
    pub gid: GlobalTxnId,
    /// The group whose log holds the outcome.
    pub coordinator: u64,
    /// Its start timestamp (with `gid`, its wound-wait priority).
    pub start_ts: Timestamp,
    /// The prepare timestamp: the commit timestamp will be at or above it.
    pub prepare_ts: Timestamp,
    /// The writes at this group (`None` = delete), applied at the commit
    /// timestamp if it commits.
    pub writes: Writes,
    /// Every lock it holds here, shared ones included.
    pub locks: Vec<(LockTarget, LockMode)>,
}

impl PrepareRecord {
    /// The transaction's wound-wait priority.
    pub fn priority(&self) -> Priority {
        self.gid.priority(self.start_ts)
    }
}

/// A participant's vote in two-phase commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vote {
    /// It logged a prepare record: the commit timestamp must be at or
    /// above `prepare_ts`.
    Prepared {
        /// The prepare timestamp.
        prepare_ts: Timestamp,
    },
    /// It only read, and logged nothing: the commit timestamp must be
    /// below `until` (the end of its leader's lease; `None`: no bound).
    ReadOnly {
        /// The bound on the commit timestamp.
        until: Option<Timestamp>,
    },
}

/// A transaction at one group, as a [`DistTxn`] drives it.
pub trait GroupTxn: Transaction {
    /// Prepares it (see [`LocalTxn::prepare`]) and returns its vote.
    fn prepare(
        self,
        gid: GlobalTxnId,
        coordinator: u64,
    ) -> impl Future<Output = Result<Vote>> + Send;

    /// Commits it as the coordinator of `gid` at `s >= min_ts` and below
    /// `below` (see [`LocalTxn::commit_as_coordinator`]); returns `s`.
    fn commit_as_coordinator(
        self,
        gid: GlobalTxnId,
        min_ts: Timestamp,
        below: Option<Timestamp>,
    ) -> impl Future<Output = Result<Timestamp>> + Send;
}

/// The cluster as two-phase commit sees it: groups owning key ranges.
pub trait Groups: Send + Sync + 'static {
    /// A transaction at one group.
    type Txn: GroupTxn;

    /// The group holding `key`.
    fn group_of(&self, key: &[u8]) -> Result<u64>;

    /// The parts of `range` and the group holding each, in key order.
    fn locate(&self, range: &KeyRange) -> Result<Vec<(u64, KeyRange)>>;

    /// Begins a transaction at `group`'s leader (or, for a read at a
    /// timestamp, at any replica caught up to it) with wound-wait
    /// `priority`. A read-only `mode` comes with the snapshot already
    /// chosen (`ReadTime::At`); `strong` says it was chosen as
    /// `TT.now().latest`, which a follower is unlikely to have reached yet.
    fn begin(
        &self,
        group: u64,
        mode: TxnMode,
        priority: Priority,
        strong: bool,
    ) -> impl Future<Output = Result<Self::Txn>> + Send;

    /// Tells `group` the outcome of its prepared transaction `gid` (the
    /// group's leader logs and applies it). Idempotent. An implementation
    /// may return before the group has it (the outcome is durable at the
    /// coordinator; a participant that misses it resolves it).
    fn decide(
        &self,
        group: u64,
        gid: GlobalTxnId,
        outcome: Outcome,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Tells the `participants` of `gid` its outcome. When the transaction
    /// committed, `coordinator` holds its outcome record, which only a
    /// participant still prepared would ask for: an implementation may have
    /// the coordinator forget it once every participant has applied the
    /// outcome. May return before the participants have it (a participant
    /// that misses it resolves it with the coordinator). The default tells
    /// each ([`Groups::decide`]) and keeps the record.
    fn announce(
        &self,
        coordinator: u64,
        gid: GlobalTxnId,
        participants: Vec<u64>,
        outcome: Outcome,
    ) -> impl Future<Output = ()> + Send {
        let _ = coordinator;
        async move {
            tell_participants(self, gid, &participants, outcome).await;
        }
    }

    /// A fresh transaction identity (randomness is the implementation's).
    fn new_gid(&self) -> GlobalTxnId;

    /// The group holding every key, when the placement has just one: then
    /// a strong read's scope is that group, and its leader chooses the
    /// snapshot (Spanner's `LastTS()`). The default: `None`.
    fn single_group(&self) -> Option<u64> {
        None
    }

    /// The largest timestamp the gateway's own replicas can all serve now
    /// (the smallest of their safe times): what a bounded-staleness read
    /// picks. Groups the gateway holds no replica of are read at their
    /// leaders, which serve any timestamp not in the future. `None`: no
    /// local replicas.
    fn local_safe_ts(&self) -> Option<Timestamp> {
        None
    }

    /// The ranges and where each is served (see [`TxnEngine::ranges`]).
    fn ranges(&self) -> impl Future<Output = Result<Vec<RangeInfo>>> + Send;

    /// Hears that a group refused a key it no longer serves
    /// ([`Error::RangeMoved`]): the placement this gateway routes by is
    /// stale. The default does nothing.
    fn placement_stale(&self) {}

    /// Splits the range holding `key` at `key` (see
    /// [`TxnEngine::split_at`]). The default refuses: a fixed placement.
    fn split_at(self: Arc<Self>, key: Vec<u8>) -> impl Future<Output = Result<()>> + Send {
        let _ = key;
        std::future::ready(Err(Error::FeatureNotSupported(
            "this cluster's placement is fixed".into(),
        )))
    }

    /// Moves the range holding `key` to `group` (see
    /// [`TxnEngine::relocate`]). The default refuses: a fixed placement.
    fn relocate(
        self: Arc<Self>,
        key: Vec<u8>,
        group: u64,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (key, group);
        std::future::ready(Err(Error::FeatureNotSupported(
            "this cluster's placement is fixed".into(),
        )))
    }

    /// TrueTime at the gateway.
    fn now(&self) -> TtInterval;
}

impl<E: Engine + 'static> GroupTxn for LocalTxn<E> {
    async fn prepare(self, gid: GlobalTxnId, coordinator: u64) -> Result<Vote> {
        LocalTxn::prepare(self, gid, coordinator).await
    }

    async fn commit_as_coordinator(
        self,
        gid: GlobalTxnId,
        min_ts: Timestamp,
        below: Option<Timestamp>,
    ) -> Result<Timestamp> {
        LocalTxn::commit_as_coordinator(self, gid, min_ts, below).await
    }
}

/// The transaction engine over [`Groups`]: what SQL sessions use in a
/// sharded cluster.
pub struct DistEngine<G: Groups> {
    /// The cluster.
    groups: Arc<G>,
}

impl<G: Groups> Clone for DistEngine<G> {
    fn clone(&self) -> Self {
        DistEngine {
            groups: self.groups.clone(),
        }
    }
}

impl<G: Groups> DistEngine<G> {
    /// An engine over `groups`.
    pub fn new(groups: Arc<G>) -> Self {
        DistEngine { groups }
    }

    /// The cluster underneath.
    pub fn groups(&self) -> &Arc<G> {
        &self.groups
    }
}

impl<G: Groups> TxnEngine for DistEngine<G> {
    type Txn = DistTxn<G>;

    async fn begin(&self, mode: TxnMode) -> Result<DistTxn<G>> {
        let now = self.groups.now();
        if let (TxnMode::ReadOnly(ReadTime::Strong), Some(group)) =
            (mode, self.groups.single_group())
        {
            return self.begin_single_group_read(group, now.latest).await;
        }
        let (mode, read_ts, strong) = match mode {
            TxnMode::ReadWrite => (mode, None, false),
            TxnMode::ReadOnly(ReadTime::Strong) => (
                TxnMode::ReadOnly(ReadTime::At(now.latest)),
                Some(now.latest),
                true,
            ),
            TxnMode::ReadOnly(ReadTime::MaxStaleness(staleness)) => {
                // No older than `staleness` in true time (which is at most
                // `latest`); as fresh as the local replicas are, without
                // waiting for them.
                let oldest = now.latest.saturating_sub(staleness);
                match self.groups.local_safe_ts() {
                    Some(safe) if safe >= oldest => {
                        let ts = safe.min(now.latest);
                        (TxnMode::ReadOnly(ReadTime::At(ts)), Some(ts), false)
                    }
                    Some(_) => (TxnMode::ReadOnly(ReadTime::At(oldest)), Some(oldest), false),
                    None => (
                        TxnMode::ReadOnly(ReadTime::At(now.latest)),
                        Some(now.latest),
                        true,
                    ),
                }
            }
            TxnMode::ReadOnly(ReadTime::At(ts)) => {
                if ts > now.latest {
                    return Err(Error::InvalidInput(format!(
                        "cannot read as of {ts}: it is in the future (now is at most {})",
                        now.latest
                    )));
                }
                (mode, Some(ts), false)
            }
        };
        Ok(DistTxn {
            groups: self.groups.clone(),
            id: self.groups.new_gid(),
            mode,
            strong,
            start_ts: now.latest,
            read_ts,
            parts: BTreeMap::new(),
            wrote: BTreeSet::new(),
            single_group: None,
        })
    }

    fn now(&self) -> TtInterval {
        self.groups.now()
    }

    fn ranges(&self) -> impl Future<Output = Result<Vec<RangeInfo>>> + Send {
        self.groups.ranges()
    }

    fn split_at(&self, key: Vec<u8>) -> impl Future<Output = Result<()>> + Send {
        self.groups.clone().split_at(key)
    }

    fn relocate(&self, key: Vec<u8>, group: u64) -> impl Future<Output = Result<()>> + Send {
        self.groups.clone().relocate(key, group)
    }
}

/// A transaction of a [`DistEngine`]: one transaction per group touched.
pub struct DistTxn<G: Groups> {
    /// The cluster.
    groups: Arc<G>,
    /// Its identity (also its two-phase commit id).
    id: GlobalTxnId,
    /// Read-write, or read-only at `read_ts`.
    mode: TxnMode,
    /// Whether a read-only snapshot is `TT.now().latest` at the start.
    strong: bool,
    /// Its priority everywhere.
    start_ts: Timestamp,
    /// The snapshot of a read-only transaction.
    read_ts: Option<Timestamp>,
    /// The transaction at each group touched.
    parts: BTreeMap<u64, G::Txn>,
    /// The groups it wrote to.
    wrote: BTreeSet<u64>,
    /// A strong read of a cluster of one group: the group, whose leader
    /// chose the snapshot (`LastTS()`); no other group may be read at it.
    single_group: Option<u64>,
}

impl<G: Groups> DistEngine<G> {
    /// A strong read-only transaction of a cluster whose keys are all in
    /// `group` (Spanner §4.2.2, a single-group scope): the group's leader
    /// chooses the snapshot, its last commit timestamp when nothing is
    /// prepared there, so the read need not wait for commits in flight.
    async fn begin_single_group_read(&self, group: u64, start_ts: Timestamp) -> Result<DistTxn<G>> {
        let id = self.groups.new_gid();
        let mode = TxnMode::ReadOnly(ReadTime::Strong);
        let part = self
            .groups
            .begin(group, mode, id.priority(start_ts), false)
            .await?;
        let read_ts = part.read_ts().ok_or_else(|| {
            Error::Internal(format!(
                "group {group} began a strong read without a snapshot"
            ))
        })?;
        Ok(DistTxn {
            groups: self.groups.clone(),
            id,
            mode: TxnMode::ReadOnly(ReadTime::At(read_ts)),
            strong: false,
            start_ts,
            read_ts: Some(read_ts),
            parts: BTreeMap::from([(group, part)]),
            wrote: BTreeSet::new(),
            single_group: Some(group),
        })
    }
}

impl<G: Groups> DistTxn<G> {
    /// The transaction at `group`, begun on first use.
    async fn part(&mut self, group: u64) -> Result<&mut G::Txn> {
        if self.single_group.is_some_and(|only| only != group) {
            // Its snapshot bounds only that group's commits.
            return Err(Error::Aborted(
                "the placement changed during a single-group read; try again".into(),
            ));
        }
        if !self.parts.contains_key(&group) {
            let txn = self
                .groups
                .begin(
                    group,
                    self.mode,
                    self.id.priority(self.start_ts),
                    self.strong,
                )
                .await?;
            self.parts.insert(group, txn);
        }
        Ok(self.parts.get_mut(&group).expect("just inserted"))
    }

    /// Passes `result` on, telling the groups first if it says the
    /// placement was stale.
    fn noted<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(Error::RangeMoved { .. }) = &result {
            self.groups.placement_stale();
        }
        result
    }

    /// The groups touched.
    pub fn groups_touched(&self) -> impl Iterator<Item = u64> + '_ {
        self.parts.keys().copied()
    }

    /// The transaction's part at `group`, if it touched the group.
    pub fn part_at(&self, group: u64) -> Option<&G::Txn> {
        self.parts.get(&group)
    }

    /// Two-phase commit over the groups touched (more than one).
    async fn commit_two_phase(&mut self) -> Result<Option<Timestamp>> {
        let gid = self.id;
        let coordinator = *self
            .wrote
            .first()
            .expect("two-phase commit only for transactions that wrote");
        let coordinator_txn = self
            .parts
            .remove(&coordinator)
            .expect("the coordinator is a participant");
        let parts = std::mem::take(&mut self.parts);
        let groups = self.groups.clone();
        let votes = join_all(
            parts
                .into_iter()
                .map(|(group, txn)| async move { (group, txn.prepare(gid, coordinator).await) }),
        )
        .await;
        let mut prepared = Vec::new();
        let mut refusal = None;
        let mut min_ts = Timestamp::MIN;
        let mut below: Option<Timestamp> = None;
        for (group, vote) in votes {
            match vote {
                Ok(Vote::Prepared { prepare_ts }) => {
                    prepared.push(group);
                    min_ts = min_ts.max(prepare_ts);
                }
                Ok(Vote::ReadOnly { until }) => {
                    prepared.push(group);
                    if let Some(until) = until {
                        below = Some(below.map_or(until, |b| b.min(until)));
                    }
                }
                Err(err) => {
                    tracing::debug!(%gid, group, %err, "a participant did not prepare");
                    refusal.get_or_insert(err);
                }
            }
        }
        if let Some(err) = refusal {
            let _ = coordinator_txn.rollback().await;
            groups
                .announce(coordinator, gid, prepared, Outcome::Aborted)
                .await;
            // A prepare whose outcome is unknown aborts all the same: the
            // coordinator never commits without every vote.
            return Err(match err {
                Error::AmbiguousCommit(why) => Error::Aborted(format!(
                    "a participant's prepare of transaction {gid} was lost: {why}"
                )),
                err => err,
            });
        }
        match coordinator_txn
            .commit_as_coordinator(gid, min_ts, below)
            .await
        {
            Ok(s) => {
                groups
                    .announce(coordinator, gid, prepared, Outcome::Committed(s))
                    .await;
                Ok(Some(s))
            }
            Err(err @ Error::AmbiguousCommit(_)) => Err(err),
            Err(err) => {
                groups
                    .announce(coordinator, gid, prepared, Outcome::Aborted)
                    .await;
                Err(err)
            }
        }
    }
}

/// Tells the prepared participants of `gid` its outcome ([`Groups::decide`]
/// at each); returns whether every one has it. A participant that cannot be
/// told now learns it later by resolution.
pub async fn tell_participants<G: Groups + ?Sized>(
    groups: &G,
    gid: GlobalTxnId,
    prepared: &[u64],
    outcome: Outcome,
) -> bool {
    let told = join_all(
        prepared
            .iter()
            .map(|&group| async move { (group, groups.decide(group, gid, outcome).await) }),
    )
    .await;
    let mut all = true;
    for (group, result) in told {
        if let Err(err) = result {
            tracing::warn!(%gid, group, ?outcome, %err, "could not tell a participant the outcome");
            all = false;
        }
    }
    all
}

impl<G: Groups> Transaction for DistTxn<G> {
    fn id(&self) -> u64 {
        self.id.0 as u64
    }

    fn mode(&self) -> TxnMode {
        self.mode
    }

    fn start_ts(&self) -> Timestamp {
        self.start_ts
    }

    fn read_ts(&self) -> Option<Timestamp> {
        self.read_ts
    }

    async fn get(&mut self, key: &[u8], lock: LockStrength) -> Result<Option<Vec<u8>>> {
        let group = self.groups.group_of(key)?;
        let got = match self.part(group).await {
            Ok(part) => part.get(key, lock).await,
            Err(err) => Err(err),
        };
        self.noted(got)
    }

    async fn scan(
        &mut self,
        range: KeyRange,
        direction: ScanDirection,
        limit: Option<usize>,
        lock: LockStrength,
    ) -> Result<Vec<KvPair>> {
        let mut pieces = self.groups.locate(&range)?;
        if direction == ScanDirection::Reverse {
            pieces.reverse();
        }
        let mut rows = Vec::new();
        for (group, piece) in pieces {
            let remaining = limit.map(|l| l - rows.len());
            let got = match self.part(group).await {
                Ok(part) => part.scan(piece, direction, remaining, lock).await,
                Err(err) => Err(err),
            };
            rows.extend(self.noted(got)?);
            if limit.is_some_and(|l| rows.len() >= l) {
                break;
            }
        }
        Ok(rows)
    }

    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        let group = self.groups.group_of(&key)?;
        let put = match self.part(group).await {
            Ok(part) => part.put(key, value).await,
            Err(err) => Err(err),
        };
        self.noted(put)?;
        self.wrote.insert(group);
        Ok(())
    }

    async fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        let group = self.groups.group_of(&key)?;
        let deleted = match self.part(group).await {
            Ok(part) => part.delete(key).await,
            Err(err) => Err(err),
        };
        self.noted(deleted)?;
        self.wrote.insert(group);
        Ok(())
    }

    async fn commit(mut self) -> Result<Option<Timestamp>> {
        if self.wrote.is_empty() || self.parts.len() == 1 {
            // Reads only (releasing their locks ends the transaction), or
            // one group: no two-phase commit.
            let mut committed = None;
            for (_, txn) in std::mem::take(&mut self.parts) {
                committed = committed.max(txn.commit().await?);
            }
            return Ok(committed);
        }
        self.commit_two_phase().await
    }

    async fn rollback(mut self) -> Result<()> {
        let results = join_all(
            std::mem::take(&mut self.parts)
                .into_values()
                .map(|txn| txn.rollback()),
        )
        .await;
        results.into_iter().collect()
    }
}
