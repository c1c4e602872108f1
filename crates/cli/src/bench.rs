//! `meridian bench tpcc`: the TPC-C benchmark ([`meridian_tpcc`]) against
//! any PostgreSQL-protocol endpoint, at the spec's cardinalities.
//!
//! `--load` creates and populates the tables, `--run` drives the mix for
//! `--duration` and reports tpmC and response times, `--check` verifies
//! consistency conditions 1–10 and 12 (exit status 1 if one fails; 11
//! holds only until the first Delivery). Without any
//! of the three, all run in that order. `--partition` (Meridian) loads
//! each warehouse into ranges of its own, dealt round the groups.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use meridian_client::Client;
use meridian_tpcc::driver::{self, Mode, RunOptions};
use meridian_tpcc::{check, load, Scale};

/// The benchmarks.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// TPC-C: load, run the five-transaction mix, check consistency.
    Tpcc(TpccArgs),
}

/// How to drive the load.
#[derive(ValueEnum, Clone, Copy, Debug)]
enum ModeArg {
    /// Keying and think times per the spec, ten terminals per warehouse;
    /// reports efficiency.
    Spec,
    /// No keying or think times, one terminal per connection.
    Throughput,
}

/// Arguments of `meridian bench tpcc`.
#[derive(Args, Debug)]
pub struct TpccArgs {
    /// The server's URL.
    #[arg(long, default_value = "postgres://meridian@127.0.0.1:5433/meridian")]
    url: String,
    /// Warehouses (W).
    #[arg(long, default_value_t = 1)]
    warehouses: u32,
    /// Connections: loader parallelism, and terminals in throughput mode.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// How long to run the mix: seconds, or with a unit (`90s`, `5m`, `1h`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// How long to run the mix before measuring (not counted).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    ramp_up: Duration,
    /// Write each deferred Delivery's result (queued and completed times,
    /// the order delivered per district) to this file.
    #[arg(long)]
    delivery_log: Option<std::path::PathBuf>,
    /// Throughput (no think times) or spec (keying and think times).
    #[arg(long, value_enum, default_value_t = ModeArg::Throughput)]
    mode: ModeArg,
    /// Create the tables and load the initial population (drops existing TPC-C tables).
    #[arg(long)]
    load: bool,
    /// Meridian only, with --load: put each warehouse's rows in ranges of
    /// their own and deal the warehouses round the groups, so that
    /// transactions touching a remote warehouse run two-phase commit.
    #[arg(long)]
    partition: bool,
    /// Run the transaction mix.
    #[arg(long)]
    run: bool,
    /// Check consistency conditions 1–10 and 12.
    #[arg(long)]
    check: bool,
}

/// Parses `30`, `30s`, `5m`, `1h`, `500ms`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("bad duration {s:?}"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("bad duration unit in {s:?} (use ms, s, m or h)")),
    }
}

/// Runs a bench subcommand; the exit status.
pub async fn run(command: BenchCommand) -> u8 {
    match command {
        BenchCommand::Tpcc(args) => match tpcc(args).await {
            Ok(code) => code,
            Err(err) => {
                eprintln!("meridian bench tpcc: {err}");
                1
            }
        },
    }
}

async fn tpcc(args: TpccArgs) -> meridian_client::Result<u8> {
    let all = !(args.load || args.run || args.check);
    let warehouses = args.warehouses.max(1) as i32;
    let mut code = 0;
    if all || args.load {
        eprintln!(
            "loading {warehouses} warehouse(s) over {} connection(s)...",
            args.connections
        );
        let t = Instant::now();
        let layout = if args.partition {
            load::Layout::ByWarehouse
        } else {
            load::Layout::Default
        };
        load::load(&args.url, warehouses, args.connections, Scale::SPEC, layout).await?;
        eprintln!("loaded in {:.1}s", t.elapsed().as_secs_f64());
    }
    if all || args.run {
        let mode = match args.mode {
            ModeArg::Spec => Mode::Spec,
            ModeArg::Throughput => Mode::Throughput,
        };
        eprintln!(
            "running the mix for {:?} after a {:?} ramp-up ({mode:?} mode, {} terminal(s))...",
            args.duration,
            args.ramp_up,
            match mode {
                Mode::Spec => warehouses as usize * 10,
                Mode::Throughput => args.connections,
            }
        );
        let report = driver::run(&RunOptions {
            url: args.url.clone(),
            warehouses,
            connections: args.connections,
            duration: args.duration,
            ramp_up: args.ramp_up,
            delivery_log: args.delivery_log.clone(),
            mode,
            scale: Scale::SPEC,
            progress: Some(Duration::from_secs(10)),
        })
        .await?;
        print!("{}", report.render());
    }
    if all || args.check {
        let client = Client::connect(&args.url).await?;
        for c in check::check(&client).await? {
            println!(
                "consistency condition {}: {} ({})",
                c.number,
                if c.ok() { "ok" } else { "FAILED" },
                c.description
            );
            for v in c.violations.iter().take(10) {
                println!("  {v}");
            }
            if !c.ok() {
                code = 1;
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
    }
}
