//! [`ClusterEngine`]: the transaction engine SQL sessions use on any node of
//! a cluster. A transaction spans the groups that hold the keys it touches
//! (the node's placement): `meridian_txn::DistEngine` opens one part per
//! group and runs two-phase commit across them; [`ClusterGroups`] says
//! where keys live and runs each part at its group's leader: in this
//! process when the local replica leads (a [`LeaderTxn`] straight on the
//! leader's engine), else at the leader's node through its `Txn` API
//! ([`RemoteTxn`]). The outcome of a prepared transaction goes to each
//! participant's leader with a group-level `Decide` call, wherever it is.
//!
//! **Follower reads.** A read-only transaction reads at one timestamp:
//! `TT.now().latest` when it begins (strong) or the one given (`AS OF
//! SYSTEM TIME`). A group's part needs no leader: the local replica serves
//! it, lock-free, once its safe time has reached the timestamp (a stale
//! read waits up to [`FOLLOWER_READ_WAIT`] for it; an idle leader advances
//! safe time every `safe_time_interval`). A replica behind hands the read
//! to the leader, which waits only for commits in flight below it.
//!
//! **Finding the leader.** `begin` asks the local replica: if it serves, the
//! transaction runs here; if it knows another leader, `begin` is sent
//! there. A refusal (`NotLeader`, the node is down) means the knowledge was
//! stale: `begin` waits for the local replica's status to change (or a
//! short pause) and tries again, for up to [`BEGIN_TIMEOUT`] (more than a
//! lease plus an election), then fails with [`Error::Unavailable`]. Nothing
//! has happened before a transaction begins, so these retries are safe.
//! After `begin`, a failure is the transaction's: a lost leader fails it
//! retryably (SQLSTATE 40001) and the client runs it again; a commit whose
//! answer is lost is [`Error::AmbiguousCommit`].

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meridian_error::{Error, Result};
use meridian_paxos::NodeId;
use meridian_proto::v1;
use meridian_storage::{KeyRange, KvPair, Mvcc, ScanDirection};
use meridian_truetime::{Timestamp, TtInterval};
use meridian_txn::{
    tell_participants, DistEngine, GlobalTxnId, GroupTxn, Groups, LockStrength, Outcome, Priority,
    RangeInfo, ReadTime, Transaction, TxnMode, Vote,
};

use crate::group::{LeaderTxn, SharedSpans, Storage};
use crate::net::NodeApi;
use crate::node::Node;
use crate::placement;
use crate::spans::control_group;

/// How long `begin` looks for a leader.
pub const BEGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a snapshot read waits for the local replica's safe time before
/// going to the leader instead.
pub const FOLLOWER_READ_WAIT: Duration = Duration::from_secs(1);
/// The pause between attempts when nothing changed.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Rows per routed `Scan` call: a scan of a large range comes in pages, so
/// no reply grows with the table (gRPC messages are bounded).
pub const SCAN_PAGE: usize = 1024;

/// The engine of SQL sessions on a node: transactions spanning the
/// cluster's groups ([`DistEngine`]), each part run at its group's leader.
pub type ClusterEngine = DistEngine<ClusterGroups>;

/// The cluster's groups as two-phase commit sees them from one node: the
/// node's placement, and the way to each group's leader.
#[derive(Clone, Debug)]
pub struct ClusterGroups {
    /// This node.
    node: Arc<Node>,
}

