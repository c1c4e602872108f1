//! The transaction handle passed to [`Client::transaction`](crate::Client::transaction) closures.

use std::sync::Mutex;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, SimpleQueryMessage, Statement, ToStatement};

use crate::error::CONNECTION_LOST;
use crate::{Error, Result};

/// An open transaction, lent to the closure of
/// [`Client::transaction`](crate::Client::transaction) for one attempt.
///
/// Its methods are those of [`Client`](crate::Client) and run inside the
/// transaction. It also remembers the first statement that failed: the
/// server rolls a transaction back when one of its statements fails, so if
/// the closure handles such an error and returns `Ok` anyway, the attempt
/// ends in [`Error::RolledBack`] (retried when the failure was retryable)
/// instead of reporting a commit that did not happen.
///
/// Committing and rolling back are the caller's job, not the closure's.
/// If the attempt is abandoned (the future is dropped, or the closure
/// panics), the transaction is rolled back when the handle is dropped.
pub struct Transaction<'a> {
    inner: tokio_postgres::Transaction<'a>,
    failure: Mutex<Option<Failure>>,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("failed", &self.failed())
            .finish_non_exhaustive()
    }
}

/// The first failed statement of a transaction.
#[derive(Debug)]
pub(crate) struct Failure {
    code: SqlState,
    message: String,
}

impl Failure {
    /// The error the attempt ends with when the closure ignored the failure.
    pub(crate) fn into_error(self) -> Error {
        Error::RolledBack {
            code: self.code,
            message: self.message,
        }
    }
}

impl<'a> Transaction<'a> {
    pub(crate) fn new(inner: tokio_postgres::Transaction<'a>) -> Self {
        Transaction {
            inner,
            failure: Mutex::new(None),
        }
    }

    /// The tokio-postgres transaction and the first failure recorded.
    pub(crate) fn into_parts(self) -> (tokio_postgres::Transaction<'a>, Option<Failure>) {
        let failure = self
            .failure
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (self.inner, failure)
    }

    /// Whether a statement of this transaction has failed (after which the
    /// server has rolled it back and every further statement fails).
    pub fn failed(&self) -> bool {
        match self.failure.lock() {
            Ok(failure) => failure.is_some(),
            Err(_) => true,
        }
    }

    /// The tokio-postgres transaction, for what this type does not forward.
    /// Failures of statements run through it directly are not remembered
    /// (see the type's docs): propagate their errors with `?`.
    pub fn as_postgres(&self) -> &tokio_postgres::Transaction<'a> {
        &self.inner
    }

    /// Records the first failure, and converts the error.
    fn check<T>(&self, result: Result<T, tokio_postgres::Error>) -> Result<T> {
        let err = match result {
            Ok(value) => return Ok(value),
            Err(err) => Error::from(err),
        };
        let code = match &err {
            Error::ConnectionLost(_) => Some(CONNECTION_LOST),
            // Errors the driver raises without asking the server (a
            // parameter that does not convert, a column of the wrong type)
            // leave the transaction open.
            _ => err.code().cloned(),
        };
        if let Some(code) = code {
            if let Ok(mut failure) = self.failure.lock() {
                if failure.is_none() {
                    *failure = Some(Failure {
                        code,
                        message: err.to_string(),
                    });
                }
            }
        }
        Err(err)
    }

    /// Prepares a statement; see [`Client::prepare`](crate::Client::prepare).
    pub async fn prepare(&self, query: &str) -> Result<Statement> {
        self.check(self.inner.prepare(query).await)
    }

    /// Runs a statement and returns its rows.
    pub async fn query<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>>
    where
        T: ?Sized + ToStatement,
    {
        self.check(self.inner.query(statement, params).await)
    }

    /// Runs a statement that returns exactly one row (else an error).
    pub async fn query_one<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Row>
    where
        T: ?Sized + ToStatement,
    {
        self.check(self.inner.query_one(statement, params).await)
    }

    /// Runs a statement that returns at most one row (more is an error).
    pub async fn query_opt<T>(
        &self,
        statement: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>>
    where
        T: ?Sized + ToStatement,
    {
        self.check(self.inner.query_opt(statement, params).await)
    }

    /// Runs a statement and returns the number of rows it affected.
    pub async fn execute<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<u64>
    where
        T: ?Sized + ToStatement,
    {
        self.check(self.inner.execute(statement, params).await)
    }

    /// Runs `;`-separated statements without parameters, discarding rows.
    /// Do not send `COMMIT` or `ROLLBACK` through it: the transaction's
    /// caller does.
    pub async fn batch_execute(&self, query: &str) -> Result<()> {
        self.check(self.inner.batch_execute(query).await)
    }

    /// Runs `;`-separated statements without parameters and returns their
    /// rows as text.
    pub async fn simple_query(&self, query: &str) -> Result<Vec<SimpleQueryMessage>> {
        self.check(self.inner.simple_query(query).await)
    }
}
