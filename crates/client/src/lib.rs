//! The Postgres-style Rust client for Meridian.
//!
//! Meridian speaks the PostgreSQL wire protocol, so this crate is a thin
//! layer over [`tokio_postgres`]: it re-exports what a program needs from
//! it ([`Row`], [`Statement`], [`types::ToSql`], ...) and adds what a
//! client of a distributed, serializable database needs on top:
//!
//! - [`Client::connect`] from a URL, spawning the task that drives the
//!   connection;
//! - a bounded connection [`Pool`];
//! - [`Client::transaction`] and [`Pool::transaction`], which run a closure
//!   in a transaction and retry it when the database asks for a retry;
//! - an [`Error`] type that tells retryable failures and ambiguous commits
//!   apart from everything else.
//!
//! ```no_run
//! # async fn demo() -> meridian_client::Result<()> {
//! use meridian_client::Client;
//!
//! let mut client = Client::connect("postgres://meridian@localhost:5433/meridian").await?;
//! client
//!     .batch_execute("CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)")
//!     .await?;
//! let insert = client.prepare("INSERT INTO accounts (id, balance) VALUES ($1, $2)").await?;
//! client.execute(&insert, &[&1i64, &100i64]).await?;
//! client.execute(&insert, &[&2i64, &0i64]).await?;
//!
//! // Move 10 from account 1 to account 2, retrying on conflicts.
//! client
//!     .transaction(|tx| {
//!         Box::pin(async move {
//!             tx.execute("UPDATE accounts SET balance = balance - 10 WHERE id = 1", &[])
//!                 .await?;
//!             tx.execute("UPDATE accounts SET balance = balance + 10 WHERE id = 2", &[])
//!                 .await?;
//!             Ok(())
//!         })
//!     })
//!     .await?;
//!
//! for row in client.query("SELECT id, balance FROM accounts ORDER BY id", &[]).await? {
//!     let (id, balance): (i64, i64) = (row.get("id"), row.get("balance"));
//!     println!("{id}: {balance}");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Transactions and retries
//!
//! Meridian runs every transaction serializably and resolves conflicts by
//! wound-wait locking: when two transactions want the same rows, the
//! younger one is aborted and its client gets SQLSTATE `40001`
//! (serialization failure). While a replica group elects a new leader,
//! statements may fail with `57P03` (cannot connect now). Both mean that
//! nothing of the transaction took effect and that running it again from
//! the start is the remedy. [`Client::transaction`] does that:
//!
//! 1. it sends `BEGIN`, runs the closure with a [`Transaction`], and sends
//!    `COMMIT` if the closure returned `Ok` (`ROLLBACK` if it returned
//!    `Err`);
//! 2. if a statement or the `COMMIT` failed with `40001`, `40P01` or `57P03`, or the
//!    connection was lost before `COMMIT` was sent, it rolls back (ignoring
//!    errors), sleeps for a jittered exponential backoff and runs the
//!    closure again on the same connection (or on a new one, if it was
//!    lost);
//! 3. it gives up after [`RetryPolicy::max_attempts`] runs and returns the
//!    last error ([`Error::Retryable`] or [`Error::ConnectionLost`]);
//! 4. any other error is returned at once, after a rollback: a constraint
//!    violation ([`Error::Postgres`] with `23505`), an application error
//!    ([`Error::abort`]), ...
//!
//! **Ambiguous commits are never retried.** If the server answers `COMMIT`
//! with SQLSTATE `40003` (statement completion unknown), or the connection
//! is lost after `COMMIT` was sent, the transaction may or may not have
//! committed: running it again could apply it twice. It is returned as
//! [`Error::AmbiguousCommit`] so that the caller can find out (for example
//! by reading back a row the transaction wrote) and decide.
//!
//! Because the closure may run several times, it must be repeatable: do all
//! reads and writes through its `tx`, and leave side effects outside the
//! database (sending mail, updating in-memory state) until `transaction`
//! has returned `Ok`. The closure returns a boxed future borrowing `tx`,
//! written `|tx| Box::pin(async move { ... })`. The future may borrow only
//! `tx` and `'static` data, so a captured value that is not `Copy` is cloned
//! into each run (`let name = name.clone(); Box::pin(async move { ... })`).
//! The whole `transaction` future is
//! `Send` when the closure's is, so it can run in `tokio::spawn`.
//!
//! If a statement fails inside the closure, the server rolls the whole
//! transaction back at once. The [`Transaction`] remembers this: a closure
//! that handles the error and still returns `Ok` gets
//! [`Error::RolledBack`] rather than a success (retried if the failure was
//! retryable).
//!
//! Statements outside `transaction` are not retried: each runs in its own
//! implicit transaction, which Meridian itself retries a few times on
//! conflicts before reporting `40001`.

mod client;
mod config;
mod error;
mod pool;
mod transaction;

pub use client::{BoxFuture, Client};
pub use config::{Config, RetryPolicy};
pub use error::{Error, Result};
pub use pool::{Pool, PoolStatus, PooledClient};
pub use transaction::Transaction;

pub use tokio_postgres;
pub use tokio_postgres::error::{DbError, SqlState};
pub use tokio_postgres::types;
pub use tokio_postgres::{Column, Row, SimpleQueryMessage, Statement, ToStatement};
