//! Transactions on a replicated group: three (or five) nodes in one process,
//! each with its own RocksDB, over the in-process network. Nodes are stopped
//! as a crash would stop them and restarted from their data directories.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_error::Error;
use meridian_server::clock::SystemClock;
use meridian_server::cluster::{LocalCluster, LocalClusterOptions};
use meridian_server::group::ReplicationOptions;
use meridian_server::net::NodeApi;
use meridian_server::node::DATA_GROUP;
use meridian_storage::RocksOptions;
use meridian_truetime::Timestamp;
use meridian_txn::{LockStrength, ReadTime, Transaction, TxnEngine, TxnMode};

const LEADER_TIMEOUT: Duration = Duration::from_secs(20);

fn options(nodes: usize) -> LocalClusterOptions {
    LocalClusterOptions {
        nodes,
        groups: 1,
        replicas: nodes as u32,
        replication: ReplicationOptions::fast(),
        rocks: RocksOptions::default(),
        durability: meridian_storage::Durability::Sync,
    }
}

async fn open(dir: &std::path::Path, options: LocalClusterOptions) -> LocalCluster {
    let clock = Arc::new(SystemClock::new(Duration::from_millis(1)));
    LocalCluster::open(dir, clock, options).await.unwrap()
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:04}").into_bytes()
}

/// Writes `key(i) = value` through `engine`, retrying retryable failures
/// (a leader change) until `deadline`. Returns when it was acknowledged.
async fn write<E: TxnEngine>(engine: &E, i: u32, value: &str, deadline: Instant) -> Timestamp {
    loop {
        let attempt = async {
            let mut txn = engine.begin(TxnMode::ReadWrite).await?;
            txn.put(key(i), value.as_bytes().to_vec()).await?;
            txn.commit().await
        };
        match attempt.await {
            Ok(ts) => return ts.expect("a write has a commit timestamp"),
            Err(err) if err.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("write {i} failed: {err}"),
        }
    }
}

/// Every key `0..n` read strongly through `engine`.
async fn read_all<E: TxnEngine>(engine: &E, n: u32) -> Vec<Option<Vec<u8>>> {
    let mut txn = engine
        .begin(TxnMode::ReadOnly(ReadTime::Strong))
        .await
        .unwrap();
    let mut values = Vec::new();
    for i in 0..n {
        values.push(txn.get(&key(i), LockStrength::Shared).await.unwrap());
    }
    values
}

