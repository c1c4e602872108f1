//! Clock sources: where TrueTime's readings come from.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::Timestamp;

/// One reading of a clock: the local time and the bound on its error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockReading {
    /// The clock's best estimate of the current time.
    pub now: Timestamp,
    /// ε: the true time is within `now ± epsilon`.
    pub epsilon: Duration,
}

/// A source of time readings. Implementations must be monotonic enough that
/// the guarantee holds: true time lies in `[now - ε, now + ε]`.
pub trait ClockSource: Send + Sync + Debug {
    /// Reads the clock.
    fn read(&self) -> ClockReading;
}

/// A clock that moves only when told to. For tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    /// Current time, nanoseconds since the epoch.
    nanos: AtomicU64,
    /// The uncertainty bound reported with every reading, in nanoseconds.
    epsilon_nanos: AtomicU64,
}

impl ManualClock {
    /// A manual clock reading `start`, with uncertainty `epsilon`.
    pub fn new(start: Timestamp, epsilon: Duration) -> Self {
        Self {
            nanos: AtomicU64::new(start.as_nanos()),
            epsilon_nanos: AtomicU64::new(duration_nanos(epsilon)),
        }
    }

    /// The current reading's time.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let d = duration_nanos(d);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(d))
            });
    }

    /// Sets the clock to `t`. Moving it backwards is allowed: tests of clock
    /// misbehaviour need it.
    pub fn set(&self, t: Timestamp) {
        self.nanos.store(t.as_nanos(), Ordering::SeqCst);
    }

    /// Changes the uncertainty bound reported from now on.
    pub fn set_epsilon(&self, epsilon: Duration) {
        self.epsilon_nanos
            .store(duration_nanos(epsilon), Ordering::SeqCst);
    }
}

impl ClockSource for ManualClock {
    fn read(&self) -> ClockReading {
        ClockReading {
            now: self.now(),
            epsilon: Duration::from_nanos(self.epsilon_nanos.load(Ordering::SeqCst)),
        }
    }
}

/// A node's imperfect view of a shared true clock, for simulation: the local
/// reading is `truth + offset + drift`, where the drift grows by `drift_ppm`
/// nanoseconds for every million nanoseconds of true time elapsed since the
/// clock was made.
#[derive(Debug)]
pub struct SkewedClock {
    /// The simulation's true time.
    truth: Arc<ManualClock>,
    /// Fixed offset from true time, nanoseconds (may be negative).
    offset_nanos: i64,
    /// Drift rate in parts per million (may be negative).
    drift_ppm: i64,
    /// True time when the clock was made; drift accumulates from here.
    anchor: Timestamp,
    /// The uncertainty bound this clock claims.
    epsilon: Duration,
}

impl SkewedClock {
    /// A clock reading `truth` shifted by `offset_nanos`, drifting by
    /// `drift_ppm` parts per million, and claiming uncertainty `epsilon`.
    pub fn new(
        truth: Arc<ManualClock>,
        offset_nanos: i64,
        drift_ppm: i64,
        epsilon: Duration,
    ) -> Self {
        let anchor = truth.now();
        Self {
            truth,
            offset_nanos,
            drift_ppm,
            anchor,
            epsilon,
        }
    }

    /// The local clock's current error, local reading minus true time.
    pub fn error_nanos(&self) -> i64 {
        let elapsed = self.truth.now().duration_since(self.anchor).as_nanos() as i128;
        let drift = elapsed * self.drift_ppm as i128 / 1_000_000;
        (self.offset_nanos as i128 + drift).clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// Whether the clock's error is currently within its claimed ε, i.e. the
    /// TrueTime guarantee holds for it right now.
    pub fn within_bound(&self) -> bool {
        self.error_nanos().unsigned_abs() <= duration_nanos(self.epsilon)
    }
}

impl ClockSource for SkewedClock {
    fn read(&self) -> ClockReading {
        let truth = self.truth.now().as_nanos() as i128;
        let local = (truth + self.error_nanos() as i128).clamp(0, u64::MAX as i128) as u64;
        ClockReading {
            now: Timestamp::from_nanos(local),
            epsilon: self.epsilon,
        }
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TrueTime;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_nanos(100), Duration::from_nanos(7));
        assert_eq!(clock.read().now, Timestamp::from_nanos(100));
        assert_eq!(clock.read().epsilon, Duration::from_nanos(7));
        clock.advance(Duration::from_nanos(50));
        assert_eq!(clock.now(), Timestamp::from_nanos(150));
        clock.set(Timestamp::from_nanos(20));
        assert_eq!(clock.now(), Timestamp::from_nanos(20));
        clock.set_epsilon(Duration::from_millis(1));
        assert_eq!(clock.read().epsilon, Duration::from_millis(1));
    }

    #[test]
    fn skewed_clock_offsets_and_drifts() {
        let truth = Arc::new(ManualClock::new(
            Timestamp::from_nanos(1_000_000_000),
            Duration::ZERO,
        ));
        // 1 ms fast, drifting 100 ppm (100 µs per second) faster.
        let clock = SkewedClock::new(truth.clone(), 1_000_000, 100, Duration::from_millis(2));
        assert_eq!(clock.read().now, Timestamp::from_nanos(1_001_000_000));
        assert!(clock.within_bound());
        truth.advance(Duration::from_secs(5));
        // 1 ms + 5 s * 100e-6 = 1.5 ms fast.
        assert_eq!(clock.error_nanos(), 1_500_000);
        assert!(clock.within_bound());
        truth.advance(Duration::from_secs(10));
        // 2.5 ms fast: the claimed 2 ms bound is broken.
        assert_eq!(clock.error_nanos(), 2_500_000);
        assert!(!clock.within_bound());
        let tt = TrueTime::new(Arc::new(clock));
        assert!(!tt.now().contains(truth.now()));
    }

    #[test]
    fn slow_clock_saturates_at_the_epoch() {
        let truth = Arc::new(ManualClock::new(Timestamp::from_nanos(10), Duration::ZERO));
        let clock = SkewedClock::new(truth, -1_000, 0, Duration::ZERO);
        assert_eq!(clock.read().now, Timestamp::MIN);
    }
}
