//! [`ClusterEngine`]: the transaction engine SQL sessions use on any node of
//! a cluster. It runs each transaction at the leader of the group: in this
//! process when the local replica leads (a [`LeaderTxn`] straight on the
//! leader's engine), else at the leader's node through its `Txn` API
//! ([`RemoteTxn`]).
//!
//! **Follower reads.** A snapshot read at a given timestamp (`AS OF SYSTEM
//! TIME`, [`ReadTime::At`]) needs no leader: the local replica serves it,
//! lock-free, once its safe time has reached the timestamp (waiting up to
//! [`FOLLOWER_READ_WAIT`] for it; an idle leader advances safe time every
//! `safe_time_interval`). A replica too far behind hands the read to the
//! leader. Strong reads go to the leader.
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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meridian_error::{Error, Result};
use meridian_proto::v1;
use meridian_storage::{KeyRange, KvPair, Mvcc, ScanDirection};
use meridian_truetime::{Timestamp, TtInterval};
use meridian_txn::{LockStrength, ReadTime, Transaction, TxnEngine, TxnMode};

use crate::group::{LeaderTxn, Storage};
use crate::net::NodeApi;
use crate::node::Node;

/// How long `begin` looks for a leader.
pub const BEGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a snapshot read waits for the local replica's safe time before
/// going to the leader instead.
pub const FOLLOWER_READ_WAIT: Duration = Duration::from_secs(1);
/// The pause between attempts when nothing changed.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The engine of SQL sessions on a node: transactions run at the leader.
#[derive(Clone, Debug)]
pub struct ClusterEngine {
    /// This node.
    node: Arc<Node>,
    /// The group transactions run on.
    group: u64,
}

impl ClusterEngine {
    /// Transactions on `group` from `node`.
    pub fn new(node: Arc<Node>, group: u64) -> Self {
        ClusterEngine { node, group }
    }

    /// A snapshot read at `ts` served by the local follower replica, if its
    /// safe time reaches `ts` soon enough.
    async fn follower_read(&self, ts: Timestamp) -> Result<Option<ClusterTxn>> {
        let now = self.node.truetime().now();
        if ts > now.latest {
            return Err(Error::InvalidInput(format!(
                "cannot read as of {ts}: it is in the future (now is at most {})",
                now.latest
            )));
        }
        let Some(group) = self.node.group(self.group) else {
            return Ok(None);
        };
        if group.leader_engine().is_some() {
            // The leader serves it as any other transaction.
            return Ok(None);
        }
        if group
            .wait_for(FOLLOWER_READ_WAIT, |s| s.safe_ts >= ts)
            .await
            .is_err()
        {
            return Ok(None);
        }
        let mvcc = self.node.mvcc().clone();
        mvcc.check_readable(ts)?;
        Ok(Some(ClusterTxn::Snapshot(SnapshotTxn {
            mvcc,
            id: NEXT_SNAPSHOT.fetch_add(1, Ordering::Relaxed),
            start_ts: now.latest,
            read_ts: ts,
        })))
    }

    /// One attempt to begin: `Ok(None)` when no leader took it.
    async fn try_begin(&self, mode: TxnMode) -> Result<Option<ClusterTxn>> {
        let Some(group) = self.node.group(self.group) else {
            // Not bootstrapped yet, or this node hosts no replica: ask the
            // peers in turn.
            return self.begin_anywhere(mode).await;
        };
        if let Some(engine) = group.leader_engine() {
            return match engine.begin(mode).await {
                Ok(txn) => Ok(Some(ClusterTxn::Local(txn))),
                Err(Error::NotLeader { .. }) => Ok(None),
                Err(err) => Err(err),
            };
        }
        match group.status().leader {
            Some(leader) if leader != self.node.id() => self.begin_at(leader, mode).await,
            _ => Ok(None),
        }
    }

    /// Tries every peer (a node without a replica of the group).
    async fn begin_anywhere(&self, mode: TxnMode) -> Result<Option<ClusterTxn>> {
        let reply = self.node.hello(v1::HelloRequest::default()).await?;
        for peer in reply.peers.iter().filter(|p| p.id != self.node.id()) {
            if let Some(txn) = self.begin_at(peer.id, mode).await? {
                return Ok(Some(txn));
            }
        }
        Ok(None)
    }

