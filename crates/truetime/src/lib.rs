//! TrueTime: time as an interval of uncertainty (Spanner §3).
//!
//! A node never knows the exact time. What it knows is an interval
//! `[earliest, latest]` that is guaranteed to contain it, whose half-width ε
//! bounds the local clock's error. [`TrueTime::now`] returns that interval,
//! [`TrueTime::after`] says a timestamp has definitely passed, and
//! [`TrueTime::before`] that it has definitely not arrived.
//!
//! Commit wait (Spanner §4.1.2) is built on `after`: a transaction that chose
//! commit timestamp `s` makes its writes visible only once `TT.after(s)` holds,
//! so any transaction that starts later, on any node, picks a larger timestamp.
//! [`TrueTime::commit_wait`] is that wait, with the sleeping injected so that
//! this crate stays free of IO and of any runtime.
//!
//! # Injected time
//!
//! This crate never reads the system clock. Time comes from a [`ClockSource`]:
//! - [`ManualClock`]: set and advanced by tests and simulations;
//! - [`SkewedClock`]: a node's view of a shared "true" manual clock, with a
//!   fixed offset and a drift rate, for simulating imperfect clocks;
//! - the system clock with a configured ε lives in `meridian-server`, the only
//!   layer allowed to touch the operating system.
//!
//! # Invariant
//!
//! For a correct clock source, true time always lies in `now()`. Sources that
//! break it (a [`SkewedClock`] whose skew exceeds its ε) exist on purpose, so
//! simulations can show what goes wrong; [`SkewedClock::within_bound`] tells.
//!
//! Left out: measuring ε from clock synchronisation (Spanner's time masters);
//! ε is configuration here.

mod clock;
mod timestamp;

pub use clock::{ClockReading, ClockSource, ManualClock, SkewedClock};
pub use timestamp::Timestamp;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An interval of time guaranteed (for a correct clock) to contain the true time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TtInterval {
    /// No earlier than this: true time is `>= earliest`.
    pub earliest: Timestamp,
    /// No later than this: true time is `<= latest`.
    pub latest: Timestamp,
}

impl TtInterval {
    /// The interval's width, `latest - earliest` (2ε).
    pub fn width(&self) -> Duration {
        self.latest.duration_since(self.earliest)
    }

    /// Whether `t` lies inside the interval (bounds included).
    pub fn contains(&self, t: Timestamp) -> bool {
        self.earliest <= t && t <= self.latest
    }
}

impl std::fmt::Display for TtInterval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}]", self.earliest, self.latest)
    }
}

/// The TrueTime API over an injected clock source. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TrueTime {
    /// Where readings come from.
    source: Arc<dyn ClockSource>,
}

impl TrueTime {
    /// TrueTime over the given clock source.
    pub fn new(source: Arc<dyn ClockSource>) -> Self {
        Self { source }
    }

    /// The current uncertainty interval: `[now - ε, now + ε]` of the source's
    /// reading, clamped at the ends of the timestamp range.
    pub fn now(&self) -> TtInterval {
        let reading = self.source.read();
        TtInterval {
            earliest: reading.now.saturating_sub(reading.epsilon),
            latest: reading.now.saturating_add(reading.epsilon),
        }
    }

    /// True when `t` has definitely passed: `t < now().earliest`.
    pub fn after(&self, t: Timestamp) -> bool {
        t < self.now().earliest
    }

    /// True when `t` has definitely not arrived: `t > now().latest`.
    pub fn before(&self, t: Timestamp) -> bool {
        t > self.now().latest
    }

    /// How long, at the current reading, until `after(s)` holds; zero when it
    /// already does. A clock may run slow, so callers loop (see `commit_wait`).
    pub fn commit_wait_remaining(&self, s: Timestamp) -> Duration {
        let earliest = self.now().earliest;
        if s < earliest {
            Duration::ZERO
        } else {
            // `after(s)` needs earliest > s, one nanosecond past s.
            s.duration_since(earliest) + Duration::from_nanos(1)
        }
    }