impl ClusterGroups {
    /// The groups as `node` reaches them.
    pub fn new(node: Arc<Node>) -> Self {
        ClusterGroups { node }
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Runs a group-level call (no transaction handle) at `group`'s
    /// leader, looking for it as `begin` does.
    pub(crate) async fn group_call(
        &self,
        group: u64,
        what: &str,
        op: v1::txn_request::Op,
    ) -> Result<v1::txn_reply::Result> {
        self.at_leader(group, what, || self.try_group_call(group, op.clone()))
            .await
    }

    /// A snapshot read at `ts` of `group` served by the local follower
    /// replica, if its safe time reaches `ts` within `wait`.
    async fn follower_read(
        &self,
        group: u64,
        ts: Timestamp,
        wait: Duration,
    ) -> Result<Option<ClusterTxn>> {
        let now = self.node.truetime().now();
        let Some(replica) = self.node.group(group) else {
            return Ok(None);
        };
        if replica.leader_engine().is_some() {
            // The leader serves it as any other transaction.
            return Ok(None);
        }
        if replica.wait_for(wait, |s| s.safe_ts >= ts).await.is_err() {
            return Ok(None);
        }
        let mvcc = self.node.mvcc().clone();
        mvcc.check_readable(ts)?;
        Ok(Some(ClusterTxn::Snapshot(SnapshotTxn {
            mvcc,
            group,
            spans: replica.spans(),
            id: NEXT_SNAPSHOT.fetch_add(1, Ordering::Relaxed),
            start_ts: now.latest,
            read_ts: ts,
        })))
    }

    /// One attempt to begin at `group`'s leader: `Ok(None)` when no leader
    /// took it.
    async fn try_begin(
        &self,
        group: u64,
        mode: TxnMode,
        priority: Priority,
    ) -> Result<Option<ClusterTxn>> {
        let Some(replica) = self.node.group(group) else {
            // This node hosts no replica of the group: ask the others.
            return self
                .ask_leaders(group, |id| self.begin_at(id, group, mode, priority))
                .await;
        };
        if let Some(engine) = replica.leader_engine() {
            return match engine.begin_with_priority(mode, Some(priority)).await {
                Ok(txn) => Ok(Some(ClusterTxn::Local(txn))),
                Err(Error::NotLeader { .. }) => Ok(None),
                Err(err) => Err(err),
            };
        }
        match replica.status().leader {
            Some(leader) if leader != self.node.id() => {
                taken(self.begin_at(leader, group, mode, priority).await)
            }
            _ => Ok(None),
        }
    }

    /// Runs `ask` at the nodes that may lead `group`, a group whose leader
    /// this node's replicas cannot name: the leader last heard of first,
    /// then one a refusal named, then every other peer. `Ok(None)` when
    /// none took it. What the answers say is kept for next time
    /// ([`Node::leader_hint`]).
    async fn ask_leaders<T, F, Fut>(&self, group: u64, ask: F) -> Result<Option<T>>
    where
        F: Fn(NodeId) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut asked = BTreeSet::new();
        let mut named = self.node.leader_hint(group);
        loop {
            let next = named.take().filter(|id| !asked.contains(id)).or_else(|| {
                self.node
                    .peer_ids()
                    .into_iter()
                    .find(|id| !asked.contains(id))
            });
            let Some(id) = next else { return Ok(None) };
            asked.insert(id);
            match ask(id).await {
                Ok(done) => {
                    self.node.learn_leader(group, id, Some(id));
                    return Ok(Some(done));
                }
                Err(Error::NotLeader { leader, .. }) => {
                    self.node.learn_leader(group, id, leader);
                    named = leader;
                }
                Err(Error::Unavailable(_)) => self.node.learn_leader(group, id, None),
                Err(err) => return Err(err),
            }
        }
    }

    /// The API of node `id` (this one's own, or a peer's).
    pub(crate) fn api_of(&self, id: NodeId) -> Result<Arc<dyn NodeApi>> {
        if id == self.node.id() {
            return Ok(self.node.clone());
        }
        self.node
            .peer(id)
            .ok_or_else(|| Error::Unavailable(format!("no address for node {id}")))
    }

    /// Asks node `leader` to begin.
    async fn begin_at(
        &self,
        leader: NodeId,
        group: u64,
        mode: TxnMode,
        priority: Priority,
    ) -> Result<ClusterTxn> {
        let api = self.api_of(leader)?;
        let (read_only, at) = match mode {
            TxnMode::ReadWrite => (false, None),
            TxnMode::ReadOnly(ReadTime::Strong | ReadTime::MaxStaleness(_)) => (true, None),
            TxnMode::ReadOnly(ReadTime::At(ts)) => (true, Some(wire::proto_ts(ts))),
        };
        let request = v1::TxnRequest {
            cluster: self.node.cluster(),
            group,
            txn: 0,
            op: Some(v1::txn_request::Op::Begin(v1::BeginOp {
                read_only,
                at,
                start_ts: Some(wire::proto_ts(priority.start_ts)),
                tiebreak: priority.tiebreak.to_be_bytes().to_vec(),
            })),
        };
        match call(&api, request).await? {
            v1::txn_reply::Result::Began(began) => Ok(ClusterTxn::Remote(RemoteTxn {
                api,
                cluster: self.node.cluster(),
                group,
                handle: began.txn,
                mode,
                start_ts: began.start_ts.map(wire::ts).unwrap_or_default(),
                read_ts: began.read_ts.map(wire::ts),
                wrote: false,
                finished: false,
            })),
            other => Err(unexpected(&other)),
        }
    }

