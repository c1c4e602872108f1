//! [`RocksEngine`]: the [`Engine`] on RocksDB.
//!
//! One column family per [`Space`]. Every option that protects data is on:
//!
//! - block checksums on every SST block, checked on every read
//!   (`verify_checksums`), and a full checksum pass over every live file when
//!   the engine opens ([`RocksOptions::verify_on_open`]), so a damaged file
//!   stops the node at start instead of being served later;
//! - `paranoid_checks`, so RocksDB refuses to open (or goes read-only) on any
//!   inconsistency it finds in its MANIFEST, WAL or files, and WAL files are
//!   tracked in the MANIFEST so a missing one is noticed;
//! - WAL recovery mode `TolerateCorruptedTailRecords`: a torn record at the
//!   very end of the log (a write cut off by a crash, never acknowledged) is
//!   dropped; corruption anywhere else fails the open. The default
//!   point-in-time mode would instead silently stop replay at the damage and
//!   lose acknowledged writes behind it.
//!
//! Errors RocksDB classifies as corruption become
//! [`Error::Corruption`](meridian_error::Error::Corruption), with RocksDB's
//! message (which names the damaged file and offset) and the data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use meridian_error::{Error, Result};
use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBRawIterator, DBRecoveryMode,
    ErrorKind, Options, ReadOptions, WriteOptions, DB,
};

use crate::engine::{
    Durability, Engine, KeyRange, KvPair, ScanDirection, ScanIter, Space, WriteBatch, WriteOp,
};

/// How a [`RocksEngine`] is opened.
#[derive(Clone, Debug)]
pub struct RocksOptions {
    /// Read every live SST file with checksum verification when opening, and
    /// refuse to open if any block is damaged. Costs one sequential read of
    /// the data at start; on by default.
    pub verify_on_open: bool,
    /// Size of the shared block cache, in bytes.
    pub block_cache_bytes: usize,
}

impl Default for RocksOptions {
    fn default() -> Self {
        Self {
            verify_on_open: true,
            block_cache_bytes: 64 << 20,
        }
    }
}

/// A RocksDB-backed [`Engine`]. Clones share the same database.
#[derive(Clone)]
pub struct RocksEngine {
    /// The open database.
    db: Arc<DB>,
    /// Where it lives, for error messages.
    path: PathBuf,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("path", &self.path)
            .finish()
    }
}

impl RocksEngine {
    /// Opens (creating if missing) the database in directory `path`.
    pub fn open(path: impl AsRef<Path>, options: RocksOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::Io(format!("creating data directory {}: {e}", path.display())))?;

        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&rocksdb::Cache::new_lru_cache(options.block_cache_bytes));
        table.set_bloom_filter(10.0, false);
        let mut cf_options = Options::default();
        cf_options.set_block_based_table_factory(&table);
        cf_options.set_compression_type(rocksdb::DBCompressionType::Lz4);

        let mut db_options = cf_options.clone();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_paranoid_checks(true);
        db_options.set_track_and_verify_wals_in_manifest(true);
        db_options.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
        db_options.set_keep_log_file_num(4);

        let descriptors = Space::ALL
            .iter()
            .map(|space| ColumnFamilyDescriptor::new(space.cf_name(), cf_options.clone()));
        let db = DB::open_cf_descriptors(&db_options, &path, descriptors)
            .map_err(|e| convert(&path, "opening", e))?;
        let engine = Self {
            db: Arc::new(db),
            path,
        };
        if options.verify_on_open {
            engine.verify_checksums()?;
        }
        tracing::debug!(path = %engine.path.display(), "opened RocksDB engine");
        Ok(engine)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every key of every space with checksum verification, bypassing
    /// the block cache; fails with [`Error::Corruption`] naming the damaged
    /// file if any block is damaged.
    pub fn verify_checksums(&self) -> Result<()> {
        for space in Space::ALL {
            let mut read = ReadOptions::default();
            read.set_verify_checksums(true);
            read.fill_cache(false);
            read.set_readahead_size(4 << 20);
            let mut iter = self.db.raw_iterator_cf_opt(self.cf(space), read);
            iter.seek_to_first();
            while iter.valid() {
                iter.next();
            }
            iter.status()
                .map_err(|e| convert(&self.path, &format!("verifying {}", space.cf_name()), e))?;
        }
        Ok(())
    }

    fn cf(&self, space: Space) -> &ColumnFamily {
        self.db
            .cf_handle(space.cf_name())
            .expect("every space's column family is created at open")
    }
}

/// Maps a RocksDB error to the workspace error, keeping RocksDB's message
/// (which names the damaged file for corruption) and saying what we were doing.
fn convert(path: &Path, doing: &str, err: rocksdb::Error) -> Error {
    let message = format!(
        "{doing} RocksDB data in {}: {}",
        path.display(),
        err.as_ref()
    );
    match err.kind() {
        ErrorKind::Corruption => Error::Corruption(message),
        _ => Error::Io(message),
    }
}

impl Engine for RocksEngine {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db
            .get_cf(self.cf(space), key)
            .map_err(|e| convert(&self.path, "reading", e))
    }

    fn scan(&self, space: Space, range: &KeyRange, direction: ScanDirection) -> ScanIter<'_> {
        let mut read = ReadOptions::default();
        read.set_verify_checksums(true);
        let (lower, upper) = range.to_half_open();
        if let Some(lower) = lower {
            read.set_iterate_lower_bound(lower);
        }
        if let Some(upper) = upper {
            read.set_iterate_upper_bound(upper);
        }
        let mut iter = self.db.raw_iterator_cf_opt(self.cf(space), read);
        match direction {
            ScanDirection::Forward => iter.seek_to_first(),
            ScanDirection::Reverse => iter.seek_to_last(),
        }
        Box::new(RocksScan {
            iter,
            direction,
            path: &self.path,
            done: false,
        })
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for op in batch.ops() {
            match op {
                WriteOp::Put { space, key, value } => {
                    rocks_batch.put_cf(self.cf(*space), key, value)
                }
                WriteOp::Delete { space, key } => rocks_batch.delete_cf(self.cf(*space), key),
                WriteOp::DeleteRange { space, start, end } => {
                    rocks_batch.delete_range_cf(self.cf(*space), start, end)
                }
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(durability == Durability::Sync);
        self.db
            .write_opt(rocks_batch, &options)
            .map_err(|e| convert(&self.path, "writing", e))
    }

    fn flush(&self) -> Result<()> {
        for space in Space::ALL {
            self.db
                .flush_cf(self.cf(space))
                .map_err(|e| convert(&self.path, "flushing", e))?;
        }
        Ok(())
    }
}

/// A scan over RocksDB, turning the raw iterator into a Rust iterator.
struct RocksScan<'a> {
    /// The positioned RocksDB iterator.
    iter: DBRawIterator<'a>,
    /// Which way to step.
    direction: ScanDirection,
    /// The data directory, for error messages.
    path: &'a Path,
    /// Whether the scan ended (or failed).
    done: bool,
}

impl Iterator for RocksScan<'_> {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match (self.iter.key(), self.iter.value()) {
            (Some(key), Some(value)) => (key.to_vec(), value.to_vec()),
            _ => {
                self.done = true;
                return self
                    .iter
                    .status()
                    .err()
                    .map(|e| Err(convert(self.path, "scanning", e)));
            }
        };
        match self.direction {
            ScanDirection::Forward => self.iter.next(),
            ScanDirection::Reverse => self.iter.prev(),
        }
        Some(Ok(item))
    }
}
