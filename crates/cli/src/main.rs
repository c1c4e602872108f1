//! `meridian`: the command-line entry point.
//!
//! Subcommands arrive with the layers they drive: `demo` (the embedded
//! database with its SQL shell) and `sql` (the shell, against any
//! PostgreSQL-protocol server).

mod demo;
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
    /// The embedded database: serve SQL on a local data directory and open the shell.
    Demo(demo::DemoArgs),
    /// The interactive SQL shell (also runs -e statements and -f scripts).
    Sql(shell::SqlArgs),
}

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
        Command::Sql(args) => return std::process::ExitCode::from(shell::run(args).await),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            eprintln!("meridian: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
