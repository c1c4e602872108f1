//! Test support (feature `testing`): a [`LocalEngine`] over memory whose
//! clock and sleeps are tokio's, and [`LocalGroups`], a sharded cluster of
//! such engines, for tests of the layers above.
//!
//! Tokio's clock is the process's monotonic clock, or, in a runtime started
//! with paused time (`#[tokio::test(start_paused = true)]`), a virtual clock
//! that jumps ahead whenever every task is waiting. Either way lock waits
//! really wait (until the holder finishes or the lock timeout passes) and
//! commit wait really waits out ε, unlike [`ManualSleeper`](crate::ManualSleeper),
//! whose sleeps take no time at all and so end every lock wait in a timeout.
//!
//! Never used in production: the server has its own system clock and sleeper.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meridian_error::{Error, Result};
use meridian_storage::{Engine, KeyRange, MemoryEngine};
use meridian_truetime::{ClockReading, ClockSource, Timestamp, TrueTime, TtInterval};

use crate::{
    GlobalTxnId, Groups, LocalConfig, LocalEngine, LocalTxn, Outcome, Priority, RangeInfo,
    RangeMap, Sleeper, TxnMode,
};

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

/// [`Groups`] over local engines sharing one TrueTime: a sharded cluster
/// without replication or network, for tests of two-phase commit and of
/// the layers above it. Transaction ids count up from 1 (deterministic).
pub struct LocalGroups<E: Engine> {
    /// The engine of each group.
    engines: BTreeMap<u64, LocalEngine<E>>,
    /// Which group holds which keys.
    map: RangeMap,
    /// The gateway's time.
    tt: TrueTime,
    /// The last transaction id handed out.
    last_gid: AtomicU64,
}

impl<E: Engine + 'static> LocalGroups<E> {
    /// Groups `engines` holding the ranges of `map`, with time from `tt`.
    pub fn new(engines: BTreeMap<u64, LocalEngine<E>>, map: RangeMap, tt: TrueTime) -> Self {
        LocalGroups {
            engines,
            map,
            tt,
            last_gid: AtomicU64::new(0),
        }
    }

    /// The engine of `group`.
    pub fn engine(&self, group: u64) -> Result<&LocalEngine<E>> {
        self.engines
            .get(&group)
            .ok_or_else(|| Error::Internal(format!("no group {group}")))
    }

    /// Replaces the engine of `group` (a new leader).
    pub fn set_engine(&mut self, group: u64, engine: LocalEngine<E>) {
        self.engines.insert(group, engine);
    }
}

impl<E: Engine + 'static> Groups for LocalGroups<E> {
    type Txn = LocalTxn<E>;

    fn group_of(&self, key: &[u8]) -> Result<u64> {
        Ok(self.map.group_of(key))
    }

    fn locate(&self, range: &KeyRange) -> Result<Vec<(u64, KeyRange)>> {
        Ok(self.map.locate(range))
    }

    async fn begin(
        &self,
        group: u64,
        mode: TxnMode,
        priority: Priority,
        _strong: bool,
    ) -> Result<LocalTxn<E>> {
        self.engine(group)?
            .begin_with_priority(mode, Some(priority))
            .await
    }

    async fn decide(&self, group: u64, gid: GlobalTxnId, outcome: Outcome) -> Result<()> {
        self.engine(group)?.decide(gid, outcome).await
    }

    async fn ranges(&self) -> Result<Vec<RangeInfo>> {
        Ok(self.map.infos())
    }

    fn new_gid(&self) -> GlobalTxnId {
        GlobalTxnId(u128::from(
            self.last_gid.fetch_add(1, Ordering::Relaxed) + 1,
        ))
    }

    fn now(&self) -> TtInterval {
        self.tt.now()
    }
}