    /// Runs `attempt` against `group`'s leader until one answers (`Some`),
    /// for up to [`BEGIN_TIMEOUT`], waiting for the local replica's status
    /// to change (or a short pause) between attempts.
    async fn at_leader<T, F, Fut>(&self, group: u64, what: &str, attempt: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        let deadline = tokio::time::Instant::now() + BEGIN_TIMEOUT;
        loop {
            if let Some(done) = attempt().await? {
                return Ok(done);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "no leader of group {group} answered {what} within {BEGIN_TIMEOUT:?}"
                )));
            }
            match self.node.group(group) {
                Some(replica) => {
                    let mut status = replica.watch();
                    status.borrow_and_update();
                    let _ = tokio::time::timeout(RETRY_PAUSE * 4, status.changed()).await;
                }
                None => tokio::time::sleep(RETRY_PAUSE).await,
            }
        }
    }

    /// One attempt to run a group-level call (`Decide`, `Resolve`) at
    /// `group`'s leader: `Ok(None)` when no leader took it.
    async fn try_group_call(
        &self,
        group: u64,
        op: v1::txn_request::Op,
    ) -> Result<Option<v1::txn_reply::Result>> {
        let leader = match self.node.group(group) {
            Some(replica) if replica.leader_engine().is_some() => Some(self.node.id()),
            Some(replica) => replica.status().leader,
            None => None,
        };
        let call_at = |id: NodeId| {
            let request = v1::TxnRequest {
                cluster: self.node.cluster(),
                group,
                txn: 0,
                op: Some(op.clone()),
            };
            async move { call(&self.api_of(id)?, request).await }
        };
        match leader {
            Some(leader) => taken(call_at(leader).await),
            None => self.ask_leaders(group, call_at).await,
        }
    }

    /// The outcome of `gid` from its coordinator `group` (recording an
    /// abort there if it is undecided): what a participant asks about a
    /// transaction whose outcome did not come.
    pub async fn resolve(&self, group: u64, gid: GlobalTxnId) -> Result<Outcome> {
        let op = v1::txn_request::Op::Resolve(v1::ResolveOp {
            gid: wire::proto_gid(gid),
        });
        match self.group_call(group, "a resolution", op).await? {
            v1::txn_reply::Result::Resolved(resolved) => Ok(wire::outcome(resolved)),
            other => Err(unexpected(&other)),
        }
    }
}

impl ClusterGroups {
    /// Who serves `group`, as far as this node can tell: the replicas, the
    /// leader, and when its lease ends (asked of the leader's node).
    async fn served_by(&self, group: u64) -> (Vec<u64>, Option<u64>, Option<Timestamp>) {
        let (voters, leader) = match self.node.group(group) {
            Some(replica) => {
                let status = replica.status();
                (status.voters, status.leader)
            }
            None => self.view_elsewhere(group).await,
        };
        let Some(leader) = leader else {
            return (voters, None, None);
        };
        let reply = match self.api_of(leader) {
            Ok(api) => api.status().await,
            Err(err) => Err(err),
        };
        let remaining = reply.ok().and_then(|reply| {
            reply
                .groups
                .iter()
                .find(|g| g.group == group && g.lease_remaining_nanos > 0)
                .map(|g| Duration::from_nanos(g.lease_remaining_nanos))
        });
        let expiry = remaining.map(|left| self.node.truetime().now().earliest.saturating_add(left));
        (voters, Some(leader), expiry)
    }

    /// The voters and leader of `group`, which this node holds no replica
    /// of, as the first peer holding one tells (none if no peer answers).
    async fn view_elsewhere(&self, group: u64) -> (Vec<u64>, Option<u64>) {
        let peers = self
            .node
            .leader_hint(group)
            .into_iter()
            .chain(self.node.peer_ids());
        for id in peers {
            let Ok(api) = self.api_of(id) else { continue };
            let Ok(reply) = api.status().await else {
                continue;
            };
            if let Some(status) = reply.groups.into_iter().find(|g| g.group == group) {
                return (status.voters, (status.leader != 0).then_some(status.leader));
            }
        }
        (Vec::new(), None)
    }
}

impl Groups for ClusterGroups {
    type Txn = ClusterTxn;

    fn group_of(&self, key: &[u8]) -> Result<u64> {
        if let Some(group) = control_group(key) {
            return Ok(group);
        }
        Ok(self.node.placement()?.group_of(key))
    }

    fn locate(&self, range: &KeyRange) -> Result<Vec<(u64, KeyRange)>> {
        Ok(self.node.placement()?.locate(range))
    }

