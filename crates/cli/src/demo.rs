//! `meridian demo`: a guided tour of Meridian's foundations on a real RocksDB
//! data directory. Each run commits one "visit" with TrueTime commit wait, then
//! reads the visit counter as of every earlier visit (MVCC time travel, across
//! restarts), and plays out wound-wait in the lock table.
//!
//! This becomes the embedded SQL database with its shell when the SQL layer
//! lands; until then it shows what the layers underneath really do.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use meridian_error::{Error, Result};
use meridian_server::clock::{SystemClock, DEFAULT_EPSILON};
use meridian_storage::{Durability, Mvcc, RocksEngine, RocksOptions};
use meridian_truetime::{Timestamp, TrueTime};
use meridian_txn::{LockMode, LockStatus, LockTable, LockTarget, TxnId};

/// Options of `meridian demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the data lives; it survives restarts.
    #[arg(long, default_value = "./meridian-data")]
    data_dir: PathBuf,
    /// The clock uncertainty bound ε, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_EPSILON.as_millis() as u64)]
    epsilon_ms: u64,
}

/// The key counting visits.
const VISITS: &[u8] = b"/demo/visits";
/// The key listing the commit timestamps of all visits.
const HISTORY: &[u8] = b"/demo/history";

/// Runs the tour.
pub async fn run(args: DemoArgs) -> Result<()> {
    println!("Meridian demo: a tour of the foundations\n");

    let clock = Arc::new(SystemClock::new(Duration::from_millis(args.epsilon_ms)));
    let tt = TrueTime::new(clock.clone());
    let engine = RocksEngine::open(&args.data_dir, RocksOptions::default())?;
    let mvcc = Mvcc::new(engine)?;
    println!(
        "storage   RocksDB at {} opened; every SST block checksum verified",
        args.data_dir.display()
    );
    let now = tt.now();
    println!(
        "truetime  TT.now() = {now}\n          width {:?} = 2ε: the true time is somewhere inside",
        now.width()
    );

    // Read-modify-write of the visit counter: read at a timestamp, commit a
    // new version at a later one, and commit-wait before saying it's done.
    clock.check()?;
    let read_ts = tt.now().latest;
    let visits = decode_u64(mvcc.get(VISITS, read_ts)?)?.unwrap_or(0) + 1;
    let mut history = mvcc.get(HISTORY, read_ts)?.unwrap_or_default();
    let commit_ts = tt.now().latest.max(read_ts.next());
    history.extend_from_slice(&commit_ts.to_be_bytes());
    mvcc.write(
        commit_ts,
        [
            (VISITS, Some(visits.to_be_bytes().to_vec())),
            (HISTORY, Some(history.clone())),
        ],
        Durability::Sync,
    )?;
    let started = Instant::now();
    tt.commit_wait(commit_ts, tokio::time::sleep).await;
    println!(
        "commit    visit #{visits} written (fsynced) at s = {commit_ts}\n          \
         commit wait: {:?} until TT.after(s); any later transaction anywhere gets a larger timestamp",
        started.elapsed()
    );

    println!("history   MVCC reads of the visit counter as of each visit's commit timestamp:");
    let stamps: Vec<Timestamp> = history
        .chunks_exact(8)
        .map(|c| Timestamp::from_be_bytes(c.try_into().expect("chunks of 8")))
        .collect();
    let shown = stamps.len().saturating_sub(5);
    if shown > 0 {
        println!("          ... {shown} earlier visits");
    }
    for &stamp in &stamps[shown..] {
        let before = decode_u64(mvcc.get(VISITS, stamp.prev())?)?.unwrap_or(0);
        let at = decode_u64(mvcc.get(VISITS, stamp)?)?.unwrap_or(0);
        println!("          at {stamp}: {before} -> {at}");
    }

    wound_wait(read_ts)?;

    println!(
        "\nRun `meridian demo` again: the visits are still there, each readable at its own time."
    );
    Ok(())
}

/// Plays out wound-wait (Spanner §4.2.1) in the lock table: a younger
/// transaction waits for an older one, an older one wounds a younger one.
fn wound_wait(now: Timestamp) -> Result<()> {
    let (old, young) = (TxnId(1), TxnId(2));
    let deadline = now.saturating_add(Duration::from_secs(5));
    let mut locks = LockTable::new();
    locks.begin(old, now)?;
    locks.begin(young, now.next())?;
    println!("\nlocks     t1 started before t2, so t1 is older (higher priority)");
    let key = |k: &str| LockTarget::Key(k.as_bytes().to_vec());

    locks.acquire(
        old,
        key("/accounts/alice"),
        LockMode::Exclusive,
        now,
        deadline,
    )?;
    let waits = locks.acquire(
        young,
        key("/accounts/alice"),
        LockMode::Shared,
        now,
        deadline,
    )?;
    println!(
        "          t1 locks alice (X); t2 asks for alice (S): {}",
        describe(&waits.status)
    );

    locks.cancel_wait(young);
    locks.acquire(
        young,
        key("/accounts/bob"),
        LockMode::Exclusive,
        now,
        deadline,
    )?;
    let wounds = locks.acquire(
        old,
        key("/accounts/bob"),
        LockMode::Exclusive,
        now,
        deadline,
    )?;
    for wound in &wounds.wounded {
        println!(
            "          t2 locks bob (X); t1 asks for bob (X): {}; {} is wounded: \"{}\"",
            describe(&wounds.status),
            wound.txn,
            wound.error()
        );
    }
    let woken = locks.release_all(young);
    let granted: Vec<String> = woken.granted.iter().map(|t| t.to_string()).collect();
    println!(
        "          t2 aborts and releases its locks: {} granted bob; no deadlock is possible",
        granted.join(", ")
    );
    for line in locks.to_string().lines().filter(|l| l.starts_with("key")) {
        println!("          lock table: {line}");
    }
    Ok(())
}

fn describe(status: &LockStatus) -> String {
    match status {
        LockStatus::Granted => "granted".to_string(),
        LockStatus::Waiting { blockers } => {
            let names: Vec<String> = blockers.iter().map(|t| t.to_string()).collect();
            format!("waits for {}", names.join(", "))
        }
    }
}

fn decode_u64(value: Option<Vec<u8>>) -> Result<Option<u64>> {
    value
        .map(|bytes| {
            let bytes: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                Error::Corruption(format!("demo counter holds {} bytes, not 8", bytes.len()))
            })?;
            Ok(u64::from_be_bytes(bytes))
        })
        .transpose()
}
