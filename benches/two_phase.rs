//! Two-phase commit across Paxos groups (Spanner §4.2.1), in one process:
//! a `LocalCluster` of three nodes (three RocksDB directories, every Paxos
//! persist fsynced, the in-process network), its keyspace cut into groups
//! by `initial_placement`, so that table id `100 + i` lives in group
//! `1 + (i + 1) % groups`. A transaction that writes one key in each of
//! tables `100..100 + k` touches `k` distinct groups; with `k > 1` it
//! commits with two-phase commit, the first group written coordinating.
//! Every transaction goes through node 1's `ClusterEngine` (the gateway),
//! which reaches the leaders on other nodes through the in-process network.
//!
//! What it measures, printed as tables:
//!
//! 1. Participants (the analogue of Spanner's Table 4), ε = 0 so that the
//!    numbers are the protocol and the disk: for k = 1, 2, 5, 10 groups,
//!    the latency of a read-write transaction writing one 100-byte value
//!    in each group (mean, p50, p99 over 300 sequential transactions after
//!    a warm-up, one client), and the throughput of 8 concurrent clients
//!    (each loop bounded by a count and a time). Criterion also times one
//!    commit of each size (`two_phase/commit/<k>`).
//! 2. Read-only against read-write, ε = 0, k = 1 and 5: a strong read-only
//!    transaction reading the k keys (no locks, no 2PC: one snapshot read
//!    per group) against the read-write transaction writing them.
//! 3. Commit wait, ε = 1, 4 and 8 ms, one and two groups: the mean latency
//!    of a read-write commit and the mean commit wait per commit, read
//!    from the leader engines' `commit_wait_stats()` (summed over every
//!    group and node before and after the run); only the committing group
//!    (the coordinator of a 2PC) waits. Spanner's rule makes it `2ε` minus
//!    whatever the commit's own replication already took, since the commit
//!    timestamp is `TT.now().latest` before the Paxos write.
//!
//! 4. Strong reads under writes, ε = 4 ms: the latency of a strong
//!    read-only transaction reading one key while `CLIENTS` writers commit
//!    to the same group, in a cluster of one group (its leader reads at its
//!    last commit, Spanner's `LastTS()`, not waiting for the writers'
//!    commits in flight) and in one of two groups (the read is at the
//!    gateway's `TT.now().latest` and waits for the commits in commit wait
//!    below it).
//!
//! Left out: contention (the clients write disjoint keys), read-write
//! transactions that also read, leaders spread on purpose (they land where
//! the elections put them; the bench prints where), network latency between
//! nodes (the in-process network has none) and failures during 2PC.
//!
//! Run with `cargo bench -p meridian-benches --bench two_phase` (about two
//! minutes; the clusters' data live in temporary directories).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use meridian_error::Error;
use meridian_server::clock::SystemClock;
use meridian_server::cluster::{LocalCluster, LocalClusterOptions};
use meridian_server::route::ClusterEngine;
use meridian_storage::keycode::encode_u64;
use meridian_txn::{LockStrength, ReadTime, Transaction, TxnEngine, TxnMode};
use tokio::runtime::Runtime;

/// Groups of the participants cluster.
const GROUPS: u32 = 10;
/// Participant counts of the first table.
const PARTICIPANTS: [u64; 4] = [1, 2, 5, 10];
/// Sequential transactions per latency measurement.
const LATENCY_TXNS: u64 = 300;
/// Sequential transactions before each latency measurement.
const WARM_UP_TXNS: u64 = 30;
/// Concurrent clients of the throughput measurement.
const CLIENTS: u64 = 8;
/// How long the throughput measurement runs at most.
const LOAD_TIME: Duration = Duration::from_secs(5);
/// How many transactions each client runs at most.
const LOAD_TXNS: u64 = 5_000;
/// Sequential transactions per ε of the commit-wait table.
const WAIT_TXNS: u64 = 150;
/// The uncertainty bounds of the commit-wait table, in milliseconds.
const EPSILONS_MS: [u64; 3] = [1, 4, 8];
/// The uncertainty bound of the reads-under-writes table.
const LOADED_READ_EPSILON: Duration = Duration::from_millis(4);