    async fn begin(
        &self,
        group: u64,
        mode: TxnMode,
        priority: Priority,
        strong: bool,
    ) -> Result<ClusterTxn> {
        if let TxnMode::ReadOnly(ReadTime::At(ts)) = mode {
            // A strong read's timestamp is fresh: a follower serves it only
            // if already caught up; a stale read may wait for one a little.
            let wait = if strong {
                Duration::ZERO
            } else {
                FOLLOWER_READ_WAIT
            };
            if let Some(txn) = self.follower_read(group, ts, wait).await? {
                return Ok(txn);
            }
        }
        self.at_leader(group, "begin", || self.try_begin(group, mode, priority))
            .await
    }

    /// Tells `group`'s leader the outcome (it logs and applies it, and
    /// then answers).
    async fn decide(&self, group: u64, gid: GlobalTxnId, outcome: Outcome) -> Result<()> {
        let op = v1::txn_request::Op::Decide(v1::DecideOp {
            gid: wire::proto_gid(gid),
            commit_ts: match outcome {
                Outcome::Committed(ts) => Some(wire::proto_ts(ts)),
                Outcome::Aborted => None,
            },
        });
        self.group_call(group, "an outcome", op).await.map(drop)
    }

    /// Tells the participants in the background and returns at once
    /// (Spanner's coordinator answers the client after commit wait, while
    /// the participants are told): a participant's locks go as soon as it
    /// hears, and one that cannot be told within [`BEGIN_TIMEOUT`] learns
    /// the outcome by resolution. Readers of its prepared keys wait for the
    /// outcome either way. Once every participant has applied a commit, the
    /// coordinator group forgets its outcome record (`Forget`).
    fn announce(
        &self,
        coordinator: u64,
        gid: GlobalTxnId,
        participants: Vec<u64>,
        outcome: Outcome,
    ) -> impl Future<Output = ()> + Send {
        let groups = self.clone();
        tokio::spawn(async move {
            let told = tokio::select! {
                told = tell_participants(&groups, gid, &participants, outcome) => told,
                () = groups.node.stopped() => return,
            };
            if !told || !matches!(outcome, Outcome::Committed(_)) {
                return;
            }
            let op = v1::txn_request::Op::Forget(v1::ForgetOp {
                gid: wire::proto_gid(gid),
            });
            let forgot = tokio::select! {
                forgot = groups.group_call(coordinator, "forgetting an outcome", op) => forgot,
                () = groups.node.stopped() => return,
            };
            if let Err(err) = forgot {
                tracing::debug!(%gid, coordinator, %err, "could not forget an outcome");
            }
        });
        std::future::ready(())
    }

    fn placement_stale(&self) {
        self.node.placement_stale();
    }

    fn split_at(self: Arc<Self>, key: Vec<u8>) -> impl Future<Output = Result<()>> + Send {
        placement::split_at(self, key)
    }

    fn relocate(
        self: Arc<Self>,
        key: Vec<u8>,
        group: u64,
    ) -> impl Future<Output = Result<()>> + Send {
        placement::relocate(self, key, group)
    }

    fn new_gid(&self) -> GlobalTxnId {
        GlobalTxnId(rand::random())
    }

    fn single_group(&self) -> Option<u64> {
        let placement = self.node.placement().ok()?;
        let mut groups = placement.ranges().map(|(_, _, g)| g);
        let first = groups.next()?;
        groups.all(|g| g == first).then_some(first)
    }

    fn local_safe_ts(&self) -> Option<Timestamp> {
        let placement = self.node.placement().ok()?;
        let groups: BTreeSet<u64> = placement.ranges().map(|(_, _, g)| g).collect();
        groups
            .into_iter()
            .filter_map(|g| self.node.group(g).map(|replica| replica.status().safe_ts))
            .min()
    }

    async fn ranges(&self) -> Result<Vec<RangeInfo>> {
        let mut infos = self.node.placement()?.infos();
        let groups: BTreeSet<u64> = infos.iter().map(|r| r.group).collect();
        let mut served = BTreeMap::new();
        for group in groups {
            served.insert(group, self.served_by(group).await);
        }
        for info in &mut infos {
            if let Some((replicas, leader, lease_expiry)) = served.get(&info.group) {
                info.replicas.clone_from(replicas);
                info.leader = *leader;
                info.lease_expiry = *lease_expiry;
            }
            if self.node.group(info.group).is_some() {
                let range = KeyRange {
                    start: Bound::Included(info.start.clone()),
                    end: info.end.clone().map_or(Bound::Unbounded, Bound::Excluded),
                };
                info.size_bytes = Some(self.node.stored_bytes(&range)?);
            }
        }
        Ok(infos)
    }

