//! Replicated writes: a one-key read-write transaction committed through a
//! three-replica group running in one process (`LocalCluster`: three nodes,
//! three RocksDB directories, the in-process network), with every Paxos
//! persist fsynced and without fsync; and the time writes take to resume
//! after the leader is stopped.
//!
//! ε is zero here, so commit wait adds nothing: the numbers are the cost of
//! the protocol and the disk (with ε = 1 ms every commit waits about 2 ms
//! more).
//!
//! - `replication/write/{fsync,no_fsync}`: criterion's timing of one commit;
//!   the bench also prints p50/p99 over 500 commits of each kind;
//! - failover: printed, the time from stopping the leader until a write
//!   through a survivor commits (leases of 2 s, election timeouts of
//!   0.5–1 s), three times.
//!
//! Run with `cargo bench -p meridian-benches --bench replication`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use meridian_server::clock::SystemClock;
use meridian_server::cluster::{LocalCluster, LocalClusterOptions};
use meridian_storage::Durability;
use meridian_txn::{Transaction, TxnEngine, TxnMode};

async fn open(dir: &std::path::Path, durability: Durability) -> LocalCluster {
    let clock = Arc::new(SystemClock::new(Duration::ZERO));
    let options = LocalClusterOptions {
        durability,
        ..LocalClusterOptions::default()
    };
    LocalCluster::open(dir, clock, options).await.unwrap()
}

async fn write<E: TxnEngine>(engine: &E, i: u64) -> Result<(), meridian_error::Error> {
    let mut txn = engine.begin(TxnMode::ReadWrite).await?;
    txn.put(i.to_be_bytes().to_vec(), vec![7; 100]).await?;
    txn.commit().await.map(drop)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("replication/write");
    for (name, durability) in [
        ("fsync", Durability::Sync),
        ("no_fsync", Durability::Buffered),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cluster = runtime.block_on(open(dir.path(), durability));
        let leader = runtime
            .block_on(cluster.wait_for_leader(Duration::from_secs(30)))
            .unwrap();
        let engine = cluster.engine(leader);
        let mut latencies: Vec<Duration> = (0..500u64)
            .map(|i| {
                let start = Instant::now();
                runtime.block_on(write(&engine, i)).unwrap();
                start.elapsed()
            })
            .collect();
        latencies.sort();
        println!(
            "replication/write/{name}: p50 {:?}, p99 {:?} over {} commits",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.len()
        );
        let mut i = 1_000_000u64;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                i += 1;
                runtime.block_on(write(&engine, i)).unwrap();
            })
        });
        drop(engine);
        drop(cluster);
    }
    group.finish();

    // Failover: stop the leader, time until a write commits again.
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = runtime.block_on(open(dir.path(), Durability::Sync));
    for round in 0..3u64 {
        let leader = runtime
            .block_on(cluster.wait_for_leader(Duration::from_secs(30)))
            .unwrap();
        let survivor = (1..=3).find(|&n| n != leader).unwrap();
        let engine = cluster.engine(survivor);
        cluster.stop(leader);
        let stopped = Instant::now();
        let mut k = round * 1_000;
        while runtime.block_on(write(&engine, k)).is_err() {
            k += 1;
        }
        println!(
            "replication/failover: writes resumed {:?} after the leader stopped",
            stopped.elapsed()
        );
        drop(engine);
        runtime.block_on(cluster.start(leader)).unwrap();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
