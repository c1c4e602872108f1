//! [`LockManager`]: the lock table behind a mutex, with lock waits as futures.
//!
//! The [`LockTable`] says "waiting" and later, through [`Wakeups`], "granted"
//! or "failed"; someone has to connect the two. The manager does it with
//! nothing but the standard library: a `std::sync::Mutex` around the table
//! and, for each waiting transaction, a slot holding the eventual outcome and
//! the `Waker` of the task awaiting it. It spawns nothing and reads no clock,
//! so it works under any executor (or none: poll it by hand, as the tests do).
//!
//! A lock request goes like this:
//!
//! 1. [`LockManager::acquire`] runs [`LockTable::acquire`] under the mutex.
//!    Synchronous errors (wounded, unknown transaction, ...) come back at
//!    once; otherwise the caller gets a [`LockWait`], which also lists the
//!    transactions the request wounded ([`LockWait::wounded`]): the caller
//!    must abort those.
//! 2. Awaiting the [`LockWait`] yields `Ok(())` when the lock is held, or the
//!    error that ended the wait: [`Error::Wounded`] (an older transaction
//!    wounded this one while it waited), [`Error::LockTimeout`] (after
//!    [`LockManager::expire_waiters`] passed its deadline), or
//!    [`Error::Aborted`] (its wait was cancelled or its locks released).
//! 3. Every call that changes the table delivers the resulting [`Wakeups`]:
//!    it stores each outcome in its slot and wakes the waker, after letting go
//!    of the mutex.
//!
//! Dropping a [`LockWait`] that is still waiting withdraws the request (like
//! [`LockManager::cancel_wait`]); dropping one whose lock was granted keeps
//! the lock, which is released, like all locks, by
//! [`LockManager::release_all`]. Timeouts need someone with a clock: the
//! server calls [`LockManager::expire_waiters`] from its timer, at
//! [`LockManager::next_deadline`].
//!
//! Left out: fairness among tasks polling the mutex (it is held only for one
//! table operation), and a blocking (non-async) wait.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use meridian_error::{Error, Result};
use meridian_truetime::Timestamp;

use super::{LockMode, LockStatus, LockTable, LockTarget, Priority, TxnId, Wakeups, Wound};

/// A [`LockTable`] shared between tasks, whose lock waits are futures.
/// Cloning gives another handle to the same table.
#[derive(Clone, Debug, Default)]
pub struct LockManager {
    /// The table and the wait slots, under one mutex.
    shared: Arc<Mutex<Shared>>,
}

/// What the mutex protects.
#[derive(Debug, Default)]
struct Shared {
    /// The lock table.
    table: LockTable,
    /// One slot per transaction with an unfinished [`LockWait`].
    slots: HashMap<TxnId, Slot>,
}

/// Where a waiting request's outcome meets the task awaiting it.
#[derive(Debug, Default)]
struct Slot {
    /// The outcome, once the table decided it.
    outcome: Option<Result<()>>,
    /// The waker of the last poll.
    waker: Option<Waker>,
}

impl Shared {
    /// Stores `outcome` for `txn`'s wait, unless it already has one, and
    /// returns the waker to wake.
    fn resolve(&mut self, txn: TxnId, outcome: Result<()>) -> Option<Waker> {
        let slot = self.slots.get_mut(&txn)?;
        if slot.outcome.is_none() {
            slot.outcome = Some(outcome);
        }
        slot.waker.take()
    }

    /// Delivers the table's wakeups to their slots; returns the wakers to
    /// wake once the mutex is released.
    fn deliver(&mut self, woken: &Wakeups) -> Vec<Waker> {
        let granted = woken.granted.iter().map(|&txn| (txn, Ok(())));
        let failed = woken
            .failed
            .iter()
            .map(|(txn, err)| (*txn, Err(err.clone())));
        granted
            .chain(failed)
            .filter_map(|(txn, outcome)| self.resolve(txn, outcome))
            .collect()
    }
}

/// Wakes the wakers collected under the mutex, after it was released.
fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}

