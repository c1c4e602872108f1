//! The transaction API that the SQL layer programs against.
//!
//! [`TxnEngine`] begins transactions; a [`Transaction`] reads, writes and
//! commits. There are two implementations: [`LocalEngine`](crate::LocalEngine)
//! (one process: MVCC storage, the lock table and TrueTime commit wait) and,
//! later, the distributed engine in `meridian-server` (Paxos groups and
//! two-phase commit). The SQL layer cannot tell them apart.
//!
//! Read-write transactions run under strict two-phase locking (Spanner
//! §4.2.1): every read takes a lock ([`LockStrength`]) and reads the latest
//! committed data, writes take exclusive locks and are buffered in the
//! transaction (visible to its own later reads), and all locks are held until
//! commit or rollback. A lost conflict fails the operation with a retryable
//! error ([`Error::is_retryable`](meridian_error::Error::is_retryable)); the
//! transaction must then be rolled back.
//!
//! Read-only transactions take no locks: they read a consistent snapshot at
//! one timestamp ([`ReadTime`]) and never block writers or wait for locks.

use std::future::Future;

use meridian_error::{Error, Result};
use meridian_storage::{KeyRange, KvPair, ScanDirection};
use meridian_truetime::{Timestamp, TtInterval};

/// What a transaction may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnMode {
    /// Reads and writes under strict two-phase locking.
    ReadWrite,
    /// Lock-free reads of one snapshot; writes are refused.
    ReadOnly(ReadTime),
}

/// Which snapshot a read-only transaction reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadTime {
    /// The freshest snapshot that is externally consistent: it includes every
    /// transaction that committed before this one began.
    Strong,
    /// The snapshot at exactly this timestamp (`AS OF SYSTEM TIME`); it must
    /// not be in the future.
    At(Timestamp),
    /// The freshest snapshot that can be read without waiting, and no older
    /// than this (`AS OF SYSTEM TIME with_max_staleness(...)`): a sharded
    /// engine picks the safe time its local replicas have reached, so
    /// followers serve it; an engine that cannot lag reads strongly.
    MaxStaleness(std::time::Duration),
}

/// The lock a read-write transaction's read takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockStrength {
    /// A shared lock: other readers may read, writers wait.
    Shared,
    /// An exclusive lock, for reads that will write (`SELECT ... FOR UPDATE`,
    /// the read part of `UPDATE` and `DELETE`).
    Exclusive,
}

/// Begins transactions. Cheap to share between sessions.
pub trait TxnEngine: Send + Sync + 'static {
    /// The transaction type.
    type Txn: Transaction;

    /// Begins a transaction.
    fn begin(&self, mode: TxnMode) -> impl Future<Output = Result<Self::Txn>> + Send;

    /// TrueTime now, as the engine sees it (for `now()` and relative
    /// `AS OF SYSTEM TIME` intervals).
    fn now(&self) -> TtInterval;

    /// The ranges of the keyspace and where each is served, in key order
    /// (`SHOW RANGES`). An engine that is not sharded has one range.
    fn ranges(&self) -> impl Future<Output = Result<Vec<RangeInfo>>> + Send {
        std::future::ready(Ok(vec![RangeInfo::whole_keyspace(1)]))
    }

    /// Splits the range holding `key` in two at `key` (`ALTER TABLE ...
    /// SPLIT AT`): the new range starts at `key` and stays in the same
    /// group. Splitting at an existing range start does nothing.
    fn split_at(&self, key: Vec<u8>) -> impl Future<Output = Result<()>> + Send {
        let _ = key;
        std::future::ready(Err(Error::FeatureNotSupported(
            "this engine is not sharded: it has one range".into(),
        )))
    }

    /// Moves the range holding `key` to group `group` (`ALTER TABLE ...
    /// RELOCATE`): its data is copied there and the group takes it over in
    /// one transaction. Moving a range to the group that holds it does
    /// nothing.
    fn relocate(&self, key: Vec<u8>, group: u64) -> impl Future<Output = Result<()>> + Send {
        let _ = (key, group);
        std::future::ready(Err(Error::FeatureNotSupported(
            "this engine is not sharded: it has one range".into(),
        )))
    }
}

/// One range of the keyspace and where it is served, as `SHOW RANGES`
/// reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeInfo {
    /// Its first key.
    pub start: Vec<u8>,
    /// The first key after it (`None`: the end of the keyspace).
    pub end: Option<Vec<u8>>,
    /// The group serving it.
    pub group: u64,
    /// The nodes holding a replica of the group.
    pub replicas: Vec<u64>,
    /// The node leading the group, if known.
    pub leader: Option<u64>,
    /// When the leader's lease ends, if known.
    pub lease_expiry: Option<Timestamp>,
    /// The bytes its stored versions take (keys and values), if known.
    pub size_bytes: Option<u64>,
}

impl RangeInfo {
    /// The whole keyspace, served by `group`, nothing else known.
    pub fn whole_keyspace(group: u64) -> Self {
        RangeInfo {
            group,
            ..RangeInfo::default()
        }
    }
}

/// One transaction. Dropping it without `commit` rolls it back.
pub trait Transaction: Send + 'static {
    /// A number identifying the transaction while it runs (for logs).
    fn id(&self) -> u64;

    /// Read-write or read-only, and at which snapshot.
    fn mode(&self) -> TxnMode;

    /// When the transaction began; its priority under wound-wait (older wins)
    /// and the value of SQL's `now()`.
    fn start_ts(&self) -> Timestamp;

    /// The snapshot timestamp of a read-only transaction; `None` for a
    /// read-write one, which reads the latest data under locks.
    fn read_ts(&self) -> Option<Timestamp>;

    /// The value of `key`: the transaction's own write if it made one, else
    /// the committed value (locked with `lock` in a read-write transaction).
    fn get(
        &mut self,
        key: &[u8],
        lock: LockStrength,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;

    /// The pairs of `range` in `direction` order, at most `limit`, merged with
    /// the transaction's own writes. A read-write transaction locks with
    /// `lock` the part of the range its answer depends on (through the last
    /// row returned when `limit` is reached, else the whole range), so no
    /// other transaction can insert into it (no phantoms) until this one ends.
    fn scan(
        &mut self,
        range: KeyRange,
        direction: ScanDirection,
        limit: Option<usize>,
        lock: LockStrength,
    ) -> impl Future<Output = Result<Vec<KvPair>>> + Send;

    /// Buffers a write of `key` = `value`, taking an exclusive lock on `key`.
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> impl Future<Output = Result<()>> + Send;

    /// Buffers a delete of `key`, taking an exclusive lock on `key`.
    fn delete(&mut self, key: Vec<u8>) -> impl Future<Output = Result<()>> + Send;

    /// Commits: the writes become visible atomically at the returned commit
    /// timestamp (`None` when there was nothing to write), after commit wait.
    fn commit(self) -> impl Future<Output = Result<Option<Timestamp>>> + Send;

    /// Rolls back: the writes are dropped and the locks released.
    fn rollback(self) -> impl Future<Output = Result<()>> + Send;
}
