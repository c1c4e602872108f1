//! `meridian start`, `meridian init` and `meridian status`: real nodes, one
//! process each, talking gRPC.
//!
//! `start` opens the node's data directory (RocksDB), serves the node API
//! on `--listen` (gRPC) and SQL on `--sql-addr` (the PostgreSQL protocol,
//! routed to the leader of the group), and runs until SIGINT or SIGTERM, or
//! until its clock is seen outside its bound. A new node waits to be
//! bootstrapped; `init --host` asks one node to found the cluster with every
//! node of its `--join` list, once. A restarted node rejoins by itself.
//! Every few seconds a node compares its clock with its peers' and fences
//! itself (exits) when it disagrees with most of them beyond 2ε.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use meridian_error::{Error, Result};
use meridian_proto::v1;
use meridian_server::clock::{self, SystemClock, DEFAULT_EPSILON};
use meridian_server::group::{
    ReplicationOptions, Storage, DEFAULT_DEAD_NODE_TIMEOUT, DEFAULT_GC_RETENTION,
    DEFAULT_LEADER_REBALANCE_INTERVAL, DEFAULT_MAX_LOG_BYTES, DEFAULT_MAX_RANGE_BYTES,
    DEFAULT_REPLICA_REBALANCE_INTERVAL,
};
use meridian_server::grpc::{self, GrpcConnector, GrpcPeer};
use meridian_server::local::{OffExecutor, TokioSleeper};
use meridian_server::net::NodeApi;
use meridian_server::node::{Node, NodeConfig};
use meridian_storage::{RocksEngine, RocksOptions};
use meridian_truetime::{ClockSource, TrueTime};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::demo::{explain_bind_error, explain_open_error, pg_config, url};

/// Options of `meridian start`.
#[derive(Args, Debug)]
pub struct StartArgs {
    /// This node's id: a positive number, unique in the cluster, the same
    /// at every restart.
    #[arg(long)]
    node_id: u64,
    /// Where this node's data lives.
    #[arg(long)]
    data_dir: PathBuf,
    /// The node-to-node (gRPC) address to listen on.
    #[arg(long, default_value = "127.0.0.1:6433")]
    listen: String,
    /// The address other nodes reach this one at (default: --listen).
    #[arg(long)]
    advertise: Option<String>,
    /// The address to serve the PostgreSQL protocol on.
    #[arg(long, default_value = "127.0.0.1:5433")]
    sql_addr: String,
    /// The gRPC addresses of the cluster's nodes (comma-separated; this
    /// node's own may be included).
    #[arg(long, value_delimiter = ',')]
    join: Vec<String>,
    /// The clock uncertainty bound ε, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_EPSILON.as_millis() as u64)]
    epsilon_ms: u64,
    /// The leader lease, in milliseconds (heartbeats go 20 times per lease).
    #[arg(long, default_value_t = 10_000)]
    lease_ms: u64,
    /// A follower campaigns after hearing no leader for this long (plus a
    /// random part as long again), in milliseconds.
    #[arg(long, default_value_t = 3_000)]
    election_timeout_ms: u64,
    /// How long old versions are kept, in seconds: `AS OF SYSTEM TIME`
    /// reads may go this far back, older versions are garbage-collected.
    #[arg(long, default_value_t = DEFAULT_GC_RETENTION.as_secs())]
    gc_retention_secs: u64,
    /// A range whose stored versions outgrow this many MiB is split in two
    /// by the leader of its group (0: never).
    #[arg(long, default_value_t = DEFAULT_MAX_RANGE_BYTES >> 20)]
    max_range_mib: u64,
    /// The memory each replica's log may take, in MiB: past it the log is
    /// truncated, keeping the newest half for replicas a little behind
    /// (one further behind is sent a snapshot).
    #[arg(long, default_value_t = (DEFAULT_MAX_LOG_BYTES >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_log_mib: u64,
    /// How often the node looks whether it leads two or more groups more
    /// than another live voter and hands one leadership over, in seconds
    /// (0: never).
    #[arg(long, default_value_t = DEFAULT_LEADER_REBALANCE_INTERVAL.as_secs())]
    leader_rebalance_secs: u64,
    /// How often the node serving the first group looks whether a replica
    /// should move (off a dead node, or to even out the replicas per
    /// node), in seconds (0: never).
    #[arg(long, default_value_t = DEFAULT_REPLICA_REBALANCE_INTERVAL.as_secs())]
    replica_rebalance_secs: u64,
    /// A node that has not answered for this many seconds is dead: its
    /// replicas are moved to other nodes.
    #[arg(long, default_value_t = DEFAULT_DEAD_NODE_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    dead_node_secs: u64,
}

