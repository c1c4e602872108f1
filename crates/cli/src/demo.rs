//! `meridian demo`: a replicated cluster in one process, one command, no
//! configuration.
//!
//! It runs three nodes inside this process (`meridian_server::cluster`),
//! each with its own RocksDB under the data directory (`node-1` ...
//! `node-3`) and a replica of the Paxos group, over the in-process network;
//! TrueTime is the system clock. It serves the PostgreSQL wire protocol on
//! the SQL address through node 1 (`meridian_pg::serve`), whose transactions
//! run at whichever replica leads, and opens the SQL shell on it. With
//! `--no-shell` it serves until SIGINT or SIGTERM instead, for `psql`,
//! drivers and tests. Data survives restarts.
//!
//! It refuses to start, with a clear message and a non-zero exit, when the
//! data directory is damaged (RocksDB checksums) or in use, and when the SQL
//! address is taken. Once serving, it stops if the system clock is seen
//! outside its uncertainty bound (a node must fence itself rather than hand
//! out timestamps it cannot stand behind).
//!
//! Leases are short (2 s, `ReplicationOptions::fast`) so that a leader
//! change in the demo is quick. Left out: a password (trust authentication
//! on a loopback address).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use clap::Args;
use meridian_error::{Error, Result};
use meridian_server::clock::{self, SystemClock, DEFAULT_EPSILON};
use meridian_server::cluster::{LocalCluster, LocalClusterOptions};
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
/// How long the demo waits for its group to elect a leader.
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How many groups the demo cuts its keyspace into (each table gets a range,
/// dealt round the groups).
const DEMO_GROUPS: u32 = 3;
/// How long background tasks get to end once the nodes are stopped.
pub const WIND_DOWN: Duration = Duration::from_millis(200);
/// How long connections get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The connection URL for a server listening on `addr`.
pub fn url(addr: SocketAddr) -> String {
    format!("postgres://{USER}@{addr}/{DATABASE}")
}

/// How the SQL port of a demo or a node presents itself.
pub fn pg_config() -> meridian_pg::PgConfig {
    meridian_pg::PgConfig {
        password: None,
        user: USER.to_string(),
        database: DATABASE.to_string(),
        server_version: format!("15.0 (Meridian {})", env!("CARGO_PKG_VERSION")),
    }
}

/// Runs the demo; returns the process exit status.
pub async fn run(args: DemoArgs) -> Result<u8> {
    let listener = TcpListener::bind(&args.sql_addr)
        .await
        .map_err(|err| explain_bind_error(&args.sql_addr, "--sql-addr", err))?;
    let clock = Arc::new(SystemClock::new(Duration::from_millis(args.epsilon_ms)));
    let cluster = LocalCluster::open(
        &args.data_dir,
        clock.clone(),
        LocalClusterOptions {
            groups: DEMO_GROUPS,
            ..LocalClusterOptions::default()
        },
    )
    .await
    .map_err(|err| explain_open_error(&args.data_dir, err))?;
    let leader = cluster.wait_for_leader(LEADER_TIMEOUT).await?;
    let addr = listener.local_addr()?;
    let url = url(addr);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(meridian_pg::serve(
        listener,
        cluster.engine(1),
        pg_config(),
        async {
            let _ = stop_rx.await;
        },
    ));

    let mut sigterm = signal(SignalKind::terminate())?;
    let fenced = clock::fenced(&clock, CLOCK_CHECK_INTERVAL);
    tokio::pin!(fenced);
    let outcome: Result<u8> = if args.no_shell {
        println!(
            "Meridian demo: {DEMO_GROUPS} groups of 3 replicas in this process, data at {} \
             (node {leader} leads group 1)",
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
            "Meridian demo: {DEMO_GROUPS} groups of 3 replicas in this process, data at {}, serving {url}",
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
    // Stop the nodes while the runtime still runs, so that their background
    // tasks (peer queues, rollbacks of routed transactions) wind down
    // before it shuts down.
    drop(cluster);
    tokio::time::sleep(WIND_DOWN).await;
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
pub fn explain_open_error(dir: &std::path::Path, err: Error) -> Error {
    match err {
        Error::Corruption(msg) => Error::Corruption(format!(
            "{msg}\nthe data directory {} is damaged; refusing to start. Restore it from a \
             backup, or start afresh with another --data-dir",
            dir.display()
        )),
        Error::Io(msg) if msg.contains("lock") => Error::Io(format!(
            "{msg}\nthe data directory {} is in use (is another meridian process running on it?)",
            dir.display()
        )),
        other => other,
    }
}

/// Says what to do about an address (given with `flag`) that cannot be
/// served.
pub fn explain_bind_error(addr: &str, flag: &str, err: std::io::Error) -> Error {
    let hint = match err.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "; another server (another meridian process, or PostgreSQL) is using it: \
             pick another with {flag} HOST:PORT"
        ),
        std::io::ErrorKind::PermissionDenied => format!("; pick a port above 1023 with {flag}"),
        _ => String::new(),
    };
    Error::Io(format!("cannot listen on {addr}: {err}{hint}"))
}
