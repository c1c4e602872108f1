//! The placement: which group holds which range, as rows of the first
//! group (`/1/<range start>` -> group, see [`crate::spans`]), read into
//! every node's cache; and the operations that change it: splitting a
//! range and moving one to another group.
//!
//! **The cache.** Each node routes by its cached [`RangeMap`]. It starts
//! as the placement the cluster was founded with and is refreshed from the
//! rows every [`REFRESH_INTERVAL`] (a bounded-staleness read, usually
//! served by the local replica of the first group), and at once (a strong
//! read) when a group refuses a key it no longer serves. A cache read at
//! an older timestamp never replaces a newer one. The first refresh of a
//! new cluster writes the founding placement as rows.
//!
//! **Split** at `k`: one transaction inserts the row of `k`, naming the
//! group of the range holding `k`. Nothing moves; each group's
//! [`Spans`](crate::spans::Spans) already cover both halves. Besides
//! `ALTER TABLE ... SPLIT AT`, each node splits the ranges of the groups
//! it leads once their versions outgrow
//! [`max_range_bytes`](crate::group::ReplicationOptions::max_range_bytes),
//! at the key where half of the bytes lie before it
//! (every 10 s, by the group's leader).
//!
//! **Move** of `[a, b)` from `g` to `h` (Spanner's movedir): first a
//! background copy of the range's raw versions from `g`'s leader into
//! `h`'s log ([`Command::Ingest`](crate::group::Command::Ingest)), noting
//! `g`'s safe time `t0` when it began; then the hand-over, one transaction
//! over `g`, `h` and the first group: it locks the placement row and the
//! whole range at `g` exclusively (so every transaction using the range
//! has ended and none can start), copies the versions above `t0` (all
//! that can have changed), and writes `g`'s release, `h`'s adoption and
//! the new placement row. Two-phase commit makes the three atomic, and
//! its recovery finishes a hand-over whose gateway died. The hand-over is
//! short: it copies only what was written during the background copy.
//! A hand-over that loses a conflict is tried again; an abandoned copy's
//! versions stay at `h`, unserved (they are true versions of the range:
//! a later copy adds to them).

use std::ops::Bound;
use std::sync::{Arc, Weak};
use std::time::Duration;

use meridian_error::{Error, Result};
use meridian_proto::v1;
use meridian_storage::{keycode, KeyRange, ScanDirection};
use meridian_truetime::Timestamp;
use meridian_txn::{DistEngine, LockStrength, RangeMap, ReadTime, Transaction, TxnEngine, TxnMode};

use crate::node::{every, Node, FIRST_TABLE_ID};
use crate::route::{unexpected, wire, ClusterGroups};
use crate::spans::{
    control_key, decode_placement, encode_placement, placement_key, placement_prefix, SpanChange,
};

/// How often a node refreshes its placement cache without being asked.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);
/// How stale a periodic refresh may read.
const REFRESH_STALENESS: Duration = Duration::from_secs(5);
/// Raw versions per copied page.
const COPY_PAGE: u32 = 1024;
/// How many times a hand-over that lost a conflict is tried.
const HAND_OVER_ATTEMPTS: u32 = 5;
/// How often a node looks for ranges to split by size.
const SPLIT_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// Keeps `node`'s placement cache fresh while the node lives.
pub(crate) async fn keep_fresh(node: Weak<Node>) {
    loop {
        let Some(strong) = ({
            let Some(live) = node.upgrade() else { return };
            let stale = live.placement_stale_notified();
            tokio::select! {
                () = stale => Some(true),
                () = tokio::time::sleep(REFRESH_INTERVAL) => Some(false),
                () = live.stopped() => None,
            }
        }) else {
            return;
        };
        let Some(live) = node.upgrade() else { return };
        if live.cluster() == 0 {
            continue;
        }
        let groups = Arc::new(ClusterGroups::new(live.clone()));
        // A stopped node must not be kept alive by a refresh in flight.
        let refreshed = tokio::select! {
            refreshed = refresh(&groups, strong) => refreshed,
            () = live.stopped() => return,
        };
        if let Err(err) = refreshed {
            tracing::debug!(%err, strong, "could not refresh the placement");
        }
    }
}

/// Reads the placement rows (strongly, or from a recent snapshot) into the
/// node's cache; writes the founding placement first if there are none.
pub async fn refresh(groups: &Arc<ClusterGroups>, strong: bool) -> Result<()> {
    let engine = DistEngine::new(groups.clone());
    let read = if strong {
        ReadTime::Strong
    } else {
        ReadTime::MaxStaleness(REFRESH_STALENESS)
    };
    let mut txn = engine.begin(TxnMode::ReadOnly(read)).await?;
    let read_ts = txn
        .read_ts()
        .expect("a read-only transaction has a snapshot");
    let rows = txn
        .scan(
            KeyRange::prefix(&placement_prefix()),
            ScanDirection::Forward,
            None,
            LockStrength::Shared,
        )
        .await?;
    txn.commit().await?;
    if rows.is_empty() {
        return write_founding_rows(&engine).await;
    }
    let starts = rows
        .iter()
        .map(|(key, value)| decode_placement(key, value))
        .collect::<Result<Vec<_>>>()?;
    groups
        .node()
        .install_placement(read_ts, RangeMap::new(starts)?);
    Ok(())
}

