//! Transactions across groups: three nodes in one process (five in one
//! test, each group on three of them), the keyspace cut into groups (one
//! range per table, dealt round the groups), so a transaction over several
//! tables commits with two-phase commit. Nodes are stopped as a crash would
//! stop them and restarted from their data.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meridian_error::Error;
use meridian_server::clock::SystemClock;
use meridian_server::cluster::{LocalCluster, LocalClusterOptions};
use meridian_server::group::ReplicationOptions;
use meridian_server::net::NodeApi;
use meridian_server::node::PREPARED_TIMEOUT;
use meridian_storage::{keycode, Durability, RocksOptions};
use meridian_truetime::Timestamp;
use meridian_txn::{GlobalTxnId, LockStrength, ReadTime, Transaction, TxnEngine, TxnMode};

const LEADER_TIMEOUT: Duration = Duration::from_secs(20);
const GROUPS: u32 = 3;
const ACCOUNTS: u64 = 9;
const OPENING_BALANCE: i64 = 100;

async fn open(dir: &std::path::Path) -> LocalCluster {
    open_with(dir, ReplicationOptions::fast()).await
}

/// Three nodes and `GROUPS` groups replicating with `replication`.
async fn open_with(dir: &std::path::Path, replication: ReplicationOptions) -> LocalCluster {
    let clock = Arc::new(SystemClock::new(Duration::from_millis(1)));
    let options = LocalClusterOptions {
        nodes: 3,
        groups: GROUPS,
        replicas: 3,
        replication,
        rocks: RocksOptions::default(),
        durability: Durability::Sync,
    };
    LocalCluster::open(dir, clock, options).await.unwrap()
}

/// `nodes` nodes and `groups` groups of three replicas replicating with
/// `replication`, once every group has a leader.
async fn open_spread(
    dir: &std::path::Path,
    nodes: u64,
    groups: u32,
    replication: ReplicationOptions,
) -> LocalCluster {
    let clock = Arc::new(SystemClock::new(Duration::from_millis(1)));
    let options = LocalClusterOptions {
        nodes: nodes as usize,
        groups,
        replicas: 3,
        replication,
        ..LocalClusterOptions::default()
    };
    let cluster = LocalCluster::open(dir, clock, options).await.unwrap();
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    cluster
}

/// Account `i` lives in table `100 + i % 3`: tables 100, 101 and 102 are
/// in groups 2, 3 and 1 of the initial placement.
fn account(i: u64) -> Vec<u8> {
    let mut key = Vec::new();
    keycode::encode_u64(&mut key, 100 + i % 3);
    keycode::encode_u64(&mut key, i);
    key
}

fn balance(bytes: Option<Vec<u8>>) -> i64 {
    let bytes = bytes.expect("every account exists");
    i64::from_be_bytes(bytes.try_into().expect("8-byte balances"))
}

/// Every balance, read by a transaction in `mode`.
async fn balances<E: TxnEngine>(engine: &E, mode: TxnMode) -> Result<Vec<i64>, Error> {
    let mut txn = engine.begin(mode).await?;
    let mut out = Vec::new();
    for i in 0..ACCOUNTS {
        out.push(balance(txn.get(&account(i), LockStrength::Shared).await?));
    }
    txn.commit().await?;
    Ok(out)
}