/// The key of row `row` of table `100 + table` (its group is
/// `1 + (table + 1) % groups`).
fn key(table: u64, row: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(18);
    encode_u64(&mut key, 100 + table);
    encode_u64(&mut key, row);
    key
}

/// A read-write transaction writing row `row` of each of the first `k`
/// tables (one key in each of `k` groups).
async fn write(engine: &ClusterEngine, k: u64, row: u64) -> Result<(), Error> {
    let mut txn = engine.begin(TxnMode::ReadWrite).await?;
    for table in 0..k {
        txn.put(key(table, row), vec![7; 100]).await?;
    }
    txn.commit().await.map(drop)
}

/// A strong read-only transaction reading row `row` of each of the first
/// `k` tables.
async fn read(engine: &ClusterEngine, k: u64, row: u64) -> Result<(), Error> {
    let mut txn = engine.begin(TxnMode::ReadOnly(ReadTime::Strong)).await?;
    for table in 0..k {
        txn.get(&key(table, row), LockStrength::Shared).await?;
    }
    txn.commit().await.map(drop)
}

async fn open(dir: &std::path::Path, epsilon: Duration, groups: u32) -> LocalCluster {
    let clock = Arc::new(SystemClock::new(epsilon));
    let options = LocalClusterOptions {
        groups,
        ..LocalClusterOptions::default()
    };
    let cluster = LocalCluster::open(dir, clock, options).await.unwrap();
    cluster
        .wait_for_leader(Duration::from_secs(60))
        .await
        .unwrap();
    cluster
}

