//! Tests of the engine contract and of MVCC, run against both engines.

use std::collections::BTreeMap;
use std::ops::Bound;

use meridian_error::Error;
use meridian_truetime::Timestamp;
use proptest::prelude::*;

use crate::*;

fn ts(n: u64) -> Timestamp {
    Timestamp::from_nanos(n)
}

/// A fresh memory engine and a fresh RocksDB engine (with its directory).
fn engines() -> Vec<(Box<dyn Engine>, Option<tempfile::TempDir>)> {
    #[allow(unused_mut)]
    let mut engines: Vec<(Box<dyn Engine>, Option<tempfile::TempDir>)> =
        vec![(Box::new(MemoryEngine::new()), None)];
    #[cfg(feature = "rocksdb")]
    {
        let dir = tempfile::tempdir().unwrap();
        let rocks = RocksEngine::open(dir.path(), RocksOptions::default()).unwrap();
        engines.push((Box::new(rocks), Some(dir)));
    }
    engines
}

fn keys(engine: &dyn Engine, space: Space, range: &KeyRange, dir: ScanDirection) -> Vec<String> {
    engine
        .scan(space, range, dir)
        .map(|e| String::from_utf8(e.unwrap().0).unwrap())
        .collect()
}

#[test]
fn engine_batches_are_atomic_and_spaces_separate() {
    for (engine, _dir) in engines() {
        let mut batch = WriteBatch::new();
        batch.put(Space::Data, "a", "1");
        batch.put(Space::Log, "a", "log");
        batch.put(Space::Meta, "b", "meta");
        batch.put(Space::Data, "c", "3");
        batch.delete(Space::Data, "c");
        engine.write(batch, Durability::Sync).unwrap();
        assert_eq!(engine.get(Space::Data, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(engine.get(Space::Log, b"a").unwrap(), Some(b"log".to_vec()));
        assert_eq!(engine.get(Space::Meta, b"a").unwrap(), None);
        assert_eq!(engine.get(Space::Data, b"c").unwrap(), None);
    }
}

#[test]
fn engine_scans_respect_bounds_and_direction() {
    for (engine, _dir) in engines() {
        let mut batch = WriteBatch::new();
        for k in ["a", "b", "ba", "c", "d"] {
            batch.put(Space::Data, k, k);
        }
        engine.write(batch, Durability::Buffered).unwrap();
        let fwd = ScanDirection::Forward;
        let rev = ScanDirection::Reverse;
        assert_eq!(
            keys(&*engine, Space::Data, &KeyRange::all(), fwd),
            ["a", "b", "ba", "c", "d"]
        );
        assert_eq!(
            keys(&*engine, Space::Data, &KeyRange::new("b", "d"), rev),
            ["c", "ba", "b"]
        );
        assert_eq!(
            keys(&*engine, Space::Data, &KeyRange::prefix(b"b"), fwd),
            ["b", "ba"]
        );
        let excl = KeyRange {
            start: Bound::Excluded(b"b".to_vec()),
            end: Bound::Included(b"c".to_vec()),
        };
        assert_eq!(keys(&*engine, Space::Data, &excl, fwd), ["ba", "c"]);
        assert_eq!(keys(&*engine, Space::Data, &excl, rev), ["c", "ba"]);
        assert!(keys(&*engine, Space::Data, &KeyRange::new("x", "a"), fwd).is_empty());
        let mut batch = WriteBatch::new();
        batch.delete_range(Space::Data, "b", "c");
        engine.write(batch, Durability::Buffered).unwrap();
        assert_eq!(
            keys(&*engine, Space::Data, &KeyRange::all(), fwd),
            ["a", "c", "d"]
        );
    }
}

#[test]
fn memory_scans_cross_chunk_boundaries() {
    let engine = MemoryEngine::new();
    let mut batch = WriteBatch::new();
    for i in 0..1000u32 {
        batch.put(Space::Data, i.to_be_bytes(), []);
    }
    engine.write(batch, Durability::Buffered).unwrap();
    let fwd: Vec<_> = engine
        .scan(Space::Data, &KeyRange::all(), ScanDirection::Forward)
        .map(|e| e.unwrap().0)
        .collect();
    assert_eq!(fwd.len(), 1000);
    assert!(fwd.windows(2).all(|w| w[0] < w[1]));
    let rev: Vec<_> = engine
        .scan(Space::Data, &KeyRange::all(), ScanDirection::Reverse)
        .map(|e| e.unwrap().0)
        .collect();
    assert_eq!(rev, fwd.into_iter().rev().collect::<Vec<_>>());
}

#[test]
fn mvcc_reads_see_the_newest_version_at_or_below_the_read_timestamp() {
    for (engine, _dir) in engines() {
        let mvcc = Mvcc::new(engine).unwrap();
        mvcc.write(ts(10), [("k", Some("v10"))], Durability::Sync)
            .unwrap();
        mvcc.write(ts(20), [("k", Some("v20"))], Durability::Sync)
            .unwrap();
        mvcc.write(ts(30), [("k", None::<&str>)], Durability::Sync)
            .unwrap();
        assert_eq!(mvcc.get(b"k", ts(9)).unwrap(), None);
        assert_eq!(mvcc.get(b"k", ts(10)).unwrap(), Some(b"v10".to_vec()));
        assert_eq!(mvcc.get(b"k", ts(29)).unwrap(), Some(b"v20".to_vec()));
        assert_eq!(mvcc.get(b"k", ts(30)).unwrap(), None);
        assert_eq!(mvcc.get(b"k", Timestamp::MAX).unwrap(), None);
        // Keys that are prefixes of each other, and keys containing 0x00.
        mvcc.write(
            ts(5),
            [("k\0", Some("nul")), ("kk", Some("kk"))],
            Durability::Sync,
        )
        .unwrap();
        assert_eq!(mvcc.get(b"k\0", ts(40)).unwrap(), Some(b"nul".to_vec()));
        assert_eq!(mvcc.get(b"kk", ts(40)).unwrap(), Some(b"kk".to_vec()));
        assert_eq!(mvcc.get(b"k", ts(20)).unwrap(), Some(b"v20".to_vec()));
    }
}

#[test]
fn mvcc_scans_in_both_directions_with_limits() {
    for (engine, _dir) in engines() {
        let mvcc = Mvcc::new(engine).unwrap();
        mvcc.write(
            ts(10),
            [("a", Some("a1")), ("b", Some("b1")), ("c", Some("c1"))],
            Durability::Sync,
        )
        .unwrap();
        mvcc.write(
            ts(20),
            [("b", None), ("c", Some("c2")), ("d", Some("d2"))],
            Durability::Sync,
        )
        .unwrap();
        let scan = |t, dir, limit| -> Vec<(String, String)> {
            mvcc.scan(&KeyRange::all(), ts(t), dir, limit)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
                .collect()
        };
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        use ScanDirection::*;
        assert_eq!(
            scan(15, Forward, None),
            pairs(&[("a", "a1"), ("b", "b1"), ("c", "c1")])
        );
        assert_eq!(
            scan(25, Forward, None),
            pairs(&[("a", "a1"), ("c", "c2"), ("d", "d2")])
        );
        assert_eq!(
            scan(25, Reverse, None),
            pairs(&[("d", "d2"), ("c", "c2"), ("a", "a1")])
        );
        assert_eq!(
            scan(15, Reverse, Some(2)),
            pairs(&[("c", "c1"), ("b", "b1")])
        );
        assert_eq!(
            scan(25, Forward, Some(2)),
            pairs(&[("a", "a1"), ("c", "c2")])
        );
        assert_eq!(scan(25, Forward, Some(0)), pairs(&[]));
        let some = mvcc
            .scan(&KeyRange::new("b", "d"), ts(25), Forward, None)
            .unwrap();
        assert_eq!(some, vec![(b"c".to_vec(), b"c2".to_vec())]);
    }
}

#[test]
fn gc_keeps_the_newest_visible_version_and_refuses_older_reads() {
    for (engine, _dir) in engines() {
        let mvcc = Mvcc::new(engine).unwrap();
        mvcc.write(
            ts(10),
            [("a", Some("a10")), ("b", Some("b10"))],
            Durability::Sync,
        )
        .unwrap();
        mvcc.write(ts(20), [("a", Some("a20")), ("b", None)], Durability::Sync)
            .unwrap();
        mvcc.write(ts(40), [("a", Some("a40"))], Durability::Sync)
            .unwrap();
        let stats = mvcc.gc(ts(30)).unwrap();
        // a@10 is shadowed by a@20; b@20 is a tombstone, so b@10 and b@20 go.
        assert_eq!(
            stats,
            GcStats {
                keys: 2,
                versions_removed: 3
            }
        );
        assert_eq!(mvcc.get(b"a", ts(30)).unwrap(), Some(b"a20".to_vec()));
        assert_eq!(mvcc.get(b"a", ts(40)).unwrap(), Some(b"a40".to_vec()));
        assert_eq!(mvcc.get(b"b", ts(30)).unwrap(), None);
        assert!(matches!(
            mvcc.get(b"a", ts(29)),
            Err(Error::InvalidInput(_))
        ));
        // The horizon never moves back, and a second pass finds nothing.
        assert_eq!(mvcc.gc(ts(5)).unwrap().versions_removed, 0);
        assert_eq!(mvcc.gc_horizon(), ts(30));
        // The horizon is durable: a new Mvcc over the same engine keeps it.
        let reopened = Mvcc::new(mvcc.engine()).unwrap();
        assert_eq!(reopened.gc_horizon(), ts(30));
    }
}

#[test]
fn malformed_versions_are_reported_as_corruption() {
    let engine = MemoryEngine::new();
    let mut batch = WriteBatch::new();
    batch.put(
        Space::Data,
        b"k\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01".to_vec(),
        b"\x07".to_vec(),
    );
    batch.put(Space::Data, b"truncated".to_vec(), b"\x01".to_vec());
    engine.write(batch, Durability::Buffered).unwrap();
    let mvcc = Mvcc::new(engine).unwrap();
    assert!(matches!(
        mvcc.get(b"k", Timestamp::MAX),
        Err(Error::Corruption(_))
    ));
    let scan = mvcc.scan(
        &KeyRange::all(),
        Timestamp::MAX,
        ScanDirection::Forward,
        None,
    );
    assert!(matches!(scan, Err(Error::Corruption(_))));
}

/// One step of the MVCC model test.
#[derive(Clone, Debug)]
enum Op {
    Write(Vec<(u8, Option<u8>)>),
    Get(u8, u64),
    Scan(u8, u8, u64, bool, Option<usize>),
    Gc(u64),
}

fn op() -> impl Strategy<Value = Op> {
    // Few distinct keys (as 0..6 bytes, some with 0x00) make versions pile up.
    prop_oneof![
        3 => prop::collection::vec((0u8..6, prop::option::weighted(0.8, any::<u8>())), 1..4)
            .prop_map(Op::Write),
        3 => (0u8..6, 0u64..60).prop_map(|(k, t)| Op::Get(k, t)),
        2 => (0u8..6, 0u8..7, 0u64..60, any::<bool>(), prop::option::of(0usize..4))
            .prop_map(|(a, b, t, r, l)| Op::Scan(a, b, t, r, l)),
        1 => (0u64..60).prop_map(Op::Gc),
    ]
}

fn model_key(k: u8) -> Vec<u8> {
    // Keys that are prefixes of one another and contain 0x00.
    [&b""[..], b"\0", b"\0\0", b"a", b"a\0", b"ab"][k as usize].to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// MVCC on both engines matches a plain model: key -> ts -> value.
    #[test]
    fn mvcc_matches_a_model(ops in prop::collection::vec(op(), 1..60)) {
        for (engine, _dir) in engines() {
            let mvcc = Mvcc::new(engine).unwrap();
            let mut model: BTreeMap<Vec<u8>, BTreeMap<u64, Option<Vec<u8>>>> = BTreeMap::new();
            let mut now = 0u64;
            let mut horizon = 0u64;
            let visible = |model: &BTreeMap<Vec<u8>, BTreeMap<u64, Option<Vec<u8>>>>, key: &[u8], t: u64| {
                model.get(key).and_then(|v| v.range(..=t).next_back()).and_then(|(_, v)| v.clone())
            };
            for op in &ops {
                match op {
                    Op::Write(writes) => {
                        now += 1 + (writes.len() as u64 % 3);
                        let writes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = writes
                            .iter()
                            .map(|(k, v)| (model_key(*k), v.map(|v| vec![v])))
                            .collect();
                        mvcc.write(ts(now), writes.clone(), Durability::Buffered).unwrap();
                        for (k, v) in writes {
                            model.entry(k).or_default().insert(now, v);
                        }
                    }
                    Op::Get(k, t) => {
                        let key = model_key(*k);
                        let got = mvcc.get(&key, ts(*t));
                        if *t < horizon {
                            prop_assert!(got.is_err());
                        } else {
                            prop_assert_eq!(got.unwrap(), visible(&model, &key, *t));
                        }
                    }
                    Op::Scan(a, b, t, reverse, limit) => {
                        if *t < horizon {
                            continue;
                        }
                        let start = model_key(*a);
                        let end = if *b == 6 { None } else { Some(model_key(*b)) };
                        let range = KeyRange {
                            start: Bound::Included(start.clone()),
                            end: end.clone().map_or(Bound::Unbounded, Bound::Excluded),
                        };
                        let dir = if *reverse { ScanDirection::Reverse } else { ScanDirection::Forward };
                        let got = mvcc.scan(&range, ts(*t), dir, *limit).unwrap();
                        let mut want: Vec<KvPair> = model
                            .keys()
                            .filter(|k| range.contains(k))
                            .filter_map(|k| visible(&model, k, *t).map(|v| (k.clone(), v)))
                            .collect();
                        if *reverse {
                            want.reverse();
                        }
                        want.truncate(limit.unwrap_or(usize::MAX));
                        prop_assert_eq!(got, want);
                    }
                    Op::Gc(h) => {
                        mvcc.gc(ts(*h)).unwrap();
                        horizon = horizon.max(*h);
                        // The model keeps all versions: reads at or above
                        // the horizon must not notice the difference.
                    }
                }
            }
        }
    }
}