impl LockManager {
    /// A manager over an empty lock table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the shared state. A panic while it was held cannot leave the
    /// table half-changed in a way later calls trip over more than the panic
    /// itself did, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a transaction; see [`LockTable::begin`].
    pub fn begin(&self, txn: TxnId, priority: impl Into<Priority>) -> Result<()> {
        self.lock().table.begin(txn, priority)
    }

    /// Requests a lock; see [`LockTable::acquire`] for the arguments and the
    /// synchronous errors. Await the returned [`LockWait`] for the lock, and
    /// abort the transactions in [`LockWait::wounded`].
    ///
    /// Fails with [`Error::InvalidInput`] if an earlier [`LockWait`] of `txn`
    /// is still alive and unfinished.
    pub fn acquire(
        &self,
        txn: TxnId,
        target: LockTarget,
        mode: LockMode,
        now: Timestamp,
        deadline: Timestamp,
    ) -> Result<LockWait> {
        let mut shared = self.lock();
        if shared.slots.contains_key(&txn) {
            return Err(Error::InvalidInput(format!(
                "transaction {txn} has an unfinished lock request"
            )));
        }
        let acquired = shared.table.acquire(txn, target, mode, now, deadline)?;
        let waiting = matches!(acquired.status, LockStatus::Waiting { .. });
        if waiting {
            shared.slots.insert(txn, Slot::default());
        }
        let wakers = shared.deliver(&acquired.woken);
        drop(shared);
        wake_all(wakers);
        Ok(LockWait {
            manager: self.clone(),
            txn,
            wounded: acquired.wounded,
            state: if waiting {
                WaitState::Waiting
            } else {
                WaitState::Granted
            },
        })
    }

    /// The locks a transaction holds; see [`LockTable::held_by`].
    pub fn held_by(&self, txn: TxnId) -> Vec<(LockTarget, LockMode)> {
        self.lock().table.held_by(txn)
    }

    /// Marks a transaction prepared; see [`LockTable::prepare`].
    pub fn prepare(&self, txn: TxnId) -> Result<()> {
        self.lock().table.prepare(txn)
    }

    /// Releases every lock of `txn` (commit or abort) and wakes the waiters
    /// this grants. A wait of `txn` itself still pending ends with
    /// [`Error::Aborted`]. Returns the wakeups, already delivered, for logging.
    pub fn release_all(&self, txn: TxnId) -> Wakeups {
        self.finish(txn, |table| table.release_all(txn), "released its locks")
    }

    /// Withdraws the waiting request of `txn`, whose [`LockWait`] then ends
    /// with [`Error::Aborted`], and wakes the waiters this lets through.
    pub fn cancel_wait(&self, txn: TxnId) -> Wakeups {
        self.finish(
            txn,
            |table| table.cancel_wait(txn),
            "cancelled its lock wait",
        )
    }

    /// Runs `op`, which ends `txn`'s wait if it has one, and delivers wakeups.
    fn finish(&self, txn: TxnId, op: impl FnOnce(&mut LockTable) -> Wakeups, why: &str) -> Wakeups {
        let mut shared = self.lock();
        let woken = op(&mut shared.table);
        let mut wakers = Vec::new();
        if !shared.table.txn(txn).is_some_and(|info| info.waiting) {
            let aborted = Error::Aborted(format!("transaction {txn} {why} while waiting"));
            wakers.extend(shared.resolve(txn, Err(aborted)));
        }
        wakers.extend(shared.deliver(&woken));
        drop(shared);
        wake_all(wakers);
        woken
    }

    /// Times out the waits whose deadline is `<= now`; see
    /// [`LockTable::expire_waiters`]. Returns the wakeups, already delivered.
    pub fn expire_waiters(&self, now: Timestamp) -> Wakeups {
        let mut shared = self.lock();
        let woken = shared.table.expire_waiters(now);
        let wakers = shared.deliver(&woken);
        drop(shared);
        wake_all(wakers);
        woken
    }

    /// When to call [`LockManager::expire_waiters`] next.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.lock().table.next_deadline()
    }

    /// Runs `f` on the table, for inspection (a dump, [`LockTable::txn`]).
    pub fn inspect<R>(&self, f: impl FnOnce(&LockTable) -> R) -> R {
        f(&self.lock().table)
    }
}

