//! Test support (feature `testing`): a [`LocalEngine`] over memory whose
//! clock and sleeps are tokio's, for tests of the layers above.
//!
//! Tokio's clock is the process's monotonic clock, or, in a runtime started
//! with paused time (`#[tokio::test(start_paused = true)]`), a virtual clock
//! that jumps ahead whenever every task is waiting. Either way lock waits
//! really wait (until the holder finishes or the lock timeout passes) and
//! commit wait really waits out ε, unlike [`ManualSleeper`](crate::ManualSleeper),
//! whose sleeps take no time at all and so end every lock wait in a timeout.
//!
//! Never used in production: the server has its own system clock and sleeper.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use meridian_storage::MemoryEngine;
use meridian_truetime::{ClockReading, ClockSource, Timestamp, TrueTime};

use crate::{LocalConfig, LocalEngine, Sleeper};

/// A clock reading tokio's (possibly paused) time, from a fixed start.
#[derive(Debug)]
pub struct TokioClock {
    /// Tokio's instant at creation.
    origin: tokio::time::Instant,
    /// The timestamp that instant stands for.
    start: Timestamp,
    /// The uncertainty bound reported.
    epsilon: Duration,
}

impl TokioClock {
    /// A clock starting at `start`, claiming uncertainty `epsilon`.
    pub fn new(start: Timestamp, epsilon: Duration) -> Self {
        Self {
            origin: tokio::time::Instant::now(),
            start,
            epsilon,
        }
    }
}

impl ClockSource for TokioClock {
    fn read(&self) -> ClockReading {
        ClockReading {
            now: self.start.saturating_add(self.origin.elapsed()),
            epsilon: self.epsilon,
        }
    }
}

/// Sleeps on tokio's timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A fresh in-memory engine on tokio time with ε = 1 ms and the given lock
/// timeout. Call it inside a tokio runtime.
pub fn memory_engine(lock_timeout: Duration) -> LocalEngine<MemoryEngine> {
    let clock = TokioClock::new(
        Timestamp::from_nanos(1_700_000_000_000_000_000),
        Duration::from_millis(1),
    );
    LocalEngine::new(
        MemoryEngine::new(),
        TrueTime::new(Arc::new(clock)),
        Arc::new(TokioSleeper),
        LocalConfig {
            lock_timeout,
            ..LocalConfig::default()
        },
    )
    .expect("a memory engine opens")
}
