//! Randomized, seeded schedules against the lock table.
//!
//! Each seed drives a few hundred random steps over a small keyspace (so that
//! conflicts are frequent): transactions begin with start timestamps that are
//! sometimes older than running ones (late arrivals), take random S/X locks on
//! keys and ranges (some unbounded, some with deadlines, some `NOWAIT`),
//! prepare, commit, abort, cancel their waits, and time out. The driver acts
//! like a caller: it aborts a transaction when told it is wounded, and tracks
//! which transactions wait only from the results and [`Wakeups`] the table
//! returns. After every step it checks [`check_invariants`] (no conflicting
//! holders, no lost wakeup, waits-for edges old-ward and acyclic) and that
//! its own idea of who waits matches the table's: a wakeup the table did not
//! report would be a lost wakeup for a real caller.
//!
//! At the end the driver commits everything not wounded and aborts the
//! wounded, round after round; every round must finish someone, and the table
//! must end empty (no deadlock survives). A failing seed is printed and
//! replays the same run.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::tests::{check_invariants, ms};
use super::*;

/// Prints the seed of a run that panics.
struct SeedGuard(u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("lock table random schedule failed with seed {}", self.0);
        }
    }
}

/// The caller's side of a schedule.
struct Driver {
    /// The table under test.
    table: LockTable,
    /// The random source of this seed.
    rng: StdRng,
    /// The current time, in milliseconds.
    now: u64,
    /// The next transaction id.
    next_txn: u64,
    /// The transactions that wait, as far as results and wakeups told us.
    waiting: BTreeSet<TxnId>,
}

/// The keyspace: eight keys and a few between them.
const KEYS: &[&str] = &["a", "b", "b1", "c", "d", "e", "e5", "f", "g", "h"];

impl Driver {
    fn new(seed: u64) -> Self {
        Driver {
            table: LockTable::new(),
            rng: StdRng::seed_from_u64(seed),
            now: 1_000,
            next_txn: 1,
            waiting: BTreeSet::new(),
        }
    }

    /// Applies wakeups to the driver's view, checking that they make sense.
    fn wake(&mut self, woken: &Wakeups) {
        for txn in &woken.granted {
            assert!(
                self.waiting.remove(txn),
                "granted {txn}, which was not waiting"
            );
        }
        for (txn, err) in &woken.failed {
            assert!(
                self.waiting.remove(txn),
                "failed {txn}, which was not waiting"
            );
            assert!(err.is_retryable(), "{err}");
            assert!(matches!(
                err,
                Error::Wounded { .. } | Error::LockTimeout { .. }
            ));
        }
    }

    /// Commits or aborts `txn` (abort if wounded), like a caller would.
    fn finish(&mut self, txn: TxnId, commit: bool) {
        if commit && !self.waiting.contains(&txn) {
            if let Err(err) = self.table.prepare(txn) {
                assert_eq!(
                    err,
                    Error::Wounded {
                        txn: txn.0,
                        by: self.table.wounded_by(txn).expect("wounded").0
                    }
                );
            }
        }
        self.waiting.remove(&txn);
        let woken = self.table.release_all(txn);
        self.wake(&woken);
    }

    fn pick_txn(&mut self, filter: impl Fn(&Self, TxnId) -> bool) -> Option<TxnId> {
        let txns: Vec<TxnId> = self
            .table
            .txn_ids()
            .into_iter()
            .filter(|&txn| filter(self, txn))
            .collect();
        if txns.is_empty() {
            None
        } else {
            Some(txns[self.rng.random_range(0..txns.len())])
        }
    }

    fn random_target(&mut self) -> LockTarget {
        let start = self.rng.random_range(0..KEYS.len());
        if self.rng.random_bool(0.7) {
            return LockTarget::key(KEYS[start]);
        }
        if self.rng.random_bool(0.2) {
            return LockTarget::range_from(KEYS[start]);
        }
        let end = self.rng.random_range(start + 1..=KEYS.len());
        match KEYS.get(end) {
            Some(end) => LockTarget::range(KEYS[start], *end),
            None => LockTarget::range(KEYS[start], "z"),
        }
    }

