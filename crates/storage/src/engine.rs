//! The [`Engine`] trait: an ordered, durable key-value store in three spaces.
//!
//! Everything Meridian keeps on disk goes through this trait, in one of three
//! [`Space`]s (RocksDB column families): MVCC row data, the Paxos log, and
//! metadata such as Paxos hard state. A [`WriteBatch`] may touch several spaces
//! and is applied atomically: applying a committed log entry and recording the
//! applied index happen together or not at all.
//!
//! Durability is chosen per batch ([`Durability`]): `Sync` returns only after
//! the write-ahead log is fsynced, `Buffered` may lose the batch in a crash
//! (but never tears it). See `docs/architecture/storage.md` for which writes
//! use which.

use std::ops::Bound;

use meridian_error::Result;

/// One of the key spaces of an engine (a RocksDB column family).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Space {
    /// MVCC versions of row and catalog data.
    Data,
    /// The Paxos log of the groups this node replicates.
    Log,
    /// Metadata and Paxos hard state (promised ballots, applied indexes, GC horizon).
    Meta,
}

impl Space {
    /// Every space, in a fixed order.
    pub const ALL: [Space; 3] = [Space::Data, Space::Log, Space::Meta];

    /// The RocksDB column family holding this space.
    pub fn cf_name(self) -> &'static str {
        match self {
            Space::Data => "mvcc",
            Space::Log => "paxos_log",
            Space::Meta => "meta",
        }
    }
}

/// Whether a write must be on stable storage before `write` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync the write-ahead log before returning: survives a crash.
    Sync,
    /// Written to the log without fsync: may be lost in a crash, never torn.
    Buffered,
}

/// The order in which a scan returns keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanDirection {
    /// Ascending key order.
    Forward,
    /// Descending key order.
    Reverse,
}

/// A range of keys: `start` and `end` bounds, either of which may be unbounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    /// The lower bound.
    pub start: Bound<Vec<u8>>,
    /// The upper bound.
    pub end: Bound<Vec<u8>>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        Self {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        }
    }

    /// The half-open range `[start, end)`.
    pub fn new(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        Self {
            start: Bound::Included(start.into()),
            end: Bound::Excluded(end.into()),
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        let end = match prefix_successor(prefix) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        Self {
            start: Bound::Included(prefix.to_vec()),
            end,
        }
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        let after_start = match &self.start {
            Bound::Included(s) => key >= s.as_slice(),
            Bound::Excluded(s) => key > s.as_slice(),
            Bound::Unbounded => true,
        };
        let before_end = match &self.end {
            Bound::Included(e) => key <= e.as_slice(),
            Bound::Excluded(e) => key < e.as_slice(),
            Bound::Unbounded => true,
        };
        after_start && before_end
    }

    /// Whether no key can lie in the range.
    pub fn is_empty(&self) -> bool {
        match (&self.start, &self.end) {
            (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s), Bound::Excluded(e)) => s >= e,
            (Bound::Excluded(s), Bound::Included(e)) => s >= e,
            // (s, e) exclusive on both sides is empty when e is s's successor.
            (Bound::Excluded(s), Bound::Excluded(e)) => {
                e.as_slice() <= s.as_slice()
                    || (e.len() == s.len() + 1 && e.starts_with(s) && e[s.len()] == 0)
            }
        }
    }

    /// The same range as `[lower, upper)` byte strings, the form RocksDB's
    /// iterator bounds take: an excluded start `s` becomes `s\0`, an included
    /// end `e` becomes `e\0`. `None` means unbounded.
    pub fn to_half_open(&self) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let lower = match &self.start {
            Bound::Included(s) => Some(s.clone()),
            Bound::Excluded(s) => Some(successor(s)),
            Bound::Unbounded => None,
        };
        let upper = match &self.end {
            Bound::Included(e) => Some(successor(e)),
            Bound::Excluded(e) => Some(e.clone()),
            Bound::Unbounded => None,
        };
        (lower, upper)
    }
}

