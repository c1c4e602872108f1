//! `meridian`: the command-line entry point.
//!
//! Subcommands: `demo` (a three-replica cluster in one process, with the
//! SQL shell), `start` / `init` / `status` (real nodes, one process each),
//! `move-replica` / `add-node` (operating a running cluster), `sql` (the
//! shell, against any PostgreSQL-protocol server) and `bench` (benchmarks:
//! `bench tpcc`).

mod bench;
mod demo;
mod node;
mod shell;

use clap::{Parser, Subcommand};

/// Meridian: a Spanner-style distributed SQL database.
#[derive(Parser, Debug)]
#[command(name = "meridian", version, about)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
enum Command {
    /// A three-replica cluster in this process: serve SQL on it and open the shell.
    Demo(demo::DemoArgs),
    /// Run one node of a cluster (gRPC between nodes, SQL for clients).
    Start(node::StartArgs),
    /// Found a new cluster, once, through one of its nodes.
    Init(node::InitArgs),
    /// Show a node's view of its replicas.
    Status(node::StatusArgs),
    /// Move a group's replica from one node to another.
    MoveReplica(node::MoveReplicaArgs),
    /// Add a started node to a running cluster.
    AddNode(node::AddNodeArgs),
    /// The interactive SQL shell (also runs -e statements and -f scripts).
    Sql(shell::SqlArgs),
    /// Benchmarks against any PostgreSQL-protocol server (`bench tpcc`).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// mimalloc rather than the system allocator: under TPC-C, glibc's malloc
/// took a fifth of the demo's CPU samples (`benches/tpcc-profile.sh`, see
/// docs/benchmarks.md) and fragmented its memory across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MERIDIAN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Start(args) => node::start(args).await,
        Command::Init(args) => node::init(args).await,
        Command::Status(args) => node::status(args).await,
        Command::MoveReplica(args) => node::move_replica(args).await,
        Command::AddNode(args) => node::add_node(args).await,
        Command::Sql(args) => return std::process::ExitCode::from(shell::run(args).await),
        Command::Bench(command) => return std::process::ExitCode::from(bench::run(command).await),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            eprintln!("meridian: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
