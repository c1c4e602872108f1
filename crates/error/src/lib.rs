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
//! The SQL-level variants mirror PostgreSQL's error classes one to one, so
//! the wire front end can report the SQLSTATE clients expect (the mapping is
//! in `meridian-pg`, in one function). Their messages follow PostgreSQL's
//! wording where clients or tests may match on it.

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
    /// This replica cannot serve the request: it is not the leader of the
    /// group (or its lease lapsed). Routers retry elsewhere; a client that
    /// sees it retries the transaction (SQLSTATE 40001).
    #[error("replica is not the leader of group {group}{}", match leader {
        Some(l) => format!(" (node {l} is)"),
        None => String::from(" (no leader known)"),
    })]
    NotLeader {
        /// The group asked.
        group: u64,
        /// The leader this replica knows of, if any.
        leader: Option<u64>,
    },
    /// The group asked no longer serves (or does not yet serve) this part of
    /// the keyspace: the range moved. The router refreshes its placement
    /// and a client retries the transaction (SQLSTATE 40001).
    #[error("group {group} does not serve this range{}", match moved_to {
        Some(g) => format!(" (it moved to group {g})"),
        None => String::new(),
    })]
    RangeMoved {
        /// The group asked.
        group: u64,
        /// Where the range went, if the group knows.
        moved_to: Option<u64>,
    },
    /// No leader could be reached within the routing deadline: the group has
    /// no quorum, or is electing one (SQLSTATE 57P03, "cannot connect now").
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A commit whose outcome could not be learned: it may or may not have
    /// taken effect. Never retried automatically (SQLSTATE 40003).
    #[error("the outcome of the commit is unknown: {0}")]
    AmbiguousCommit(String),

    // ---- SQL errors, each with the SQLSTATE it maps to ----
    /// The statement does not parse (SQLSTATE 42601).
    #[error("{0}")]
    SyntaxError(String),
    /// A table (or index) that does not exist (SQLSTATE 42P01); the message names it.
    #[error("relation \"{0}\" does not exist")]
    UndefinedTable(String),
    /// A column that does not exist (SQLSTATE 42703); the message says which.
    #[error("{0}")]
    UndefinedColumn(String),
    /// A function that does not exist for these argument types (SQLSTATE 42883).
    #[error("{0}")]
    UndefinedFunction(String),
    /// A table or index that already exists (SQLSTATE 42P07).
    #[error("relation \"{0}\" already exists")]
    DuplicateTable(String),
    /// A column named twice in one table definition (SQLSTATE 42701).
    #[error("{0}")]
    DuplicateColumn(String),
    /// A type, index or other object that does not exist (SQLSTATE 42704).
    #[error("{0}")]
    UndefinedObject(String),
    /// A column name that is ambiguous in its scope (SQLSTATE 42702).
    #[error("column reference \"{0}\" is ambiguous")]
    AmbiguousColumn(String),
    /// Operands or values of the wrong type (SQLSTATE 42804).
    #[error("{0}")]
    DatatypeMismatch(String),
    /// A grouping rule was broken (a column outside GROUP BY) (SQLSTATE 42803).
    #[error("{0}")]
    GroupingError(String),
    /// Any other semantically invalid statement (SQLSTATE 42000).
    #[error("{0}")]
    InvalidStatement(String),
    /// A unique or primary-key constraint was violated (SQLSTATE 23505).
    #[error("duplicate key value violates unique constraint \"{constraint}\"")]
    UniqueViolation {
        /// The constraint (index) name.
        constraint: String,
        /// `Key (col)=(value) already exists.`
        detail: String,
    },
    /// NULL in a NOT NULL column (SQLSTATE 23502).
    #[error(
        "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"
    )]
    NotNullViolation {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// Division by zero (SQLSTATE 22012).
    #[error("division by zero")]
    DivisionByZero,
    /// A number outside its type's range (SQLSTATE 22003).
    #[error("{0}")]
    NumericOutOfRange(String),
    /// Text that is not a valid value of the target type (SQLSTATE 22P02).
    #[error("{0}")]
    InvalidTextRepresentation(String),
    /// A string longer than its column allows (SQLSTATE 22001).
    #[error("{0}")]
    StringDataRightTruncation(String),
    /// A malformed date, time or interval literal (SQLSTATE 22007).
    #[error("{0}")]
    InvalidDatetimeFormat(String),
    /// A date or time that is invalid or out of range (SQLSTATE 22008).
    #[error("{0}")]
    DatetimeFieldOverflow(String),
    /// A scalar subquery returned more than one row (SQLSTATE 21000).
    #[error("more than one row returned by a subquery used as an expression")]
    CardinalityViolation,
    /// Valid SQL that Meridian does not support (SQLSTATE 0A000).
    #[error("{0}")]
    FeatureNotSupported(String),
    /// A statement in a transaction block that already failed (SQLSTATE 25P02).
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    InFailedTransaction,
    /// A write in a read-only transaction (SQLSTATE 25006).
    #[error("cannot execute {0} in a read-only transaction")]
    ReadOnlyTransaction(String),
    /// A transaction-control statement out of place, e.g. SET TRANSACTION
    /// after the first query (SQLSTATE 25001).
    #[error("{0}")]
    ActiveSqlTransaction(String),
    /// The statement was cancelled by the client (SQLSTATE 57014).
    #[error("canceling statement due to user request")]
    QueryCanceled,
}

