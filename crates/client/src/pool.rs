//! A bounded pool of connections, on the `deadpool` crate.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};

use crate::client::BoxFuture;
use crate::{Client, Config, Error, Result, Transaction};

/// Opens and checks the pool's connections.
#[derive(Debug)]
struct Manager {
    config: Arc<Config>,
}

impl managed::Manager for Manager {
    type Type = Client;
    type Error = Error;

    async fn create(&self) -> Result<Client> {
        Client::connect_shared(self.config.clone()).await
    }

    async fn recycle(&self, client: &mut Client, _: &Metrics) -> RecycleResult<Error> {
        // A dropped transaction has already queued its ROLLBACK; a closed
        // connection is replaced by a new one.
        if client.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        Ok(())
    }
}

/// A bounded pool of [`Client`]s to one server, shared by cloning.
///
/// At most [`Config::pool_size`] connections are open at once;
/// [`get`](Pool::get) hands out an idle one, opens a new one while under the
/// bound, or waits (up to [`Config::pool_timeout`]) for one to be returned.
/// A connection goes back to the pool when its [`PooledClient`] is dropped;
/// closed connections are thrown away and replaced.
///
/// ```no_run
/// # async fn demo() -> meridian_client::Result<()> {
/// use meridian_client::{Config, Pool};
///
/// let pool = Pool::new(Config::new("postgres://meridian@localhost:5433/meridian")?.pool_size(16));
/// let client = pool.get().await?;
/// let row = client.query_one("SELECT $1::BIGINT + 1", &[&41i64]).await?;
/// assert_eq!(row.get::<_, i64>(0), 42);
/// drop(client); // back to the pool
///
/// // A retried transaction on a pooled connection:
/// let count: i64 = pool
///     .transaction(|tx| {
///         Box::pin(async move {
///             tx.execute("UPDATE counters SET n = n + 1 WHERE id = 1", &[]).await?;
///             Ok(tx.query_one("SELECT n FROM counters WHERE id = 1", &[]).await?.get(0))
///         })
///     })
///     .await?;
/// # let _ = count;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Pool {
    inner: managed::Pool<Manager>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// How many connections a [`Pool`] holds and lends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// The most connections the pool opens.
    pub max_size: usize,
    /// The connections open now, lent or idle.
    pub size: usize,
    /// The idle connections.
    pub available: usize,
    /// The callers waiting for a connection.
    pub waiting: usize,
}

impl Pool {
    /// A pool to the server of `config`, sized by [`Config::pool_size`].
    /// No connection is opened until the first [`get`](Pool::get).
    pub fn new(config: impl Into<Config>) -> Pool {
        let config: Config = config.into();
        let max_size = config.get_pool_size();
        let timeout = config.get_pool_timeout();
        let manager = Manager {
            config: Arc::new(config),
        };
        let inner = managed::Pool::builder(manager)
            .max_size(max_size)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            // Only fails without a runtime for timeouts, and one is given.
            .expect("the pool's runtime is set");
        Pool { inner }
    }

    /// A pool to the server at `url` (see [`Config::new`]), with default
    /// settings.
    pub fn connect(url: &str) -> Result<Pool> {
        Ok(Pool::new(Config::new(url)?))
    }

    /// The pool's settings.
    pub fn config(&self) -> &Config {
        &self.inner.manager().config
    }

    /// A connection: an idle one, a new one while the pool is under its
    /// bound, or else the first one returned. Fails with
    /// [`Error::PoolTimeout`] if none is free within the pool timeout, or
    /// with the connection error if a new one cannot be opened.
    pub async fn get(&self) -> Result<PooledClient> {
        Ok(PooledClient {
            inner: self.inner.get().await?,
        })
    }

    /// Runs `f` in a retried transaction on a pooled connection: see
    /// [`Client::transaction`]. The connection goes back to the pool when
    /// the transaction is over.
    pub async fn transaction<T, F>(&self, f: F) -> Result<T>
    where
        F: for<'t> FnMut(&'t Transaction<'_>) -> BoxFuture<'t, Result<T>>,
    {
        self.get().await?.transaction(f).await
    }

    /// How many connections are open, idle and awaited.
    pub fn status(&self) -> PoolStatus {
        let status = self.inner.status();
        PoolStatus {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        }
    }

    /// Closes the pool: idle connections are closed, lent ones when they
    /// are returned, and [`get`](Pool::get) fails from now on.
    pub fn close(&self) {
        self.inner.close();
    }
}

/// A [`Client`] lent by a [`Pool`]; it dereferences to the client, and goes
/// back to the pool when dropped.
pub struct PooledClient {
    inner: managed::Object<Manager>,
}

impl std::fmt::Debug for PooledClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PooledClient").field(&**self).finish()
    }
}

impl PooledClient {
    /// Takes the client out of the pool for good: the pool forgets it and
    /// may open another in its place.
    pub fn detach(self) -> Client {
        managed::Object::take(self.inner)
    }
}

impl Deref for PooledClient {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.inner
    }
}

impl DerefMut for PooledClient {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.inner
    }
}
