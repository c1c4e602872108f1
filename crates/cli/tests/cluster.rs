//! Real processes: `meridian start` nodes on loopback ports, founded with
//! `meridian init` (three groups: one range per table, dealt round the
//! groups), written to through SQL while a leader is killed with SIGKILL and
//! restarted. Every acknowledged write must survive, and writes must resume
//! within a lease plus an election. Transfers between tables of different
//! groups (two-phase commit) keep the total while the coordinator's and a
//! participant's leaders are killed.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::meridian;
use meridian_server::grpc::GrpcPeer;
use meridian_server::net::NodeApi;

/// Leases of the test clusters (short, so failover is quick).
const LEASE_MS: u64 = 2_000;
/// Election timeouts of the test clusters.
const ELECTION_MS: u64 = 500;

/// A free loopback port (the OS picks it; it stays free in practice).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One node process.
struct NodeProc {
    id: u64,
    grpc: String,
    sql: String,
    dir: PathBuf,
    child: Option<Child>,
}

/// A cluster of node processes.
struct Cluster {
    nodes: Vec<NodeProc>,
    /// Options every `meridian start` gets beyond the usual ones.
    extra: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes and founds the cluster, every node holding a
    /// replica of every group: the tests kill up to a minority of the nodes
    /// and check every node caught up.
    fn start(n: u64) -> Cluster {
        Cluster::start_with(n, n, &[])
    }