    fn now(&self) -> TtInterval {
        self.node.truetime().now()
    }
}

/// A transaction at one group, as a [`ClusterEngine`] runs it.
pub enum ClusterTxn {
    /// Run by this node's leader replica.
    Local(LeaderTxn),
    /// Run by another node's leader replica.
    Remote(RemoteTxn),
    /// A snapshot read served by this node's follower replica.
    Snapshot(SnapshotTxn),
}

impl ClusterTxn {
    /// Whether a follower replica of this node serves it (no leader
    /// involved).
    pub fn is_follower_read(&self) -> bool {
        matches!(self, ClusterTxn::Snapshot(_))
    }
}

/// Ids of follower reads (for logs).
static NEXT_SNAPSHOT: AtomicU64 = AtomicU64::new(1);

/// A read-only transaction at a fixed timestamp, served from this node's
/// replica at or below its safe time: no locks, no leader. What it read
/// counts only if the replica still served the range once it had read it.
pub struct SnapshotTxn {
    /// The node's store.
    mvcc: Arc<Mvcc<Storage>>,
    /// The group.
    group: u64,
    /// What the replica serves.
    spans: SharedSpans,
    /// Its id.
    id: u64,
    /// When it began.
    start_ts: Timestamp,
    /// The snapshot.
    read_ts: Timestamp,
}

impl Transaction for ClusterTxn {
    fn id(&self) -> u64 {
        match self {
            ClusterTxn::Local(t) => t.id(),
            ClusterTxn::Remote(t) => t.handle,
            ClusterTxn::Snapshot(t) => t.id,
        }
    }

    fn mode(&self) -> TxnMode {
        match self {
            ClusterTxn::Local(t) => t.mode(),
            ClusterTxn::Remote(t) => t.mode,
            ClusterTxn::Snapshot(t) => TxnMode::ReadOnly(ReadTime::At(t.read_ts)),
        }
    }

    fn start_ts(&self) -> Timestamp {
        match self {
            ClusterTxn::Local(t) => t.start_ts(),
            ClusterTxn::Remote(t) => t.start_ts,
            ClusterTxn::Snapshot(t) => t.start_ts,
        }
    }

    fn read_ts(&self) -> Option<Timestamp> {
        match self {
            ClusterTxn::Local(t) => t.read_ts(),
            ClusterTxn::Remote(t) => t.read_ts,
            ClusterTxn::Snapshot(t) => Some(t.read_ts),
        }
    }

    async fn get(&mut self, key: &[u8], lock: LockStrength) -> Result<Option<Vec<u8>>> {
        match self {
            ClusterTxn::Local(t) => t.get(key, lock).await,
            ClusterTxn::Snapshot(t) => {
                let value = t.mvcc.get(key, t.read_ts)?;
                t.spans.check_key(t.group, key)?;
                Ok(value)
            }
            ClusterTxn::Remote(t) => {
                let op = v1::txn_request::Op::Get(v1::GetOp {
                    key: key.to_vec(),
                    lock: wire::proto_lock(lock),
                });
                match t.call(op).await? {
                    v1::txn_reply::Result::Value(v) => Ok(v.value),
                    other => Err(unexpected(&other)),
                }
            }
        }
    }