/// Options of `meridian init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// The gRPC address of one node; it founds the cluster with the nodes
    /// of its --join list.
    #[arg(long, default_value = "127.0.0.1:6433")]
    host: String,
    /// How many Paxos groups to cut the keyspace into: the catalog stays
    /// in the first, and each table gets a range, dealt round the groups.
    /// Transactions over tables of different groups commit with two-phase
    /// commit.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    groups: u32,
    /// How many replicas each group gets, on distinct nodes (default:
    /// three, or every node of a smaller cluster). The replicas are spread
    /// so that every node holds about as many as any other.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=7))]
    replicas: Option<u32>,
}

/// Options of `meridian status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The gRPC address of a node.
    #[arg(long, default_value = "127.0.0.1:6433")]
    host: String,
}

/// Options of `meridian move-replica`.
#[derive(Args, Debug)]
pub struct MoveReplicaArgs {
    /// The gRPC address of any node of the cluster: it runs the move.
    #[arg(long, default_value = "127.0.0.1:6433")]
    host: String,
    /// The group whose replica moves (`SHOW RANGES` and `meridian status`
    /// name the groups and their replicas).
    #[arg(long)]
    group: u64,
    /// The node the replica leaves.
    #[arg(long)]
    from: u64,
    /// The node that gets the replica (if it holds one already, the move
    /// only removes the one on --from: a move makes --to a voter and --from
    /// not one, so running it again finishes an interrupted move).
    #[arg(long)]
    to: u64,
}

/// Options of `meridian add-node`.
#[derive(Args, Debug)]
pub struct AddNodeArgs {
    /// The gRPC address of any node of the cluster: it adds the new one.
    #[arg(long, default_value = "127.0.0.1:6433")]
    host: String,
    /// The gRPC address of the new node (started with `meridian start`,
    /// not part of any cluster).
    #[arg(long)]
    address: String,
}

/// How often the clock's bound is checked.
const CLOCK_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often the clock is compared with the peers'.
const PEER_CLOCK_INTERVAL: Duration = Duration::from_secs(5);

/// Runs one node until it is told to stop; returns the exit status.
pub async fn start(args: StartArgs) -> Result<u8> {
    let epsilon = Duration::from_millis(args.epsilon_ms);
    let lease = Duration::from_millis(args.lease_ms);
    let replication = ReplicationOptions {
        lease,
        heartbeat: lease / 20,
        election_timeout: Duration::from_millis(args.election_timeout_ms),
        gc_retention: Duration::from_secs(args.gc_retention_secs.max(1)),
        max_range_bytes: args.max_range_mib << 20,
        max_log_bytes: (args.max_log_mib << 20) as usize,
        leader_rebalance_interval: Duration::from_secs(args.leader_rebalance_secs),
        replica_rebalance_interval: Duration::from_secs(args.replica_rebalance_secs),
        dead_node_timeout: Duration::from_secs(args.dead_node_secs),
        ..ReplicationOptions::default()
    };
    let clock = Arc::new(SystemClock::new(epsilon));
    let source: Arc<dyn ClockSource> = clock.clone();
    let rocks = RocksEngine::open(&args.data_dir, RocksOptions::default())
        .map_err(|err| explain_open_error(&args.data_dir, err))?;
    let storage: Storage = Arc::new(OffExecutor(rocks));
    let grpc_listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|err| explain_bind_error(&args.listen, "--listen", err))?;
    let sql_listener = TcpListener::bind(&args.sql_addr)
        .await
        .map_err(|err| explain_bind_error(&args.sql_addr, "--sql-addr", err))?;
    let address = args.advertise.clone().unwrap_or_else(|| {
        grpc_listener
            .local_addr()
            .map_or(args.listen.clone(), |a| a.to_string())
    });
    let node = Node::open(
        NodeConfig {
            id: args.node_id,
            address: address.clone(),
            join: args.join.clone(),
            replication,
        },
        storage,
        TrueTime::new(source),
        Arc::new(TokioSleeper),
        Arc::new(GrpcConnector),
    )
    .map_err(|err| explain_open_error(&args.data_dir, err))?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let api: Arc<dyn NodeApi> = node.clone();
    let mut grpc_server = tokio::spawn(grpc::serve(grpc_listener, api, stopped(stop_rx.clone())));
    let sql_local = sql_listener.local_addr()?;
    let sql_url = url(sql_local);
    let mut sql_server = tokio::spawn(meridian_pg::serve(
        sql_listener,
        node.engine(),
        pg_config(),
        stopped(stop_rx.clone()),
    ));
    println!(
        "meridian node {} serving gRPC at {address} and SQL at {sql_url}",
        args.node_id
    );
    if sql_local.ip().is_unspecified() {
        println!("(SQL listens on every interface: connect with one of this host's addresses)");
    }
    if node.cluster() == 0 {
        println!("not part of a cluster yet: run `meridian init --host {address}` once");
        let waiting = Arc::downgrade(&node);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let Some(node) = waiting.upgrade() else {
                    return;
                };
                if node.cluster() != 0 {
                    println!("joined cluster {:016x}", node.cluster());
                    return;
                }
            }
        });
    }

    tokio::spawn(meridian_server::node::watch_peer_clocks(
        Arc::downgrade(&node),
        clock.clone(),
        PEER_CLOCK_INTERVAL,
    ));
    let mut sigterm = signal(SignalKind::terminate())?;
    let outcome = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(0),
        _ = sigterm.recv() => Ok(0),
        err = clock::fenced(&clock, CLOCK_CHECK_INTERVAL) => Err(err),
        served = &mut grpc_server => Err(ended("the gRPC server", served)),
        served = &mut sql_server => Err(ended("the SQL server", served)),
    };
    let _ = stop_tx.send(true);
    node.stop();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = grpc_server.await;
        let _ = sql_server.await;
    })
    .await;
    // Let background tasks end while the runtime still runs.
    drop(node);
    tokio::time::sleep(crate::demo::WIND_DOWN).await;
    outcome
}