    /// Asks node `leader` to begin.
    async fn begin_at(&self, leader: u64, mode: TxnMode) -> Result<Option<ClusterTxn>> {
        let Some(api) = self.node.peer(leader) else {
            return Ok(None);
        };
        let (read_only, at) = match mode {
            TxnMode::ReadWrite => (false, None),
            TxnMode::ReadOnly(ReadTime::Strong) => (true, None),
            TxnMode::ReadOnly(ReadTime::At(ts)) => (true, Some(wire::proto_ts(ts))),
        };
        let request = v1::TxnRequest {
            cluster: self.node.cluster(),
            group: self.group,
            txn: 0,
            op: Some(v1::txn_request::Op::Begin(v1::BeginOp { read_only, at })),
        };
        match call(&api, request).await {
            Ok(v1::txn_reply::Result::Began(began)) => Ok(Some(ClusterTxn::Remote(RemoteTxn {
                api,
                cluster: self.node.cluster(),
                group: self.group,
                handle: began.txn,
                mode,
                start_ts: began.start_ts.map(wire::ts).unwrap_or_default(),
                read_ts: began.read_ts.map(wire::ts),
                wrote: false,
                finished: false,
            }))),
            Ok(other) => Err(unexpected(&other)),
            Err(Error::NotLeader { .. } | Error::Unavailable(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

impl TxnEngine for ClusterEngine {
    type Txn = ClusterTxn;

    async fn begin(&self, mode: TxnMode) -> Result<ClusterTxn> {
        if let TxnMode::ReadOnly(ReadTime::At(ts)) = mode {
            if let Some(txn) = self.follower_read(ts).await? {
                return Ok(txn);
            }
        }
        let deadline = tokio::time::Instant::now() + BEGIN_TIMEOUT;
        loop {
            if let Some(txn) = self.try_begin(mode).await? {
                return Ok(txn);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "no leader of group {} answered within {BEGIN_TIMEOUT:?}",
                    self.group
                )));
            }
            match self.node.group(self.group) {
                Some(group) => {
                    let mut status = group.watch();
                    status.borrow_and_update();
                    let _ = tokio::time::timeout(RETRY_PAUSE * 4, status.changed()).await;
                }
                None => tokio::time::sleep(RETRY_PAUSE).await,
            }
        }
    }

    fn now(&self) -> TtInterval {
        self.node.truetime().now()
    }
}

/// A transaction of a [`ClusterEngine`].
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
/// replica at or below its safe time: no locks, no leader.
pub struct SnapshotTxn {
    /// The node's store.
    mvcc: Arc<Mvcc<Storage>>,
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
            ClusterTxn::Snapshot(t) => t.mvcc.get(key, t.read_ts),
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
            ClusterTxn::Snapshot(t) => t.mvcc.scan(&range, t.read_ts, direction, limit),
            ClusterTxn::Remote(t) => {
                let op = v1::txn_request::Op::Scan(v1::ScanOp {
                    range: Some(wire::proto_range(&range)),
                    reverse: direction == ScanDirection::Reverse,
                    limit: limit.map_or(0, |l| l as u64),
                    lock: wire::proto_lock(lock),
                });
                match t.call(op).await? {
                    v1::txn_reply::Result::Rows(rows) => {
                        Ok(rows.rows.into_iter().map(|kv| (kv.key, kv.value)).collect())
                    }
                    other => Err(unexpected(&other)),
                }
            }
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

/// One `Txn` call: the reply's result, or its error.
async fn call(api: &Arc<dyn NodeApi>, request: v1::TxnRequest) -> Result<v1::txn_reply::Result> {
    let reply = api.txn(request).await?;
    match reply.result {
        Some(v1::txn_reply::Result::Error(bytes)) => Err(wire::decode_error(&bytes)),
        Some(result) => Ok(result),
        None => Err(Error::Internal("an empty Txn reply".into())),
    }
}

fn unexpected(reply: &v1::txn_reply::Result) -> Error {
    Error::Internal(format!("an unexpected Txn reply: {reply:?}"))
}

/// Conversions between the transaction API's types and their protobuf form.
pub(crate) mod wire {
    use std::ops::Bound;

    use meridian_error::{Error, Result};
    use meridian_proto::v1;
    use meridian_storage::KeyRange;
    use meridian_truetime::Timestamp;
    use meridian_txn::LockStrength;

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

    pub(crate) fn encode_error(err: &Error) -> Vec<u8> {
        postcard::to_allocvec(err).expect("errors always encode")
    }

    pub(crate) fn decode_error(bytes: &[u8]) -> Error {
        postcard::from_bytes(bytes)
            .unwrap_or_else(|e| Error::Internal(format!("an undecodable error reply: {e}")))
    }
}
