//! Multi-version concurrency control over any [`Engine`].
//!
//! Every committed write is a *version* of its key at the transaction's commit
//! timestamp; a read at timestamp `t` sees, for each key, the newest version
//! whose timestamp is `<= t` (Spanner §4.1: reads at a timestamp). A delete is
//! a *tombstone* version, so reads below the delete still see the old value.
//! Old versions are removed by garbage collection below a *horizon*; reads
//! below the horizon are refused, never answered from a partial history.
//!
//! # Layout in [`Space::Data`]
//!
//! ```text
//! key   = escape(user_key) 0x00 0x01 !commit_ts (8 bytes, big-endian, inverted)
//! value = 0x01 bytes...     a value
//!       | 0x00              a tombstone
//! ```
//!
//! `escape` writes 0x00 as 0x00 0xff, so the 0x00 0x01 terminator ends the user
//! key unambiguously and a key sorts before every key it is a proper prefix
//! of: all versions of one user key are contiguous, user keys keep their byte
//! order, and the inverted timestamp puts a key's newest version first. A
//! point read is then one seek to `escape(key) 0x00 0x01 !t`.
//!
//! # What this layer does not do
//!
//! It does not decide *which* timestamp a read or write may use: locking,
//! commit timestamps and safe time belong to the transaction layers above.
//! It trusts the caller to keep readers above the GC horizon it sets
//! ([`Mvcc::gc`] records the horizon durably and then rejects older reads).

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use meridian_error::{Error, Result};
use meridian_truetime::Timestamp;

use crate::engine::{Durability, Engine, KeyRange, KvPair, ScanDirection, Space, WriteBatch};

/// Marks a value version.
const VALUE_TAG: u8 = 0x01;
/// Marks a tombstone version.
const TOMBSTONE_TAG: u8 = 0x00;
/// Ends an escaped user key.
const TERMINATOR: [u8; 2] = [0x00, 0x01];
/// Sorts after every version of the escaped key it follows.
const AFTER_VERSIONS: [u8; 2] = [0x00, 0x02];
/// The metadata key holding the GC horizon.
const GC_HORIZON_KEY: &[u8] = b"mvcc/gc_horizon";
/// How many deletes garbage collection puts in one batch.
const GC_BATCH: usize = 1024;

/// What garbage collection did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// User keys examined.
    pub keys: u64,
    /// Versions (values and tombstones) removed.
    pub versions_removed: u64,
}

/// The MVCC layer over an engine.
#[derive(Debug)]
pub struct Mvcc<E: Engine> {
    /// The engine holding the versions.
    engine: E,
    /// Reads below this timestamp are refused: their versions may be gone.
    gc_horizon: AtomicU64,
}

impl<E: Engine> Mvcc<E> {
    /// The MVCC layer over `engine`, loading the GC horizon it recorded.
    pub fn new(engine: E) -> Result<Self> {
        let horizon = match engine.get(Space::Meta, GC_HORIZON_KEY)? {
            Some(bytes) => decode_timestamp(&bytes, "GC horizon")?,
            None => Timestamp::MIN,
        };
        Ok(Self {
            engine,
            gc_horizon: AtomicU64::new(horizon.as_nanos()),
        })
    }

    /// The engine underneath.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Reads below this timestamp are refused.
    pub fn gc_horizon(&self) -> Timestamp {
        Timestamp::from_nanos(self.gc_horizon.load(Ordering::SeqCst))
    }