/// The smallest key greater than `key`: `key` followed by a zero byte.
pub fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// The smallest key greater than every key starting with `prefix`, or `None`
/// when there is none (the prefix is empty or all `0xff`).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// One operation of a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Sets `key` to `value`.
    Put {
        /// The space written.
        space: Space,
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Removes `key`.
    Delete {
        /// The space written.
        space: Space,
        /// The key.
        key: Vec<u8>,
    },
    /// Removes every key in `[start, end)`.
    DeleteRange {
        /// The space written.
        space: Space,
        /// First key removed.
        start: Vec<u8>,
        /// First key kept.
        end: Vec<u8>,
    },
}

/// An atomic group of writes, possibly across spaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The writes, applied in order.
    ops: Vec<WriteOp>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put of `key` = `value` in `space`.
    pub fn put(&mut self, space: Space, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Put {
            space,
            key: key.into(),
            value: value.into(),
        });
    }

    /// Adds a delete of `key` in `space`.
    pub fn delete(&mut self, space: Space, key: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Delete {
            space,
            key: key.into(),
        });
    }

    /// Adds a delete of every key in `[start, end)` of `space`.
    pub fn delete_range(
        &mut self,
        space: Space,
        start: impl Into<Vec<u8>>,
        end: impl Into<Vec<u8>>,
    ) {
        self.ops.push(WriteOp::DeleteRange {
            space,
            start: start.into(),
            end: end.into(),
        });
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }
}

/// A key and its value.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// The iterator a scan returns. An `Err` item ends the scan.
pub type ScanIter<'a> = Box<dyn Iterator<Item = Result<KvPair>> + 'a>;

/// An ordered key-value store with atomic, optionally synced, batches.
pub trait Engine: Send + Sync {
    /// The value of `key` in `space`, if any.
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// The keys of `range` in `space`, in `direction` order. The scan sees a
    /// consistent view of the space as of some point during the call or later.
    fn scan(&self, space: Space, range: &KeyRange, direction: ScanDirection) -> ScanIter<'_>;

    /// Applies `batch` atomically, and durably when asked.
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<()>;

    /// Flushes buffered writes to the engine's files (a no-op in memory).
    fn flush(&self) -> Result<()>;
}

/// Forwards the engine contract through a pointer, so `Mvcc` can sit over a
/// shared (`Arc<E>`), borrowed (`&E`) or type-erased (`Box<dyn Engine>`) engine.
macro_rules! forward_engine {
    ($($ptr:ty),*) => {$(
        impl<E: Engine + ?Sized> Engine for $ptr {
            fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>> {
                (**self).get(space, key)
            }
            fn scan(&self, space: Space, range: &KeyRange, direction: ScanDirection) -> ScanIter<'_> {
                (**self).scan(space, range, direction)
            }
            fn write(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
                (**self).write(batch, durability)
            }
            fn flush(&self) -> Result<()> {
                (**self).flush()
            }
        }
    )*};
}

forward_engine!(&E, Box<E>, std::sync::Arc<E>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges_cover_exactly_the_prefix() {
        let r = KeyRange::prefix(b"ab");
        assert!(r.contains(b"ab"));
        assert!(r.contains(b"ab\xff\xff"));
        assert!(!r.contains(b"ac"));
        assert!(!r.contains(b"aa\xff"));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(prefix_successor(b""), None);
        assert_eq!(KeyRange::prefix(b"\xff").end, Bound::Unbounded);
    }

    #[test]
    fn emptiness_and_half_open_form() {
        assert!(KeyRange::new("b", "a").is_empty());
        assert!(KeyRange::new("a", "a").is_empty());
        assert!(!KeyRange::new("a", "b").is_empty());
        let tight = KeyRange {
            start: Bound::Excluded(b"a".to_vec()),
            end: Bound::Excluded(b"a\0".to_vec()),
        };
        assert!(tight.is_empty());
        let r = KeyRange {
            start: Bound::Excluded(b"a".to_vec()),
            end: Bound::Included(b"c".to_vec()),
        };
        assert_eq!(
            r.to_half_open(),
            (Some(b"a\0".to_vec()), Some(b"c\0".to_vec()))
        );
        assert_eq!(KeyRange::all().to_half_open(), (None, None));
    }
}
