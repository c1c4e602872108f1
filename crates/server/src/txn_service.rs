//! The leader's side of routed transactions: [`RemoteTxns`] runs the
//! transactions that SQL sessions on other nodes begin at this node's
//! leader replica, one `Txn` call per operation.
//!
//! A transaction lives here under a handle (a random-based number, so a
//! handle from before a restart never names a new transaction) until it
//! commits or rolls back. One whose client went silent for
//! [`IDLE_TIMEOUT`] is rolled back by a reaper (an abandoned transaction
//! must not hold its locks forever). A handle the leader does not know (it
//! restarted, lost leadership, or reaped the transaction) fails the call
//! retryably.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use meridian_error::{Error, Result};
use meridian_proto::v1;
use meridian_storage::{version_ts, versioned_range, Engine, ScanDirection, Space};
use meridian_txn::{Outcome, Priority, ReadTime, Transaction, TxnMode};

use crate::group::{Command, Group, LeaderTxn};
use crate::node::Node;
use crate::route::wire;

/// A remote transaction unused this long is rolled back.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a group-level command (a copied page, forgetting an outcome)
/// may take to be applied at the group.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the reaper looks.
const REAP_INTERVAL: Duration = Duration::from_secs(5);

/// One routed transaction.
struct Entry {
    /// The transaction (`None` once finished).
    txn: Arc<tokio::sync::Mutex<Option<LeaderTxn>>>,
    /// When a call last used it.
    last_used: Instant,
}

/// The transactions other nodes run at this node's leaders.
pub struct RemoteTxns {
    /// The next handle.
    next: AtomicU64,
    /// The open ones.
    open: Mutex<HashMap<u64, Entry>>,
}

impl RemoteTxns {
    /// No transactions yet.
    pub(crate) fn new() -> Self {
        RemoteTxns {
            next: AtomicU64::new((rand::random::<u64>() >> 2).max(1)),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Drops every open transaction (the node stops).
    pub(crate) fn clear(&self) {
        self.open.lock().expect("txns poisoned").clear();
    }

    /// How many are open.
    pub fn len(&self) -> usize {
        self.open.lock().expect("txns poisoned").len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rolls back abandoned transactions every few seconds while `node`
    /// lives.
    pub(crate) fn start_reaper(&self, node: Weak<Node>) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(REAP_INTERVAL);
            loop {
                ticks.tick().await;
                let Some(node) = node.upgrade() else { return };
                let txns = node.remote_txns();
                let mut open = txns.open.lock().expect("txns poisoned");
                let before = open.len();
                // A transaction in the middle of a call is not idle.
                open.retain(|_, e| {
                    e.last_used.elapsed() < IDLE_TIMEOUT || e.txn.try_lock().is_err()
                });
                if open.len() < before {
                    tracing::info!(
                        reaped = before - open.len(),
                        "rolled back abandoned transactions"
                    );
                }
            }
        });
    }

    /// Answers one `Txn` call. A stopped node is unreachable, and a call in
    /// flight when the node stops is dropped, as a crash would drop it (a
    /// record already handed to the log is settled by the engine in a task
    /// of its own, and the engine of a stopped replica serves nobody).
    pub(crate) async fn handle(&self, node: &Node, request: v1::TxnRequest) -> v1::TxnReply {
        let outcome = tokio::select! {
            biased;
            () = node.stopped() => Err(Error::Unavailable(format!("node {} stopped", node.id()))),
            outcome = self.run(node, request) => outcome,
        };
        let result = match outcome {
            Ok(result) => result,
            Err(err) => v1::txn_reply::Result::Error(wire::encode_error(&err)),
        };
        v1::TxnReply {
            result: Some(result),
        }
    }

