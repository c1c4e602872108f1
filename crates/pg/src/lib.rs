//! The PostgreSQL wire-protocol front end.
//!
//! Meridian speaks PostgreSQL's frontend/backend protocol (version 3.0) on
//! its SQL port, so `psql`, tokio-postgres, psycopg, the JDBC driver and the
//! TPC-C driver connect to it as to PostgreSQL. [`serve`] accepts
//! connections; each gets one [`meridian_sql::Session`] and is served by one
//! task, which turns protocol messages into session calls and session
//! results back into protocol messages.
//!
//! The layer is built on the `pgwire` crate: its backend message types and
//! encoders, and its SCRAM-SHA-256 server. It drives the protocol itself
//! rather than through `pgwire`'s handler traits, for three reasons: frames
//! are cut by length before they are decoded, so malformed input costs one
//! error and not the connection; rows are encoded straight into the output
//! buffer, with no allocation per row; and the transaction status, portal
//! suspension and cancellation follow the session exactly.
//!
//! Module map, in the order a connection meets them:
//!
//! - `startup`: TLS refusal, protocol negotiation, trust or SCRAM
//!   authentication, `ParameterStatus`, `BackendKeyData`;
//! - `protocol`: framing and checked decoding of frontend messages;
//! - `conn`: the simple and extended query protocols, prepared statements,
//!   portals with `max_rows`, transaction status, error recovery;
//! - `values`: text and binary formats of every SQL type;
//! - `compat` and `catalog`: statements answered by the wire layer for
//!   client compatibility (`SET`, `SHOW`, `DEALLOCATE`, `version()`, and the
//!   `pg_catalog` queries of psql, tokio-postgres, psycopg and JDBC);
//! - `cancel`: `CancelRequest` handling;
//! - `sqlstate`: the one place errors become SQLSTATEs ([`sqlstate()`]).
//!
//! Left out (see `docs/architecture/pg.md`): TLS, COPY, `LISTEN`/`NOTIFY`,
//! notices, MD5 and cleartext passwords, protocol 3.2, and cursors declared
//! in SQL.

mod backend;
mod cancel;
mod catalog;
mod compat;
mod conn;
mod protocol;
mod sqlstate;
mod sqltext;
mod startup;
#[cfg(test)]
mod tests;
mod values;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use meridian_error::Result;
use meridian_txn::TxnEngine;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use sqlstate::sqlstate;

/// How the PostgreSQL front end presents itself and whom it lets in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgConfig {
    /// The password of [`user`](Self::user): `None` lets anyone in (trust
    /// authentication); `Some` requires SCRAM-SHA-256 with this password.
    pub password: Option<String>,
    /// The user who may log in when a password is set (default `meridian`).
    pub user: String,
    /// The database name reported by `current_database()` and `\l`
    /// (default `meridian`); clients may connect with any database name.
    pub database: String,
    /// The `server_version` reported to clients (default `15.0`); drivers
    /// pick their dialect from it.
    pub server_version: String,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            password: None,
            user: "meridian".to_owned(),
            database: "meridian".to_owned(),
            server_version: "15.0".to_owned(),
        }
    }
}

/// Serves the PostgreSQL protocol on `listener` until `shutdown` completes;
/// one [`Session`](meridian_sql::Session) per connection.
///
/// When `shutdown` completes, no more connections are accepted and the open
/// ones are closed (their sessions dropped, which rolls back any open
/// transaction). Accept errors (such as running out of file descriptors)
/// are logged and retried, never returned.
pub async fn serve<E: TxnEngine + Clone>(
    listener: TcpListener,
    engine: E,
    config: PgConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let shared = Arc::new(conn::Shared::new(config));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let session = meridian_sql::Session::new(engine.clone());
                    connections.spawn(conn::run(stream, session, shared.clone()));
                }
                Err(err) => {
                    tracing::warn!(%err, "accepting a PostgreSQL connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
    Ok(())
}
