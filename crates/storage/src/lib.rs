//! Meridian's storage layer: an ordered, durable key-value [`Engine`] with two
//! implementations ([`RocksEngine`] on RocksDB and [`MemoryEngine`] for
//! tests), the [`Mvcc`] layer of timestamped versions on top of it, and the
//! order-preserving [`keycode`] used to build row and index keys.
//!
//! ```text
//!   Mvcc  — versions at commit timestamps, reads at a timestamp, GC
//!    │
//!   Engine — spaces (Data, Log, Meta), atomic batches, Sync or Buffered
//!    ├── RocksEngine  (one column family per space, checksums verified)
//!    └── MemoryEngine (BTreeMaps, for tests)
//! ```
//!
//! Invariants this layer keeps:
//! - a batch is atomic across spaces, and a `Sync` batch is on stable storage
//!   before `write` returns;
//! - damaged data is reported as [`Error::Corruption`](meridian_error::Error)
//!   and never returned as if it were data;
//! - a read at `t` sees exactly the newest version `<= t` of every key, and is
//!   refused below the garbage-collection horizon.
//!
//! This crate reads no clock: timestamps come from the caller. The design and
//! the list of which writes are synced are in `docs/architecture/storage.md`.

mod engine;
pub mod keycode;
mod memory;
mod mvcc;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use engine::{
    prefix_successor, successor, Durability, Engine, KeyRange, KvPair, ScanDirection, ScanIter,
    Space, WriteBatch, WriteOp,
};
pub use memory::MemoryEngine;
pub use mvcc::{put_version, version_ts, version_user_key, versioned_range, GcStats, Mvcc};
#[cfg(feature = "rocksdb")]
pub use rocks::{RocksEngine, RocksOptions};

#[cfg(test)]
mod tests;
