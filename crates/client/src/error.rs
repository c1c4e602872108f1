//! The client's error type and how server errors are classified.

use tokio_postgres::error::{DbError, SqlState};

/// What can go wrong in this crate; see the [crate docs](crate) for what
/// [`transaction`](crate::Client::transaction) does with each variant.
///
/// Errors from tokio-postgres convert with `?` (through `From`), which puts
/// them in the right variant by SQLSTATE:
///
/// | variant | when | retried by `transaction` |
/// | --- | --- | --- |
/// | [`Retryable`](Error::Retryable) | SQLSTATE `40001` (serialization failure), `40P01` (deadlock detected, from PostgreSQL) or `57P03` (cannot connect now: a group is electing a leader) | yes |
/// | [`ConnectionLost`](Error::ConnectionLost) | the connection closed or failed before `COMMIT` was sent | yes, on a new connection |
/// | [`AmbiguousCommit`](Error::AmbiguousCommit) | SQLSTATE `40003`, or the connection was lost after `COMMIT` was sent | **never** |
/// | [`RolledBack`](Error::RolledBack) | a statement failed but the closure returned `Ok` anyway | if its SQLSTATE is retryable |
/// | [`Postgres`](Error::Postgres) | any other error (`23505` unique violation, syntax errors, type conversions, ...) | no |
/// | [`Aborted`](Error::Aborted) | the closure gave up with an error of its own ([`Error::abort`]) | no |
/// | [`PoolTimeout`](Error::PoolTimeout), [`Pool`](Error::Pool) | no pooled connection could be had | no |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transaction lost a conflict (SQLSTATE `40001`, or PostgreSQL's
    /// `40P01` deadlock) or the data's group had no leader for a moment
    /// (SQLSTATE `57P03`). Nothing of the
    /// transaction took effect: running the whole transaction again is
    /// safe. [`transaction`](crate::Client::transaction) does so itself and
    /// returns this only once its attempts are used up.
    #[error("retryable error: {0}")]
    Retryable(#[source] tokio_postgres::Error),

    /// The connection closed or failed (an I/O error, the server went away)
    /// while no `COMMIT` was in flight. Inside
    /// [`transaction`](crate::Client::transaction) this is retried on a new
    /// connection, as the transaction cannot have committed. Outside a
    /// transaction block, a statement that was running when the connection
    /// broke may or may not have taken effect.
    #[error("connection lost: {0}")]
    ConnectionLost(#[source] tokio_postgres::Error),

    /// The outcome of a commit is unknown: the server reported SQLSTATE
    /// `40003`, or the connection was lost after `COMMIT` was sent. The
    /// transaction may or may not have taken effect, so it is **never**
    /// retried automatically: the caller must check (for example by reading
    /// back what the transaction wrote) before deciding to run it again.
    #[error("the outcome of the commit is unknown: {0}")]
    AmbiguousCommit(#[source] tokio_postgres::Error),

    /// A statement of the transaction failed, but the closure handled the
    /// error and returned `Ok` anyway. The server had already rolled the
    /// transaction back, so nothing was committed; the fields describe the
    /// first failure.
    #[error("the transaction was rolled back after a failed statement (SQLSTATE {}): {message}", .code.code())]
    RolledBack {
        /// The SQLSTATE of the first failed statement (`08006` if it was
        /// the connection that failed).
        code: SqlState,
        /// Its message.
        message: String,
    },

    /// Any other error from the server or the driver: constraint
    /// violations, syntax errors, type conversion errors, failure to
    /// connect with a bad configuration, ... Not retried.
    #[error(transparent)]
    Postgres(tokio_postgres::Error),

    /// The transaction closure gave up with an error of its own (see
    /// [`Error::abort`]). The transaction was rolled back; not retried.
    #[error("transaction aborted: {0}")]
    Aborted(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

    /// No connection of the [`Pool`](crate::Pool) became free within its
    /// wait timeout.
    #[error("timed out waiting for a pooled connection")]
    PoolTimeout,

    /// The [`Pool`](crate::Pool) could not hand out a connection for another
    /// reason (it was closed, or creating a connection timed out).
    #[error("connection pool: {0}")]
    Pool(String),
}

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An application error that ends a transaction closure: the
    /// transaction is rolled back, not retried, and
    /// [`transaction`](crate::Client::transaction) returns
    /// [`Error::Aborted`] with `err` inside.
    pub fn abort(err: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Error::Aborted(err.into())
    }

    /// Whether running the whole transaction again is safe and may succeed:
    /// [`Retryable`](Error::Retryable), [`ConnectionLost`](Error::ConnectionLost),
    /// and a [`RolledBack`](Error::RolledBack) whose SQLSTATE is retryable.
    /// Never true for [`AmbiguousCommit`](Error::AmbiguousCommit).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Retryable(_) | Error::ConnectionLost(_) => true,
            Error::RolledBack { code, .. } => is_retryable_code(code) || *code == CONNECTION_LOST,
            _ => false,
        }
    }

    /// Whether this is an [`AmbiguousCommit`](Error::AmbiguousCommit): the
    /// transaction may or may not have committed.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Error::AmbiguousCommit(_))
    }

    /// The SQLSTATE the server reported, if the error came from the server.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            Error::RolledBack { code, .. } => Some(code),
            other => other.postgres().and_then(tokio_postgres::Error::code),
        }
    }

    /// The server's error message with its details, if the error came from
    /// the server.
    pub fn as_db_error(&self) -> Option<&DbError> {
        self.postgres().and_then(tokio_postgres::Error::as_db_error)
    }

    /// The tokio-postgres error inside, if there is one.
    pub fn postgres(&self) -> Option<&tokio_postgres::Error> {
        match self {
            Error::Retryable(err)
            | Error::ConnectionLost(err)
            | Error::AmbiguousCommit(err)
            | Error::Postgres(err) => Some(err),
            _ => None,
        }
    }

    /// Classifies an error from `COMMIT`: a lost connection there makes the
    /// outcome unknown.
    pub(crate) fn from_commit(err: tokio_postgres::Error) -> Self {
        if connection_lost(&err) {
            return Error::AmbiguousCommit(err);
        }
        Error::from(err)
    }
}

