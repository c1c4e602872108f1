//! The system clock as a TrueTime [`ClockSource`].
//!
//! This is the one place in Meridian that reads the operating system's clock;
//! every layer below `server` receives time through a [`TrueTime`] built on a
//! source handed to it.
//!
//! The reading is the wall clock (`CLOCK_REALTIME`) and the uncertainty bound
//! ε comes from configuration (default [`DEFAULT_EPSILON`]); the operator is
//! responsible for keeping the host synchronised (NTP/PTP) well within ε.
//!
//! What the clock can check for itself: the wall clock stepping backwards.
//! Readings are kept monotonic (a step back is absorbed by repeating the last
//! reading), and a step back larger than ε — which means an earlier reading
//! was outside its own interval — marks the clock as out of bounds: from then
//! on [`SystemClock::check`] fails and the node must fence itself (stop
//! handing out timestamps) until an operator restarts it.
//!
//! [`TrueTime`]: meridian_truetime::TrueTime

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meridian_error::{Error, Result};
use meridian_truetime::{ClockReading, ClockSource, Timestamp};

/// The default uncertainty bound: generous for NTP on a LAN.
pub const DEFAULT_EPSILON: Duration = Duration::from_millis(4);

/// Reads wall-clock nanoseconds since the epoch.
pub type WallClock = Box<dyn Fn() -> u64 + Send + Sync>;

/// The operating system's clock with a configured uncertainty bound.
pub struct SystemClock {
    /// The uncertainty bound ε.
    epsilon: Duration,
    /// Where wall-clock readings come from (the OS, or a test double).
    wall: WallClock,
    /// The largest reading returned so far, in nanoseconds.
    last: AtomicU64,
    /// Set once the wall clock stepped back by more than ε.
    out_of_bounds: AtomicBool,
}

impl std::fmt::Debug for SystemClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemClock")
            .field("epsilon", &self.epsilon)
            .field("last", &self.last)
            .field("out_of_bounds", &self.out_of_bounds)
            .finish()
    }
}

impl SystemClock {
    /// The system clock with uncertainty bound `epsilon`.
    pub fn new(epsilon: Duration) -> Self {
        Self::with_wall_clock(
            epsilon,
            Box::new(|| {
                let since_epoch = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO);
                u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
            }),
        )
    }

    /// A clock over the given wall-clock reader (for tests of clock faults).
    pub fn with_wall_clock(epsilon: Duration, wall: WallClock) -> Self {
        Self {
            epsilon,
            wall,
            last: AtomicU64::new(0),
            out_of_bounds: AtomicBool::new(false),
        }
    }

    /// Fails once the clock has been seen outside its bound; the node must
    /// then stop assigning timestamps.
    pub fn check(&self) -> Result<()> {
        if self.out_of_bounds.load(Ordering::SeqCst) {
            return Err(Error::ClockUncertain(format!(
                "the system clock stepped backwards by more than its uncertainty bound ({:?}); \
                 fix time synchronisation and restart the node",
                self.epsilon
            )));
        }
        Ok(())
    }
}

impl ClockSource for SystemClock {
    fn read(&self) -> ClockReading {
        let wall = (self.wall)();
        let previous = self.last.fetch_max(wall, Ordering::SeqCst);
        if wall < previous {
            let step_back = Duration::from_nanos(previous - wall);
            if step_back > self.epsilon && !self.out_of_bounds.swap(true, Ordering::SeqCst) {
                tracing::error!(?step_back, epsilon = ?self.epsilon, "system clock stepped back beyond its bound; fencing");
            }
        }
        ClockReading {
            now: Timestamp::from_nanos(wall.max(previous)),
            epsilon: self.epsilon,
        }
    }
}

/// Resolves with the clock's error once `clock` is seen outside its
/// uncertainty bound (read every `interval`); the node must then stop
/// serving. Never resolves while the clock stays trustworthy.
pub async fn fenced(clock: &SystemClock, interval: Duration) -> Error {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // Reading the clock is what detects a step back.
        clock.read();
        if let Err(err) = clock.check() {
            return err;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn reads_the_system_clock_with_the_configured_bound() {
        let clock = SystemClock::new(Duration::from_millis(3));
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let reading = clock.read();
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(reading.now.as_nanos() as u128 >= before.as_nanos());
        assert!(reading.now.as_nanos() as u128 <= after.as_nanos());
        assert_eq!(reading.epsilon, Duration::from_millis(3));
        assert!(clock.check().is_ok());
    }

    #[test]
    fn small_steps_back_are_absorbed_and_large_ones_fence() {
        let wall = Arc::new(AtomicU64::new(1_000_000_000));
        let source = wall.clone();
        let clock = SystemClock::with_wall_clock(
            Duration::from_millis(2),
            Box::new(move || source.load(Ordering::SeqCst)),
        );
        assert_eq!(clock.read().now.as_nanos(), 1_000_000_000);
        // A 1 ms step back: readings stay monotonic, the clock stays trusted.
        wall.store(999_000_000, Ordering::SeqCst);
        assert_eq!(clock.read().now.as_nanos(), 1_000_000_000);
        assert!(clock.check().is_ok());
        // A 5 ms step back is beyond ε = 2 ms: fence.
        wall.store(995_000_000, Ordering::SeqCst);
        assert_eq!(clock.read().now.as_nanos(), 1_000_000_000);
        let err = clock.check().unwrap_err();
        assert!(matches!(err, Error::ClockUncertain(_)));
        // Fencing sticks even once the clock catches up.
        wall.store(2_000_000_000, Ordering::SeqCst);
        clock.read();
        assert!(clock.check().is_err());
    }
}