/// Which node leads each group, e.g. `g1@2 g2@1 ...`.
fn leaders(cluster: &LocalCluster, groups: u32) -> String {
    (1..=u64::from(groups))
        .map(|g| {
            let node = cluster
                .running()
                .into_iter()
                .find(|&id| {
                    cluster
                        .node(id)
                        .group(g)
                        .is_some_and(|group| group.leader_engine().is_some())
                })
                .map_or("?".to_string(), |id| id.to_string());
            format!("g{g}@{node}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Commits and commit wait summed over every leader engine of the cluster.
fn commit_wait_totals(cluster: &LocalCluster, groups: u32) -> (u64, Duration) {
    let mut commits = 0;
    let mut waited = Duration::ZERO;
    for id in cluster.running() {
        for g in 1..=u64::from(groups) {
            if let Some(stats) = cluster
                .node(id)
                .group(g)
                .and_then(|g| g.leader_engine())
                .map(|e| e.commit_wait_stats())
            {
                commits += stats.commits;
                waited += stats.waited;
            }
        }
    }
    (commits, waited)
}

/// Latencies of `n` sequential runs of `op(row)` for rows `first..first + n`,
/// sorted; a failed run panics (nothing contends here).
fn latencies<F, Fut>(runtime: &Runtime, first: u64, n: u64, op: F) -> Vec<Duration>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let mut out: Vec<Duration> = (first..first + n)
        .map(|row| {
            let start = Instant::now();
            runtime.block_on(op(row)).unwrap();
            start.elapsed()
        })
        .collect();
    out.sort();
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / samples.len().max(1) as u32
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// Throughput of `CLIENTS` concurrent clients writing `k` groups per
/// transaction, each on its own rows, for at most `LOAD_TIME` and
/// `LOAD_TXNS` transactions: (commits per second, commits, failures).
fn throughput(runtime: &Runtime, engine: &ClusterEngine, k: u64, base: u64) -> (f64, u64, u64) {
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let engine = engine.clone();
            runtime.spawn(async move {
                let (mut committed, mut failed) = (0u64, 0u64);
                let mut n = 0;
                while n < LOAD_TXNS && start.elapsed() < LOAD_TIME {
                    let row = base + client * 1_000_000 + n;
                    match write(&engine, k, row).await {
                        Ok(()) => committed += 1,
                        Err(_) => failed += 1,
                    }
                    n += 1;
                }
                (committed, failed)
            })
        })
        .collect();
    let (mut committed, mut failed) = (0, 0);
    for client in clients {
        let (c, f) = runtime.block_on(client).unwrap();
        committed += c;
        failed += f;
    }
    let elapsed = start.elapsed();
    (committed as f64 / elapsed.as_secs_f64(), committed, failed)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // 1 and 2: participants, read-only against read-write; ε = 0.
    let dir = tempfile::tempdir().unwrap();
    let cluster = runtime.block_on(open(dir.path(), Duration::ZERO, GROUPS));
    let engine = cluster.engine(1);
    println!(
        "two_phase: {GROUPS} groups, leaders {}",
        leaders(&cluster, GROUPS)
    );
    let mut rows = Vec::new();
    let mut row_base = 0u64;
    for k in PARTICIPANTS {
        let e = &engine;
        latencies(&runtime, row_base, WARM_UP_TXNS, |row| write(e, k, row));
        let lat = latencies(&runtime, row_base + WARM_UP_TXNS, LATENCY_TXNS, |row| {
            write(e, k, row)
        });
        let (rate, committed, failed) = throughput(&runtime, &engine, k, row_base + 100_000_000);
        rows.push((k, lat, rate, committed, failed));
        row_base += 1_000_000_000;
    }
    println!();
    println!("2PC, read-write transaction writing one key in each of k groups (ε = 0, fsync)");
    println!(
        "| groups | mean ms | p50 ms | p99 ms | vs 1 group (mean) | {CLIENTS} clients: commits/s | vs 1 group | failed |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let (base_mean, base_rate) = (mean(&rows[0].1), rows[0].2);
    for (k, lat, rate, committed, failed) in &rows {
        println!(
            "| {k} | {} | {} | {} | {:.2}x | {rate:.0} ({committed} in ≤ {LOAD_TIME:?}) | {:.2}x | {failed} |",
            ms(mean(lat)),
            ms(percentile(lat, 0.5)),
            ms(percentile(lat, 0.99)),
            mean(lat).as_secs_f64() / base_mean.as_secs_f64(),
            rate / base_rate,
        );
    }

    // Read-only against read-write, on the rows the latency runs wrote.
    println!();
    println!("Strong read-only (reads k keys in k groups) vs read-write (writes them), ε = 0");
    println!("| k | read-only mean ms | p50 | p99 | read-write mean ms | p50 | p99 |");
    println!("|---|---|---|---|---|---|---|");
    for k in [1u64, 5] {
        let e = &engine;
        let base = 5_000_000_000 + k * 1_000_000;
        let rw = latencies(&runtime, base, LATENCY_TXNS, |row| write(e, k, row));
        latencies(&runtime, base, WARM_UP_TXNS, |row| read(e, k, row));
        let ro = latencies(&runtime, base, LATENCY_TXNS, |row| read(e, k, row));
        println!(
            "| {k} | {} | {} | {} | {} | {} | {} |",
            ms(mean(&ro)),
            ms(percentile(&ro, 0.5)),
            ms(percentile(&ro, 0.99)),
            ms(mean(&rw)),
            ms(percentile(&rw, 0.5)),
            ms(percentile(&rw, 0.99)),
        );
    }

    // Criterion's timing of one commit per participant count.
    let mut group = c.benchmark_group("two_phase/commit");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for k in PARTICIPANTS {
        let mut row = 6_000_000_000 + k * 10_000_000;
        group.bench_function(BenchmarkId::from_parameter(k), |b| {
            b.iter(|| {
                row += 1;
                runtime.block_on(write(&engine, k, row)).unwrap();
            })
        });
    }
    group.finish();
    drop(engine);
    drop(cluster);

    // 3: commit wait as ε varies, one and two groups.
    let mut wait_rows = Vec::new();
    for epsilon_ms in EPSILONS_MS {
        let dir = tempfile::tempdir().unwrap();
        let epsilon = Duration::from_millis(epsilon_ms);
        let cluster = runtime.block_on(open(dir.path(), epsilon, 2));
        let engine = cluster.engine(1);
        for k in [1u64, 2] {
            let e = &engine;
            let base = k * 1_000_000;
            latencies(&runtime, base, WARM_UP_TXNS, |row| write(e, k, row));
            let before = commit_wait_totals(&cluster, 2);
            let lat = latencies(&runtime, base + WARM_UP_TXNS, WAIT_TXNS, |row| {
                write(e, k, row)
            });
            let after = commit_wait_totals(&cluster, 2);
            let commits = after.0.saturating_sub(before.0);
            let waited = after.1.saturating_sub(before.1);
            wait_rows.push((epsilon_ms, k, lat, commits, waited));
        }
        drop(engine);
        drop(cluster);
    }
    println!();
    println!("Commit wait as ε varies (fsync; {WAIT_TXNS} sequential commits each)");
    println!(
        "| ε ms | groups | mean ms | p50 ms | p99 ms | commits counted | wait per commit ms | 2ε ms | wait / mean latency |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (epsilon_ms, k, lat, commits, waited) in &wait_rows {
        let per_commit = waited.checked_div(*commits as u32).unwrap_or_default();
        println!(
            "| {epsilon_ms} | {k} | {} | {} | {} | {commits} | {} | {} | {:.0}% |",
            ms(mean(lat)),
            ms(percentile(lat, 0.5)),
            ms(percentile(lat, 0.99)),
            ms(per_commit),
            2 * epsilon_ms,
            100.0 * per_commit.as_secs_f64() / mean(lat).as_secs_f64(),
        );
    }

    // 4: strong reads under writes.
    loaded_reads(&runtime);
}

/// Latencies of `LATENCY_TXNS` sequential strong reads of one key of
/// table 100 while `CLIENTS` writers commit to other rows of it (each
/// writer bounded by `LOAD_TXNS` and the reads' end), sorted.
fn reads_under_writes(runtime: &Runtime, engine: &ClusterEngine) -> Vec<Duration> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (engine, stop) = (engine.clone(), stop.clone());
            runtime.spawn(async move {
                for n in 0..LOAD_TXNS {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let _ = write(&engine, 1, 10_000_000 + client * 1_000_000 + n).await;
                }
            })
        })
        .collect();
    let e = engine;
    latencies(runtime, 0, WARM_UP_TXNS, |row| read(e, 1, row));
    let lat = latencies(runtime, 0, LATENCY_TXNS, |row| read(e, 1, row));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        runtime.block_on(writer).unwrap();
    }
    lat
}

