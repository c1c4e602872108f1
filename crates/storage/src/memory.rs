//! [`MemoryEngine`]: the in-memory twin of the RocksDB engine, for tests.
//!
//! Same contract as [`RocksEngine`](crate::RocksEngine) except durability:
//! nothing survives the process, and `Durability::Sync` is accepted and
//! ignored. Scans read the map in chunks under a short read lock, so a long
//! scan never blocks writers for its whole length.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use meridian_error::Result;

use crate::engine::{
    Durability, Engine, KeyRange, KvPair, ScanDirection, ScanIter, Space, WriteBatch, WriteOp,
};

/// How many entries a scan copies out per read lock.
const SCAN_CHUNK: usize = 256;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// An in-memory [`Engine`]. Clones share the same data.
#[derive(Clone, Debug, Default)]
pub struct MemoryEngine {
    /// One ordered map per space, indexed like [`Space::ALL`].
    spaces: Arc<RwLock<[Map; 3]>>,
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }
}

fn index(space: Space) -> usize {
    match space {
        Space::Data => 0,
        Space::Log => 1,
        Space::Meta => 2,
    }
}

impl Engine for MemoryEngine {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let spaces = self.spaces.read().expect("memory engine lock poisoned");
        Ok(spaces[index(space)].get(key).cloned())
    }

    fn scan(&self, space: Space, range: &KeyRange, direction: ScanDirection) -> ScanIter<'_> {
        Box::new(MemoryScan {
            spaces: self.spaces.clone(),
            space,
            remaining: range.clone(),
            direction,
            buffer: VecDeque::new(),
            exhausted: false,
        })
    }

    fn write(&self, batch: WriteBatch, _durability: Durability) -> Result<()> {
        let mut spaces = self.spaces.write().expect("memory engine lock poisoned");
        for op in batch.ops() {
            match op {
                WriteOp::Put { space, key, value } => {
                    spaces[index(*space)].insert(key.clone(), value.clone());
                }
                WriteOp::Delete { space, key } => {
                    spaces[index(*space)].remove(key);
                }
                WriteOp::DeleteRange { space, start, end } => {
                    let map = &mut spaces[index(*space)];
                    if start < end {
                        let doomed: Vec<Vec<u8>> = map
                            .range::<[u8], _>((
                                Bound::Included(start.as_slice()),
                                Bound::Excluded(end.as_slice()),
                            ))
                            .map(|(k, _)| k.clone())
                            .collect();
                        for key in doomed {
                            map.remove(&key);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// A scan over a [`MemoryEngine`], refilled a chunk at a time.
struct MemoryScan {
    /// The engine's data.
    spaces: Arc<RwLock<[Map; 3]>>,
    /// The space scanned.
    space: Space,
    /// The part of the range not yet copied into `buffer`.
    remaining: KeyRange,
    /// Scan order.
    direction: ScanDirection,
    /// Entries copied out and not yet returned.
    buffer: VecDeque<KvPair>,
    /// Whether `remaining` holds no more entries.
    exhausted: bool,
}

impl MemoryScan {
    fn refill(&mut self) {
        if self.remaining.is_empty() {
            self.exhausted = true;
            return;
        }
        let spaces = self.spaces.read().expect("memory engine lock poisoned");
        let map = &spaces[index(self.space)];
        let bounds = (self.remaining.start.clone(), self.remaining.end.clone());
        let chunk: Vec<KvPair> = match self.direction {
            ScanDirection::Forward => map
                .range(bounds)
                .take(SCAN_CHUNK)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ScanDirection::Reverse => map
                .range(bounds)
                .rev()
                .take(SCAN_CHUNK)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        if chunk.len() < SCAN_CHUNK {
            self.exhausted = true;
        }
        if let Some((last, _)) = chunk.last() {
            match self.direction {
                ScanDirection::Forward => self.remaining.start = Bound::Excluded(last.clone()),
                ScanDirection::Reverse => self.remaining.end = Bound::Excluded(last.clone()),
            }
        }
        self.buffer.extend(chunk);
    }
}

impl Iterator for MemoryScan {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.exhausted {
            self.refill();
        }
        self.buffer.pop_front().map(Ok)
    }
}