/// Waits until node `id` has applied everything the leader committed.
async fn caught_up(cluster: &LocalCluster, id: u64, leader: u64) {
    let target = cluster
        .node(leader)
        .group(DATA_GROUP)
        .unwrap()
        .status()
        .commit;
    cluster
        .node(id)
        .group(DATA_GROUP)
        .unwrap()
        .wait_for(LEADER_TIMEOUT, |s| s.applied >= target)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_the_loss_and_return_of_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = open(dir.path(), options(3)).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let follower = if leader == 1 { 2 } else { 1 };
    let deadline = Instant::now() + Duration::from_secs(60);

    // Through the leader's own engine and through a follower (routed).
    let mut stamps = Vec::new();
    for i in 0..10 {
        let engine = cluster.engine(if i % 2 == 0 { leader } else { follower });
        stamps.push(write(&engine, i, "before", deadline).await);
    }

    // The leader crashes; writes through a survivor resume once a new
    // leader holds a lease (the old lease runs out first).
    cluster.stop(leader);
    let crashed = Instant::now();
    let survivor = cluster.engine(follower);
    stamps.push(write(&survivor, 10, "during", deadline).await);
    let resumed = crashed.elapsed();
    let lease = ReplicationOptions::fast().lease;
    let election = ReplicationOptions::fast().election_timeout * 2;
    assert!(
        resumed < (lease + election) * 3,
        "writes resumed after {resumed:?}"
    );
    for i in 11..20 {
        stamps.push(write(&survivor, i, "during", deadline).await);
    }
    // Timestamps of acknowledged writes increase across the leader change.
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");

    // The old leader comes back, catches up, and sees every write.
    cluster.start(leader).await.unwrap();
    let new_leader = cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    caught_up(&cluster, leader, new_leader).await;
    let values = read_all(&cluster.engine(leader), 20).await;
    for (i, value) in values.iter().enumerate() {
        let expected: &[u8] = if i < 10 { b"before" } else { b"during" };
        assert_eq!(value.as_deref(), Some(expected), "key {i}");
    }
    // Its own copy of the data is complete too (not just the leader's).
    let local = cluster.node(leader).mvcc().clone();
    for i in 0..20 {
        assert!(
            local.get(&key(i), Timestamp::MAX).unwrap().is_some(),
            "key {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_replicas_keep_writing_through_two_failures() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = open(dir.path(), options(5)).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    write(&cluster.engine(leader), 0, "a", deadline).await;

    let other = (1..=5).find(|&n| n != leader).unwrap();
    cluster.stop(leader);
    cluster.stop(other);
    let survivor = (1..=5).find(|&n| n != leader && n != other).unwrap();
    for i in 1..5 {
        write(&cluster.engine(survivor), i, "b", deadline).await;
    }
    let values = read_all(&cluster.engine(survivor), 5).await;
    assert!(values.iter().all(Option::is_some), "{values:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_at_a_lost_leader_fails_retryably() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = open(dir.path(), options(3)).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let follower = if leader == 1 { 2 } else { 1 };
    let deadline = Instant::now() + Duration::from_secs(60);
    write(&cluster.engine(leader), 0, "x", deadline).await;

    // A transaction routed from a follower takes a read lock at the leader.
    let mut txn = cluster
        .engine(follower)
        .begin(TxnMode::ReadWrite)
        .await
        .unwrap();
    assert!(txn
        .get(&key(0), LockStrength::Shared)
        .await
        .unwrap()
        .is_some());
    cluster.stop(leader);
    let err = txn.get(&key(1), LockStrength::Shared).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let err = txn.commit().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");

    // A new transaction finds the new leader.
    write(&cluster.engine(follower), 1, "y", deadline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_catches_up_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(3);
    // A few entries' worth: the leader truncates its log every few writes.
    opts.replication.max_log_bytes = 2048;
    let mut cluster = open(dir.path(), opts).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let lagging = if leader == 3 { 2 } else { 3 };
    let stopped_at = cluster
        .node(lagging)
        .group(DATA_GROUP)
        .unwrap()
        .status()
        .applied;
    cluster.stop(lagging);
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..40 {
        write(&cluster.engine(leader), i, "v", deadline).await;
    }
    // The log's memory stayed within its bound (past it only until the
    // next compaction, by one batch of entries), and the slots the
    // lagging replica lacks are gone from the leader's log.
    let status = cluster.node(leader).group(DATA_GROUP).unwrap().status();
    assert!(status.log_bytes <= 2 * 2048, "{}", status.log_bytes);
    assert!(status.snapshot_index > stopped_at + 1, "{status:?}");
    cluster.start(lagging).await.unwrap();
    caught_up(&cluster, lagging, leader).await;
    let has_everything = |cluster: &LocalCluster| {
        let local = cluster.node(lagging).mvcc().clone();
        for i in 0..40 {
            assert!(
                local.get(&key(i), Timestamp::MAX).unwrap().is_some(),
                "key {i}"
            );
        }
    };
    has_everything(&cluster);
    // The installed snapshot is durable: the replica restarts from it.
    cluster.stop(lagging);
    cluster.start(lagging).await.unwrap();
    caught_up(&cluster, lagging, leader).await;
    has_everything(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_cluster_restarts_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cluster = open(dir.path(), options(3)).await;
        let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..5 {
            write(&cluster.engine(leader), i, "kept", deadline).await;
        }
    }
    // Give the stopped nodes' tasks a moment to release their storage.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cluster = open(dir.path(), options(3)).await;
    let values = read_all(&cluster.engine(1), 5).await;
    assert!(
        values.iter().all(|v| v.as_deref() == Some(&b"kept"[..])),
        "{values:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_strangers_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path(), options(3)).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let node = cluster.node(leader);
    let before = node.group(DATA_GROUP).unwrap().status();

    // Another cluster.
    let err = node
        .deliver(meridian_proto::v1::PaxosBatch {
            cluster: node.cluster() ^ 1,
            from: 2,
            messages: vec![vec![1, 2, 3]],
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    // An unknown node.
    let err = node
        .deliver(meridian_proto::v1::PaxosBatch {
            cluster: node.cluster(),
            from: 99,
            messages: vec![vec![1, 2, 3]],
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    // Malformed bytes from a member: dropped one by one, the batch is taken.
    let member = (1..=3).find(|&n| n != leader).unwrap();
    node.deliver(meridian_proto::v1::PaxosBatch {
        cluster: node.cluster(),
        from: member,
        messages: vec![vec![0xde, 0xad, 0xbe, 0xef]],
    })
    .await
    .unwrap();
    let after = node.group(DATA_GROUP).unwrap().status();
    assert_eq!(after.leader, before.leader);
    assert!(after.commit >= before.commit);
    assert!(after.serving);

    // Bootstrapping into another cluster is refused too.
    let err = node
        .bootstrap(meridian_proto::v1::BootstrapRequest {
            cluster: 42,
            peers: vec![],
            groups: vec![],
            ranges: vec![],
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already belongs"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_is_replaced_and_its_transactions_fail_retryably() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path(), options(3)).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let survivor = (1..=3).find(|&n| n != leader).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    write(&cluster.engine(leader), 0, "old", deadline).await;

    // A transaction at the leader, then the leader is cut off.
    let mut stranded = cluster
        .engine(leader)
        .begin(TxnMode::ReadWrite)
        .await
        .unwrap();
    stranded
        .get(&key(0), LockStrength::Exclusive)
        .await
        .unwrap();
    cluster.isolate(leader);

    // The majority elects a leader once the old lease ran out, and writes.
    write(&cluster.engine(survivor), 0, "new", deadline).await;
    let new_leader = cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    assert_ne!(new_leader, leader);

    // The stranded transaction cannot commit: its leader lost the lease.
    stranded.put(key(0), b"stranded".to_vec()).await.ok();
    let err = stranded.commit().await.unwrap_err();
    assert!(err.is_retryable(), "{err}");

    // Healed, the old leader catches up and sees the new write.
    cluster.heal();
    caught_up(&cluster, leader, new_leader).await;
    let local = cluster.node(leader).mvcc().clone();
    assert_eq!(
        local.get(&key(0), Timestamp::MAX).unwrap().as_deref(),
        Some(&b"new"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_log_record_stops_the_replica_at_restart() {
    use meridian_storage::{
        Durability, Engine, KeyRange, RocksEngine, ScanDirection, Space, WriteBatch,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = open(dir.path(), options(3)).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..3 {
        write(&cluster.engine(leader), i, "v", deadline).await;
    }
    let victim = if leader == 3 { 2 } else { 3 };
    caught_up(&cluster, victim, leader).await;
    cluster.stop(victim);
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let path = dir.path().join(format!("node-{victim}"));
        let rocks = RocksEngine::open(&path, RocksOptions::default()).unwrap();
        let (key, mut value) = rocks
            .scan(Space::Log, &KeyRange::all(), ScanDirection::Reverse)
            .next()
            .unwrap()
            .unwrap();
        let last = value.len() - 1;
        value[last] ^= 0xff;
        let mut batch = WriteBatch::new();
        batch.put(Space::Log, key, value);
        rocks.write(batch, Durability::Sync).unwrap();
    }
    let err = cluster.start(victim).await.unwrap_err();
    assert!(matches!(err, Error::Corruption(_)), "{err}");
    assert!(err.to_string().contains("group 1"), "{err}");
    // The others carry on.
    write(&cluster.engine(leader), 9, "v", deadline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_serve_snapshot_reads_at_their_safe_time() {
    use meridian_storage::{KeyRange, ScanDirection};
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path(), options(3)).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let follower = (1..=3).find(|&n| n != leader).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ts1 = Timestamp::MIN;
    for i in 0..5 {
        ts1 = write(&cluster.engine(leader), i, "v1", deadline).await;
    }
    write(&cluster.engine(leader), 0, "v2", deadline).await;

    let read = |id: u64, ts: Timestamp| {
        let engine = cluster.engine(id);
        async move {
            let mut txn = engine
                .begin(TxnMode::ReadOnly(ReadTime::At(ts)))
                .await
                .unwrap();
            let rows = txn
                .scan(
                    KeyRange::all(),
                    ScanDirection::Forward,
                    None,
                    LockStrength::Shared,
                )
                .await
                .unwrap();
            let follower_read = txn.part_at(DATA_GROUP).unwrap().is_follower_read();
            (follower_read, rows)
        }
    };

    // The follower serves the snapshot itself, with the leader's answer.
    let (by_follower, at_follower) = read(follower, ts1).await;
    let (by_leader_node, at_leader) = read(leader, ts1).await;
    assert!(
        by_follower,
        "the follower should serve a read at its safe time"
    );
    assert!(!by_leader_node);
    assert_eq!(at_follower, at_leader);
    assert_eq!(at_follower.len(), 5);
    assert!(at_follower.iter().all(|(_, v)| v == b"v1"));

    // An idle leader keeps the followers' safe time moving with the clock.
    let now = cluster.engine(follower).now().latest;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (by_follower, fresh) = read(follower, now).await;
    assert!(by_follower);
    assert_eq!(fresh[0].1, b"v2".to_vec());

    // Cut off from the leader, the follower still serves what it has.
    cluster.isolate(follower);
    let (by_follower, isolated) = read(follower, ts1).await;
    assert!(by_follower);
    assert_eq!(isolated, at_leader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_measure_their_peers_clocks() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path(), options(3)).await;
    let samples = cluster.node(1).sample_peer_clocks().await;
    assert_eq!(samples.len(), 2, "{samples:?}");
    // One process, one clock: every offset is within the round trip.
    let epsilon = Duration::from_millis(1);
    assert_eq!(
        meridian_server::clock::judge_peer_clocks(&samples, epsilon),
        None,
        "{samples:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_versions_are_collected_behind_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(3);
    opts.replication.gc_retention = Duration::from_secs(1);
    let cluster = open(dir.path(), opts).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let engine = cluster.engine(leader);
    let first = write(&engine, 1, "old", deadline).await;
    write(&engine, 1, "new", deadline).await;
    // A read at the old version works while it is within the retention...
    let mut txn = engine
        .begin(TxnMode::ReadOnly(ReadTime::At(first)))
        .await
        .unwrap();
    assert_eq!(
        txn.get(&key(1), LockStrength::Shared).await.unwrap(),
        Some(b"old".to_vec())
    );
    drop(txn);
    // ...and is refused once every node collected behind it.
    let waited = Instant::now() + Duration::from_secs(10);
    for id in 1..=3 {
        let mvcc = cluster.node(id).mvcc().clone();
        while mvcc.gc_horizon() <= first {
            assert!(Instant::now() < waited, "node {id} never collected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let err = match engine.begin(TxnMode::ReadOnly(ReadTime::At(first))).await {
        Ok(mut txn) => txn.get(&key(1), LockStrength::Shared).await.unwrap_err(),
        Err(err) => err,
    };
    assert!(
        err.to_string().contains("garbage-collection horizon"),
        "{err}"
    );
    // The newest version stays.
    assert_eq!(read_all(&engine, 2).await[1], Some(b"new".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_an_earlier_format_or_of_another_node_is_refused() {
    use meridian_server::group::Storage;
    use meridian_server::local::TokioSleeper;
    use meridian_server::net::LocalNetwork;
    use meridian_server::node::{Node, NodeConfig};
    use meridian_storage::{MemoryEngine, Space, WriteBatch};
    use meridian_truetime::TrueTime;

    let open = |storage: Storage, id: u64| {
        let config = NodeConfig {
            id,
            address: "node".into(),
            join: vec![],
            replication: ReplicationOptions::fast(),
        };
        let clock = Arc::new(SystemClock::new(Duration::from_millis(1)));
        Node::open(
            config,
            storage,
            TrueTime::new(clock),
            Arc::new(TokioSleeper),
            Arc::new(LocalNetwork::new().connector("node")),
        )
    };
    // A node record as Meridian wrote it before the placement was stored:
    // id, cluster, address book, groups.
    let storage: Storage = Arc::new(MemoryEngine::new());
    let old =
        postcard::to_allocvec(&(1u64, 7u64, vec![(1u64, "a".to_string())], vec![1u64])).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Space::Meta, b"node".to_vec(), old);
    storage
        .write(batch, meridian_storage::Durability::Sync)
        .unwrap();
    let err = open(storage, 1).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("earlier Meridian"), "{err}");

    // Another node's directory.
    let storage: Storage = Arc::new(MemoryEngine::new());
    open(storage.clone(), 1).unwrap().stop();
    let err = open(storage, 2).unwrap_err();
    assert!(err.to_string().contains("belongs to node 1"), "{err}");
}

/// Three nodes with 10 s leases (an election after a leader's death waits
/// that long) and no automatic rebalancing.
fn hand_over_options() -> LocalClusterOptions {
    LocalClusterOptions {
        replication: ReplicationOptions {
            lease: Duration::from_secs(10),
            leader_rebalance_interval: Duration::ZERO,
            ..ReplicationOptions::fast()
        },
        ..options(3)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_hands_over_without_waiting_out_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path(), hand_over_options()).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let target = if leader == 3 { 1 } else { 3 };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stamps = Vec::new();
    for i in 0..5 {
        stamps.push(write(&cluster.engine(leader), i, "before", deadline).await);
    }
    // A strong read at the leader: its timestamp counts as issued there.
    let mut reader = cluster
        .engine(leader)
        .begin(TxnMode::ReadOnly(ReadTime::Strong))
        .await
        .unwrap();
    assert!(reader
        .get(&key(0), LockStrength::Shared)
        .await
        .unwrap()
        .is_some());
    let read_ts = reader.read_ts().unwrap();
    reader.commit().await.unwrap();

    let group = cluster.node(leader).group(DATA_GROUP).unwrap();
    let at_target = cluster.node(target).group(DATA_GROUP).unwrap();
    // Refused: to itself, to a node that is no voter, by a follower.
    let refused = group.transfer_leadership(leader).await.unwrap_err();
    assert!(matches!(refused, Error::InvalidInput(_)), "{refused}");
    let refused = group.transfer_leadership(9).await.unwrap_err();
    assert!(matches!(refused, Error::InvalidInput(_)), "{refused}");
    let refused = at_target.transfer_leadership(leader).await.unwrap_err();
    assert!(matches!(refused, Error::NotLeader { .. }), "{refused}");

    let began = Instant::now();
    group.transfer_leadership(target).await.unwrap();
    let serving = at_target
        .wait_for(Duration::from_secs(5), |s| s.serving)
        .await
        .unwrap();
    let took = began.elapsed();
    assert!(took < Duration::from_secs(3), "the hand-over took {took:?}");
    assert!(!group.status().serving);
    // The new leader applied the old one's last marker before serving:
    // its safe time is past everything the old leader issued.
    assert!(
        serving.safe_ts >= read_ts,
        "{} < {read_ts}",
        serving.safe_ts
    );

    // Writes go on through both nodes, at increasing timestamps.
    for i in 5..10 {
        let via = if i % 2 == 0 { leader } else { target };
        stamps.push(write(&cluster.engine(via), i, "after", deadline).await);
    }
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
    assert!(stamps[5] > read_ts);
    let values = read_all(&cluster.engine(leader), 10).await;
    for (i, value) in values.iter().enumerate() {
        let expected: &[u8] = if i < 5 { b"before" } else { b"after" };
        assert_eq!(value.as_deref(), Some(expected), "key {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_over_to_an_unreachable_voter_is_abandoned_and_the_leader_leads_again() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path(), hand_over_options()).await;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let target = if leader == 3 { 1 } else { 3 };
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = write(&cluster.engine(leader), 0, "before", deadline).await;
    let group = cluster.node(leader).group(DATA_GROUP).unwrap();
    let ballot = group.status().lease.unwrap().ballot;

    cluster.isolate(target);
    group.transfer_leadership(target).await.unwrap();
    // The target never answers: after an election timeout the leader gives
    // up and leads again, in a new ballot, well before any lease runs out.
    let began = Instant::now();
    group
        .wait_for(Duration::from_secs(5), |s| {
            s.serving && s.lease.is_some_and(|l| l.ballot != ballot)
        })
        .await
        .unwrap();
    assert!(began.elapsed() < Duration::from_secs(5));
    let after = write(&cluster.engine(leader), 1, "after", deadline).await;
    assert!(after > before);
    cluster.heal();
    let values = read_all(&cluster.engine(leader), 2).await;
    assert_eq!(values[0].as_deref(), Some(&b"before"[..]));
    assert_eq!(values[1].as_deref(), Some(&b"after"[..]));
}

/// A cluster of one group: a strong read's scope is that group, so its
/// leader picks the snapshot, the group's last commit (Spanner's
/// `LastTS()`), below the gateway's `TT.now().latest`, and the read sees
/// every write acknowledged before it, through every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strong_read_of_one_group_reads_at_its_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path(), options(3)).await;
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 1..=3u64 {
        let engine = cluster.engine(n);
        let i = n as u32;
        let s = write(&engine, i, "v", deadline).await;
        let mut txn = engine
            .begin(TxnMode::ReadOnly(ReadTime::Strong))
            .await
            .unwrap();
        let read_ts = txn.read_ts().expect("a snapshot");
        assert!(
            s <= read_ts && read_ts < txn.start_ts(),
            "node {n}: {s} {read_ts}"
        );
        let seen = txn.get(&key(i), LockStrength::Shared).await.unwrap();
        assert_eq!(seen, Some(b"v".to_vec()), "node {n}");
    }
}