    async fn scan(
        &mut self,
        range: KeyRange,
        direction: ScanDirection,
        limit: Option<usize>,
        lock: LockStrength,
    ) -> Result<Vec<KvPair>> {
        match self {
            ClusterTxn::Local(t) => t.scan(range, direction, limit, lock).await,
            ClusterTxn::Snapshot(t) => {
                let rows = t.mvcc.scan(&range, t.read_ts, direction, limit)?;
                t.spans.check(t.group, &range)?;
                Ok(rows)
            }
            ClusterTxn::Remote(t) => t.scan_pages(range, direction, limit, lock).await,
        }
    }

    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        match self {
            ClusterTxn::Local(t) => t.put(key, value).await,
            ClusterTxn::Snapshot(_) => Err(Error::ReadOnlyTransaction("INSERT or UPDATE".into())),
            ClusterTxn::Remote(t) => {
                if t.read_ts.is_some() {
                    return Err(Error::ReadOnlyTransaction("INSERT or UPDATE".into()));
                }
                t.wrote = true;
                let op = v1::txn_request::Op::Put(v1::PutOp { key, value });
                t.call(op).await.map(drop)
            }
        }
    }

    async fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        match self {
            ClusterTxn::Local(t) => t.delete(key).await,
            ClusterTxn::Snapshot(_) => Err(Error::ReadOnlyTransaction("DELETE".into())),
            ClusterTxn::Remote(t) => {
                if t.read_ts.is_some() {
                    return Err(Error::ReadOnlyTransaction("DELETE".into()));
                }
                t.wrote = true;
                let op = v1::txn_request::Op::Delete(v1::DeleteOp { key });
                t.call(op).await.map(drop)
            }
        }
    }

    async fn commit(self) -> Result<Option<Timestamp>> {
        match self {
            ClusterTxn::Local(t) => t.commit().await,
            ClusterTxn::Snapshot(_) => Ok(None),
            ClusterTxn::Remote(mut t) => {
                t.finished = true;
                match t.call(v1::txn_request::Op::Commit(v1::CommitOp {})).await {
                    Ok(v1::txn_reply::Result::Committed(c)) => Ok(c.commit_ts.map(wire::ts)),
                    Ok(other) => Err(unexpected(&other)),
                    // The call may have reached the leader and committed.
                    Err(Error::Unavailable(why)) if t.wrote => Err(Error::AmbiguousCommit(
                        format!("the leader did not answer the commit: {why}"),
                    )),
                    Err(Error::Unavailable(why)) => Err(Error::Aborted(format!(
                        "the leader running the transaction is unreachable: {why}"
                    ))),
                    Err(err) => Err(err),
                }
            }
        }
    }

    async fn rollback(self) -> Result<()> {
        match self {
            ClusterTxn::Local(t) => t.rollback().await,
            ClusterTxn::Snapshot(_) => Ok(()),
            ClusterTxn::Remote(mut t) => {
                t.finished = true;
                match t
                    .call(v1::txn_request::Op::Rollback(v1::RollbackOp {}))
                    .await
                {
                    // Gone already (leader changed or reaped): nothing to undo.
                    Ok(_) | Err(Error::Aborted(_) | Error::Unavailable(_)) => Ok(()),
                    Err(err) => Err(err),
                }
            }
        }
    }
}

impl GroupTxn for ClusterTxn {
    async fn prepare(self, gid: GlobalTxnId, coordinator: u64) -> Result<Vote> {
        match self {
            ClusterTxn::Local(t) => t.prepare(gid, coordinator).await,
            ClusterTxn::Snapshot(_) => Err(Error::InvalidInput(
                "a read-only transaction has nothing to prepare".into(),
            )),
            ClusterTxn::Remote(mut t) => {
                t.finished = true;
                let op = v1::txn_request::Op::Prepare(v1::PrepareOp {
                    gid: wire::proto_gid(gid),
                    coordinator,
                });
                match t.call(op).await {
                    Ok(v1::txn_reply::Result::Prepared(p)) => Ok(wire::vote(p)),
                    Ok(other) => Err(unexpected(&other)),
                    // Maybe prepared: resolution aborts it (no commit
                    // without every vote).
                    Err(Error::Unavailable(why)) => Err(Error::Aborted(format!(
                        "the participant's leader did not answer the prepare: {why}"
                    ))),
                    Err(err) => Err(err),
                }
            }
        }
    }

    async fn commit_as_coordinator(
        self,
        gid: GlobalTxnId,
        min_ts: Timestamp,
        below: Option<Timestamp>,
    ) -> Result<Timestamp> {
        match self {
            ClusterTxn::Local(t) => t.commit_as_coordinator(gid, min_ts, below).await,
            ClusterTxn::Snapshot(_) => Err(Error::InvalidInput(
                "a read-only transaction cannot coordinate a commit".into(),
            )),
            ClusterTxn::Remote(mut t) => {
                t.finished = true;
                let op = v1::txn_request::Op::CoordinatorCommit(v1::CoordinatorCommitOp {
                    gid: wire::proto_gid(gid),
                    min_ts: Some(wire::proto_ts(min_ts)),
                    below: below.map(wire::proto_ts),
                });
                match t.call(op).await {
                    Ok(v1::txn_reply::Result::Committed(c)) => {
                        Ok(c.commit_ts.map(wire::ts).unwrap_or_default())
                    }
                    Ok(other) => Err(unexpected(&other)),
                    Err(Error::Unavailable(why)) => Err(Error::AmbiguousCommit(format!(
                        "the coordinator's leader did not answer the commit of {gid}: {why}"
                    ))),
                    Err(err) => Err(err),
                }
            }
        }
    }
}