    fn step(&mut self) {
        match self.rng.random_range(0..100) {
            // Begin, with a start timestamp up to 50 ms in the past.
            0..12 => {
                if self.table.txn_ids().len() < 8 {
                    let txn = TxnId(self.next_txn);
                    self.next_txn += 1;
                    let ts = self.now - self.rng.random_range(0..50);
                    self.table.begin(txn, ms(ts)).unwrap();
                }
            }
            // Acquire.
            12..62 => {
                let Some(txn) = self.pick_txn(|d, txn| !d.waiting.contains(&txn)) else {
                    return;
                };
                let target = self.random_target();
                let mode = if self.rng.random_bool(0.5) {
                    LockMode::Shared
                } else {
                    LockMode::Exclusive
                };
                let deadline = match self.rng.random_range(0..10) {
                    0 => ms(self.now),
                    1..4 => ms(self.now + self.rng.random_range(1..100)),
                    _ => Timestamp::MAX,
                };
                let prepared = self.table.txn(txn).unwrap().prepared;
                match self
                    .table
                    .acquire(txn, target, mode, ms(self.now), deadline)
                {
                    Ok(acquired) => {
                        if let LockStatus::Waiting { blockers } = &acquired.status {
                            assert!(!blockers.is_empty());
                            self.waiting.insert(txn);
                        }
                        for wound in &acquired.wounded {
                            assert_eq!(wound.by, txn);
                            assert_eq!(self.table.wounded_by(wound.txn), Some(txn));
                        }
                        self.wake(&acquired.woken);
                    }
                    Err(Error::Wounded { txn: id, .. }) => {
                        assert_eq!(id, txn.0);
                        self.finish(txn, false);
                    }
                    Err(Error::LockTimeout { waited_ms: 0, .. }) => {
                        assert!(deadline <= ms(self.now));
                    }
                    Err(Error::InvalidInput(msg)) if prepared => {
                        assert!(msg.contains("prepared"), "{msg}");
                    }
                    Err(err) => panic!("unexpected error {err}"),
                }
            }
            // Commit a transaction that does not wait.
            62..72 => {
                if let Some(txn) = self.pick_txn(|d, txn| !d.waiting.contains(&txn)) {
                    self.finish(txn, true);
                }
            }
            // Abort any transaction, waiting or not.
            72..76 => {
                if let Some(txn) = self.pick_txn(|_, _| true) {
                    self.finish(txn, false);
                }
            }
            // Act on wounds: abort every wounded transaction.
            76..84 => {
                for txn in self.table.txn_ids() {
                    if self.table.wounded_by(txn).is_some() {
                        self.finish(txn, false);
                    }
                }
            }
            // Prepare a transaction that does not wait.
            84..89 => {
                if let Some(txn) = self.pick_txn(|d, txn| !d.waiting.contains(&txn)) {
                    if self.table.prepare(txn).is_err() {
                        assert!(self.table.wounded_by(txn).is_some());
                        self.finish(txn, false);
                    }
                }
            }
            // Time passes.
            89..95 => {
                self.now += self.rng.random_range(1..40);
                let woken = self.table.expire_waiters(ms(self.now));
                self.wake(&woken);
                assert!(self.table.next_deadline().is_none_or(|d| d > ms(self.now)));
            }
            // Cancel a wait.
            _ => {
                if let Some(txn) = self.pick_txn(|d, txn| d.waiting.contains(&txn)) {
                    self.waiting.remove(&txn);
                    let woken = self.table.cancel_wait(txn);
                    self.wake(&woken);
                }
            }
        }
    }

    /// Checks the invariants and that the driver's view of who waits is the
    /// table's.
    fn check(&self) {
        check_invariants(&self.table);
        let waiting: BTreeSet<TxnId> = self
            .table
            .txn_ids()
            .into_iter()
            .filter(|&txn| self.table.txn(txn).unwrap().waiting)
            .collect();
        assert_eq!(waiting, self.waiting, "waiters per wakeups vs table");
    }

    /// Commits everything not wounded and aborts the wounded, round by round,
    /// until the table is empty. Every round must finish someone.
    fn drain(&mut self) {
        while !self.table.is_empty() {
            let mut finished = 0;
            for txn in self.table.txn_ids() {
                if self.table.txn(txn).is_none() || self.waiting.contains(&txn) {
                    continue;
                }
                let wounded = self.table.wounded_by(txn).is_some();
                self.finish(txn, !wounded);
                finished += 1;
                self.check();
            }
            assert!(
                finished > 0,
                "deadlock: every transaction waits\n{}",
                self.table
            );
        }
        assert!(self.waiting.is_empty());
        assert_eq!(self.table.requests().len(), 0);
    }
}

fn run(seed: u64, steps: usize) {
    let _guard = SeedGuard(seed);
    let mut driver = Driver::new(seed);
    for _ in 0..steps {
        driver.step();
        driver.check();
    }
    driver.drain();
}

#[test]
fn random_schedules_keep_invariants_and_finish() {
    for seed in 0..500 {
        run(seed, 300);
    }
}

/// Lots of transactions waiting at once, never committing on their own: the
/// drain alone must untangle them.
#[test]
fn random_pileups_drain() {
    for seed in 1000..1100 {
        let _guard = SeedGuard(seed);
        let mut driver = Driver::new(seed);
        for _ in 0..120 {
            // Only begins and acquires: waits pile up.
            let before = driver.rng.random_range(0..62);
            if before < 12 {
                if driver.table.txn_ids().len() < 8 {
                    let txn = TxnId(driver.next_txn);
                    driver.next_txn += 1;
                    let ts = driver.now - driver.rng.random_range(0..50);
                    driver.table.begin(txn, ms(ts)).unwrap();
                }
            } else {
                let Some(txn) = driver.pick_txn(|d, txn| {
                    !d.waiting.contains(&txn) && d.table.wounded_by(txn).is_none()
                }) else {
                    continue;
                };
                let target = driver.random_target();
                let mode = if driver.rng.random_bool(0.3) {
                    LockMode::Shared
                } else {
                    LockMode::Exclusive
                };
                let acquired = driver
                    .table
                    .acquire(txn, target, mode, ms(driver.now), Timestamp::MAX)
                    .unwrap();
                if !acquired.is_granted() {
                    driver.waiting.insert(txn);
                }
                driver.wake(&acquired.woken);
            }
            driver.check();
        }
        driver.drain();
    }
}