    /// Writes versions at `commit_ts` (`None` = a tombstone) as one atomic
    /// batch with the given durability.
    pub fn write<K, V>(
        &self,
        commit_ts: Timestamp,
        writes: impl IntoIterator<Item = (K, Option<V>)>,
        durability: Durability,
    ) -> Result<()>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut batch = WriteBatch::new();
        for (key, value) in writes {
            put_version(
                &mut batch,
                key.as_ref(),
                commit_ts,
                value.as_ref().map(|v| v.as_ref()),
            );
        }
        self.engine.write(batch, durability)
    }

    /// The value of `key` as of `read_ts`: its newest version `<= read_ts`,
    /// or `None` if that is a tombstone or there is none.
    pub fn get(&self, key: &[u8], read_ts: Timestamp) -> Result<Option<Vec<u8>>> {
        self.check_readable(read_ts)?;
        let escaped = escape(key);
        let mut start = Vec::with_capacity(escaped.len() + 10);
        start.extend_from_slice(&escaped);
        start.extend_from_slice(&TERMINATOR);
        start.extend_from_slice(&invert(read_ts));
        let mut end = escaped;
        end.extend_from_slice(&AFTER_VERSIONS);
        let range = KeyRange {
            start: Bound::Included(start),
            end: Bound::Excluded(end),
        };
        match self
            .engine
            .scan(Space::Data, &range, ScanDirection::Forward)
            .next()
        {
            Some(entry) => {
                let (_, value) = entry?;
                decode_value(&value, key)
            }
            None => Ok(None),
        }
    }

    /// The visible key-value pairs of `range` as of `read_ts`, in `direction`
    /// order, at most `limit` of them (`None`: all). To page through a large
    /// range, scan again from just past the last key returned.
    pub fn scan(
        &self,
        range: &KeyRange,
        read_ts: Timestamp,
        direction: ScanDirection,
        limit: Option<usize>,
    ) -> Result<Vec<KvPair>> {
        self.check_readable(read_ts)?;
        let limit = limit.unwrap_or(usize::MAX);
        let mut rows = Vec::new();
        if limit == 0 || range.is_empty() {
            return Ok(rows);
        }
        let versions = self
            .engine
            .scan(Space::Data, &versioned_range(range), direction);
        match direction {
            ScanDirection::Forward => {
                // Versions of a key arrive newest first: the first one at or
                // below read_ts decides the key, the rest are skipped.
                let mut decided: Option<Vec<u8>> = None;
                for entry in versions {
                    let (raw_key, value) = entry?;
                    let (key, ts) = decode_key(&raw_key)?;
                    if ts > read_ts || decided.as_deref() == Some(key.as_slice()) {
                        continue;
                    }
                    if let Some(value) = decode_value(&value, &key)? {
                        rows.push((key.clone(), value));
                        if rows.len() >= limit {
                            break;
                        }
                    }
                    decided = Some(key);
                }
            }
            ScanDirection::Reverse => {
                // Versions of a key arrive oldest first: the last one at or
                // below read_ts decides the key, once the key changes.
                let mut current: Option<(Vec<u8>, Option<Vec<u8>>)> = None;
                for entry in versions {
                    let (raw_key, value) = entry?;
                    let (key, ts) = decode_key(&raw_key)?;
                    if current.as_ref().map(|(k, _)| k) != Some(&key) {
                        if let Some((done_key, Some(done_value))) = current.take() {
                            rows.push((done_key, done_value));
                            if rows.len() >= limit {
                                return Ok(rows);
                            }
                        }
                        current = Some((key.clone(), None));
                    }
                    if ts <= read_ts {
                        let visible = decode_value(&value, &key)?;
                        current = Some((key, visible));
                    }
                }
                if let Some((key, Some(value))) = current {
                    rows.push((key, value));
                }
            }
        }
        Ok(rows)
    }

    /// Removes the versions no read at or above `horizon` can see: for every
    /// key, all versions older than its newest version `<= horizon`, and that
    /// version too if it is a tombstone. Versions above the horizon stay.
    /// Records the horizon durably first, so reads below it are refused even
    /// if collection is interrupted. The horizon never moves backwards.
    pub fn gc(&self, horizon: Timestamp) -> Result<GcStats> {
        if horizon > self.gc_horizon() {
            let mut batch = WriteBatch::new();
            batch.put(Space::Meta, GC_HORIZON_KEY, horizon.to_be_bytes());
            self.engine.write(batch, Durability::Sync)?;
            self.gc_horizon
                .fetch_max(horizon.as_nanos(), Ordering::SeqCst);
        }
        let horizon = self.gc_horizon();
        let mut stats = GcStats::default();
        let mut batch = WriteBatch::new();
        // The key being examined, and whether its newest version at or below
        // the horizon has been seen: every older version is garbage.
        let mut current_key: Option<Vec<u8>> = None;
        let mut below_seen = false;
        for entry in self
            .engine
            .scan(Space::Data, &KeyRange::all(), ScanDirection::Forward)
        {
            let (raw_key, value) = entry?;
            let (key, ts) = decode_key(&raw_key)?;
            if current_key.as_deref() != Some(key.as_slice()) {
                stats.keys += 1;
                below_seen = false;
                current_key = Some(key.clone());
            }
            if ts > horizon {
                continue;
            }
            // The newest version at or below the horizon stays, unless it is
            // a tombstone (then nothing at or below the horizon is visible).
            let garbage = below_seen || decode_value(&value, &key)?.is_none();
            below_seen = true;
            if garbage {
                batch.delete(Space::Data, raw_key);
                stats.versions_removed += 1;
                if batch.len() >= GC_BATCH {
                    self.engine
                        .write(std::mem::take(&mut batch), Durability::Buffered)?;
                }
            }
        }
        if !batch.is_empty() {
            self.engine.write(batch, Durability::Buffered)?;
        }
        Ok(stats)
    }

    /// Fails if a read at `read_ts` could miss garbage-collected versions.
    pub fn check_readable(&self, read_ts: Timestamp) -> Result<()> {
        let horizon = self.gc_horizon();
        if read_ts < horizon {
            return Err(Error::InvalidInput(format!(
                "read timestamp {read_ts} is below the garbage-collection horizon {horizon}: \
                 the versions it needs may be gone"
            )));
        }
        Ok(())
    }
}