/// A transaction run by another node's leader.
pub struct RemoteTxn {
    /// The leader's API.
    api: Arc<dyn NodeApi>,
    /// The cluster.
    cluster: u64,
    /// The group.
    group: u64,
    /// The transaction's handle at the leader.
    handle: u64,
    /// Its mode.
    mode: TxnMode,
    /// When it began.
    start_ts: Timestamp,
    /// Its snapshot, if read-only.
    read_ts: Option<Timestamp>,
    /// Whether it buffered a write (a commit without one cannot be
    /// ambiguous: there is nothing to apply).
    wrote: bool,
    /// Committed or rolled back.
    finished: bool,
}

impl RemoteTxn {
    /// A scan at the leader, [`SCAN_PAGE`] rows per call: each call asks
    /// for the rest of the range after the last row received. A page that
    /// fills its limit locks through its last row, the last page the rest
    /// of the range, so together they lock what one scan would have.
    async fn scan_pages(
        &mut self,
        mut range: KeyRange,
        direction: ScanDirection,
        limit: Option<usize>,
        lock: LockStrength,
    ) -> Result<Vec<KvPair>> {
        let mut rows: Vec<KvPair> = Vec::new();
        loop {
            let page = limit.map_or(SCAN_PAGE, |l| (l - rows.len()).min(SCAN_PAGE));
            let op = v1::txn_request::Op::Scan(v1::ScanOp {
                range: Some(wire::proto_range(&range)),
                reverse: direction == ScanDirection::Reverse,
                limit: page as u64,
                lock_only: page == 0,
                lock: wire::proto_lock(lock),
            });
            let got = match self.call(op).await? {
                v1::txn_reply::Result::Rows(got) => got.rows,
                other => return Err(unexpected(&other)),
            };
            let full = got.len() >= page;
            rows.extend(got.into_iter().map(|kv| (kv.key, kv.value)));
            if !full || limit.is_some_and(|l| rows.len() >= l) {
                return Ok(rows);
            }
            let last = rows.last().map(|(k, _)| k.clone()).unwrap_or_default();
            range = match direction {
                ScanDirection::Forward => KeyRange {
                    start: Bound::Excluded(last),
                    end: range.end,
                },
                ScanDirection::Reverse => KeyRange {
                    start: range.start,
                    end: Bound::Excluded(last),
                },
            };
        }
    }

    async fn call(&self, op: v1::txn_request::Op) -> Result<v1::txn_reply::Result> {
        let request = v1::TxnRequest {
            cluster: self.cluster,
            group: self.group,
            txn: self.handle,
            op: Some(op),
        };
        match call(&self.api, request).await {
            // The leader is gone: the transaction with it.
            Err(Error::Unavailable(why)) if !self.finished => Err(Error::Aborted(format!(
                "the leader running the transaction is unreachable: {why}"
            ))),
            other => other,
        }
    }
}

impl Drop for RemoteTxn {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Dropped without an ending: roll back at the leader, best effort
        // (the leader reaps it anyway once idle).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let api = self.api.clone();
            let request = v1::TxnRequest {
                cluster: self.cluster,
                group: self.group,
                txn: self.handle,
                op: Some(v1::txn_request::Op::Rollback(v1::RollbackOp {})),
            };
            runtime.spawn(async move {
                let _ = api.txn(request).await;
            });
        }
    }
}

/// `result`, or `None` when the node asked did not lead (or did not
/// answer): then the caller looks for the leader again.
fn taken<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(done) => Ok(Some(done)),
        Err(Error::NotLeader { .. } | Error::Unavailable(_)) => Ok(None),
        Err(err) => Err(err),
    }
}

/// One `Txn` call: the reply's result, or its error.
async fn call(api: &Arc<dyn NodeApi>, request: v1::TxnRequest) -> Result<v1::txn_reply::Result> {
    let reply = api.txn(request).await?;
    match reply.result {
        Some(v1::txn_reply::Result::Error(bytes)) => Err(wire::decode_error(&bytes)),
        Some(result) => Ok(result),
        None => Err(Error::Internal("an empty Txn reply".into())),
    }
}

pub(crate) fn unexpected(reply: &v1::txn_reply::Result) -> Error {
    Error::Internal(format!("an unexpected Txn reply: {reply:?}"))
}

/// Conversions between the transaction API's types and their protobuf form.
pub(crate) mod wire {
    use std::ops::Bound;

    use meridian_error::{Error, Result};
    use meridian_proto::v1;
    use meridian_storage::KeyRange;
    use meridian_truetime::Timestamp;
    use meridian_txn::{GlobalTxnId, LockStrength, Outcome, Vote};