/// Retries `attempt` on retryable errors until `deadline`.
async fn retrying<E, T, F, Fut>(engine: &E, deadline: Instant, attempt: F) -> Result<T, Error>
where
    E: TxnEngine + Clone,
    F: Fn(E) -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    loop {
        match attempt(engine.clone()).await {
            Ok(done) => return Ok(done),
            Err(err) if err.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// One transfer of `amount` from account key `from` to `to`; refuses
/// (commits nothing) to overdraw.
async fn transfer<E: TxnEngine>(
    engine: &E,
    from: Vec<u8>,
    to: Vec<u8>,
    amount: i64,
) -> Result<Option<Timestamp>, Error> {
    let mut txn = engine.begin(TxnMode::ReadWrite).await?;
    let a = balance(txn.get(&from, LockStrength::Exclusive).await?);
    let b = balance(txn.get(&to, LockStrength::Exclusive).await?);
    if a < amount {
        txn.rollback().await?;
        return Ok(None);
    }
    txn.put(from, (a - amount).to_be_bytes().to_vec()).await?;
    txn.put(to, (b + amount).to_be_bytes().to_vec()).await?;
    txn.commit().await
}

/// A committed transaction as the client saw it, in the client's real time.
#[derive(Clone, Copy, Debug)]
struct Observed {
    invoked: Instant,
    completed: Instant,
    ts: Timestamp,
}

/// Spanner's external consistency: if T1 completed before T2 was invoked,
/// T1's timestamp is below T2's.
fn check_external_consistency(history: &[Observed]) {
    let mut by_completion: Vec<&Observed> = history.iter().collect();
    by_completion.sort_by_key(|o| o.completed);
    let mut by_invocation: Vec<&Observed> = history.iter().collect();
    by_invocation.sort_by_key(|o| o.invoked);
    let mut done = 0;
    let mut max_before = Timestamp::MIN;
    for later in by_invocation {
        while done < by_completion.len() && by_completion[done].completed < later.invoked {
            max_before = max_before.max(by_completion[done].ts);
            done += 1;
        }
        assert!(
            max_before < later.ts,
            "external consistency: a transaction invoked after one committed at \
             {max_before} completed got timestamp {}",
            later.ts
        );
    }
}

/// Opens the accounts in one transaction over their groups, through node
/// 1; returns the total. (The engine is dropped after: a node cannot
/// restart while one of its engines is alive, since it holds the node's
/// storage.)
async fn open_accounts(cluster: &LocalCluster, deadline: Instant) -> i64 {
    let opened = retrying(&cluster.engine(1), deadline, |engine| async move {
        let mut txn = engine.begin(TxnMode::ReadWrite).await?;
        for i in 0..ACCOUNTS {
            txn.put(account(i), OPENING_BALANCE.to_be_bytes().to_vec())
                .await?;
        }
        txn.commit().await
    })
    .await
    .unwrap();
    assert!(opened.is_some());
    OPENING_BALANCE * ACCOUNTS as i64
}

/// Runs transfers (two clients on each node of `clients`) while a reader
/// checks strong snapshots, killing `victim` 400 ms in and restarting it
/// 1.5 s later. Returns the committed transfers, checked for external
/// consistency.
async fn transfer_while_one_restarts(
    cluster: &mut LocalCluster,
    clients: &[u64],
    victim: u64,
    total: i64,
    deadline: Instant,
) -> Vec<Observed> {
    let history = Arc::new(Mutex::new(Vec::new()));
    let ambiguous = Arc::new(Mutex::new(0usize));
    let failed = Arc::new(Mutex::new(0usize));
    let mut tasks = Vec::new();
    for (c, &node) in clients.iter().chain(clients.iter()).enumerate() {
        let engine = cluster.engine(node);
        let history = history.clone();
        let ambiguous = ambiguous.clone();
        let failed = failed.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..30u64 {
                if Instant::now() > deadline {
                    break;
                }
                let from = (c as u64 * 7 + n * 5) % ACCOUNTS;
                let to = (from + 1 + n % (ACCOUNTS - 1)) % ACCOUNTS;
                let invoked = Instant::now();
                match transfer(&engine, account(from), account(to), 1 + (n % 7) as i64).await {
                    Ok(Some(ts)) => history.lock().unwrap().push(Observed {
                        invoked,
                        completed: Instant::now(),
                        ts,
                    }),
                    Ok(None) => {}
                    Err(Error::AmbiguousCommit(_)) => *ambiguous.lock().unwrap() += 1,
                    Err(err) if err.is_retryable() => *failed.lock().unwrap() += 1,
                    Err(err) => panic!("transfer failed: {err}"),
                }
            }
        }));
    }
    // A reader checks every snapshot while the transfers run.
    let reader = {
        let engine = cluster.engine(clients[0]);
        tokio::spawn(async move {
            let mut checked = 0;
            for _ in 0..40 {
                if Instant::now() > deadline {
                    break;
                }
                if let Ok(seen) = balances(&engine, TxnMode::ReadOnly(ReadTime::Strong)).await {
                    assert_eq!(seen.iter().sum::<i64>(), total, "snapshot {seen:?}");
                    assert!(seen.iter().all(|&b| b >= 0), "snapshot {seen:?}");
                    checked += 1;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            checked
        })
    };

    // Kill the victim in the middle of it, then bring it back.
    tokio::time::sleep(Duration::from_millis(400)).await;
    cluster.stop(victim);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.start(victim).await.unwrap();

    for task in tasks {
        task.await.unwrap();
    }
    assert!(reader.await.unwrap() > 0, "the reader saw some snapshot");
    let history = history.lock().unwrap().clone();
    assert!(
        history.len() >= 20,
        "too few transfers committed: {}",
        history.len()
    );
    check_external_consistency(&history);
    eprintln!(
        "committed {} transfers, {} ambiguous, {} failed retryably",
        history.len(),
        ambiguous.lock().unwrap(),
        failed.lock().unwrap()
    );
    history
}

/// Waits until nothing stays prepared at the leaders of `groups` groups
/// (resolution, if the gateway's message was lost with a leader), then
/// checks the total through every node, under locks and in a snapshot.
async fn check_settled_total(cluster: &LocalCluster, groups: u64, total: i64, deadline: Instant) {
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let settle = Instant::now() + PREPARED_TIMEOUT * 4;
    loop {
        let pending: usize = (1..=groups)
            .filter_map(|g| {
                let leader = cluster.leader_of(g)?;
                cluster.node(leader).group(g)?.leader_engine()
            })
            .map(|e| e.prepared().len())
            .sum();
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < settle,
            "{pending} transactions stay prepared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in cluster.running() {
        let engine = cluster.engine(node);
        let locked = retrying(&engine, deadline, |e| async move {
            balances(&e, TxnMode::ReadWrite).await
        })
        .await
        .unwrap();
        assert_eq!(locked.iter().sum::<i64>(), total, "{locked:?}");
        let snapshot = retrying(&engine, deadline, |e| async move {
            balances(&e, TxnMode::ReadOnly(ReadTime::Strong)).await
        })
        .await
        .unwrap();
        assert_eq!(snapshot, locked);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_group_transfers_conserve_the_total_while_a_participant_leader_dies() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = open(dir.path()).await;
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let total = open_accounts(&cluster, deadline).await;

    // The victim leads group 2; the clients use the other nodes.
    let victim = cluster.leader_of(2).expect("group 2 has a leader");
    let clients: Vec<u64> = (1..=3).filter(|&n| n != victim).collect();
    transfer_while_one_restarts(&mut cluster, &clients, victim, total, deadline).await;
    check_settled_total(&cluster, GROUPS.into(), total, deadline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_hold_three_replicas_of_each_group_and_each_serves_every_group() {
    const NODES: u64 = 5;
    const GROUPS: u64 = 5;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(SystemClock::new(Duration::from_millis(1)));
    let options = LocalClusterOptions {
        nodes: NODES as usize,
        groups: GROUPS as u32,
        replicas: 3,
        ..LocalClusterOptions::default()
    };
    let mut cluster = LocalCluster::open(dir.path(), clock, options)
        .await
        .unwrap();
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();

    // Three replicas of each group on distinct nodes, three on each node,
    // and the first leaders round the nodes.
    let hosts = |cluster: &LocalCluster, g: u64| -> Vec<u64> {
        (1..=NODES)
            .filter(|&n| cluster.node(n).group(g).is_some())
            .collect()
    };
    for g in 1..=GROUPS {
        let hosts = hosts(&cluster, g);
        assert_eq!(hosts.len(), 3, "group {g} on {hosts:?}");
        for &n in &hosts {
            let mut voters = cluster.node(n).group(g).unwrap().status().voters;
            voters.sort_unstable();
            assert_eq!(voters, hosts, "group {g}'s voters as node {n} knows them");
        }
    }
    for n in 1..=NODES {
        let held = (1..=GROUPS)
            .filter(|&g| hosts(&cluster, g).contains(&n))
            .count();
        assert_eq!(held, 3, "node {n} holds {held} replicas");
    }
    let mut leaders: Vec<Option<u64>> = (1..=GROUPS).map(|g| cluster.leader_of(g)).collect();
    leaders.sort_unstable();
    assert_eq!(leaders, (1..=NODES).map(Some).collect::<Vec<_>>());

    // Transfers through every node (each lacks replicas of two groups)
    // while the leader of an account group dies and comes back.
    let deadline = Instant::now() + Duration::from_secs(90);
    let total = open_accounts(&cluster, deadline).await;
    let victim = cluster.leader_of(3).expect("group 3 has a leader");
    let clients: Vec<u64> = (1..=NODES).filter(|&n| n != victim).collect();
    transfer_while_one_restarts(&mut cluster, &clients, victim, total, deadline).await;
    check_settled_total(&cluster, GROUPS, total, deadline).await;

    // A node without a replica found the leader by asking, and remembers
    // it; bounded-staleness reads and the range listing work there too.
    for n in 1..=NODES {
        let engine = cluster.engine(n);
        let stale = retrying(&engine, deadline, |e| async move {
            balances(
                &e,
                TxnMode::ReadOnly(ReadTime::MaxStaleness(Duration::from_secs(5))),
            )
            .await
        })
        .await
        .unwrap();
        assert_eq!(stale.iter().sum::<i64>(), total, "node {n}: {stale:?}");
        for info in engine.ranges().await.unwrap() {
            assert_eq!(info.replicas.len(), 3, "node {n}: {info:?}");
            assert!(info.leader.is_some(), "node {n}: {info:?}");
        }
        for g in (2..=4).filter(|&g| !hosts(&cluster, g).contains(&n)) {
            assert!(
                cluster.node(n).leader_hint(g).is_some(),
                "node {n} has no hint of group {g}'s leader"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_across_groups_is_the_same_at_followers_and_leaders() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let engine = cluster.engine(1);
    let mut last = Timestamp::MIN;
    for round in 0..3i64 {
        last = retrying(&engine, deadline, |engine| async move {
            let mut txn = engine.begin(TxnMode::ReadWrite).await?;
            for i in 0..ACCOUNTS {
                txn.put(account(i), (round * 10 + i as i64).to_be_bytes().to_vec())
                    .await?;
            }
            txn.commit().await
        })
        .await
        .unwrap()
        .unwrap();
    }
    // Every node reads the snapshot at `last`: followers serve their groups
    // once their safe time passes it (idle leaders advance it).
    let mut answers = BTreeMap::new();
    for node in 1..=3 {
        let engine = cluster.engine(node);
        let mut txn = engine
            .begin(TxnMode::ReadOnly(ReadTime::At(last)))
            .await
            .unwrap();
        let mut seen = Vec::new();
        for i in 0..ACCOUNTS {
            seen.push(balance(
                txn.get(&account(i), LockStrength::Shared).await.unwrap(),
            ));
        }
        let followers = (1..=GROUPS as u64)
            .filter(|&g| txn.part_at(g).is_some_and(|t| t.is_follower_read()))
            .count();
        answers.insert(node, (seen, followers));
    }
    let expected: Vec<i64> = (0..ACCOUNTS as i64).map(|i| 20 + i).collect();
    for (node, (seen, _)) in &answers {
        assert_eq!(seen, &expected, "node {node}");
    }
    let follower_parts: usize = answers.values().map(|(_, f)| f).sum();
    assert!(
        follower_parts > 0,
        "some group's part should be served by a follower: {answers:?}"
    );

    // A bounded-staleness read at a node that leads no group is served by
    // its followers alone, at their common safe time: past the last write
    // once idle leaders advanced it, and never older than the bound.
    let reader = (1..=3u64)
        .find(|&n| (1..=GROUPS as u64).all(|g| cluster.leader_of(g) != Some(n)))
        .unwrap_or(1);
    let engine = cluster.engine(reader);
    let fresh = Instant::now() + Duration::from_secs(10);
    loop {
        let mut txn = engine
            .begin(TxnMode::ReadOnly(ReadTime::MaxStaleness(
                Duration::from_secs(10),
            )))
            .await
            .unwrap();
        let ts = txn.read_ts().unwrap();
        assert!(ts >= engine.now().latest.saturating_sub(Duration::from_secs(10)));
        let mut seen = Vec::new();
        for i in 0..ACCOUNTS {
            seen.push(balance(
                txn.get(&account(i), LockStrength::Shared).await.unwrap(),
            ));
        }
        if ts >= last {
            assert_eq!(seen, expected, "read at {ts}");
            let leaders: Vec<u64> = (1..=GROUPS as u64)
                .filter(|&g| cluster.leader_of(g) == Some(reader))
                .collect();
            for g in (1..=GROUPS as u64).filter(|g| !leaders.contains(g)) {
                assert!(
                    txn.part_at(g).is_some_and(|t| t.is_follower_read()),
                    "group {g}'s part should be a follower read"
                );
            }
            break;
        }
        assert!(
            Instant::now() < fresh,
            "safe time never passed the last write"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_prepared_transaction_is_resolved_and_releases_its_locks() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Prepare a transaction at group 2's leader, naming group 3 as its
    // coordinator, and never finish it: its gateway "died".
    let node = cluster.leader_of(2).unwrap();
    let leader = cluster
        .node(node)
        .group(2)
        .unwrap()
        .leader_engine()
        .unwrap();
    let mut txn = leader.begin(TxnMode::ReadWrite).await.unwrap();
    txn.put(account(0), 5i64.to_be_bytes().to_vec())
        .await
        .unwrap();
    let gid = GlobalTxnId(0x0aba_d0ed);
    txn.prepare(gid, 3).await.unwrap();
    assert_eq!(leader.prepared().len(), 1);

    // A writer of the same key waits for it; the resolver aborts it after
    // the timeout, and the writer goes through.
    let engine = cluster.engine(node);
    let started = Instant::now();
    let written = retrying(&engine, deadline, |engine| async move {
        let mut txn = engine.begin(TxnMode::ReadWrite).await?;
        txn.put(account(0), 7i64.to_be_bytes().to_vec()).await?;
        txn.commit().await
    })
    .await
    .unwrap();
    assert!(written.is_some());
    assert!(started.elapsed() >= PREPARED_TIMEOUT / 2);
    assert!(leader.prepared().is_empty());
    let seen = balances_of_first(&engine).await;
    assert_eq!(seen, 7, "the abandoned write was aborted");
    // The coordinator remembers the abort.
    let coordinator = cluster.leader_of(3).unwrap();
    let outcome = cluster
        .node(coordinator)
        .group(3)
        .unwrap()
        .leader_engine()
        .unwrap()
        .resolve(gid)
        .await
        .unwrap();
    assert_eq!(outcome, meridian_txn::Outcome::Aborted);
}

async fn balances_of_first<E: TxnEngine>(engine: &E) -> i64 {
    let mut txn = engine
        .begin(TxnMode::ReadOnly(ReadTime::Strong))
        .await
        .unwrap();
    balance(txn.get(&account(0), LockStrength::Shared).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_leaders_are_spread_over_the_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let leaders: Vec<Option<u64>> = (1..=GROUPS as u64).map(|g| cluster.leader_of(g)).collect();
    // Group g is first led by node g (the voters 1, 2, 3 taken in turn).
    assert_eq!(leaders, vec![Some(1), Some(2), Some(3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_routed_to_another_node_comes_in_pages_and_locks_what_one_scan_would() {
    use meridian_server::route::SCAN_PAGE;
    use meridian_storage::{KeyRange, ScanDirection};

    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Table 100 is group 2's; go through a node that does not lead it.
    let leader = cluster.leader_of(2).unwrap();
    let gateway = (1..=3).find(|&n| n != leader).unwrap();
    let engine = cluster.engine(gateway);
    let n = SCAN_PAGE as u64 * 2 + 100;
    let row = |i: u64| {
        let mut key = Vec::new();
        keycode::encode_u64(&mut key, 100);
        keycode::encode_u64(&mut key, i);
        key
    };
    retrying(&engine, deadline, |engine| async move {
        let mut txn = engine.begin(TxnMode::ReadWrite).await?;
        for i in 0..n {
            txn.put(row(i), i.to_be_bytes().to_vec()).await?;
        }
        txn.commit().await
    })
    .await
    .unwrap();
    let mut table = Vec::new();
    keycode::encode_u64(&mut table, 100);
    let all = KeyRange::prefix(&table);

    let mut txn = engine.begin(TxnMode::ReadWrite).await.unwrap();
    assert!(txn.part_at(2).is_none());
    let forward = txn
        .scan(
            all.clone(),
            ScanDirection::Forward,
            None,
            LockStrength::Shared,
        )
        .await
        .unwrap();
    assert!(!txn.part_at(2).unwrap().is_follower_read());
    assert_eq!(forward.len() as u64, n);
    assert!(forward
        .iter()
        .enumerate()
        .all(|(i, (k, _))| *k == row(i as u64)));
    let reverse = txn
        .scan(
            all.clone(),
            ScanDirection::Reverse,
            Some(SCAN_PAGE + 7),
            LockStrength::Shared,
        )
        .await
        .unwrap();
    assert_eq!(reverse.len(), SCAN_PAGE + 7);
    assert_eq!(reverse[0].0, row(n - 1));
    assert_eq!(
        reverse[SCAN_PAGE + 6].0,
        row(n - 1 - (SCAN_PAGE as u64 + 6))
    );

    // The pages locked the whole range, as one scan would: an insert past
    // the last row waits for the reader.
    let mut writer = engine.begin(TxnMode::ReadWrite).await.unwrap();
    let blocked = tokio::time::timeout(
        Duration::from_millis(300),
        writer.put(row(n + 5), b"late".to_vec()),
    )
    .await;
    assert!(blocked.is_err(), "the insert must wait for the scan's lock");
    txn.commit().await.unwrap();
}

/// Row `i` of table 103 (in group 2 of the founding placement).
fn row(i: u64) -> Vec<u8> {
    let mut key = Vec::new();
    keycode::encode_u64(&mut key, 103);
    keycode::encode_u64(&mut key, i);
    key
}

const ROWS: u64 = 40;

/// The sum of every row, read by a transaction in `mode`.
async fn rows_total<E: TxnEngine>(engine: &E, mode: TxnMode) -> Result<i64, Error> {
    let mut txn = engine.begin(mode).await?;
    let mut total = 0;
    for i in 0..ROWS {
        total += balance(txn.get(&row(i), LockStrength::Shared).await?);
    }
    txn.commit().await?;
    Ok(total)
}

/// The group serving the range that starts at `start`, per `engine`.
async fn group_of_range<E: TxnEngine>(engine: &E, start: &[u8]) -> Option<u64> {
    let ranges = engine.ranges().await.unwrap();
    ranges.iter().find(|r| r.start == start).map(|r| r.group)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_split_and_moved_under_load_keeps_every_row_and_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = open(dir.path()).await;
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let engine = cluster.engine(1);
    let loaded = retrying(&engine, deadline, |engine| async move {
        let mut txn = engine.begin(TxnMode::ReadWrite).await?;
        for i in 0..ROWS {
            txn.put(row(i), OPENING_BALANCE.to_be_bytes().to_vec())
                .await?;
        }
        txn.commit().await
    })
    .await
    .unwrap()
    .unwrap();
    let total = OPENING_BALANCE * ROWS as i64;

    // Split table 103 in two; both halves stay in group 2.
    engine.split_at(row(ROWS / 2)).await.unwrap();
    let mut table = Vec::new();
    keycode::encode_u64(&mut table, 103);
    assert_eq!(group_of_range(&engine, &table).await, Some(2));
    assert_eq!(group_of_range(&engine, &row(ROWS / 2)).await, Some(2));
    // Splitting where a range starts changes nothing.
    engine.split_at(row(ROWS / 2)).await.unwrap();

    // Transfers across the halves run on the other nodes (whose placement
    // goes stale) while the halves move: the upper one to group 3, the
    // lower one to group 1.
    let history = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for node in [2u64, 3] {
        let engine = cluster.engine(node);
        let history = history.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..40u64 {
                if Instant::now() > deadline {
                    break;
                }
                let from = (node * 11 + n * 7) % ROWS;
                let to = (from + ROWS / 2 + n % 3) % ROWS;
                let invoked = Instant::now();
                match transfer(&engine, row(from), row(to), 1 + (n % 5) as i64).await {
                    Ok(Some(ts)) => history.lock().unwrap().push(Observed {
                        invoked,
                        completed: Instant::now(),
                        ts,
                    }),
                    Ok(None) => {}
                    Err(err) if err.is_retryable() => {}
                    Err(err) => panic!("transfer failed: {err}"),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    engine.relocate(row(ROWS / 2 + 3), 3).await.unwrap();
    assert_eq!(group_of_range(&engine, &row(ROWS / 2)).await, Some(3));
    engine.relocate(row(0), 1).await.unwrap();
    assert_eq!(group_of_range(&engine, &table).await, Some(1));
    for task in tasks {
        task.await.unwrap();
    }
    let history = history.lock().unwrap().clone();
    assert!(!history.is_empty(), "some transfers should commit");
    check_external_consistency(&history);

    // Group 2 no longer serves the rows: its leader refuses them, saying
    // where they went.
    let old = cluster.leader_of(2).unwrap();
    let leader = cluster.node(old).group(2).unwrap().leader_engine().unwrap();
    let mut txn = leader.begin(TxnMode::ReadWrite).await.unwrap();
    assert_eq!(
        txn.get(&row(ROWS / 2 + 1), LockStrength::Shared).await,
        Err(Error::RangeMoved {
            group: 2,
            moved_to: Some(3)
        })
    );
    drop(txn);
    drop(leader);

    // A node restarted from its data (a stale founding placement) finds
    // the rows by the groups' redirects; every node sees the total, now
    // and at followers, and the history moved with the rows: a read as of
    // the load sees the opening balances.
    cluster.stop(3);
    cluster.start(3).await.unwrap();
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    for node in 1..=3 {
        let engine = cluster.engine(node);
        let now = retrying(&engine, deadline, |engine| async move {
            rows_total(&engine, TxnMode::ReadOnly(ReadTime::Strong)).await
        })
        .await
        .unwrap();
        assert_eq!(now, total, "node {node}, strong read");
        let locked = retrying(&engine, deadline, |engine| async move {
            rows_total(&engine, TxnMode::ReadWrite).await
        })
        .await
        .unwrap();
        assert_eq!(locked, total, "node {node}, locked read");
        let then = retrying(&engine, deadline, |engine| async move {
            let mut txn = engine
                .begin(TxnMode::ReadOnly(ReadTime::At(loaded)))
                .await?;
            let mut values = Vec::new();
            for i in 0..ROWS {
                values.push(balance(txn.get(&row(i), LockStrength::Shared).await?));
            }
            Ok(values)
        })
        .await
        .unwrap();
        for (i, value) in then.into_iter().enumerate() {
            assert_eq!(
                value, OPENING_BALANCE,
                "node {node}, row {i} as of the load"
            );
        }
    }
}

/// The key of row `i` of table 100.
fn row_of_100(i: u64) -> Vec<u8> {
    let mut key = Vec::new();
    keycode::encode_u64(&mut key, 100);
    keycode::encode_u64(&mut key, i);
    key
}

/// A range whose versions outgrow `max_range_bytes` is split by its
/// group's leader without anyone asking, and every row stays readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_that_outgrows_its_limit_is_split_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let replication = ReplicationOptions {
        max_range_bytes: 16 << 10,
        ..ReplicationOptions::fast()
    };
    let cluster = open_with(dir.path(), replication).await;
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let engine = cluster.engine(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    let table_100 = {
        let mut start = Vec::new();
        keycode::encode_u64(&mut start, 100);
        let mut end = Vec::new();
        keycode::encode_u64(&mut end, 101);
        (start, end)
    };
    let ranges_of_100 = || async {
        engine
            .ranges()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.start >= table_100.0 && r.start < table_100.1)
            .count()
    };
    assert_eq!(ranges_of_100().await, 1);

    // 200 rows of 200 bytes: about 45 KiB of versions, well past 16 KiB.
    let value = vec![7u8; 200];
    for batch in 0..10u64 {
        retrying(&engine, deadline, |engine| {
            let value = value.clone();
            async move {
                let mut txn = engine.begin(TxnMode::ReadWrite).await?;
                for i in batch * 20..(batch + 1) * 20 {
                    txn.put(row_of_100(i), value.clone()).await?;
                }
                txn.commit().await.map(drop)
            }
        })
        .await
        .unwrap();
    }

    // The leader of the range's group looks every 10 s.
    while ranges_of_100().await < 2 {
        assert!(Instant::now() < deadline, "the range was not split");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = retrying(&engine, deadline, |engine| async move {
        let mut txn = engine.begin(TxnMode::ReadOnly(ReadTime::Strong)).await?;
        let mut found = 0;
        for i in 0..200 {
            found += txn
                .get(&row_of_100(i), LockStrength::Shared)
                .await?
                .is_some() as usize;
        }
        txn.commit().await?;
        Ok(found)
    })
    .await
    .unwrap();
    assert_eq!(rows, 200);
}

/// When a node dies the groups it led elect leaders among the others;
/// when it comes back, the nodes leading more than their share hand
/// leaderships to it, until every node leads one group again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaderships_are_rebalanced_onto_a_restarted_node() {
    let dir = tempfile::tempdir().unwrap();
    let replication = ReplicationOptions {
        leader_rebalance_interval: Duration::from_millis(300),
        ..ReplicationOptions::fast()
    };
    let mut cluster = open_with(dir.path(), replication).await;
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let leaders = |cluster: &LocalCluster| -> Vec<Option<u64>> {
        (1..=GROUPS as u64).map(|g| cluster.leader_of(g)).collect()
    };
    assert_eq!(leaders(&cluster), vec![Some(1), Some(2), Some(3)]);

    cluster.stop(3);
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    assert!(leaders(&cluster).iter().all(|l| l.is_some_and(|n| n != 3)));

    cluster.start(3).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = leaders(&cluster);
        let mut led: Vec<u64> = now.iter().flatten().copied().collect();
        led.sort_unstable();
        if led == [1, 2, 3] {
            break;
        }
        assert!(Instant::now() < deadline, "leaders still {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // And transactions across the groups go on.
    let engine = cluster.engine(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let written = retrying(&engine, deadline, |engine| async move {
        let mut txn = engine.begin(TxnMode::ReadWrite).await?;
        for i in 0..3 {
            txn.put(account(i), 7i64.to_be_bytes().to_vec()).await?;
        }
        txn.commit().await
    })
    .await
    .unwrap();
    assert!(written.is_some());
}

/// The nodes of `cluster` hosting a replica of `group`.
fn hosts(cluster: &LocalCluster, group: u64) -> Vec<u64> {
    cluster
        .running()
        .into_iter()
        .filter(|&n| cluster.node(n).group(group).is_some())
        .collect()
}

/// Moves `group`'s replica from `from` to `to`, asking node `via`.
async fn move_replica(
    cluster: &LocalCluster,
    via: u64,
    group: u64,
    from: u64,
    to: u64,
) -> Result<Vec<u64>, Error> {
    let request = meridian_proto::v1::MoveReplicaRequest { group, from, to };
    let reply = cluster.node(via).move_replica(request).await?;
    Ok(reply.voters)
}

/// Four nodes, three replicas per group. A replica moves from the leader
/// of its group to the node without one while transfers run (the leader
/// hands over, the new replica catches up by snapshot since the log is
/// kept short); the totals hold and the old replica is gone, also after
/// restarts. Then a replica moves off a node that is down (removed first),
/// and that node, restarted, retires the replica it still had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_move_between_nodes_under_load_and_removed_ones_retire() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = open_spread(
        dir.path(),
        4,
        GROUPS,
        ReplicationOptions {
            // Short logs: the new replica catches up from a snapshot.
            max_log_bytes: 16 << 10,
            // Only the moves of this test.
            replica_rebalance_interval: Duration::ZERO,
            ..ReplicationOptions::fast()
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let total = open_accounts(&cluster, deadline).await;

    // Group 2 (accounts 0, 3, 6) moves off its leader to the spare node.
    let before = hosts(&cluster, 2);
    assert_eq!(before.len(), 3, "{before:?}");
    let from = cluster.leader_of(2).expect("group 2 has a leader");
    let to = (1..=4).find(|n| !before.contains(n)).unwrap();
    let via = (1..=4).find(|&n| n != from && n != to).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for node in [via, to] {
        let engine = cluster.engine(node);
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut committed = 0;
            for n in 0..400u64 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                let a = (n * 5 + node) % ACCOUNTS;
                let b = (a + 1 + n % (ACCOUNTS - 1)) % ACCOUNTS;
                match transfer(&engine, account(a), account(b), 1 + (n % 5) as i64).await {
                    Ok(Some(_)) => committed += 1,
                    Ok(None) => {}
                    Err(err) if err.is_retryable() || matches!(err, Error::AmbiguousCommit(_)) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(err) => panic!("transfer failed: {err}"),
                }
            }
            committed
        }));
    }
    // Once the leader's log no longer starts at slot 1, the new replica
    // can only catch up from a snapshot.
    let leader = cluster.node(from).group(2).unwrap();
    leader
        .wait_for(Duration::from_secs(30), |s| s.snapshot_index > 0)
        .await
        .expect("the leader truncates its log");
    drop(leader);
    let mut voters = move_replica(&cluster, via, 2, from, to).await.unwrap();
    voters.sort_unstable();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let committed: usize = futures_total(clients).await;
    assert!(committed > 0, "no transfer committed during the move");
    let mut expected: Vec<u64> = before.iter().copied().filter(|&n| n != from).collect();
    expected.push(to);
    expected.sort_unstable();
    assert_eq!(voters, expected);
    assert_eq!(hosts(&cluster, 2), expected);
    for &n in &expected {
        // Followers learn that the change was chosen with the next commit
        // index the leader sends.
        let replica = cluster.node(n).group(2).unwrap();
        let known = replica
            .wait_for(Duration::from_secs(5), |s| {
                let mut voters = s.voters.clone();
                voters.sort_unstable();
                voters == expected
            })
            .await;
        assert!(
            known.is_ok(),
            "group 2's voters as node {n} knows them: {:?}",
            replica.status().voters
        );
    }
    check_settled_total(&cluster, GROUPS.into(), total, deadline).await;

    // A repeated move is done already; both nodes keep what they have
    // after a restart.
    let again = move_replica(&cluster, via, 2, from, to).await.unwrap();
    assert_eq!(again.len(), 3);
    for n in [from, to] {
        cluster.stop(n);
        cluster.start(n).await.unwrap();
    }
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    assert_eq!(hosts(&cluster, 2), expected);
    check_settled_total(&cluster, GROUPS.into(), total, deadline).await;

    // Group 3 moves off a node that is down: the voter goes first, the
    // new replica comes after; the node, back, retires its replica.
    let before = hosts(&cluster, 3);
    let spare = (1..=4).find(|n| !before.contains(n)).unwrap();
    let down = *before
        .iter()
        .find(|&&n| Some(n) != cluster.leader_of(3))
        .unwrap();
    let via = cluster.leader_of(3).unwrap();
    cluster.stop(down);
    // The leader notices it is gone within an election timeout.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let voters = move_replica(&cluster, via, 3, down, spare).await.unwrap();
    assert!(
        !voters.contains(&down) && voters.contains(&spare),
        "{voters:?}"
    );
    cluster.start(down).await.unwrap();
    let retire_by = Instant::now() + meridian_server::replicas::RETIRE_INTERVAL * 3;
    while cluster.node(down).group(3).is_some() {
        assert!(
            Instant::now() < retire_by,
            "node {down} still hosts group 3"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    check_settled_total(&cluster, GROUPS.into(), total, deadline).await;

    // Refusals: a move to the same node, of an unknown group, to a node
    // outside the cluster.
    for (group, from, to) in [(1, 1, 1), (9, 1, 2), (1, 1, 9)] {
        let err = move_replica(&cluster, 1, group, from, to)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    }
}

/// Sums what the tasks return.
async fn futures_total(tasks: Vec<tokio::task::JoinHandle<usize>>) -> usize {
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total
}

/// The voters of every group, as their leaders tell (`None` while a group
/// has no leader).
async fn all_voters(cluster: &LocalCluster) -> Option<Vec<Vec<u64>>> {
    let mut out = Vec::new();
    for g in 1..=u64::from(GROUPS) {
        let leader = cluster.leader_of(g)?;
        let status = cluster.node(leader).status().await.ok()?;
        let mut voters = status.groups.into_iter().find(|s| s.group == g)?.voters;
        voters.sort_unstable();
        out.push(voters);
    }
    Some(out)
}

/// Waits (until `by`) for the replicas to be spread: every group has three
/// voters, each of the `nodes` nodes holds two or three replicas, and the
/// nodes hosting each group are its voters (nothing left to retire).
async fn wait_for_spread(cluster: &LocalCluster, nodes: u64, by: Instant) {
    loop {
        let voters = all_voters(cluster).await;
        let held: Vec<usize> = (1..=nodes)
            .map(|n| voters.iter().flatten().filter(|v| v.contains(&n)).count())
            .collect();
        let spread = voters.as_ref().is_some_and(|v| {
            v.iter().all(|g| g.len() == 3)
                && (1..=u64::from(GROUPS)).all(|g| {
                    let mut on = hosts(cluster, g);
                    on.sort_unstable();
                    v[g as usize - 1] == on
                })
        }) && held.iter().all(|&h| (2..=3).contains(&h));
        if spread {
            return;
        }
        assert!(
            Instant::now() < by,
            "replicas per node {held:?}: {voters:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Four nodes, three replicas per group, replicas rebalanced often. A node
/// that stays down is declared dead and its replicas move to the others
/// (every group keeps three voters, none on it); when it comes back it
/// retires what it still held and gets replicas back until every node
/// holds two or three. Transactions work throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_replicas_are_replaced_and_the_node_gets_some_back_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = open_spread(
        dir.path(),
        4,
        GROUPS,
        ReplicationOptions {
            replica_rebalance_interval: Duration::from_millis(300),
            dead_node_timeout: Duration::from_secs(2),
            ..ReplicationOptions::fast()
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let total = open_accounts(&cluster, deadline).await;

    // The node holding the most replicas dies (not the first group's
    // leader, which decides: that one would be replaced after an election).
    let decider = cluster.leader_of(1).unwrap();
    let victim = (1..=4)
        .filter(|&n| n != decider)
        .max_by_key(|&n| {
            (1..=u64::from(GROUPS))
                .filter(|&g| hosts(&cluster, g).contains(&n))
                .count()
        })
        .unwrap();
    cluster.stop(victim);
    let replaced_by = Instant::now() + Duration::from_secs(40);
    loop {
        let voters = all_voters(&cluster).await;
        let done = voters
            .as_ref()
            .is_some_and(|groups| groups.iter().all(|v| v.len() == 3 && !v.contains(&victim)));
        if done {
            break;
        }
        assert!(Instant::now() < replaced_by, "not replaced: {voters:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check_settled_total(&cluster, GROUPS.into(), total, deadline).await;

    // Back: it retires its old replicas and is given some again.
    cluster.start(victim).await.unwrap();
    let even_by =
        Instant::now() + meridian_server::replicas::RETIRE_INTERVAL * 3 + Duration::from_secs(30);
    wait_for_spread(&cluster, 4, even_by).await;
    check_settled_total(&cluster, GROUPS.into(), total, deadline).await;
}

/// Five nodes, five groups of three replicas, each node leading one. The
/// leader of a group dies; when it comes back, leaderships go back to one
/// per node, although no node sees every group from its own replicas, and
/// stay so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaderships_are_rebalanced_over_groups_on_subsets_of_the_nodes() {
    const NODES: u64 = 5;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = open_spread(
        dir.path(),
        NODES,
        NODES as u32,
        ReplicationOptions {
            leader_rebalance_interval: Duration::from_millis(300),
            replica_rebalance_interval: Duration::ZERO,
            ..ReplicationOptions::fast()
        },
    )
    .await;
    let one_each = |cluster: &LocalCluster| {
        let mut led: Vec<Option<u64>> = (1..=NODES).map(|g| cluster.leader_of(g)).collect();
        led.sort_unstable();
        led == (1..=NODES).map(Some).collect::<Vec<_>>()
    };
    assert!(one_each(&cluster));
    let victim = cluster.leader_of(2).unwrap();
    cluster.stop(victim);
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    cluster.start(victim).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !one_each(&cluster) {
        let led: Vec<Option<u64>> = (1..=NODES).map(|g| cluster.leader_of(g)).collect();
        assert!(Instant::now() < deadline, "leaders {led:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Settled: a few more rounds move nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(one_each(&cluster));
}

/// Three nodes, three groups of three replicas, replicas rebalanced often.
/// A fourth node is added to the running cluster: every member learns its
/// address, replicas move to it until every node holds two or three, and
/// it serves transactions over every group; the totals hold throughout.
/// Adding it again is a no-op; an address nobody answers at is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_to_a_running_cluster_is_given_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = open_spread(
        dir.path(),
        3,
        GROUPS,
        ReplicationOptions {
            replica_rebalance_interval: Duration::from_millis(300),
            ..ReplicationOptions::fast()
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let total = open_accounts(&cluster, deadline).await;

    let added = cluster.add_node(2).await.unwrap();
    assert_eq!(added, 4);
    for n in 1..=4 {
        let mut peers = cluster.node(n).peer_ids();
        peers.push(n);
        peers.sort_unstable();
        assert_eq!(peers, vec![1, 2, 3, 4], "node {n}'s address book");
    }
    wait_for_spread(&cluster, 4, Instant::now() + Duration::from_secs(60)).await;
    check_settled_total(&cluster, GROUPS.into(), total, deadline).await;

    // Again: nothing changes. An address nobody answers at is refused.
    let again = cluster
        .node(1)
        .add_node(meridian_proto::v1::AddNodeRequest {
            address: "node-4".into(),
        })
        .await
        .unwrap();
    assert_eq!((again.node_id, again.members.len()), (4, 4));
    let err = cluster
        .node(1)
        .add_node(meridian_proto::v1::AddNodeRequest {
            address: "node-9".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
}

/// Transfers across groups leave no outcome record behind once every
/// participant has applied their outcome: the coordinators forget them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinators_forget_outcomes_every_participant_applied() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.wait_for_leader(LEADER_TIMEOUT).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let total = open_accounts(&cluster, deadline).await;
    let engine = cluster.engine(1);
    let mut committed = 0;
    for n in 0..30u64 {
        let (a, b) = (n % ACCOUNTS, (n + 1) % ACCOUNTS);
        let done = retrying(&engine, deadline, |e| async move {
            transfer(&e, account(a), account(b), 1).await
        })
        .await
        .unwrap();
        committed += usize::from(done.is_some());
    }
    assert!(committed > 20, "{committed} transfers committed");
    let records = || -> usize {
        (1..=3)
            .flat_map(|n| (1..=u64::from(GROUPS)).map(move |g| (n, g)))
            .map(|(n, g)| cluster.node(n).outcome_records(g).unwrap())
            .sum()
    };
    let forgotten_by = Instant::now() + Duration::from_secs(10);
    while records() > 0 {
        assert!(
            Instant::now() < forgotten_by,
            "{} outcome records left",
            records()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(engine);
    check_settled_total(&cluster, GROUPS.into(), total, deadline).await;
}