/// Adds a version of `key` at `commit_ts` to `batch` (`None` = tombstone), for
/// callers that commit MVCC writes atomically with other state.
pub fn put_version(batch: &mut WriteBatch, key: &[u8], commit_ts: Timestamp, value: Option<&[u8]>) {
    let mut raw_key = escape(key);
    raw_key.extend_from_slice(&TERMINATOR);
    raw_key.extend_from_slice(&invert(commit_ts));
    let encoded = match value {
        Some(value) => {
            let mut encoded = Vec::with_capacity(value.len() + 1);
            encoded.push(VALUE_TAG);
            encoded.extend_from_slice(value);
            encoded
        }
        None => vec![TOMBSTONE_TAG],
    };
    batch.put(Space::Data, raw_key, encoded);
}

/// The range of raw keys (in [`Space::Data`]) holding the versions of user
/// keys in `range`.
pub fn versioned_range(range: &KeyRange) -> KeyRange {
    let after = |key: &[u8]| {
        let mut k = escape(key);
        k.extend_from_slice(&AFTER_VERSIONS);
        k
    };
    KeyRange {
        start: match &range.start {
            Bound::Included(s) => Bound::Included(escape(s)),
            Bound::Excluded(s) => Bound::Included(after(s)),
            Bound::Unbounded => Bound::Unbounded,
        },
        end: match &range.end {
            Bound::Included(e) => Bound::Excluded(after(e)),
            Bound::Excluded(e) => Bound::Excluded(escape(e)),
            Bound::Unbounded => Bound::Unbounded,
        },
    }
}

/// The user key of a raw version key (a key of [`Space::Data`] written by
/// [`put_version`]); `Err` for anything else.
pub fn version_user_key(raw_key: &[u8]) -> Result<Vec<u8>> {
    decode_key(raw_key).map(|(key, _)| key)
}

/// The commit timestamp of a raw version key (a key of [`Space::Data`]
/// written by [`put_version`]); `Err` for anything else.
pub fn version_ts(raw_key: &[u8]) -> Result<Timestamp> {
    decode_key(raw_key).map(|(_, ts)| ts)
}

fn escape(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2);
    for &b in key {
        out.push(b);
        if b == 0x00 {
            out.push(0xff);
        }
    }
    out
}

fn invert(ts: Timestamp) -> [u8; 8] {
    (!ts.as_nanos()).to_be_bytes()
}

/// Splits a versioned key into the user key and the version's timestamp.
fn decode_key(raw: &[u8]) -> Result<(Vec<u8>, Timestamp)> {
    let corrupt = || Error::Corruption(format!("malformed MVCC key {raw:02x?}"));
    let mut key = Vec::with_capacity(raw.len());
    let mut i = 0;
    loop {
        match raw.get(i) {
            Some(0x00) => match raw.get(i + 1) {
                Some(0xff) => {
                    key.push(0x00);
                    i += 2;
                }
                Some(0x01) => {
                    i += 2;
                    break;
                }
                _ => return Err(corrupt()),
            },
            Some(&b) => {
                key.push(b);
                i += 1;
            }
            None => return Err(corrupt()),
        }
    }
    let ts: [u8; 8] = raw[i..].try_into().map_err(|_| corrupt())?;
    Ok((key, Timestamp::from_nanos(!u64::from_be_bytes(ts))))
}

fn decode_value(raw: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>> {
    match raw.split_first() {
        Some((&VALUE_TAG, value)) => Ok(Some(value.to_vec())),
        Some((&TOMBSTONE_TAG, [])) => Ok(None),
        _ => Err(Error::Corruption(format!(
            "malformed MVCC value {raw:02x?} of key {key:02x?}"
        ))),
    }
}

fn decode_timestamp(raw: &[u8], what: &str) -> Result<Timestamp> {
    let bytes: [u8; 8] = raw
        .try_into()
        .map_err(|_| Error::Corruption(format!("malformed {what} {raw:02x?}")))?;
    Ok(Timestamp::from_be_bytes(bytes))
}
