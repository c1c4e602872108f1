//! `meridian`: the command-line entry point.
//!
//! Subcommands arrive with the layers they drive; today there is `demo`, a
//! guided tour of the foundations on a real data directory.

mod demo;

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
    /// Run the embedded demo on a local data directory.
    Demo(demo::DemoArgs),
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
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("meridian: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