    pub(crate) fn ts(t: v1::Timestamp) -> Timestamp {
        Timestamp::from_nanos(t.nanos)
    }

    pub(crate) fn proto_ts(t: Timestamp) -> v1::Timestamp {
        v1::Timestamp {
            nanos: t.as_nanos(),
        }
    }

    pub(crate) fn lock(lock: i32) -> LockStrength {
        if lock == v1::LockStrength::Exclusive as i32 {
            LockStrength::Exclusive
        } else {
            LockStrength::Shared
        }
    }

    pub(crate) fn proto_lock(lock: LockStrength) -> i32 {
        match lock {
            LockStrength::Shared => v1::LockStrength::Shared as i32,
            LockStrength::Exclusive => v1::LockStrength::Exclusive as i32,
        }
    }

    fn bound(bound: Option<v1::KeyBound>) -> Result<Bound<Vec<u8>>> {
        use v1::key_bound::Kind;
        Ok(match bound.and_then(|b| b.kind) {
            None => Bound::Unbounded,
            Some(Kind::Included(key)) => Bound::Included(key),
            Some(Kind::Excluded(key)) => Bound::Excluded(key),
        })
    }

    fn proto_bound(bound: &Bound<Vec<u8>>) -> Option<v1::KeyBound> {
        use v1::key_bound::Kind;
        let kind = match bound {
            Bound::Unbounded => return None,
            Bound::Included(key) => Kind::Included(key.clone()),
            Bound::Excluded(key) => Kind::Excluded(key.clone()),
        };
        Some(v1::KeyBound { kind: Some(kind) })
    }

    pub(crate) fn range(range: v1::KeyRange) -> Result<KeyRange> {
        Ok(KeyRange {
            start: bound(range.start)?,
            end: bound(range.end)?,
        })
    }

    pub(crate) fn proto_range(range: &KeyRange) -> v1::KeyRange {
        v1::KeyRange {
            start: proto_bound(&range.start),
            end: proto_bound(&range.end),
        }
    }

    pub(crate) fn gid(bytes: &[u8]) -> Result<GlobalTxnId> {
        let bytes: [u8; 16] = bytes
            .try_into()
            .map_err(|_| Error::InvalidInput("a transaction id must be 16 bytes".into()))?;
        Ok(GlobalTxnId(u128::from_be_bytes(bytes)))
    }

    /// A wound-wait tie-break: a global transaction id, or nothing (0).
    pub(crate) fn tiebreak(bytes: &[u8]) -> Result<u128> {
        if bytes.is_empty() {
            return Ok(0);
        }
        Ok(gid(bytes)?.0)
    }

    pub(crate) fn proto_gid(gid: GlobalTxnId) -> Vec<u8> {
        gid.0.to_be_bytes().to_vec()
    }

    pub(crate) fn vote(prepared: v1::Prepared) -> Vote {
        if prepared.read_only {
            Vote::ReadOnly {
                until: prepared.until.map(ts),
            }
        } else {
            Vote::Prepared {
                prepare_ts: prepared.prepare_ts.map(ts).unwrap_or_default(),
            }
        }
    }

    pub(crate) fn proto_vote(vote: Vote) -> v1::Prepared {
        match vote {
            Vote::Prepared { prepare_ts } => v1::Prepared {
                prepare_ts: Some(proto_ts(prepare_ts)),
                read_only: false,
                until: None,
            },
            Vote::ReadOnly { until } => v1::Prepared {
                prepare_ts: None,
                read_only: true,
                until: until.map(proto_ts),
            },
        }
    }

    pub(crate) fn outcome(resolved: v1::Resolved) -> Outcome {
        match resolved.commit_ts {
            Some(ts) => Outcome::Committed(self::ts(ts)),
            None => Outcome::Aborted,
        }
    }

    pub(crate) fn proto_outcome(outcome: Outcome) -> v1::Resolved {
        v1::Resolved {
            commit_ts: match outcome {
                Outcome::Committed(ts) => Some(proto_ts(ts)),
                Outcome::Aborted => None,
            },
        }
    }

    pub(crate) fn encode_error(err: &Error) -> Vec<u8> {
        postcard::to_allocvec(err).expect("errors always encode")
    }

    pub(crate) fn decode_error(bytes: &[u8]) -> Error {
        postcard::from_bytes(bytes)
            .unwrap_or_else(|e| Error::Internal(format!("an undecodable error reply: {e}")))
    }
}