impl Error {
    /// Whether running the whole transaction again may succeed: true for lost
    /// conflicts (wounds, lock timeouts, aborts), false for everything whose
    /// retry would fail the same way.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Wounded { .. }
                | Error::LockTimeout { .. }
                | Error::Aborted(_)
                | Error::NotLeader { .. }
                | Error::RangeMoved { .. }
                | Error::Unavailable(_)
        )
        // AmbiguousCommit is deliberately not retryable: the first attempt
        // may have committed, and a blind retry would apply it twice.
    }

    /// The SQLSTATE PostgreSQL reports for the same condition, which clients
    /// and retry loops branch on (`40001`: run the whole transaction again).
    /// This is the only place the mapping lives.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            // Class 40: transaction rollback. Retryable conflicts are reported as
            // serialization failures, which is what retry loops look for.
            Error::Wounded { .. }
            | Error::LockTimeout { .. }
            | Error::Aborted(_)
            | Error::NotLeader { .. }
            | Error::RangeMoved { .. } => "40001",
            Error::AmbiguousCommit(_) => "40003",
            // Class 42: syntax error or access rule violation.
            Error::SyntaxError(_) => "42601",
            Error::UndefinedTable(_) => "42P01",
            Error::UndefinedColumn(_) => "42703",
            Error::UndefinedFunction(_) => "42883",
            Error::DuplicateTable(_) => "42P07",
            Error::AmbiguousColumn(_) => "42702",
            Error::DatatypeMismatch(_) => "42804",
            Error::GroupingError(_) => "42803",
            Error::InvalidStatement(_) => "42000",
            Error::DuplicateColumn(_) => "42701",
            Error::UndefinedObject(_) => "42704",
            // Class 23: integrity constraint violation.
            Error::UniqueViolation { .. } => "23505",
            Error::NotNullViolation { .. } => "23502",
            // Class 22: data exception.
            Error::DivisionByZero => "22012",
            Error::NumericOutOfRange(_) => "22003",
            Error::InvalidTextRepresentation(_) => "22P02",
            Error::StringDataRightTruncation(_) => "22001",
            Error::InvalidDatetimeFormat(_) => "22007",
            Error::DatetimeFieldOverflow(_) => "22008",
            Error::InvalidInput(_) => "22023",
            // Class 21: cardinality violation.
            Error::CardinalityViolation => "21000",
            // Class 0A: feature not supported.
            Error::FeatureNotSupported(_) => "0A000",
            // Class 25: invalid transaction state.
            Error::InFailedTransaction => "25P02",
            Error::ReadOnlyTransaction(_) => "25006",
            Error::ActiveSqlTransaction(_) => "25001",
            // Class 57: operator intervention.
            Error::QueryCanceled => "57014",
            Error::Unavailable(_) => "57P03",
            // Class XX / 58: internal and system errors.
            Error::Corruption(_) => "XX001",
            Error::Io(_) => "58030",
            Error::ClockUncertain(_) => "58000",
            Error::Internal(_) => "XX000",
        }
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