    async fn run(&self, node: &Node, request: v1::TxnRequest) -> Result<v1::txn_reply::Result> {
        use v1::txn_reply::Result as Reply;
        use v1::txn_request::Op;
        node.check_cluster(request.cluster)?;
        let op = request
            .op
            .ok_or_else(|| Error::InvalidInput("a Txn call without an operation".into()))?;
        let leader_engine = || -> Result<_> {
            let group = node.group(request.group).ok_or(Error::NotLeader {
                group: request.group,
                leader: None,
            })?;
            group.leader_engine().ok_or_else(|| Error::NotLeader {
                group: request.group,
                leader: group.status().leader.filter(|&l| l != node.id()),
            })
        };
        match op {
            Op::Decide(decide) => {
                let outcome = match decide.commit_ts {
                    Some(ts) => Outcome::Committed(wire::ts(ts)),
                    None => Outcome::Aborted,
                };
                leader_engine()?
                    .decide(wire::gid(&decide.gid)?, outcome)
                    .await?;
                return Ok(Reply::Done(v1::Done {}));
            }
            Op::Resolve(resolve) => {
                let outcome = leader_engine()?.resolve(wire::gid(&resolve.gid)?).await?;
                return Ok(Reply::Resolved(wire::proto_outcome(outcome)));
            }
            Op::Versions(versions) => {
                leader_engine()?;
                let group = node.group(request.group).expect("it leads");
                return read_versions(node, &group, versions).map(Reply::Versions);
            }
            Op::ChangeVoters(change) => {
                if leader_engine()?.handed_over() {
                    // Its view of the voters is no longer the group's.
                    return Err(Error::NotLeader {
                        group: request.group,
                        leader: None,
                    });
                }
                let group = node.group(request.group).expect("it leads");
                return crate::replicas::change_voters_at_leader(node, &group, change)
                    .await
                    .map(Reply::Voters);
            }
            Op::Forget(forget) => {
                leader_engine()?;
                let group = node.group(request.group).expect("it leads");
                let gid = wire::gid(&forget.gid)?.0;
                group
                    .propose(Command::Forget { gid }, COMMAND_TIMEOUT)
                    .await?;
                return Ok(Reply::Done(v1::Done {}));
            }
            Op::Ingest(ingest) => {
                leader_engine()?;
                let group = node.group(request.group).expect("it leads");
                let (start, end) = wire::range(ingest.range.unwrap_or_default())?.to_half_open();
                let command = Command::Ingest {
                    start: start.unwrap_or_default(),
                    end,
                    versions: ingest
                        .versions
                        .into_iter()
                        .map(|kv| (kv.key, kv.value))
                        .collect(),
                };
                group.propose(command, COMMAND_TIMEOUT).await?;
                return Ok(Reply::Done(v1::Done {}));
            }
            _ => {}
        }
        if let Op::Begin(begin) = op {
            let engine = leader_engine()?;
            let mode = if begin.read_only {
                TxnMode::ReadOnly(match begin.at {
                    Some(at) => ReadTime::At(wire::ts(at)),
                    None => ReadTime::Strong,
                })
            } else {
                TxnMode::ReadWrite
            };
            let priority = match begin.start_ts {
                Some(ts) => Some(Priority {
                    start_ts: wire::ts(ts),
                    tiebreak: wire::tiebreak(&begin.tiebreak)?,
                }),
                None => None,
            };
            let txn = engine.begin_with_priority(mode, priority).await?;
            let handle = self.next.fetch_add(1, Ordering::Relaxed);
            let began = v1::Began {
                txn: handle,
                start_ts: Some(wire::proto_ts(txn.start_ts())),
                read_ts: txn.read_ts().map(wire::proto_ts),
            };
            self.open.lock().expect("txns poisoned").insert(
                handle,
                Entry {
                    txn: Arc::new(tokio::sync::Mutex::new(Some(txn))),
                    last_used: Instant::now(),
                },
            );
            return Ok(Reply::Began(began));
        }
        let finishing = matches!(
            op,
            Op::Commit(_) | Op::Rollback(_) | Op::Prepare(_) | Op::CoordinatorCommit(_)
        );
        let slot = {
            let mut open = self.open.lock().expect("txns poisoned");
            let txn = if finishing {
                open.remove(&request.txn).map(|e| e.txn)
            } else {
                open.get_mut(&request.txn).map(|e| {
                    e.last_used = Instant::now();
                    e.txn.clone()
                })
            };
            txn.ok_or_else(|| {
                Error::Aborted(format!(
                    "transaction {} is not running at node {} (its leader changed, \
                     or it was idle too long)",
                    request.txn,
                    node.id()
                ))
            })?
        };
        let mut guard = slot.lock().await;
        let txn = guard
            .as_mut()
            .ok_or_else(|| Error::Aborted(format!("transaction {} already ended", request.txn)))?;
        Ok(match op {
            Op::Begin(_)
            | Op::Decide(_)
            | Op::Resolve(_)
            | Op::Versions(_)
            | Op::Ingest(_)
            | Op::ChangeVoters(_)
            | Op::Forget(_) => {
                unreachable!("handled above")
            }
            Op::Prepare(prepare) => {
                let txn = guard.take().expect("checked above");
                let vote = txn
                    .prepare(wire::gid(&prepare.gid)?, prepare.coordinator)
                    .await?;
                Reply::Prepared(wire::proto_vote(vote))
            }
            Op::CoordinatorCommit(commit) => {
                let txn = guard.take().expect("checked above");
                let min_ts = commit.min_ts.map(wire::ts).unwrap_or_default();
                let s = txn
                    .commit_as_coordinator(
                        wire::gid(&commit.gid)?,
                        min_ts,
                        commit.below.map(wire::ts),
                    )
                    .await?;
                Reply::Committed(v1::Committed {
                    commit_ts: Some(wire::proto_ts(s)),
                })
            }
            Op::Get(get) => Reply::Value(v1::MaybeValue {
                value: txn.get(&get.key, wire::lock(get.lock)).await?,
            }),
            Op::Scan(scan) => {
                let range = wire::range(scan.range.unwrap_or_default())?;
                let direction = if scan.reverse {
                    ScanDirection::Reverse
                } else {
                    ScanDirection::Forward
                };
                let limit = match (scan.lock_only, scan.limit) {
                    (true, _) => Some(0),
                    (false, 0) => None,
                    (false, limit) => Some(limit as usize),
                };
                let rows = txn
                    .scan(range, direction, limit, wire::lock(scan.lock))
                    .await?;
                Reply::Rows(v1::Rows {
                    rows: rows
                        .into_iter()
                        .map(|(key, value)| v1::KvPair { key, value })
                        .collect(),
                })
            }
            Op::Put(put) => {
                txn.put(put.key, put.value).await?;
                Reply::Done(v1::Done {})
            }
            Op::Delete(delete) => {
                txn.delete(delete.key).await?;
                Reply::Done(v1::Done {})
            }
            Op::Commit(_) => {
                let txn = guard.take().expect("checked above");
                let ts = txn.commit().await?;
                Reply::Committed(v1::Committed {
                    commit_ts: ts.map(wire::proto_ts),
                })
            }
            Op::Rollback(_) => {
                let txn = guard.take().expect("checked above");
                txn.rollback().await?;
                Reply::Done(v1::Done {})
            }
        })
    }
}