    /// Starts `n` nodes with the `meridian start` options `extra` and founds
    /// the cluster with `replicas` replicas per group.
    fn start_with(n: u64, replicas: u64, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<NodeProc> = (1..=n)
            .map(|id| NodeProc {
                id,
                grpc: format!("127.0.0.1:{}", free_port()),
                sql: format!("127.0.0.1:{}", free_port()),
                dir: dir.path().join(format!("node-{id}")),
                child: None,
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            extra: extra.iter().map(|e| e.to_string()).collect(),
            _dir: dir,
        };
        for id in 1..=n {
            // Another test may have taken a port picked for this node
            // between the pick and the bind: pick others. (The data
            // directory is still empty, and nothing knows the ports yet.)
            let mut attempts = 0;
            while let Err(why) = cluster.try_launch(id) {
                attempts += 1;
                assert!(attempts < 5, "{why}");
                let node = &mut cluster.nodes[id as usize - 1];
                node.grpc = format!("127.0.0.1:{}", free_port());
                node.sql = format!("127.0.0.1:{}", free_port());
            }
        }
        let replicas = replicas.to_string();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = meridian()
                .args(["init", "--host", &cluster.nodes[0].grpc])
                .args(["--replicas", &replicas])
                .output()
                .unwrap();
            if out.status.success() {
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(stdout.contains("initialized cluster"), "{stdout}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "init failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        cluster
    }

    fn join_list(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.grpc.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts (or restarts) node `id` and waits until it serves.
    fn launch(&mut self, id: u64) {
        if let Err(why) = self.try_launch(id) {
            panic!("{why}");
        }
    }

    /// Starts node `id`; waits until it serves, or says why not.
    fn try_launch(&mut self, id: u64) -> Result<(), String> {
        let join = self.join_list();
        let node = &mut self.nodes[id as usize - 1];
        let mut child = meridian()
            .args(["start", "--node-id", &id.to_string(), "--data-dir"])
            .arg(&node.dir)
            .args([
                "--listen",
                &node.grpc,
                "--sql-addr",
                &node.sql,
                "--join",
                &join,
            ])
            .args(["--lease-ms", &LEASE_MS.to_string()])
            .args(["--election-timeout-ms", &ELECTION_MS.to_string()])
            .args(["--epsilon-ms", "1"])
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        wait_for_line(&mut child, "serving gRPC", &node.dir)?;
        node.child = Some(child);
        Ok(())
    }

    /// Starts one more node, outside the cluster; returns its id.
    fn spawn_extra(&mut self) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        let dir = self.nodes[0].dir.with_file_name(format!("node-{id}"));
        self.nodes.push(NodeProc {
            id,
            grpc: format!("127.0.0.1:{}", free_port()),
            sql: format!("127.0.0.1:{}", free_port()),
            dir,
            child: None,
        });
        self.launch(id);
        id
    }

    /// Kills node `id` with SIGKILL.
    fn kill(&mut self, id: u64) {
        let mut child = self.nodes[id as usize - 1].child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The node serving `group` (leader with a lease), if any.
    async fn leader(&self, group: u64) -> Option<u64> {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let Ok(status) = GrpcPeer::connect(&node.grpc).unwrap().status().await else {
                continue;
            };
            if status.groups.iter().any(|g| g.group == group && g.serving) {
                return Some(node.id);
            }
        }
        None
    }

    /// Waits until `group` is served; returns its leader.
    async fn wait_for_leader(&self, group: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(id) = self.leader(group).await {
                return id;
            }
            assert!(Instant::now() < deadline, "no leader within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until node `id` has applied what `group`'s leader committed.
    async fn wait_caught_up(&self, id: u64, group: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let leader = self.wait_for_leader(group).await;
            let commit = status_of(&self.nodes[leader as usize - 1].grpc, group)
                .await
                .1;
            let applied = status_of(&self.nodes[id as usize - 1].grpc, group).await.0;
            if applied >= commit && commit > 0 {
                return;
            }
            assert!(Instant::now() < deadline, "node {id} did not catch up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// (applied, commit) of `group` at the node at `grpc`.
async fn status_of(grpc: &str, group: u64) -> (u64, u64) {
    match GrpcPeer::connect(grpc).unwrap().status().await {
        Ok(status) => status
            .groups
            .iter()
            .find(|g| g.group == group)
            .map_or((0, 0), |g| (g.applied, g.commit)),
        Err(_) => (0, 0),
    }
}

/// Waits until `child` prints a line containing `needle`; an error if it
/// exits first (or is silent for a minute).
fn wait_for_line(child: &mut Child, needle: &str, dir: &Path) -> Result<(), String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Ok(()),
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                return Err(format!(
                    "node at {} did not start: {:?}",
                    dir.display(),
                    child.wait()
                ));
            }
        }
    }
}

/// Connects to the SQL port at `addr`.
async fn connect(addr: &str) -> Option<tokio_postgres::Client> {
    let url = format!("postgres://meridian@{addr}/meridian");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(client)
}

/// Outcome of one write.
enum Written {
    Yes,
    /// The commit's outcome is unknown (SQLSTATE 40003).
    Maybe,
}

/// Inserts `k` through the node at `addr`, retrying retryable failures and
/// lost connections until `deadline`.
async fn insert(addr: &str, k: i32, deadline: Instant) -> Written {
    loop {
        if let Some(client) = connect(addr).await {
            match client
                .execute("INSERT INTO kv VALUES ($1, 'v')", &[&k])
                .await
            {
                Ok(1) => return Written::Yes,
                Ok(n) => panic!("insert {k} wrote {n} rows"),
                Err(err) => {
                    let code = err.code().map(|c| c.code().to_string());
                    match code.as_deref() {
                        Some("40003") => return Written::Maybe,
                        // A retried insert that had committed after all.
                        Some("23505") => return Written::Yes,
                        Some("40001") | Some("57P03") | None => {}
                        Some(other) => panic!("insert {k}: {other}: {err}"),
                    }
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "insert {k} did not succeed in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The keys in `kv`, read through the node at `addr`.
async fn keys(addr: &str) -> BTreeSet<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(client) = connect(addr).await {
            if let Ok(rows) = client.query("SELECT k FROM kv ORDER BY k", &[]).await {
                return rows.iter().map(|r| r.get::<_, i32>(0)).collect();
            }
        }
        assert!(Instant::now() < deadline, "reads through {addr} failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The group of the first table created (id 100) in the initial placement.
const KV_GROUP: u64 = 2;

/// Writes, kills `victims` (the leader of `kv`'s group first), keeps
/// writing through a survivor, restarts the victims, and checks every
/// acknowledged write.
async fn failover(nodes: u64, extra_victims: usize) {
    let mut cluster = Cluster::start(nodes);
    let leader = cluster.wait_for_leader(KV_GROUP).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let first = &cluster.nodes[0].sql.clone();
    {
        let client = loop {
            if let Some(c) = connect(first).await {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        client
            .batch_execute("CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
            .await
            .unwrap();
    }
    let mut acked = BTreeSet::new();
    let mut maybe = BTreeSet::new();
    for k in 0..20 {
        match insert(first, k, deadline).await {
            Written::Yes => acked.insert(k),
            Written::Maybe => maybe.insert(k),
        };
    }

    let mut victims = vec![leader];
    victims.extend((1..=nodes).filter(|&n| n != leader).take(extra_victims));
    for &v in &victims {
        cluster.kill(v);
    }
    let killed = Instant::now();
    let survivor = (1..=nodes).find(|n| !victims.contains(n)).unwrap();
    let via = cluster.nodes[survivor as usize - 1].sql.clone();
    for k in 20..40 {
        match insert(&via, k, deadline).await {
            Written::Yes => acked.insert(k),
            Written::Maybe => maybe.insert(k),
        };
        if k == 20 {
            let resumed = killed.elapsed();
            println!("writes resumed {resumed:?} after the leader was killed");
            let bound = Duration::from_millis(LEASE_MS + 2 * ELECTION_MS);
            assert!(resumed < bound * 3, "writes resumed only after {resumed:?}");
        }
    }

    for &v in &victims {
        cluster.launch(v);
    }
    for &v in &victims {
        cluster.wait_caught_up(v, KV_GROUP).await;
    }
    for node in 1..=nodes {
        let seen = keys(&cluster.nodes[node as usize - 1].sql).await;
        assert!(
            acked.is_subset(&seen),
            "node {node} lost writes: {:?}",
            acked.difference(&seen)
        );
        assert!(
            seen.is_subset(&acked.union(&maybe).copied().collect()),
            "node {node} has writes nobody made"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_killing_the_leader() {
    failover(3, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_survive_killing_two() {
    failover(5, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_is_refused_on_a_founded_cluster() {
    let cluster = Cluster::start(3);
    let out = meridian()
        .args(["init", "--host", &cluster.nodes[1].grpc])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already belongs to cluster"), "{stderr}");
    let out = meridian()
        .args(["status", "--host", &cluster.nodes[1].grpc])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("group 1"));
}

/// Runs `sql` (a whole transaction) through a fresh connection to one of
/// `addrs` (the first that answers, from `start`), retrying retryable
/// failures until `deadline`. `Some(true)`: committed; `Some(false)`:
/// outcome unknown (40003).
async fn run_transaction(addrs: &[String], start: usize, sql: &str, deadline: Instant) -> bool {
    let mut attempt = start;
    loop {
        let addr = &addrs[attempt % addrs.len()];
        attempt += 1;
        if let Some(client) = connect(addr).await {
            match client.batch_execute(sql).await {
                Ok(()) => return true,
                Err(err) => match err.code().map(|c| c.code().to_string()).as_deref() {
                    Some("40003") => return false,
                    Some("40001") | Some("57P03") | Some("25P02") | None => {}
                    Some(other) => panic!("{sql}: {other}: {err}"),
                },
            }
        }
        assert!(Instant::now() < deadline, "{sql} did not succeed in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sum of the balances and the transfer ids, read through `addr`.
async fn ledger(addr: &str) -> (i64, BTreeSet<i32>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(client) = connect(addr).await {
            let read = async {
                let tx = client
                    .query_one(
                        "SELECT (SELECT sum(balance) FROM a) + (SELECT sum(balance) FROM b) \
                         + (SELECT sum(balance) FROM c)",
                        &[],
                    )
                    .await?;
                let ids = client.query("SELECT id FROM done", &[]).await?;
                Ok::<_, tokio_postgres::Error>((
                    tx.get::<_, i64>(0),
                    ids.iter().map(|r| r.get::<_, i32>(0)).collect(),
                ))
            };
            if let Ok(seen) = read.await {
                return seen;
            }
        }
        assert!(Instant::now() < deadline, "reads through {addr} failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_across_groups_survive_killing_the_coordinator_and_a_participant() {
    let mut cluster = Cluster::start(3);
    let deadline = Instant::now() + Duration::from_secs(180);
    let sql: Vec<String> = cluster.nodes.iter().map(|n| n.sql.clone()).collect();
    // Tables 100..=103: a in group 2, b in group 3, c in group 1, done in
    // group 2.
    let setup = "CREATE TABLE a (id INT PRIMARY KEY, balance INT); \
                 CREATE TABLE b (id INT PRIMARY KEY, balance INT); \
                 CREATE TABLE c (id INT PRIMARY KEY, balance INT); \
                 CREATE TABLE done (id INT PRIMARY KEY)";
    assert!(run_transaction(&sql, 0, setup, deadline).await);
    let fill = "BEGIN; \
                INSERT INTO a VALUES (0, 100), (1, 100), (2, 100); \
                INSERT INTO b VALUES (0, 100), (1, 100), (2, 100); \
                INSERT INTO c VALUES (0, 100), (1, 100), (2, 100); \
                COMMIT";
    assert!(run_transaction(&sql, 0, fill, deadline).await);
    let total = 900;

    // The placement, as SQL shows it.
    let client = connect(&sql[0]).await.unwrap();
    let ranges = client.query("SHOW RANGES FROM TABLE b", &[]).await.unwrap();
    assert_eq!(ranges.len(), 1, "table b is one range");
    assert_eq!(ranges[0].get::<_, i64>("group_id"), 3);
    assert_eq!(ranges[0].get::<_, &str>("replicas"), "1,2,3");
    assert!(ranges[0].get::<_, Option<i64>>("leader").is_some());
    let all = client.query("SHOW RANGES", &[]).await.unwrap();
    assert!(all.len() > 3, "the placement has a range per table");
    drop(client);

    // Transfers a -> b -> c -> a: the coordinator is the group of the first
    // table written.
    let mut acked = BTreeSet::new();
    let mut maybe = BTreeSet::new();
    let tables = ["a", "b", "c"];
    let transfer = |n: i32| {
        let (from, to) = (tables[n as usize % 3], tables[(n as usize + 1) % 3]);
        let row = n % 3;
        format!(
            "BEGIN; \
             UPDATE {from} SET balance = balance - 1 WHERE id = {row}; \
             UPDATE {to} SET balance = balance + 1 WHERE id = {row}; \
             INSERT INTO done VALUES ({n}); \
             COMMIT"
        )
    };
    let mut n = 0;
    let step = |acked: &mut BTreeSet<i32>, maybe: &mut BTreeSet<i32>, ok: bool, n: i32| {
        if ok {
            acked.insert(n);
        } else {
            maybe.insert(n);
        }
    };
    for _ in 0..10 {
        let ok = run_transaction(&sql, n as usize, &transfer(n), deadline).await;
        step(&mut acked, &mut maybe, ok, n);
        n += 1;
    }
    // Kill the coordinator's leader (group 2), then a participant's (group
    // 3), transferring through the others meanwhile.
    for group in [2, 3] {
        let victim = cluster.wait_for_leader(group).await;
        cluster.kill(victim);
        let others: Vec<String> = (1..=3u64)
            .filter(|&id| id != victim)
            .map(|id| sql[id as usize - 1].clone())
            .collect();
        for _ in 0..10 {
            let ok = run_transaction(&others, n as usize, &transfer(n), deadline).await;
            step(&mut acked, &mut maybe, ok, n);
            n += 1;
        }
        cluster.launch(victim);
        for g in 1..=3 {
            cluster.wait_caught_up(victim, g).await;
        }
    }

    // Through SQL, split table a and move its upper range to group 3, and
    // move table c to group 2, while transfers go on through the other
    // nodes (whose placement caches go stale: the groups redirect them).
    let concurrent: Vec<(i32, String)> = (n..n + 10).map(|k| (k, transfer(k))).collect();
    n += 10;
    let others = sql[1..].to_vec();
    let runner = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        for (k, text) in concurrent {
            outcomes.push((
                k,
                run_transaction(&others, k as usize, &text, deadline).await,
            ));
        }
        outcomes
    });
    let admin = &sql[..1];
    for statement in [
        "ALTER TABLE a SPLIT AT VALUES (1)",
        "ALTER TABLE a RELOCATE VALUES (1) TO GROUP 3",
        "ALTER TABLE c RELOCATE TO GROUP 2",
    ] {
        assert!(run_transaction(admin, 0, statement, deadline).await);
    }
    for (k, ok) in runner.await.unwrap() {
        step(&mut acked, &mut maybe, ok, k);
    }
    let client = connect(&sql[0]).await.unwrap();
    let groups = |rows: Vec<tokio_postgres::Row>| -> Vec<i64> {
        rows.iter().map(|r| r.get::<_, i64>("group_id")).collect()
    };
    let a = client.query("SHOW RANGES FROM TABLE a", &[]).await.unwrap();
    assert_eq!(groups(a), vec![2, 3], "table a: split, upper range moved");
    let c = client.query("SHOW RANGES FROM TABLE c", &[]).await.unwrap();
    assert_eq!(groups(c), vec![2], "table c moved");
    drop(client);
    for _ in 0..5 {
        let ok = run_transaction(&sql, n as usize, &transfer(n), deadline).await;
        step(&mut acked, &mut maybe, ok, n);
        n += 1;
    }

    // Every node: the total holds, every acknowledged transfer is there,
    // nothing that was not attempted.
    for (node, addr) in sql.iter().enumerate() {
        let (sum, done) = ledger(addr).await;
        assert_eq!(sum, total, "node {}: the total changed", node + 1);
        assert!(
            acked.is_subset(&done),
            "node {} lost transfers: {:?}",
            node + 1,
            acked.difference(&done)
        );
        assert!(
            done.is_subset(&acked.union(&maybe).copied().collect()),
            "node {} has transfers nobody made",
            node + 1
        );
    }
    println!(
        "{} transfers acknowledged, {} with unknown outcome",
        acked.len(),
        maybe.len()
    );
}

/// Runs `meridian args...`, which must succeed; returns its output.
fn run_ok(args: &[&str]) -> String {
    let out = meridian().args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "meridian {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Creates `table (k INT PRIMARY KEY, v INT)` through the nodes at `addrs`
/// and writes `rows` rows (`v = k`).
async fn fill_table(addrs: &[String], table: &str, rows: usize, deadline: Instant) {
    let create = format!("CREATE TABLE {table} (k INT PRIMARY KEY, v INT)");
    assert!(run_transaction(addrs, 0, &create, deadline).await);
    for k in 0..rows {
        let insert = format!("INSERT INTO {table} VALUES ({k}, {k})");
        assert!(run_transaction(addrs, k, &insert, deadline).await);
    }
}

/// The row count and the sum of `v` of `table`, read through `addr`.
async fn count_and_sum(addr: &str, table: &str) -> (i64, i64) {
    let client = connect(addr).await.expect("the node serves SQL");
    let row = client
        .query_one(&format!("SELECT count(*), sum(v) FROM {table}"), &[])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// The group of table `table`'s (only) range and its replicas, as `SHOW
/// RANGES` on the node at `addr` tells.
async fn range_of(addr: &str, table: &str) -> Option<(u64, Vec<u64>)> {
    let client = connect(addr).await?;
    let rows = client
        .query(&format!("SHOW RANGES FROM TABLE {table}"), &[])
        .await
        .ok()?;
    let row = rows.first()?;
    let group: i64 = row.get("group_id");
    let replicas: String = row.get("replicas");
    let replicas = replicas.split(',').map(|r| r.parse().unwrap()).collect();
    Some((group as u64, replicas))
}

/// Four nodes, three replicas per group: `meridian move-replica` moves the
/// replica of a table's group to the node that had none. `SHOW RANGES` says
/// so on every node, every row is still there, and the old node no longer
/// hosts the group. A move to the node itself is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_replica_moves_a_tables_replica_to_another_node() {
    let cluster = Cluster::start_with(4, 3, &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.sql.clone()).collect();
    fill_table(&addrs, "moved", 40, deadline).await;
    let (group, before) = range_of(&addrs[0], "moved").await.expect("SHOW RANGES");
    assert_eq!(before.len(), 3, "{before:?}");
    let from = before[0];
    let to = (1..=4).find(|n| !before.contains(n)).unwrap();
    let (group_arg, from_arg, to_arg) = (group.to_string(), from.to_string(), to.to_string());
    let stdout = run_ok(&[
        "move-replica",
        "--host",
        &cluster.nodes[0].grpc,
        "--group",
        &group_arg,
        "--from",
        &from_arg,
        "--to",
        &to_arg,
    ]);
    assert!(
        stdout.contains(&format!("moved group {group}'s replica")),
        "{stdout}"
    );
    let mut after: Vec<u64> = before.iter().copied().filter(|&n| n != from).collect();
    after.push(to);
    after.sort_unstable();
    for addr in &addrs {
        loop {
            if range_of(addr, "moved")
                .await
                .is_some_and(|(_, r)| r == after)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "SHOW RANGES at {addr}: not {after:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(count_and_sum(addr, "moved").await, (40, 780));
    }
    let old = GrpcPeer::connect(&cluster.nodes[from as usize - 1].grpc).unwrap();
    let hosted = old.status().await.unwrap().groups;
    assert!(hosted.iter().all(|g| g.group != group), "{hosted:?}");

    let out = meridian()
        .args(["move-replica", "--host", &cluster.nodes[1].grpc])
        .args(["--group", &group.to_string(), "--from", "2", "--to", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("to itself"), "{stderr}");
}

/// The voters of every group as the node at `grpc` knows them (groups it
/// holds a replica of).
async fn voters_at(grpc: &str) -> Vec<(u64, Vec<u64>)> {
    match GrpcPeer::connect(grpc).unwrap().status().await {
        Ok(status) => status
            .groups
            .into_iter()
            .map(|g| (g.group, g.voters))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Four nodes, three replicas per group, a node dead after 3 s: the node
/// holding the most replicas is killed for good, and its replicas move to
/// the others (every group keeps three voters, none of them the dead
/// node); the table written before is whole. Brought back, the node
/// retires what it held and is given replicas again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_replicas_move_to_the_other_nodes() {
    let extra = ["--replica-rebalance-secs", "1", "--dead-node-secs", "3"];
    let mut cluster = Cluster::start_with(4, 3, &extra);
    let deadline = Instant::now() + Duration::from_secs(120);
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.sql.clone()).collect();
    fill_table(&addrs, "kept", 20, deadline).await;
    let mut held = [0; 4];
    for node in &cluster.nodes {
        held[node.id as usize - 1] = voters_at(&node.grpc).await.len();
    }
    let victim = (1..=4).max_by_key(|&n| held[n as usize - 1]).unwrap();
    cluster.kill(victim);

    // Every group's voters, as the surviving nodes holding it know them.
    let survivors: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.id != victim)
        .map(|n| n.grpc.clone())
        .collect();
    let replaced = |views: &[Vec<(u64, Vec<u64>)>]| {
        (1..=3u64).all(|g| {
            let seen: Vec<&Vec<u64>> = views
                .iter()
                .flatten()
                .filter(|(group, _)| *group == g)
                .map(|(_, voters)| voters)
                .collect();
            seen.len() == 3 && seen.iter().all(|v| v.len() == 3 && !v.contains(&victim))
        })
    };
    loop {
        let mut views = Vec::new();
        for grpc in &survivors {
            views.push(voters_at(grpc).await);
        }
        if replaced(&views) {
            break;
        }
        assert!(Instant::now() < deadline, "not replaced: {views:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let survivor = cluster.nodes.iter().find(|n| n.id != victim).unwrap();
    assert_eq!(count_and_sum(&survivor.sql, "kept").await, (20, 190));

    // Back, it drops the replicas it no longer votes for and gets some:
    // what it hosts is what the leaders say it votes in, and not nothing.
    cluster.launch(victim);
    let grpc = cluster.nodes[victim as usize - 1].grpc.clone();
    loop {
        let hosted: BTreeSet<u64> = voters_at(&grpc).await.into_iter().map(|(g, _)| g).collect();
        let mut votes_in = BTreeSet::new();
        for node in &cluster.nodes {
            let status = GrpcPeer::connect(&node.grpc).unwrap().status().await;
            for g in status.map(|s| s.groups).unwrap_or_default() {
                if g.serving && g.voters.contains(&victim) {
                    votes_in.insert(g.group);
                }
            }
        }
        if !hosted.is_empty() && hosted == votes_in {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {victim} hosts {hosted:?}, votes in {votes_in:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Three nodes, three replicas per group: a fourth node is started and
/// added with `meridian add-node`; replica rebalancing gives it replicas
/// (votes it holds, as the leaders say), and it serves SQL over the table
/// written before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_node_grows_a_running_cluster() {
    let mut cluster = Cluster::start_with(3, 3, &["--replica-rebalance-secs", "1"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.sql.clone()).collect();
    fill_table(&addrs, "grown", 20, deadline).await;
    let id = cluster.spawn_extra();
    let new = &cluster.nodes[id as usize - 1];
    let stdout = run_ok(&[
        "add-node",
        "--host",
        &cluster.nodes[0].grpc,
        "--address",
        &new.grpc,
    ]);
    assert!(stdout.contains(&format!("added node {id}")), "{stdout}");
    loop {
        let mut votes_in = 0;
        for node in &cluster.nodes {
            let status = GrpcPeer::connect(&node.grpc).unwrap().status().await;
            for g in status.map(|s| s.groups).unwrap_or_default() {
                if g.serving && g.voters.contains(&id) {
                    votes_in += 1;
                }
            }
        }
        if votes_in >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {id} votes in {votes_in} groups"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while connect(&new.sql).await.is_none() {
        assert!(Instant::now() < deadline, "node {id} serves no SQL");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count_and_sum(&new.sql, "grown").await, (20, 190));
}