/// Where a [`LockWait`] stands.
#[derive(Debug)]
enum WaitState {
    /// Granted at `acquire`; the first poll returns `Ok`.
    Granted,
    /// Waiting in the table; its slot will tell.
    Waiting,
    /// The outcome was returned.
    Done,
}

/// A lock request of a [`LockManager`]: a future that resolves to `Ok(())`
/// when the lock is held, or to the error that ended the wait.
///
/// Dropping it while it still waits withdraws the request.
#[derive(Debug)]
#[must_use = "a lock request is only held once its LockWait resolves to Ok; dropping it cancels the wait"]
pub struct LockWait {
    /// The manager whose slot this future reads.
    manager: LockManager,
    /// The requesting transaction.
    txn: TxnId,
    /// The transactions the request wounded.
    wounded: Vec<Wound>,
    /// Where the wait stands.
    state: WaitState,
}

impl LockWait {
    /// The requesting transaction.
    pub fn txn(&self) -> TxnId {
        self.txn
    }

    /// The younger transactions this request wounded: the caller must abort
    /// them (and call [`LockManager::release_all`] for each). The request
    /// waits for their locks until then.
    pub fn wounded(&self) -> &[Wound] {
        &self.wounded
    }

    /// Whether the lock was granted without waiting.
    pub fn is_granted_now(&self) -> bool {
        matches!(self.state, WaitState::Granted)
    }
}

impl Future for LockWait {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = &mut *self;
        match this.state {
            WaitState::Granted => {
                this.state = WaitState::Done;
                Poll::Ready(Ok(()))
            }
            WaitState::Done => Poll::Ready(Err(Error::Internal(format!(
                "lock wait of transaction {} polled after it finished",
                this.txn
            )))),
            WaitState::Waiting => {
                let mut shared = this.manager.lock();
                let Some(slot) = shared.slots.get_mut(&this.txn) else {
                    this.state = WaitState::Done;
                    return Poll::Ready(Err(Error::Internal(format!(
                        "lock wait of transaction {} lost its slot",
                        this.txn
                    ))));
                };
                match slot.outcome.take() {
                    Some(outcome) => {
                        shared.slots.remove(&this.txn);
                        this.state = WaitState::Done;
                        Poll::Ready(outcome)
                    }
                    None => {
                        match &mut slot.waker {
                            Some(waker) => waker.clone_from(cx.waker()),
                            None => slot.waker = Some(cx.waker().clone()),
                        }
                        Poll::Pending
                    }
                }
            }
        }
    }
}