/// Table 4: strong reads under writes, one group against two.
fn loaded_reads(runtime: &Runtime) {
    println!();
    println!(
        "Strong read of one key while {CLIENTS} writers commit to its group (ε = {LOADED_READ_EPSILON:?}, {LATENCY_TXNS} reads)"
    );
    println!("| cluster | read snapshot | mean µs | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|");
    let us = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e6);
    let mut means = Vec::new();
    for (groups, snapshot) in [(1u32, "LastTS()"), (2, "TT.now().latest")] {
        let dir = tempfile::tempdir().unwrap();
        let cluster = runtime.block_on(open(dir.path(), LOADED_READ_EPSILON, groups));
        let engine = cluster.engine(1);
        runtime.block_on(write(&engine, 1, 0)).unwrap();
        let lat = reads_under_writes(runtime, &engine);
        println!(
            "| {groups} group{} | {snapshot} | {} | {} | {} |",
            if groups == 1 { "" } else { "s" },
            us(mean(&lat)),
            us(percentile(&lat, 0.5)),
            us(percentile(&lat, 0.99)),
        );
        means.push(mean(&lat));
        drop(engine);
        drop(cluster);
    }
    println!(
        "mean latency, two groups / one group: {:.0}x",
        means[1].as_secs_f64() / means[0].as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
