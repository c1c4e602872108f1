//! The embedded, single-process database: what `meridian demo` serves.
//!
//! [`open`] puts together the pieces a node owns for the single-process
//! engine: RocksDB storage at a data directory, TrueTime over the system
//! clock ([`SystemClock`], with its configured ε), and tokio's timer as the
//! [`Sleeper`] through which the transaction engine lets time pass (commit
//! wait, lock waits). The result is a [`LocalEngine`], Spanner's
//! single-group transaction protocol without replication (see
//! `meridian_txn::LocalEngine`), which the SQL layer runs on unchanged.
//!
//! Background work: none is needed for transactions. A lock waiter sleeps
//! through its [`Sleeper`] until its lock is granted or its deadline passes,
//! and then expires itself, so no reaper task is required. What the node does
//! watch is its clock: [`LocalDatabase::clock_fenced`] resolves once the
//! system clock is seen outside its uncertainty bound, and the caller must
//! then stop serving (DESIGN.md, "Time: TrueTime").
//!
//! The engine commits with a synced (fsynced) RocksDB write, which blocks
//! for as long as the disk takes. Storage goes through [`OffExecutor`],
//! which tells tokio's multi-threaded runtime before such a write
//! (`block_in_place`), so the worker's other tasks (other sessions) move to
//! another thread instead of waiting behind the disk.
//!
//! Left out: replication, placement and the gRPC services (the distributed
//! node), and garbage collection of old versions.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use meridian_error::{Error, Result};
use meridian_storage::{
    Durability, Engine, KeyRange, RocksEngine, RocksOptions, ScanDirection, ScanIter, Space,
    WriteBatch,
};
use meridian_truetime::TrueTime;
use meridian_txn::{LocalConfig, LocalEngine, Sleeper};

use crate::clock::{SystemClock, DEFAULT_EPSILON};

/// A [`Sleeper`] on tokio's timer: real time passes.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A storage engine whose synced writes let tokio know they block: inside a
/// multi-threaded runtime they run under `block_in_place`; anywhere else
/// (a current-thread runtime, no runtime) they simply run.
#[derive(Debug)]
pub struct OffExecutor<E>(pub E);

impl<E: Engine> OffExecutor<E> {
    fn blocking<T>(&self, work: impl FnOnce() -> T) -> T {
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            tokio::task::block_in_place(work)
        } else {
            work()
        }
    }
}

impl<E: Engine> Engine for OffExecutor<E> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(space, key)
    }

    fn scan(&self, space: Space, range: &KeyRange, direction: ScanDirection) -> ScanIter<'_> {
        self.0.scan(space, range, direction)
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<()> {
        match durability {
            Durability::Sync => self.blocking(|| self.0.write(batch, durability)),
            Durability::Buffered => self.0.write(batch, durability),
        }
    }

    fn flush(&self) -> Result<()> {
        self.blocking(|| self.0.flush())
    }
}

/// The transaction engine of the embedded database.
pub type EmbeddedEngine = LocalEngine<OffExecutor<RocksEngine>>;

/// How to open the embedded database.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// The clock uncertainty bound ε.
    pub epsilon: Duration,
    /// How long a transaction waits for one lock before failing (retryably).
    pub lock_timeout: Duration,
    /// Durability of commits: `Sync` (fsync before acknowledging) unless the
    /// data is disposable.
    pub durability: Durability,
    /// RocksDB settings (checksum verification at open, block cache).
    pub rocks: RocksOptions,
}

impl Default for LocalOptions {
    fn default() -> Self {
        let txn = LocalConfig::default();
        Self {
            epsilon: DEFAULT_EPSILON,
            lock_timeout: txn.lock_timeout,
            durability: txn.durability,
            rocks: RocksOptions::default(),
        }
    }
}

/// The embedded database: a transaction engine over RocksDB and the system
/// clock. Cheap to clone.
#[derive(Clone)]
pub struct LocalDatabase {
    /// The transaction engine that SQL sessions program against.
    engine: EmbeddedEngine,
    /// The clock under the engine's TrueTime, kept to check its bound.
    clock: Arc<SystemClock>,
    /// The data directory.
    data_dir: PathBuf,
}

impl std::fmt::Debug for LocalDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDatabase")
            .field("data_dir", &self.data_dir)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Opens (creating if needed) the embedded database at `data_dir`.
///
/// Fails with [`Error::Corruption`] if RocksDB finds damaged files (every
/// block checksum is verified unless `options.rocks` says otherwise), and
/// with [`Error::Io`] if the directory cannot be used, for example because
/// another process has it open.
pub fn open(data_dir: impl AsRef<Path>, options: LocalOptions) -> Result<LocalDatabase> {
    let clock = Arc::new(SystemClock::new(options.epsilon));
    open_with_clock(data_dir, clock, options)
}

/// Like [`open`], over a given clock (for tests of clock faults); its ε
/// takes the place of `options.epsilon`.
pub fn open_with_clock(
    data_dir: impl AsRef<Path>,
    clock: Arc<SystemClock>,
    options: LocalOptions,
) -> Result<LocalDatabase> {
    let data_dir = data_dir.as_ref().to_path_buf();
    let storage = RocksEngine::open(&data_dir, options.rocks)?;
    let engine = LocalEngine::new(
        OffExecutor(storage),
        TrueTime::new(clock.clone()),
        Arc::new(TokioSleeper),
        LocalConfig {
            lock_timeout: options.lock_timeout,
            durability: options.durability,
        },
    )?;
    tracing::info!(data_dir = %data_dir.display(), "opened the embedded database");
    Ok(LocalDatabase {
        engine,
        clock,
        data_dir,
    })
}

