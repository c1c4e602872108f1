//! Transactions: the concurrency control of read-write transactions.
//!
//! Meridian runs read-write transactions under strict two-phase locking with
//! wound-wait deadlock avoidance (Spanner §4.2.1). This crate holds the pieces
//! of that protocol that do not touch a socket, a disk or a clock, so that they
//! can be tested by deterministic, seeded simulation:
//!
//! - [`lock_table`]: shared and exclusive locks on keys and key ranges, held
//!   until the owning transaction commits or aborts, with per-lock wait queues
//!   and wound-wait on transaction age. [`LockTable`] is the pure data
//!   structure (`&mut self`, no threads, no clock: time is passed in and
//!   waiting is a result the caller acts on); [`LockManager`] is a thin,
//!   runtime-free async wrapper whose lock requests are futures;
//! - [`api`]: the transaction API the SQL layer programs against
//!   ([`TxnEngine`], [`Transaction`]);
//! - [`LocalEngine`]: its implementation over MVCC storage, the lock table
//!   and TrueTime commit wait, for one process (the embedded database) or,
//!   through the [`Replication`] seam, for the leader of a Paxos group.
//!
//! - [`two_phase`]: transactions spanning groups ([`DistEngine`] over
//!   [`Groups`]): two-phase commit with commit wait, one wound-wait priority
//!   everywhere, snapshot reads across groups; the participant's and
//!   coordinator's side is in [`LocalEngine`] (prepare records, outcomes,
//!   restoring prepared transactions at a new leader).
//!
//! Like `paxos` and `truetime`, this crate does no IO of its own (storage is an
//! injected engine), never reads the system clock (time is an injected
//! TrueTime, sleeping an injected [`Sleeper`]) and never uses a global random
//! number generator.

pub mod api;
#[cfg(feature = "testing")]
pub mod check;
mod local;
pub mod lock_table;
mod range_map;
#[cfg(feature = "testing")]
pub mod testing;
pub mod two_phase;

pub use api::{LockStrength, RangeInfo, ReadTime, Transaction, TxnEngine, TxnMode};
pub use local::{
    CommitFuture, CommitWaitStats, LocalConfig, LocalEngine, LocalTxn, ManualSleeper,
    OutcomeFuture, PreparedInfo, Replication, Sleeper, Writes,
};
pub use range_map::RangeMap;
pub use two_phase::{
    tell_participants, DistEngine, DistTxn, GlobalTxnId, GroupTxn, Groups, Outcome, PrepareRecord,
    Vote,
};

pub use lock_table::{
    Acquired, KeyRange, LockManager, LockMode, LockStatus, LockTable, LockTarget, LockWait,
    Priority, RequestInfo, RequestState, TxnId, TxnInfo, Wakeups, Wound,
};
