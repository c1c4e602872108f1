//! One connection: [`Client`], and the retrying [`Client::transaction`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, SimpleQueryMessage, Statement, ToStatement};

use crate::error::CONNECTION_LOST;
use crate::transaction::Transaction;
use crate::{Config, Error, Result};

/// A boxed, `Send` future borrowing for `'a`: what a
/// [`transaction`](Client::transaction) closure returns (write
/// `Box::pin(async move { ... })`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connection to Meridian.
///
/// [`Client::connect`] opens it and spawns the task that drives the
/// connection on the current tokio runtime. Statements take typed
/// parameters (`&[&(dyn ToSql + Sync)]`, see [`types`](crate::types)) and
/// return [`Row`]s whose columns are read with [`Row::get`]. Anything this
/// type does not forward is on the tokio-postgres client,
/// [`as_postgres`](Client::as_postgres).
///
/// ```no_run
/// # async fn demo() -> meridian_client::Result<()> {
/// use meridian_client::Client;
///
/// let client = Client::connect("postgres://meridian@localhost:5433/meridian").await?;
/// client
///     .execute("CREATE TABLE IF NOT EXISTS kv (k BIGINT PRIMARY KEY, v TEXT)", &[])
///     .await?;
/// client
///     .execute("INSERT INTO kv (k, v) VALUES ($1, $2)", &[&1i64, &"one"])
///     .await?;
/// let row = client.query_one("SELECT v FROM kv WHERE k = $1", &[&1i64]).await?;
/// let v: &str = row.get(0);
/// assert_eq!(v, "one");
/// # Ok(())
/// # }
/// ```
pub struct Client {
    inner: tokio_postgres::Client,
    config: Arc<Config>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("closed", &self.inner.is_closed())
            .field("retry", self.config.retry_policy())
            .finish_non_exhaustive()
    }
}

/// Opens one tokio-postgres connection and spawns its driver task.
pub(crate) async fn open(pg: &tokio_postgres::Config) -> Result<tokio_postgres::Client> {
    let (client, connection) = pg.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "Meridian connection ended with an error");
        }
    });
    Ok(client)
}

impl Client {
    /// Connects to the server at `url` (see [`Config::new`] for the forms
    /// accepted), with the default retry policy. Must be called within a
    /// tokio runtime: the connection is driven by a task spawned on it.
    pub async fn connect(url: &str) -> Result<Client> {
        Client::connect_with(Config::new(url)?).await
    }

    /// Connects with explicit settings.
    pub async fn connect_with(config: impl Into<Config>) -> Result<Client> {
        Client::connect_shared(Arc::new(config.into())).await
    }

    pub(crate) async fn connect_shared(config: Arc<Config>) -> Result<Client> {
        let inner = open(config.postgres()).await?;
        Ok(Client { inner, config })
    }

    /// The settings this client connected with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The tokio-postgres client, for what this type does not forward
    /// (`query_raw`, `copy_in`, `cancel_token`, ...). Its errors are
    /// tokio-postgres errors, which convert into [`Error`] with `?`.
    pub fn as_postgres(&self) -> &tokio_postgres::Client {
        &self.inner
    }