impl Drop for LockWait {
    fn drop(&mut self) {
        if !matches!(self.state, WaitState::Waiting) {
            return;
        }
        let mut shared = self.manager.lock();
        let Some(slot) = shared.slots.remove(&self.txn) else {
            return;
        };
        if slot.outcome.is_some() {
            // Decided but never observed: a granted lock stays held.
            return;
        }
        let woken = shared.table.cancel_wait(self.txn);
        let wakers = shared.deliver(&woken);
        drop(shared);
        wake_all(wakers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::task::Wake;
    use std::time::Duration;

    use LockMode::{Exclusive as X, Shared as S};

    fn ms(ms: u64) -> Timestamp {
        Timestamp::MIN.saturating_add(Duration::from_millis(ms))
    }

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Polls `fut` once with `waker`.
    fn poll_once(fut: &mut LockWait, waker: &Arc<CountingWaker>) -> Poll<Result<()>> {
        let waker = Waker::from(Arc::clone(waker));
        Pin::new(fut).poll(&mut Context::from_waker(&waker))
    }

    /// Wakes a parked thread.
    struct ThreadWaker(std::thread::Thread);

    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    /// A minimal executor: polls `fut` on this thread, parking in between.
    fn block_on<F: Future>(fut: F) -> F::Output {
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    }

    fn manager(txns: u64) -> LockManager {
        let manager = LockManager::new();
        for i in 1..=txns {
            manager.begin(TxnId(i), ms(i * 10)).unwrap();
        }
        manager
    }

    fn acquire(manager: &LockManager, txn: u64, key: &str, mode: LockMode) -> LockWait {
        manager
            .acquire(
                TxnId(txn),
                LockTarget::key(key),
                mode,
                ms(0),
                Timestamp::MAX,
            )
            .unwrap()
    }

    #[test]
    fn granted_at_once_resolves_on_first_poll() {
        let manager = manager(1);
        let wait = acquire(&manager, 1, "a", X);
        assert!(wait.is_granted_now());
        assert_eq!(block_on(wait), Ok(()));
    }

    #[test]
    fn release_wakes_the_waiter() {
        let manager = manager(2);
        block_on(acquire(&manager, 1, "a", X)).unwrap();
        let mut wait = acquire(&manager, 2, "a", X);
        let waker = Arc::new(CountingWaker::default());
        assert!(poll_once(&mut wait, &waker).is_pending());
        assert_eq!(waker.0.load(Ordering::SeqCst), 0);
        let woken = manager.release_all(TxnId(1));
        assert_eq!(woken.granted, vec![TxnId(2)]);
        assert_eq!(waker.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll_once(&mut wait, &waker), Poll::Ready(Ok(())));
        assert!(manager.inspect(|t| t.txn(TxnId(2)).unwrap().locks_held) == 1);
    }

    #[test]
    fn waiter_on_another_thread_is_woken() {
        let manager = manager(2);
        block_on(acquire(&manager, 1, "a", X)).unwrap();
        let wait = acquire(&manager, 2, "a", S);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || tx.send(block_on(wait)).unwrap());
        manager.release_all(TxnId(1));
        assert_eq!(rx.recv().unwrap(), Ok(()));
        thread.join().unwrap();
    }

    #[test]
    fn wounded_waiter_fails_and_wound_is_reported() {
        // t3 holds b and waits for t1 on a; t2 (older than t3) wants b.
        let manager = manager(3);
        block_on(acquire(&manager, 1, "a", X)).unwrap();
        block_on(acquire(&manager, 3, "b", X)).unwrap();
        let mut waiting = acquire(&manager, 3, "a", X);
        let waker = Arc::new(CountingWaker::default());
        assert!(poll_once(&mut waiting, &waker).is_pending());
        let mut wounding = acquire(&manager, 2, "b", X);
        assert_eq!(
            wounding.wounded(),
            &[Wound {
                txn: TxnId(3),
                by: TxnId(2)
            }]
        );
        assert_eq!(waker.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            poll_once(&mut waiting, &waker),
            Poll::Ready(Err(Error::Wounded { txn: 3, by: 2 }))
        );
        assert!(poll_once(&mut wounding, &waker).is_pending());
        manager.release_all(TxnId(3));
        assert_eq!(poll_once(&mut wounding, &waker), Poll::Ready(Ok(())));
    }

    #[test]
    fn timeout_and_cancel_and_release_end_waits() {
        let manager = manager(4);
        block_on(acquire(&manager, 1, "a", X)).unwrap();
        let timing_out = manager
            .acquire(TxnId(2), LockTarget::key("a"), S, ms(10), ms(30))
            .unwrap();
        let cancelled = acquire(&manager, 3, "a", S);
        let released = acquire(&manager, 4, "a", S);
        assert_eq!(manager.next_deadline(), Some(ms(30)));
        manager.expire_waiters(ms(30));
        assert_eq!(
            block_on(timing_out),
            Err(Error::LockTimeout {
                txn: 2,
                waited_ms: 20,
                what: "key 'a'".into()
            })
        );
        manager.cancel_wait(TxnId(3));
        assert!(matches!(block_on(cancelled), Err(Error::Aborted(_))));
        manager.release_all(TxnId(4));
        let err = block_on(released).unwrap_err();
        assert!(
            matches!(err, Error::Aborted(_)) && err.is_retryable(),
            "{err}"
        );
        manager.inspect(|table| assert!(table.txn(TxnId(3)).unwrap().locks_held == 0));
    }

    #[test]
    fn dropping_a_wait_withdraws_it_and_lets_others_through() {
        let manager = manager(3);
        block_on(acquire(&manager, 1, "a", S)).unwrap();
        let writer = acquire(&manager, 2, "a", X);
        let mut reader = acquire(&manager, 3, "a", S);
        let waker = Arc::new(CountingWaker::default());
        assert!(poll_once(&mut reader, &waker).is_pending());
        drop(writer);
        assert_eq!(waker.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll_once(&mut reader, &waker), Poll::Ready(Ok(())));
        manager.inspect(|table| assert!(!table.txn(TxnId(2)).unwrap().waiting));
    }

    #[test]
    fn granted_but_unobserved_lock_stays_held_when_dropped() {
        let manager = manager(2);
        block_on(acquire(&manager, 1, "a", X)).unwrap();
        let wait = acquire(&manager, 2, "a", X);
        manager.release_all(TxnId(1));
        drop(wait);
        manager.inspect(|table| assert_eq!(table.txn(TxnId(2)).unwrap().locks_held, 1));
        // The slot is gone, so the next request works.
        block_on(acquire(&manager, 2, "b", X)).unwrap();
    }

    #[test]
    fn second_request_while_first_is_unfinished_is_refused() {
        let manager = manager(2);
        block_on(acquire(&manager, 1, "a", X)).unwrap();
        let _wait = acquire(&manager, 2, "a", X);
        let err = manager
            .acquire(TxnId(2), LockTarget::key("b"), X, ms(0), Timestamp::MAX)
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        assert!(matches!(
            manager.prepare(TxnId(2)),
            Err(Error::InvalidInput(_))
        ));
    }

    /// Threads run transfer transactions between accounts (keys) under X
    /// locks, aborting and retrying when wounded. The balances are updated by
    /// a non-atomic read-yield-write that only the locks protect. Every
    /// transaction finishes (no deadlock, no lost wakeup) and no update is
    /// lost (the locks exclude).
    #[test]
    fn concurrent_transfers_finish_and_conserve_the_total() {
        const THREADS: u64 = 4;
        const TRANSFERS: u64 = 50;
        const ACCOUNTS: u64 = 5;
        let manager = LockManager::new();
        let balances: Arc<Vec<AtomicUsize>> =
            Arc::new((0..ACCOUNTS).map(|_| AtomicUsize::new(100)).collect());
        let clock = Arc::new(AtomicUsize::new(1));
        let next_txn = Arc::new(AtomicUsize::new(1));
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (manager, balances) = (manager.clone(), Arc::clone(&balances));
                let (clock, next_txn) = (Arc::clone(&clock), Arc::clone(&next_txn));
                std::thread::spawn(move || {
                    let mut retries = 0;
                    for i in 0..TRANSFERS {
                        let from = (thread + i) % ACCOUNTS;
                        let to = (thread * 3 + i * 7 + 1) % ACCOUNTS;
                        // A retry keeps its first start timestamp, so it ages
                        // and cannot be wounded forever.
                        let start = ms(clock.fetch_add(1, Ordering::SeqCst) as u64);
                        loop {
                            let txn = TxnId(next_txn.fetch_add(1, Ordering::SeqCst) as u64);
                            manager.begin(txn, start).unwrap();
                            let outcome = (|| -> Result<()> {
                                for account in [from, to] {
                                    let key = LockTarget::key(account.to_be_bytes());
                                    let wait =
                                        manager.acquire(txn, key, X, ms(0), Timestamp::MAX)?;
                                    // Wounded transactions are aborted by their
                                    // own thread when it next touches the table.
                                    block_on(wait)?;
                                }
                                manager.prepare(txn)
                            })();
                            if outcome.is_ok() && from != to {
                                // Committed, locks still held: apply.
                                for (account, delta) in [(from, -1isize), (to, 1)] {
                                    let balance = &balances[account as usize];
                                    let old = balance.load(Ordering::SeqCst);
                                    std::thread::yield_now();
                                    balance.store(old.wrapping_add_signed(delta), Ordering::SeqCst);
                                }
                            }
                            manager.release_all(txn);
                            match outcome {
                                Ok(()) => break,
                                Err(err) => {
                                    assert!(err.is_retryable(), "{err}");
                                    retries += 1;
                                }
                            }
                        }
                    }
                    retries
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let total: usize = balances.iter().map(|b| b.load(Ordering::SeqCst)).sum();
        assert_eq!(total, 100 * ACCOUNTS as usize);
        manager.inspect(|table| assert!(table.is_empty()));
    }
}