    /// Commit wait (Spanner §4.1.2): returns once `after(s)` holds, sleeping
    /// with the caller's `sleep` (e.g. `tokio::time::sleep`; a manual clock's
    /// advance in tests). Returns the number of sleeps it took.
    pub async fn commit_wait<F, Fut>(&self, s: Timestamp, mut sleep: F) -> u32
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut sleeps = 0;
        loop {
            let remaining = self.commit_wait_remaining(s);
            if remaining.is_zero() {
                return sleeps;
            }
            sleep(remaining).await;
            sleeps += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// Runs a future that never truly blocks (manual-clock sleeps) to completion.
    fn block_on<F: Future>(fut: F) -> F::Output {
        let mut fut = pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    fn manual(nanos: u64, epsilon_ms: u64) -> (Arc<ManualClock>, TrueTime) {
        let clock = Arc::new(ManualClock::new(
            Timestamp::from_nanos(nanos),
            Duration::from_millis(epsilon_ms),
        ));
        let tt = TrueTime::new(clock.clone());
        (clock, tt)
    }

    #[test]
    fn now_is_reading_plus_minus_epsilon() {
        let (_, tt) = manual(1_000_000_000, 5);
        let now = tt.now();
        assert_eq!(now.earliest, Timestamp::from_nanos(995_000_000));
        assert_eq!(now.latest, Timestamp::from_nanos(1_005_000_000));
        assert_eq!(now.width(), Duration::from_millis(10));
        assert!(now.contains(Timestamp::from_nanos(1_000_000_000)));
    }

    #[test]
    fn after_and_before_respect_uncertainty() {
        let (clock, tt) = manual(1_000_000_000, 5);
        let t = Timestamp::from_nanos(1_000_000_000);
        // Inside the interval: neither definitely passed nor definitely future.
        assert!(!tt.after(t));
        assert!(!tt.before(t));
        clock.advance(Duration::from_millis(5));
        // earliest == t: still not strictly after.
        assert!(!tt.after(t));
        clock.advance(Duration::from_nanos(1));
        assert!(tt.after(t));
        assert!(tt.before(Timestamp::from_nanos(2_000_000_000)));
    }

    #[test]
    fn commit_wait_waits_until_after_holds() {
        let (clock, tt) = manual(1_000_000_000, 4);
        let s = tt.now().latest;
        assert!(!tt.after(s));
        assert_eq!(tt.commit_wait_remaining(s), Duration::from_nanos(8_000_001));
        let sleeps = block_on(tt.commit_wait(s, |d| {
            clock.advance(d);
            std::future::ready(())
        }));
        assert_eq!(sleeps, 1);
        assert!(tt.after(s));
        assert_eq!(tt.commit_wait_remaining(s), Duration::ZERO);
    }

    #[test]
    fn commit_wait_loops_when_the_clock_runs_slow() {
        let (clock, tt) = manual(1_000_000_000, 1);
        let s = tt.now().latest;
        // A clock that only advances half of each requested sleep.
        let sleeps = block_on(tt.commit_wait(s, |d| {
            clock.advance(d / 2 + Duration::from_nanos(1));
            std::future::ready(())
        }));
        assert!(sleeps > 1);
        assert!(tt.after(s));
    }

    #[test]
    fn commit_wait_gives_external_consistency_across_nodes() {
        // Two nodes whose clocks are off by 3 ms, both within ε = 5 ms.
        let truth = Arc::new(ManualClock::new(
            Timestamp::from_nanos(10_000_000_000),
            Duration::ZERO,
        ));
        let eps = Duration::from_millis(5);
        let a = TrueTime::new(Arc::new(SkewedClock::new(truth.clone(), 3_000_000, 0, eps)));
        let b = TrueTime::new(Arc::new(SkewedClock::new(
            truth.clone(),
            -2_000_000,
            0,
            eps,
        )));
        // T1 commits on the fast node a, waits out its commit timestamp.
        let s1 = a.now().latest;
        block_on(a.commit_wait(s1, |d| {
            truth.advance(d);
            std::future::ready(())
        }));
        // T2 starts afterwards on the slow node b: its timestamp is larger.
        let s2 = b.now().latest;
        assert!(s2 > s1, "{s2} must exceed {s1}");
    }
}
