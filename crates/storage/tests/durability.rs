//! Durability and corruption: what survives a crash, and what is refused.
//!
//! - A writer process is killed with SIGKILL in the middle of a stream of
//!   synced writes; every write it acknowledged must be there on reopen.
//! - Damaged SST and WAL files make the engine refuse to open with an error
//!   naming the damage; with the open-time check off, reads of the damaged
//!   block fail instead of returning data.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meridian_error::Error;
use meridian_storage::{
    Durability, Engine, KeyRange, Mvcc, RocksEngine, RocksOptions, ScanDirection,
};
use meridian_truetime::Timestamp;

/// Set in the child process: the directory the writer writes to.
const WRITER_ENV: &str = "MERIDIAN_CRASH_WRITER_DIR";

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

fn value(i: u64) -> Vec<u8> {
    format!("value-{i}-{}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).into_bytes()
}

/// The child: writes synced versions forever (bounded by count and time),
/// printing `acked N` after each write returns.
fn run_writer(dir: &Path) {
    let mvcc = Mvcc::new(RocksEngine::open(dir, RocksOptions::default()).unwrap()).unwrap();
    let start = Instant::now();
    for i in 0..100_000u64 {
        if start.elapsed() > Duration::from_secs(60) {
            break;
        }
        mvcc.write(
            Timestamp::from_nanos(i + 1),
            [(key(i), Some(value(i)))],
            Durability::Sync,
        )
        .unwrap();
        println!("acked {i}");
    }
}

#[test]
fn synced_writes_survive_kill_9() {
    if let Some(dir) = std::env::var_os(WRITER_ENV) {
        run_writer(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "synced_writes_survive_kill_9",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut killed = false;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            acked.push(n.parse::<u64>().unwrap());
        }
        if acked.len() == 300 && !killed {
            child.kill().unwrap(); // SIGKILL: no destructors, no flush.
            killed = true;
        }
    }
    child.wait().unwrap();
    assert!(killed, "the writer stopped before it was killed");
    assert!(acked.len() >= 300);

    let mvcc = Mvcc::new(RocksEngine::open(dir.path(), RocksOptions::default()).unwrap()).unwrap();
    for &i in &acked {
        assert_eq!(
            mvcc.get(&key(i), Timestamp::MAX).unwrap(),
            Some(value(i)),
            "acknowledged write {i} was lost"
        );
    }
}

#[test]
fn writes_survive_a_drop_without_flush() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mvcc =
            Mvcc::new(RocksEngine::open(dir.path(), RocksOptions::default()).unwrap()).unwrap();
        for i in 0..50 {
            mvcc.write(
                Timestamp::from_nanos(i + 1),
                [(key(i), Some(value(i)))],
                Durability::Sync,
            )
            .unwrap();
        }
        // Dropped here with everything still in the memtable.
    }
    let mvcc = Mvcc::new(RocksEngine::open(dir.path(), RocksOptions::default()).unwrap()).unwrap();
    for i in 0..50 {
        assert_eq!(mvcc.get(&key(i), Timestamp::MAX).unwrap(), Some(value(i)));
    }
}

/// Writes enough incompressible rows to fill several SST blocks.
fn write_rows(dir: &Path, flush: bool) {
    let engine = RocksEngine::open(dir, RocksOptions::default()).unwrap();
    let mvcc = Mvcc::new(&engine).unwrap();
    for chunk in 0..20u64 {
        let rows: Vec<_> = (chunk * 100..chunk * 100 + 100)
            .map(|i| (key(i), Some(value(i).repeat(8))))
            .collect();
        mvcc.write(Timestamp::from_nanos(chunk + 1), rows, Durability::Sync)
            .unwrap();
    }
    if flush {
        engine.flush().unwrap();
    }
}

fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    files
}

/// Overwrites 16 bytes at `offset` of `file` with garbage.
fn damage(file: &Path, offset: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    assert!(
        bytes.len() > offset + 16,
        "{} is too small to damage",
        file.display()
    );
    for b in &mut bytes[offset..offset + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn a_damaged_sst_file_stops_the_open_and_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), true);
    let sst = files_with_extension(dir.path(), "sst")
        .pop()
        .expect("an SST file");
    damage(&sst, 200); // inside the first data block

    let err = RocksEngine::open(dir.path(), RocksOptions::default()).unwrap_err();
    let Error::Corruption(message) = &err else {
        panic!("expected a corruption error, got {err:?}");
    };
    let name = sst.file_name().unwrap().to_str().unwrap();
    assert!(message.contains(name), "{message} should name {name}");

    // Without the open-time check, reading the damaged block fails too.
    let options = RocksOptions {
        verify_on_open: false,
        ..RocksOptions::default()
    };
    let engine = RocksEngine::open(dir.path(), options).unwrap();
    let mvcc = Mvcc::new(&engine).unwrap();
    let scan = mvcc.scan(
        &KeyRange::all(),
        Timestamp::MAX,
        ScanDirection::Forward,
        None,
    );
    assert!(matches!(scan, Err(Error::Corruption(_))), "{scan:?}");
}

#[test]
fn a_damaged_write_ahead_log_stops_the_open() {
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), false);
    let wal = files_with_extension(dir.path(), "log")
        .pop()
        .expect("a WAL file");
    let len = std::fs::metadata(&wal).unwrap().len() as usize;
    damage(&wal, len / 2); // in the middle: acknowledged writes follow it

    let err = RocksEngine::open(dir.path(), RocksOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Corruption(_)), "{err:?}");
}