/// Writes the placement the cluster was founded with as rows, unless
/// another node did.
async fn write_founding_rows(engine: &DistEngine<ClusterGroups>) -> Result<()> {
    let founding = engine.groups().node().founding_placement();
    let mut txn = engine.begin(TxnMode::ReadWrite).await?;
    let existing = txn
        .scan(
            KeyRange::prefix(&placement_prefix()),
            ScanDirection::Forward,
            Some(1),
            LockStrength::Exclusive,
        )
        .await?;
    if existing.is_empty() {
        for (start, group) in founding {
            txn.put(placement_key(&start), encode_placement(group))
                .await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

/// The first key a split or move may touch: the system keys (the catalog,
/// the placement) stay in one range of the first group.
fn first_movable_key() -> Vec<u8> {
    let mut key = Vec::new();
    keycode::encode_u64(&mut key, FIRST_TABLE_ID);
    key
}

/// Refuses keys among the system keys.
fn check_movable(key: &[u8], what: &str) -> Result<()> {
    if key < first_movable_key().as_slice() {
        return Err(Error::InvalidInput(format!(
            "cannot {what} the system range (the catalog and placement stay in group 1)"
        )));
    }
    Ok(())
}

/// Runs `attempt` until it succeeds, fails for good, or has lost
/// [`HAND_OVER_ATTEMPTS`] conflicts (backing off a little between them).
async fn retrying<F, Fut>(what: &str, attempt: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(err) if err.is_retryable() && tries + 1 < HAND_OVER_ATTEMPTS => {
                tries += 1;
                tracing::debug!(%err, tries, "{what} lost a conflict; trying again");
                tokio::time::sleep(Duration::from_millis(20 << tries)).await;
            }
            done => return done,
        }
    }
}

/// Splits the range holding `key` at `key` (nothing if a range starts
/// there).
pub async fn split_at(groups: Arc<ClusterGroups>, key: Vec<u8>) -> Result<()> {
    check_movable(&key, "split")?;
    refresh(&groups, true).await?;
    let engine = DistEngine::new(groups.clone());
    retrying("a split", || async {
        let mut txn = engine.begin(TxnMode::ReadWrite).await?;
        let (start, group) = holding_row(&mut txn, &key).await?;
        if start != key {
            txn.put(placement_key(&key), encode_placement(group))
                .await?;
        }
        txn.commit().await.map(drop)
    })
    .await?;
    refresh(&groups, true).await
}

/// Splits the ranges of the groups `node` leads whose versions outgrew
/// `max_range_bytes`, while the node lives. The leader of a range's group
/// decides, so one node looks at each range; measuring scans the range's
/// versions in the node's store (off the async workers).
pub(crate) async fn split_large_ranges(node: Weak<Node>) {
    let max_bytes = match node.upgrade() {
        Some(node) => node.replication_options().max_range_bytes,
        None => return,
    };
    if max_bytes == 0 {
        return;
    }
    every(node, SPLIT_CHECK_INTERVAL, |node| {
        split_once(Arc::new(ClusterGroups::new(node)), max_bytes)
    })
    .await
}

/// One round of [`split_large_ranges`].
async fn split_once(groups: Arc<ClusterGroups>, max_bytes: u64) {
    let node = groups.node().clone();
    let Ok(placement) = node.placement() else {
        return;
    };
    let first = first_movable_key();
    let led: Vec<(u64, KeyRange)> = placement
        .ranges()
        .filter(|&(start, _, group)| {
            start >= first.as_slice()
                && node
                    .group(group)
                    .is_some_and(|replica| replica.leader_engine().is_some())
        })
        .map(|(start, end, group)| {
            let range = KeyRange {
                start: Bound::Included(start.to_vec()),
                end: end.map_or(Bound::Unbounded, |end| Bound::Excluded(end.to_vec())),
            };
            (group, range)
        })
        .collect();
    for (group, range) in led {
        let measuring = node.clone();
        let measured = tokio::task::spawn_blocking(move || {
            let point = measuring.split_point(&range, max_bytes);
            (range, point)
        })
        .await;
        let (range, key) = match measured {
            Ok((range, Ok(Some(key)))) => (range, key),
            Ok((_, Ok(None))) => continue,
            Ok((range, Err(err))) => {
                tracing::warn!(group, ?range, %err, "cannot measure a range");
                continue;
            }
            Err(err) => {
                tracing::warn!(group, %err, "measuring a range panicked");
                continue;
            }
        };
        tracing::info!(
            group,
            ?range,
            max_bytes,
            "splitting a range that outgrew its limit"
        );
        if let Err(err) = split_at(groups.clone(), key).await {
            tracing::warn!(group, ?range, %err, "could not split a range by size");
        }
    }
}

/// The placement row of the range holding `key` (`(start, group)`), read
/// under an exclusive lock.
async fn holding_row<T: Transaction>(txn: &mut T, key: &[u8]) -> Result<(Vec<u8>, u64)> {
    let through_key = KeyRange {
        start: Bound::Included(placement_prefix()),
        end: Bound::Included(placement_key(key)),
    };
    let rows = txn
        .scan(
            through_key,
            ScanDirection::Reverse,
            Some(1),
            LockStrength::Exclusive,
        )
        .await?;
    let (row, value) = rows
        .first()
        .ok_or_else(|| Error::Unavailable("the placement rows are not written yet".into()))?;
    decode_placement(row, value)
}

/// Moves the range holding `key` to group `to` (nothing if it is there).
pub async fn relocate(groups: Arc<ClusterGroups>, key: Vec<u8>, to: u64) -> Result<()> {
    check_movable(&key, "move")?;
    let node = groups.node().clone();
    if !node.known_groups().contains(&to) {
        return Err(Error::InvalidInput(format!(
            "there is no group {to} (groups: {:?})",
            node.known_groups()
        )));
    }
    refresh(&groups, true).await?;
    let placement = node.placement()?;
    let (start, end, from) = placement
        .ranges()
        .filter(|(start, _, _)| *start <= key.as_slice())
        .last()
        .map(|(start, end, group)| (start.to_vec(), end.map(<[u8]>::to_vec), group))
        .expect("the first range starts at the empty key");
    check_movable(&start, "move")?;
    if from == to {
        return Ok(());
    }
    let range = KeyRange {
        start: Bound::Included(start.clone()),
        end: end.clone().map_or(Bound::Unbounded, Bound::Excluded),
    };
    tracing::info!(from, to, ?range, "moving a range: copying");
    let copied_up_to = copy(&groups, from, to, &range, None).await?;
    let engine = DistEngine::new(groups.clone());
    retrying("a hand-over", || async {
        let mut txn = engine.begin(TxnMode::ReadWrite).await?;
        // The range as it was when the copy began, or nothing to hand over.
        let (row_start, group) = holding_row(&mut txn, &start).await?;
        let next = txn
            .scan(
                KeyRange {
                    start: Bound::Excluded(placement_key(&start)),
                    end: Bound::Excluded(
                        meridian_storage::prefix_successor(&placement_prefix())
                            .expect("the prefix has a successor"),
                    ),
                },
                ScanDirection::Forward,
                Some(1),
                LockStrength::Shared,
            )
            .await?
            .first()
            .map(|(k, v)| decode_placement(k, v))
            .transpose()?
            .map(|(next, _)| next);
        if row_start != start || group != from || next != end {
            return Err(Error::InvalidInput(
                "the range changed while it was being copied; run the move again".into(),
            ));
        }
        // Every transaction using the range ends before this lock is held.
        txn.scan(
            range.clone(),
            ScanDirection::Forward,
            Some(0),
            LockStrength::Exclusive,
        )
        .await?;
        copy(&groups, from, to, &range, Some(copied_up_to)).await?;
        let release = SpanChange::Release {
            start: start.clone(),
            end: end.clone(),
            to,
        };
        let adopt = SpanChange::Adopt {
            start: start.clone(),
            end: end.clone(),
            from,
        };
        txn.put(control_key(from, &start), release.encode()).await?;
        txn.put(control_key(to, &start), adopt.encode()).await?;
        txn.put(placement_key(&start), encode_placement(to)).await?;
        txn.commit().await.map(drop)
    })
    .await?;
    tracing::info!(from, to, ?range, "moved a range");
    refresh(&groups, true).await
}

/// Copies the raw versions of `range` from group `from`'s leader into
/// group `to`'s log: all of them, or those above `after`. Returns the safe time of
/// `from`'s leader when the copy began: every version at or below it was
/// copied.
async fn copy(
    groups: &ClusterGroups,
    from: u64,
    to: u64,
    range: &KeyRange,
    after: Option<Timestamp>,
) -> Result<Timestamp> {
    let mut resume = Vec::new();
    let mut began_at = None;
    loop {
        let op = v1::txn_request::Op::Versions(v1::VersionsOp {
            range: Some(wire::proto_range(range)),
            resume: resume.clone(),
            after: after.map(wire::proto_ts),
            limit: COPY_PAGE,
        });
        let page = match groups.group_call(from, "a copy", op).await? {
            v1::txn_reply::Result::Versions(page) => page,
            other => return Err(unexpected(&other)),
        };
        began_at.get_or_insert(page.safe_ts.map(wire::ts).unwrap_or_default());
        if let Some(last) = page.versions.last() {
            resume.clone_from(&last.key);
        }
        // Every page, even an empty one: the range is then incoming there.
        let op = v1::txn_request::Op::Ingest(v1::IngestOp {
            range: Some(wire::proto_range(range)),
            versions: page.versions,
        });
        match groups.group_call(to, "a copy", op).await? {
            v1::txn_reply::Result::Done(_) => {}
            other => return Err(unexpected(&other)),
        }
        if !page.more {
            return Ok(began_at.expect("set by the first page"));
        }
    }
}
