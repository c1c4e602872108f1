//! MVCC on RocksDB: point reads, range scans, versioned write batches.
//!
//! Run with `cargo bench -p meridian-benches --bench storage`; numbers are
//! recorded in docs/benchmarks.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use meridian_storage::{
    Durability, Engine, KeyRange, Mvcc, RocksEngine, RocksOptions, ScanDirection,
};
use meridian_truetime::Timestamp;

/// Rows loaded before reading.
const ROWS: u64 = 100_000;
/// Versions written per row (so reads skip older versions).
const VERSIONS: u64 = 3;

fn key(i: u64) -> Vec<u8> {
    format!("/t/1/{i:010}").into_bytes()
}

fn loaded() -> (tempfile::TempDir, Mvcc<RocksEngine>) {
    let dir = tempfile::tempdir().unwrap();
    let mvcc = Mvcc::new(RocksEngine::open(dir.path(), RocksOptions::default()).unwrap()).unwrap();
    for version in 0..VERSIONS {
        for chunk in (0..ROWS).step_by(1000) {
            let rows = (chunk..chunk + 1000).map(|i| (key(i), Some(vec![version as u8; 100])));
            mvcc.write(
                Timestamp::from_nanos(10 * (version + 1)),
                rows,
                Durability::Buffered,
            )
            .unwrap();
        }
    }
    mvcc.engine().flush().unwrap();
    (dir, mvcc)
}

fn reads(c: &mut Criterion) {
    let (_dir, mvcc) = loaded();
    let read_ts = Timestamp::from_nanos(25); // sees the second of three versions
    let mut group = c.benchmark_group("mvcc_read");
    let mut i = 0u64;
    group.bench_function("point_get", |b| {
        b.iter(|| {
            i = (i + 7919) % ROWS;
            black_box(mvcc.get(&key(i), read_ts).unwrap())
        })
    });
    for rows in [10usize, 100] {
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(format!("scan_{rows}_rows"), |b| {
            b.iter(|| {
                i = (i + 7919) % (ROWS - 1000);
                let range = KeyRange::new(key(i), key(i + 1000));
                black_box(
                    mvcc.scan(&range, read_ts, ScanDirection::Forward, Some(rows))
                        .unwrap(),
                )
            })
        });
        group.bench_function(format!("reverse_scan_{rows}_rows"), |b| {
            b.iter(|| {
                i = (i + 7919) % (ROWS - 1000);
                let range = KeyRange::new(key(i), key(i + 1000));
                black_box(
                    mvcc.scan(&range, read_ts, ScanDirection::Reverse, Some(rows))
                        .unwrap(),
                )
            })
        });
    }
    group.finish();
}

fn writes(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mvcc = Mvcc::new(RocksEngine::open(dir.path(), RocksOptions::default()).unwrap()).unwrap();
    let mut group = c.benchmark_group("mvcc_write_batch_10_keys");
    group.throughput(Throughput::Elements(10));
    let mut ts = 0u64;
    for (name, durability) in [
        ("buffered", Durability::Buffered),
        ("synced", Durability::Sync),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    ts += 1;
                    let rows: Vec<_> = (0..10)
                        .map(|k| (key(ts * 10 + k), Some(vec![7u8; 100])))
                        .collect();
                    (Timestamp::from_nanos(ts), rows)
                },
                |(commit_ts, rows)| mvcc.write(commit_ts, rows, durability).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, reads, writes);
criterion_main!(benches);
