//! `meridian demo`: the embedded database, one command, no configuration.
//!
//! It opens the single-process database at a data directory (RocksDB, the
//! system clock as TrueTime, the local transaction engine: see
//! `meridian_server::local`), serves the PostgreSQL wire protocol on the SQL
//! address (`meridian_pg::serve`), and opens the SQL shell on it. With
//! `--no-shell` it serves until SIGINT or SIGTERM instead, for `psql`,
//! drivers and tests. Data survives restarts.
//!
//! It refuses to start, with a clear message and a non-zero exit, when the
//! data directory is damaged (RocksDB checksums) or in use, and when the SQL
//! address is taken. Once serving, it stops if the system clock is seen
//! outside its uncertainty bound (a node must fence itself rather than hand
//! out timestamps it cannot stand behind).
//!
//! Left out, for now: the 3-replica Paxos groups of the distributed engine
//! (the demo runs the single-process engine, which has the same transaction
//! semantics without replication), and a password (trust authentication on
//! a loopback address).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use meridian_error::{Error, Result};
use meridian_server::clock::DEFAULT_EPSILON;
use meridian_server::local::{self, LocalOptions};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::shell::{self, SqlArgs};

/// Options of `meridian demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the data lives; it survives restarts.
    #[arg(long, default_value = "./meridian-data")]
    data_dir: PathBuf,
    /// The address to serve the PostgreSQL protocol on (port 0 picks a free
    /// one; the URL printed says which).
    #[arg(long, default_value = "127.0.0.1:5433")]
    sql_addr: String,
    /// Serve until SIGINT/SIGTERM instead of opening the shell.
    #[arg(long)]
    no_shell: bool,
    /// The clock uncertainty bound ε, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_EPSILON.as_millis() as u64)]
    epsilon_ms: u64,
}

/// The user and database the demo serves.
const USER: &str = "meridian";
/// The database name clients connect to.
const DATABASE: &str = "meridian";
/// How often the clock's bound is checked.
const CLOCK_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long connections get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The connection URL for a server listening on `addr`.
pub fn url(addr: SocketAddr) -> String {
    format!("postgres://{USER}@{addr}/{DATABASE}")
}

/// Runs the demo; returns the process exit status.
pub async fn run(args: DemoArgs) -> Result<u8> {
    let db = local::open(
        &args.data_dir,
        LocalOptions {
            epsilon: Duration::from_millis(args.epsilon_ms),
            ..LocalOptions::default()
        },
    )
    .map_err(|err| explain_open_error(&args.data_dir, err))?;
    let listener = TcpListener::bind(&args.sql_addr)
        .await
        .map_err(|err| explain_bind_error(&args.sql_addr, err))?;
    let addr = listener.local_addr()?;
    let url = url(addr);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = meridian_pg::PgConfig {
        password: None,
        user: USER.to_string(),
        database: DATABASE.to_string(),
        server_version: format!("15.0 (Meridian {})", env!("CARGO_PKG_VERSION")),
    };
    let mut server = tokio::spawn(meridian_pg::serve(listener, db.engine(), config, async {
        let _ = stop_rx.await;
    }));

    let mut sigterm = signal(SignalKind::terminate())?;
    let watched = db.clone();
    let fenced = async move { watched.clock_fenced(CLOCK_CHECK_INTERVAL).await };
    tokio::pin!(fenced);
    let outcome: Result<u8> = if args.no_shell {
        println!(
            "Meridian demo: the embedded database at {}",
            args.data_dir.display()
        );
        println!("serving the PostgreSQL protocol at {url}");
        println!("connect with:  meridian sql --url {url}");
        println!("          or:  psql {url}");
        println!("stop with Ctrl-C (SIGINT) or SIGTERM");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => Ok(0),
            _ = sigterm.recv() => Ok(0),
            err = &mut fenced => Err(err),
            served = &mut server => Err(server_ended(served)),
        }
    } else {
        eprintln!(
            "Meridian demo: the embedded database at {}, serving {url}",
            args.data_dir.display()
        );
        let shell = shell::run(SqlArgs {
            url: url.clone(),
            ..SqlArgs::default()
        });
        tokio::select! {
            code = shell => Ok(code),
            _ = sigterm.recv() => Ok(0),
            err = &mut fenced => Err(err),
            served = &mut server => Err(server_ended(served)),
        }
    };

    // Stop accepting, let sessions finish, close the database.
    let _ = stop_tx.send(());
    if !server.is_finished() {
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(Ok(Err(err))) => tracing::warn!(%err, "the SQL server stopped with an error"),
            Ok(_) => {}
            Err(_) => {
                tracing::warn!("sessions still open after {SHUTDOWN_GRACE:?}; closing anyway");
                server.abort();
            }
        }
    }
    if args.no_shell && outcome.is_ok() {
        println!("stopped");
    }
    outcome
}

/// Why the server task ended early, as an error.
fn server_ended(served: std::result::Result<Result<()>, tokio::task::JoinError>) -> Error {
    match served {
        Ok(Ok(())) => Error::Internal("the SQL server stopped unexpectedly".into()),
        Ok(Err(err)) => err,
        Err(err) => Error::Internal(format!("the SQL server failed: {err}")),
    }
}

/// Says what to do about a data directory that cannot be opened.
fn explain_open_error(dir: &std::path::Path, err: Error) -> Error {
    match err {
        Error::Corruption(msg) => Error::Corruption(format!(
            "{msg}\nthe data directory {} is damaged; refusing to start. Restore it from a \
             backup, or start afresh with another --data-dir",
            dir.display()
        )),
        Error::Io(msg) if msg.contains("lock") => Error::Io(format!(
            "{msg}\nthe data directory {} is in use (is another `meridian demo` running on it?)",
            dir.display()
        )),
        other => other,
    }
}

/// Says what to do about an SQL address that cannot be served.
fn explain_bind_error(addr: &str, err: std::io::Error) -> Error {
    let hint = match err.kind() {
        std::io::ErrorKind::AddrInUse => {
            "; another server (another `meridian demo`, or PostgreSQL) is using it: \
             pick another with --sql-addr HOST:PORT"
        }
        std::io::ErrorKind::PermissionDenied => "; pick a port above 1023 with --sql-addr",
        _ => "",
    };
    Error::Io(format!("cannot serve SQL on {addr}: {err}{hint}"))
}