fn ended(what: &str, served: std::result::Result<Result<()>, tokio::task::JoinError>) -> Error {
    match served {
        Ok(Ok(())) => Error::Internal(format!("{what} stopped unexpectedly")),
        Ok(Err(err)) => err,
        Err(err) => Error::Internal(format!("{what} failed: {err}")),
    }
}

/// Names the node a transport failure was about.
fn unreachable_hint(host: &str, err: Error) -> Error {
    match err {
        Error::Unavailable(why) => Error::Unavailable(format!(
            "cannot reach the node at {host} (is it running?): {why}"
        )),
        other => other,
    }
}

/// Founds a cluster through one node.
pub async fn init(args: InitArgs) -> Result<u8> {
    let reply = GrpcPeer::connect(&args.host)?
        .init(v1::InitRequest {
            groups: args.groups,
            replicas: args.replicas.unwrap_or(0),
        })
        .await
        .map_err(|err| unreachable_hint(&args.host, err))?;
    println!(
        "initialized cluster {:016x} with {} nodes and {} groups:",
        reply.cluster,
        reply.members.len(),
        args.groups
    );
    for member in reply.members {
        println!("  node {} at {}", member.id, member.address);
    }
    Ok(0)
}

/// Moves a group's replica: the node at `--host` adds the new voter, waits
/// until it caught up, removes the old one and drops its replica.
pub async fn move_replica(args: MoveReplicaArgs) -> Result<u8> {
    let node = GrpcPeer::connect(&args.host)?;
    // Reachable? (The move's own errors may be `Unavailable` too, for
    // other reasons.)
    node.status()
        .await
        .map_err(|err| unreachable_hint(&args.host, err))?;
    let reply = node
        .move_replica(v1::MoveReplicaRequest {
            group: args.group,
            from: args.from,
            to: args.to,
        })
        .await?;
    println!(
        "moved group {}'s replica from node {} to node {}: voters {:?}",
        args.group, args.from, args.to, reply.voters
    );
    Ok(0)
}

/// Adds a started node to the cluster of the node at `--host`.
pub async fn add_node(args: AddNodeArgs) -> Result<u8> {
    let node = GrpcPeer::connect(&args.host)?;
    node.status()
        .await
        .map_err(|err| unreachable_hint(&args.host, err))?;
    let reply = node
        .add_node(v1::AddNodeRequest {
            address: args.address.clone(),
        })
        .await?;
    println!(
        "added node {} at {}; the cluster has {} nodes (replicas move to it by replica rebalancing)",
        reply.node_id,
        args.address,
        reply.members.len()
    );
    Ok(0)
}

/// Prints a node's view of its groups.
pub async fn status(args: StatusArgs) -> Result<u8> {
    let reply = GrpcPeer::connect(&args.host)?
        .status()
        .await
        .map_err(|err| unreachable_hint(&args.host, err))?;
    if reply.cluster == 0 {
        println!("node {}: not part of a cluster yet", reply.node_id);
        return Ok(0);
    }
    println!("node {} of cluster {:016x}", reply.node_id, reply.cluster);
    for g in reply.groups {
        let leader = if g.leader == 0 {
            "none".to_string()
        } else {
            g.leader.to_string()
        };
        let safe = meridian_truetime::Timestamp::from_nanos(g.safe_ts);
        print!(
            "group {} role={} leader={leader} serving={} commit={} applied={} safe_ts={safe} voters={:?}",
            g.group, g.role, g.serving, g.commit, g.applied, g.voters
        );
        if let Some(mean) = g.commit_wait_nanos.checked_div(g.commits) {
            let mean = Duration::from_nanos(mean);
            print!(" commits={} mean_commit_wait={mean:?}", g.commits);
        }
        println!();
    }
    Ok(0)
}