    /// The tokio-postgres client, mutably (for its own `transaction`,
    /// which does not retry).
    pub fn as_postgres_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.inner
    }

    /// Whether the connection has closed (the server went away, or the
    /// network failed). [`transaction`](Client::transaction) reconnects by
    /// itself; other calls fail with [`Error::ConnectionLost`] until
    /// [`reconnect`](Client::reconnect).
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Replaces the connection with a new one to the same server.
    pub async fn reconnect(&mut self) -> Result<()> {
        self.inner = open(self.config.postgres()).await?;
        Ok(())
    }

    /// Prepares a statement; `$1`, `$2`, ... are its parameters, whose
    /// types the server infers.
    pub async fn prepare(&self, query: &str) -> Result<Statement> {
        Ok(self.inner.prepare(query).await?)
    }

    /// Runs a statement and returns its rows.
    pub async fn query<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>>
    where
        T: ?Sized + ToStatement,
    {
        Ok(self.inner.query(statement, params).await?)
    }

    /// Runs a statement that returns exactly one row (else an error).
    pub async fn query_one<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Row>
    where
        T: ?Sized + ToStatement,
    {
        Ok(self.inner.query_one(statement, params).await?)
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
        Ok(self.inner.query_opt(statement, params).await?)
    }

    /// Runs a statement and returns the number of rows it affected.
    pub async fn execute<T>(&self, statement: &T, params: &[&(dyn ToSql + Sync)]) -> Result<u64>
    where
        T: ?Sized + ToStatement,
    {
        Ok(self.inner.execute(statement, params).await?)
    }

    /// Runs one or more `;`-separated statements without parameters
    /// (the simple query protocol), discarding their rows.
    pub async fn batch_execute(&self, query: &str) -> Result<()> {
        Ok(self.inner.batch_execute(query).await?)
    }

    /// Runs `;`-separated statements without parameters and returns their
    /// rows as text.
    pub async fn simple_query(&self, query: &str) -> Result<Vec<SimpleQueryMessage>> {
        Ok(self.inner.simple_query(query).await?)
    }

    /// Runs `f` in a transaction, retrying it while it fails in a way that
    /// is safe to retry; see the [crate docs](crate#transactions-and-retries).
    ///
    /// Each attempt sends `BEGIN`, awaits `f(&tx)`, and sends `COMMIT` if it
    /// returned `Ok` (or `ROLLBACK` if it returned `Err`). When the attempt
    /// fails with an error that [is retryable](Error::is_retryable) (SQLSTATE
    /// `40001`, `40P01` or `57P03`, or the connection was lost before `COMMIT` was
    /// sent, in which case the client reconnects), the transaction is rolled
    /// back and `f` runs again after a jittered exponential backoff, up to
    /// the [`RetryPolicy`](crate::RetryPolicy)'s `max_attempts`; then the
    /// last error is returned. Any other error is returned at once, and
    /// [`Error::AmbiguousCommit`] is never retried.
    ///
    /// `f` is called once per attempt, so it must be able to run again: do
    /// all of the transaction's reads and writes through `tx`, and keep side
    /// effects outside the database for after `transaction` returns. It
    /// returns a boxed future: write `|tx| Box::pin(async move { ... })`.
    /// To end the transaction early with an application error, return
    /// [`Error::abort`]: it is rolled back and not retried.
    ///
    /// ```no_run
    /// # async fn demo(client: &mut meridian_client::Client) -> meridian_client::Result<()> {
    /// use meridian_client::Error;
    ///
    /// let (from, to, amount) = (1i64, 2i64, 10i64);
    /// let new_balance: i64 = client
    ///     .transaction(|tx| {
    ///         Box::pin(async move {
    ///             let row = tx
    ///                 .query_one("SELECT balance FROM accounts WHERE id = $1", &[&from])
    ///                 .await?;
    ///             let balance: i64 = row.get(0);
    ///             if balance < amount {
    ///                 return Err(Error::abort("insufficient funds"));
    ///             }
    ///             tx.execute(
    ///                 "UPDATE accounts SET balance = balance - $1 WHERE id = $2",
    ///                 &[&amount, &from],
    ///             )
    ///             .await?;
    ///             tx.execute(
    ///                 "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
    ///                 &[&amount, &to],
    ///             )
    ///             .await?;
    ///             Ok(balance - amount)
    ///         })
    ///     })
    ///     .await?;
    /// # let _ = new_balance;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn transaction<T, F>(&mut self, mut f: F) -> Result<T>
    where
        F: for<'t> FnMut(&'t Transaction<'_>) -> BoxFuture<'t, Result<T>>,
    {
        let policy = self.config.retry_policy().clone();
        let attempts = policy.attempts();
        let mut attempt = 1;
        let mut reconnect = false;
        loop {
            let err = match self.attempt(&mut f, reconnect).await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if !err.is_retryable() || attempt >= attempts {
                return Err(err);
            }
            // The driver may report the loss before it marks the client
            // closed: do not wait for that to open the next connection.
            reconnect = matches!(err, Error::ConnectionLost(_))
                || matches!(&err, Error::RolledBack { code, .. } if *code == CONNECTION_LOST);
            let backoff = policy.backoff(attempt);
            tracing::debug!(%err, attempt, ?backoff, "retrying transaction");
            tokio::time::sleep(backoff).await;
            attempt += 1;
        }
    }

    /// One run of a transaction: BEGIN, `f`, COMMIT (or ROLLBACK).
    async fn attempt<T, F>(&mut self, f: &mut F, reconnect: bool) -> Result<T>
    where
        F: for<'t> FnMut(&'t Transaction<'_>) -> BoxFuture<'t, Result<T>>,
    {
        if reconnect || self.inner.is_closed() {
            // A failure to connect (an I/O error) is ConnectionLost, and is
            // retried like the loss of the old connection.
            self.reconnect().await?;
        }
        let tx = Transaction::new(self.inner.transaction().await?);
        let result = f(&tx).await;
        let (inner, failure) = tx.into_parts();
        match (result, failure) {
            (Ok(value), None) => match inner.commit().await {
                Ok(()) => Ok(value),
                Err(err) => {
                    let err = Error::from_commit(err);
                    if !err.is_ambiguous() && !self.inner.is_closed() {
                        // The session may still be in a failed block.
                        let _ = self.inner.batch_execute("ROLLBACK").await;
                    }
                    Err(err)
                }
            },
            (Ok(_), Some(failure)) => {
                let _ = inner.rollback().await;
                Err(failure.into_error())
            }
            (Err(err), _) => {
                let _ = inner.rollback().await;
                Err(err)
            }
        }
    }
}