/// A page of the raw versions `op` asks for, read from this node's store
/// while its replica leads and serves the range (a range released during
/// the read is refused: the group it went to may have written it since).
fn read_versions(node: &Node, group: &Group, op: v1::VersionsOp) -> Result<v1::VersionsPage> {
    let range = wire::range(op.range.unwrap_or_default())?;
    let spans = group.spans();
    let serves = || spans.check(group.id(), &range);
    serves()?;
    // Everything at or below it was applied before the scan began.
    let safe_ts = group.status().safe_ts;
    let mut raw = versioned_range(&range);
    if !op.resume.is_empty() {
        raw.start = Bound::Excluded(op.resume);
    }
    let after = op.after.map(wire::ts);
    let limit = (op.limit as usize).clamp(1, MAX_VERSIONS_PAGE);
    let mut versions = Vec::new();
    let mut more = false;
    for item in node
        .mvcc()
        .engine()
        .scan(Space::Data, &raw, ScanDirection::Forward)
    {
        let (key, value) = item?;
        if after.is_some_and(|after| version_ts(&key).is_ok_and(|ts| ts <= after)) {
            continue;
        }
        if versions.len() == limit {
            more = true;
            break;
        }
        versions.push(v1::KvPair { key, value });
    }
    serves()?;
    Ok(v1::VersionsPage {
        versions,
        more,
        safe_ts: Some(wire::proto_ts(safe_ts)),
    })
}

/// The most versions one page carries.
const MAX_VERSIONS_PAGE: usize = 4096;