/// The SQLSTATE recorded for a statement that failed because the connection
/// did (`connection_failure`).
pub(crate) const CONNECTION_LOST: SqlState = SqlState::CONNECTION_FAILURE;

/// SQLSTATEs after which the whole transaction may be run again.
pub(crate) fn is_retryable_code(code: &SqlState) -> bool {
    *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::CANNOT_CONNECT_NOW
}

/// Whether the connection itself failed (closed, or an I/O error), as
/// opposed to the server answering with an error.
fn connection_lost(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Self {
        match err.code() {
            Some(code) if is_retryable_code(code) => Error::Retryable(err),
            Some(code) if *code == SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN => {
                Error::AmbiguousCommit(err)
            }
            Some(_) => Error::Postgres(err),
            None if connection_lost(&err) => Error::ConnectionLost(err),
            None => Error::Postgres(err),
        }
    }
}

impl From<deadpool::managed::PoolError<Error>> for Error {
    fn from(err: deadpool::managed::PoolError<Error>) -> Self {
        use deadpool::managed::{PoolError, TimeoutType};
        match err {
            PoolError::Backend(err) => err,
            PoolError::Timeout(TimeoutType::Wait) => Error::PoolTimeout,
            other => Error::Pool(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolled_back(code: SqlState) -> Error {
        Error::RolledBack {
            code,
            message: "x".into(),
        }
    }

    #[test]
    fn retryable_codes() {
        assert!(is_retryable_code(&SqlState::T_R_SERIALIZATION_FAILURE));
        assert!(is_retryable_code(&SqlState::CANNOT_CONNECT_NOW));
        assert!(is_retryable_code(&SqlState::T_R_DEADLOCK_DETECTED));
        assert_eq!(SqlState::T_R_DEADLOCK_DETECTED.code(), "40P01");
        assert!(!is_retryable_code(
            &SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN
        ));
        assert!(!is_retryable_code(&SqlState::UNIQUE_VIOLATION));
        assert_eq!(SqlState::T_R_SERIALIZATION_FAILURE.code(), "40001");
        assert_eq!(SqlState::CANNOT_CONNECT_NOW.code(), "57P03");
        assert_eq!(SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN.code(), "40003");
    }

    #[test]
    fn rolled_back_classification() {
        assert!(rolled_back(SqlState::T_R_SERIALIZATION_FAILURE).is_retryable());
        assert!(rolled_back(CONNECTION_LOST).is_retryable());
        assert!(!rolled_back(SqlState::UNIQUE_VIOLATION).is_retryable());
        assert!(!rolled_back(SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN).is_retryable());
        assert_eq!(
            rolled_back(SqlState::UNIQUE_VIOLATION).code(),
            Some(&SqlState::UNIQUE_VIOLATION)
        );
    }

    #[test]
    fn aborted_is_final() {
        let err = Error::abort("insufficient funds");
        assert!(!err.is_retryable());
        assert!(!err.is_ambiguous());
        assert!(err.code().is_none());
        assert_eq!(err.to_string(), "transaction aborted: insufficient funds");
    }

    #[test]
    fn pool_errors() {
        use deadpool::managed::{PoolError, TimeoutType};
        assert!(matches!(
            Error::from(PoolError::<Error>::Timeout(TimeoutType::Wait)),
            Error::PoolTimeout
        ));
        assert!(matches!(
            Error::from(PoolError::<Error>::Closed),
            Error::Pool(_)
        ));
    }
}
