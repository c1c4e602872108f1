//! Helpers shared by the integration tests: an in-process engine over a
//! manual clock, and the SQLSTATE of each error (the same mapping as
//! `meridian-pg`'s `sqlstate`, which is the one the wire uses).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use meridian_storage::MemoryEngine;
use meridian_truetime::{ManualClock, Timestamp, TrueTime};
use meridian_txn::{LocalConfig, LocalEngine, ManualSleeper};

/// The engine every test runs on.
pub type Engine = LocalEngine<MemoryEngine>;

/// A fresh engine over a manual clock starting at 2023-11-14 22:13:20 UTC
/// with ε = 1 ms; sleeping advances the clock.
pub fn engine() -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_nanos(1_700_000_000_000_000_000),
        Duration::from_millis(1),
    ));
    let engine = LocalEngine::new(
        MemoryEngine::new(),
        TrueTime::new(clock.clone()),
        Arc::new(ManualSleeper::new(clock.clone())),
        LocalConfig::default(),
    )
    .expect("engine starts");
    (engine, clock)
}