impl LocalDatabase {
    /// The transaction engine (a cheap clone sharing the same state).
    pub fn engine(&self) -> EmbeddedEngine {
        self.engine.clone()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Fails once the system clock was seen outside its bound.
    pub fn check_clock(&self) -> Result<()> {
        self.clock.check()
    }

    /// Resolves with the clock's error once the system clock is seen outside
    /// its uncertainty bound (checked every `interval`); the node must then
    /// stop serving. Never resolves while the clock stays trustworthy.
    pub async fn clock_fenced(&self, interval: Duration) -> Error {
        crate::clock::fenced(&self.clock, interval).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_storage::KeyRange;
    use meridian_txn::{LockStrength, ReadTime, Transaction, TxnEngine, TxnMode};

    fn options() -> LocalOptions {
        LocalOptions {
            epsilon: Duration::from_millis(1),
            ..LocalOptions::default()
        }
    }

    #[tokio::test]
    async fn tokio_sleeper_lets_real_time_pass() {
        let started = std::time::Instant::now();
        TokioSleeper.sleep(Duration::from_millis(20)).await;
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[tokio::test]
    async fn commits_survive_reopening_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), options()).unwrap();
        let engine = db.engine();
        let mut txn = engine.begin(TxnMode::ReadWrite).await.unwrap();
        txn.put(b"k".to_vec(), b"v1".to_vec()).await.unwrap();
        let s = txn
            .commit()
            .await
            .unwrap()
            .expect("a write commits at a timestamp");
        // Commit wait: once commit returns, s is in the past everywhere.
        assert!(engine.now().earliest > s);
        drop(engine);
        drop(db);

        let db = open(dir.path(), options()).unwrap();
        let engine = db.engine();
        let mut read = engine
            .begin(TxnMode::ReadOnly(ReadTime::Strong))
            .await
            .unwrap();
        assert_eq!(
            read.get(b"k", LockStrength::Shared).await.unwrap(),
            Some(b"v1".to_vec())
        );
        let all = read
            .scan(
                KeyRange::all(),
                meridian_storage::ScanDirection::Forward,
                None,
                LockStrength::Shared,
            )
            .await
            .unwrap();
        assert_eq!(all.len(), 1);
        assert!(db.check_clock().is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn synced_commits_run_on_a_multi_threaded_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), options()).unwrap();
        let mut commits = tokio::task::JoinSet::new();
        for i in 0..8u8 {
            let engine = db.engine();
            commits.spawn(async move {
                let mut txn = engine.begin(TxnMode::ReadWrite).await.unwrap();
                txn.put(vec![i], vec![i]).await.unwrap();
                txn.commit().await.unwrap()
            });
        }
        let mut stamps = Vec::new();
        while let Some(s) = commits.join_next().await {
            stamps.push(s.unwrap().unwrap());
        }
        stamps.sort();
        stamps.dedup();
        assert_eq!(stamps.len(), 8, "every commit gets its own timestamp");
    }

    #[tokio::test]
    async fn a_lock_wait_times_out_on_the_real_timer() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(
            dir.path(),
            LocalOptions {
                lock_timeout: Duration::from_millis(50),
                ..options()
            },
        )
        .unwrap();
        let engine = db.engine();
        // The older transaction holds the lock; the younger one waits for it
        // (wound-wait) and gives up after the lock timeout.
        let mut older = engine.begin(TxnMode::ReadWrite).await.unwrap();
        let mut younger = engine.begin(TxnMode::ReadWrite).await.unwrap();
        older.put(b"k".to_vec(), b"old".to_vec()).await.unwrap();
        let started = std::time::Instant::now();
        let err = younger
            .put(b"k".to_vec(), b"young".to_vec())
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(50));
        older.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_clock_stepping_back_beyond_its_bound_fences_the_database() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let dir = tempfile::tempdir().unwrap();
        // A wall clock moving with real time, plus an offset the test steps.
        let wall = Arc::new(AtomicU64::new(1_700_000_000_000_000_000));
        let source = wall.clone();
        let started = std::time::Instant::now();
        let clock = Arc::new(SystemClock::with_wall_clock(
            Duration::from_millis(1),
            Box::new(move || source.load(Ordering::SeqCst) + started.elapsed().as_nanos() as u64),
        ));
        let db = open_with_clock(dir.path(), clock, options()).unwrap();
        let fenced = db.clock_fenced(Duration::from_millis(5));
        tokio::pin!(fenced);
        // A trustworthy clock: the watcher keeps waiting.
        assert!(tokio::time::timeout(Duration::from_millis(30), &mut fenced)
            .await
            .is_err());
        // A step back of 10 ms, beyond ε = 1 ms: the watcher reports it.
        wall.fetch_sub(10_000_000, Ordering::SeqCst);
        let err = tokio::time::timeout(Duration::from_secs(5), fenced)
            .await
            .expect("the watcher notices within a few intervals");
        assert!(matches!(err, Error::ClockUncertain(_)), "{err}");
        assert!(db.check_clock().is_err());
    }

    #[test]
    fn a_damaged_data_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path(), options()).unwrap());
        let manifest = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("MANIFEST")
            })
            .unwrap();
        let mut bytes = std::fs::read(&manifest).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 8] {
            *b ^= 0xff;
        }
        std::fs::write(&manifest, bytes).unwrap();
        let err = open(dir.path(), options()).unwrap_err();
        assert!(matches!(err, Error::Corruption(_)), "{err}");
    }

    #[test]
    fn a_data_directory_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = open(dir.path(), options()).unwrap();
        let err = open(dir.path(), options()).unwrap_err();
        assert!(err.to_string().contains("lock"), "{err}");
    }
}
