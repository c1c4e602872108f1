//! The workspace error type.
//!
//! Every Meridian crate returns [`Result<T>`] with this one [`Error`] enum, so an
//! error raised deep in the lock table or in RocksDB reaches the SQL front end
//! unchanged, and the PostgreSQL front end can map it to a SQLSTATE in exactly
//! one place.
//!
//! Errors fall in two families, told apart by [`Error::is_retryable`]:
//!
//! - **Retryable**: the transaction lost a conflict (it was wounded by an older
//!   transaction, or gave up waiting for a lock). Nothing it wrote is visible;
//!   running the whole transaction again from the start may well succeed. The
//!   client maps these to SQLSTATE 40001 and retries with backoff.
//! - **Not retryable**: bad input, a violated constraint, damaged data, an IO
//!   failure. Retrying the same thing gives the same answer, or worse.
//!
//! Variants carry plain strings and numbers, not foreign error types, so the
//! error is `Clone`, comparable in tests, and can cross the network later.
//!
//! Left out for now: the SQL-level variants (undefined table, unique violation,
//! ...), which arrive with the SQL layer.

use serde::{Deserialize, Serialize};

/// The result type of every fallible Meridian function.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Meridian.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Error {
    /// The transaction was wounded: an older transaction needed a lock it held
    /// (wound-wait). It must abort; a retry gets a fresh start.
    #[error("transaction {txn} was wounded by older transaction {by} and must restart")]
    Wounded {
        /// The aborted (younger) transaction.
        txn: u64,
        /// The older transaction that wounded it.
        by: u64,
    },
    /// The transaction waited longer than its lock timeout.
    #[error("transaction {txn} timed out after {waited_ms} ms waiting for a lock on {what}")]
    LockTimeout {
        /// The transaction that gave up.
        txn: u64,
        /// How long it waited, in milliseconds.
        waited_ms: u64,
        /// The key or range it waited for, printed for people.
        what: String,
    },
    /// The transaction was aborted for a reason that a retry may not have.
    #[error("transaction aborted: {0}")]
    Aborted(String),
    /// The caller passed something malformed or out of range.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Stored data failed a checksum or could not be decoded. Never served.
    #[error("data corruption detected: {0}")]
    Corruption(String),
    /// An operating-system or storage-engine IO failure.
    #[error("IO error: {0}")]
    Io(String),
    /// The local clock cannot be trusted within its configured uncertainty
    /// bound; the node fences itself rather than hand out timestamps.
    #[error("clock out of bounds: {0}")]
    ClockUncertain(String),
    /// A bug: an invariant the code relies on did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether running the whole transaction again may succeed: true for lost
    /// conflicts (wounds, lock timeouts, aborts), false for everything whose
    /// retry would fail the same way.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Wounded { .. } | Error::LockTimeout { .. } | Error::Aborted(_)
        )
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::Io(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_retryable_and_bad_input_is_not() {
        assert!(Error::Wounded { txn: 2, by: 1 }.is_retryable());
        let timeout = Error::LockTimeout {
            txn: 2,
            waited_ms: 100,
            what: "key 'a'".into(),
        };
        assert!(timeout.is_retryable());
        assert!(Error::Aborted("coordinator gone".into()).is_retryable());
        assert!(!Error::InvalidInput("bad".into()).is_retryable());
        assert!(!Error::Corruption("sst".into()).is_retryable());
        assert!(!Error::Io("disk".into()).is_retryable());
        assert!(!Error::ClockUncertain("skew".into()).is_retryable());
        assert!(!Error::Internal("bug".into()).is_retryable());
    }

    #[test]
    fn messages_name_what_went_wrong() {
        let err = Error::Wounded { txn: 7, by: 3 };
        assert_eq!(
            err.to_string(),
            "transaction 7 was wounded by older transaction 3 and must restart"
        );
    }
}
