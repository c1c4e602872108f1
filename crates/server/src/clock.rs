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
//! A step is measured against the monotonic clock, not against the previous
//! reading: the offset `wall - monotonic` changes only when the wall clock
//! is stepped (NTP slews both clocks alike), so a drop of that offset by
//! more than ε is a step back. Comparing with the previous reading instead
//! would take a thread preempted between reading the wall clock and
//! recording it (a stale reading, under load) for a step back. A sample
//! whose two monotonic reads around the wall read are more than ε/2 apart
//! is not trusted for the check.
//!
//! [`TrueTime`]: meridian_truetime::TrueTime

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// The monotonic clock's origin.
    origin: Instant,
    /// The largest `wall - monotonic` offset seen, in nanoseconds.
    max_offset: AtomicI64,
    /// Why the clock was fenced from outside (disagreement with peers).
    fenced: std::sync::Mutex<Option<String>>,
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
            origin: Instant::now(),
            max_offset: AtomicI64::new(i64::MIN),
            fenced: std::sync::Mutex::new(None),
        }
    }

    /// The uncertainty bound ε.
    pub fn epsilon(&self) -> Duration {
        self.epsilon
    }

    /// Declares the clock untrustworthy for `why` (e.g. it disagrees with
    /// most peers beyond the bound): [`SystemClock::check`] fails from now on.
    pub fn fence(&self, why: String) {
        let mut fenced = self.fenced.lock().expect("fence poisoned");
        if fenced.is_none() {
            tracing::error!(%why, "clock fenced");
            *fenced = Some(why);
        }
    }

    /// Fails once the clock has been seen outside its bound; the node must
    /// then stop assigning timestamps.
    pub fn check(&self) -> Result<()> {
        if let Some(why) = self.fenced.lock().expect("fence poisoned").as_ref() {
            return Err(Error::ClockUncertain(format!(
                "{why}; fix time synchronisation and restart the node"
            )));
        }
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
        let before = self.origin.elapsed();
        let wall = (self.wall)();
        let after = self.origin.elapsed();
        let previous = self.last.fetch_max(wall, Ordering::SeqCst);
        if after - before <= self.epsilon / 2 {
            let monotonic = (before + (after - before) / 2).as_nanos() as i64;
            let offset = (wall as i64).saturating_sub(monotonic);
            let max_offset = self.max_offset.fetch_max(offset, Ordering::SeqCst);
            let step_back = Duration::from_nanos(max_offset.saturating_sub(offset).max(0) as u64);
            if max_offset != i64::MIN
                && step_back > self.epsilon
                && !self.out_of_bounds.swap(true, Ordering::SeqCst)
            {
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

/// One measurement of a peer's clock against ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerClock {
    /// The peer.
    pub node: u64,
    /// The peer's reading minus ours at the midpoint of the round trip, in
    /// nanoseconds.
    pub offset: i64,
    /// The round trip of the measurement (its uncertainty is half of it).
    pub rtt: Duration,
}

/// Judges measurements of peers' clocks: two clocks both within ε of true
/// time read at most 2ε apart, and a measurement is off by at most half its
/// round trip, so a peer whose offset exceeds `2ε + rtt/2` disagrees with
/// us. When more than half of the peers measured disagree, the odd one out
/// is most likely this node: returns why it must fence itself. (One
/// disagreeing peer among agreeing ones is that peer's problem.)
pub fn judge_peer_clocks(samples: &[PeerClock], epsilon: Duration) -> Option<String> {
    let disagreeing: Vec<&PeerClock> = samples
        .iter()
        .filter(|s| {
            let allowed = 2 * epsilon + s.rtt / 2;
            Duration::from_nanos(s.offset.unsigned_abs()) > allowed
        })
        .collect();
    if disagreeing.is_empty() || disagreeing.len() * 2 <= samples.len() {
        return None;
    }
    let detail: Vec<String> = disagreeing
        .iter()
        .map(|s| format!("node {} by {:+.3} ms", s.node, s.offset as f64 / 1e6))
        .collect();
    Some(format!(
        "this node's clock disagrees with {} of {} peers beyond the bound 2ε = {:?} ({})",
        disagreeing.len(),
        samples.len(),
        2 * epsilon,
        detail.join(", ")
    ))
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
        // A frozen wall clock (the test runs in far less than ε of real
        // time, so the monotonic clock moving on does not count).
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

    #[test]
    fn a_stale_reading_from_a_preempted_thread_is_not_a_step_back() {
        // Readings recorded out of order (the real clock under load): the
        // offset against the monotonic clock never dropped, so no fence.
        let clock = Arc::new(SystemClock::new(Duration::from_millis(1)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let clock = clock.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        clock.read();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(clock.check().is_ok());
    }

    fn sample(node: u64, offset_ms: i64, rtt_ms: u64) -> PeerClock {
        PeerClock {
            node,
            offset: offset_ms * 1_000_000,
            rtt: Duration::from_millis(rtt_ms),
        }
    }

    #[test]
    fn a_node_that_disagrees_with_most_peers_is_the_one_to_fence() {
        let eps = Duration::from_millis(4);
        // Within 2ε (+ half the round trip): fine.
        assert_eq!(
            judge_peer_clocks(&[sample(2, 7, 1), sample(3, -8, 0)], eps),
            None
        );
        // Ahead of both peers: this node is wrong.
        let why = judge_peer_clocks(&[sample(2, -50, 1), sample(3, -49, 1)], eps).unwrap();
        assert!(why.contains("2 of 2 peers"), "{why}");
        // One bad peer among good ones is the peer's problem.
        assert_eq!(
            judge_peer_clocks(&[sample(2, 50, 1), sample(3, 1, 1), sample(4, 0, 1)], eps),
            None
        );
        // A slow measurement widens what counts as agreement.
        assert_eq!(judge_peer_clocks(&[sample(2, 20, 30)], eps), None);
        assert_eq!(judge_peer_clocks(&[], eps), None);
    }

    #[test]
    fn a_fenced_clock_fails_its_check_with_the_reason() {
        let clock = SystemClock::new(Duration::from_millis(1));
        assert!(clock.check().is_ok());
        clock.fence("disagrees with its peers".into());
        let err = clock.check().unwrap_err();
        assert!(matches!(err, Error::ClockUncertain(_)), "{err}");
        assert!(
            err.to_string().contains("disagrees with its peers"),
            "{err}"
        );
    }
}
