//! Lock table benchmarks: the per-statement cost of strict 2PL.
//!
//! - `lock_table/acquire_release/keys/N`: one uncontended transaction begins,
//!   takes X locks on N distinct keys and releases them all (the hot path of
//!   every read-write transaction), on a table already holding 10,000 key
//!   locks of another transaction.
//! - `lock_table/range/key_under_1000_ranges`: an S key lock (and its
//!   release) where 1,000 shared range locks are held: the segment-map
//!   lookup that keeps key requests from scanning range locks.
//! - `lock_table/range/range_over_100_keys`: an S range lock over 100 held S
//!   key locks (it must check each of them).
//! - `lock_table/handoff`: an X lock passed from a committing holder to a
//!   waiter (the wakeup path).
//! - `lock_manager/acquire_release/1`: the async wrapper's mutex and future
//!   overhead for one uncontended lock.
//!
//! Run with `cargo bench -p meridian-benches --bench lock_table`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use meridian_truetime::Timestamp;
use meridian_txn::{LockManager, LockMode, LockTable, LockTarget, TxnId};

/// Keys as a Meridian row key would look: a table prefix and a big-endian id.
fn key(i: u64) -> Vec<u8> {
    let mut key = b"/t/1/".to_vec();
    key.extend_from_slice(&i.to_be_bytes());
    key
}

/// A table with one long-lived transaction (id 0) holding S locks on
/// `keys` keys (ids 0, 2, 4, ...: the even ones).
fn background_table(keys: u64) -> LockTable {
    let mut table = LockTable::new();
    table.begin(TxnId(0), Timestamp::from_nanos(1)).unwrap();
    for i in 0..keys {
        acquire(&mut table, 0, LockTarget::Key(key(i * 2)), LockMode::Shared);
    }
    table
}

/// Acquires a lock that must be granted at once.
fn acquire(table: &mut LockTable, txn: u64, target: LockTarget, mode: LockMode) {
    let acquired = table
        .acquire(
            TxnId(txn),
            target,
            mode,
            Timestamp::from_nanos(1),
            Timestamp::MAX,
        )
        .unwrap();
    assert!(acquired.is_granted());
}

fn acquire_release(c: &mut Criterion) {
    let mut group = c.benchmark_group("lock_table/acquire_release/keys");
    for n in [1u64, 10] {
        let mut table = background_table(10_000);
        // Odd keys: free of the background locks.
        let keys: Vec<Vec<u8>> = (0..n).map(|i| key(i * 2 + 1)).collect();
        let mut txn = 1;
        group.bench_with_input(BenchmarkId::from_parameter(n), &keys, |b, keys| {
            b.iter(|| {
                table.begin(TxnId(txn), Timestamp::from_nanos(txn)).unwrap();
                for key in keys {
                    acquire(
                        &mut table,
                        txn,
                        LockTarget::Key(key.clone()),
                        LockMode::Exclusive,
                    );
                }
                black_box(table.release_all(TxnId(txn)));
                txn += 1;
            })
        });
    }
    group.finish();
}

fn range_checks(c: &mut Criterion) {
    let mut group = c.benchmark_group("lock_table/range");

    // 1,000 overlapping shared ranges, each [i, i + 50) over the key ids.
    let mut table = LockTable::new();
    table.begin(TxnId(0), Timestamp::from_nanos(1)).unwrap();
    for i in 0..1_000 {
        let range = LockTarget::range(key(i * 10), key(i * 10 + 50));
        acquire(&mut table, 0, range, LockMode::Shared);
    }
    let mut txn = 1;
    let probe = key(5_005);
    group.bench_function("key_under_1000_ranges", |b| {
        b.iter(|| {
            table.begin(TxnId(txn), Timestamp::from_nanos(txn)).unwrap();
            acquire(
                &mut table,
                txn,
                LockTarget::Key(probe.clone()),
                LockMode::Shared,
            );
            black_box(table.release_all(TxnId(txn)));
            txn += 1;
        })
    });

    // A shared range over 100 held shared key locks.
    let mut table = background_table(10_000);
    let mut txn = 1;
    group.bench_function("range_over_100_keys", |b| {
        b.iter(|| {
            table.begin(TxnId(txn), Timestamp::from_nanos(txn)).unwrap();
            let range = LockTarget::range(key(1_000), key(1_200));
            acquire(&mut table, txn, range, LockMode::Shared);
            black_box(table.release_all(TxnId(txn)));
            txn += 1;
        })
    });
    group.finish();
}

fn handoff(c: &mut Criterion) {
    // The older transaction holds the lock; a younger one queues; the holder
    // commits and the waiter is granted; the waiter becomes the next holder.
    let mut table = LockTable::new();
    let target = key(7);
    let mut holder = 1;
    table
        .begin(TxnId(holder), Timestamp::from_nanos(holder))
        .unwrap();
    acquire(
        &mut table,
        holder,
        LockTarget::Key(target.clone()),
        LockMode::Exclusive,
    );
    c.bench_function("lock_table/handoff", |b| {
        b.iter(|| {
            let waiter = holder + 1;
            table
                .begin(TxnId(waiter), Timestamp::from_nanos(waiter))
                .unwrap();
            let acquired = table
                .acquire(
                    TxnId(waiter),
                    LockTarget::Key(target.clone()),
                    LockMode::Exclusive,
                    Timestamp::from_nanos(1),
                    Timestamp::MAX,
                )
                .unwrap();
            assert!(!acquired.is_granted());
            let woken = table.release_all(TxnId(holder));
            assert_eq!(woken.granted, [TxnId(waiter)]);
            holder = waiter;
        })
    });
}

fn manager(c: &mut Criterion) {
    let manager = LockManager::new();
    let target = key(3);
    let mut txn = 1;
    c.bench_function("lock_manager/acquire_release/1", |b| {
        b.iter(|| {
            manager
                .begin(TxnId(txn), Timestamp::from_nanos(txn))
                .unwrap();
            let wait = manager
                .acquire(
                    TxnId(txn),
                    LockTarget::Key(target.clone()),
                    LockMode::Exclusive,
                    Timestamp::from_nanos(1),
                    Timestamp::MAX,
                )
                .unwrap();
            assert!(wait.is_granted_now());
            drop(wait);
            black_box(manager.release_all(TxnId(txn)));
            txn += 1;
        })
    });
}

criterion_group!(benches, acquire_release, range_checks, handoff, manager);
criterion_main!(benches);
