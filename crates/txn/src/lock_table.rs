//! The lock table: strict two-phase locking with wound-wait (Spanner §4.2.1).
//!
//! A read-write transaction locks what it reads (shared, S) and what it writes
//! (exclusive, X) at the leader of each group it touches, and keeps every lock
//! until it commits or aborts. Locks cover a single key or a half-open key
//! range `[start, end)` (possibly unbounded above); a range lock is how a scan
//! keeps phantoms out, so it conflicts with every key lock inside it and with
//! every overlapping range lock. Two locks of different transactions conflict
//! when they overlap and are not both S.
//!
//! [`LockTable`] is a pure data structure: `&mut self` methods, no threads, no
//! mutex, no clock and no IO. Time is an argument; waiting is a result. A
//! request is either [`LockStatus::Granted`] or [`LockStatus::Waiting`], and
//! the calls that can let waiters through ([`LockTable::release_all`],
//! [`LockTable::cancel_wait`], [`LockTable::expire_waiters`], and
//! [`LockTable::acquire`] itself) return the [`Wakeups`] the caller must
//! deliver. [`LockManager`] wraps the table in a mutex and turns waiting into
//! a future, for callers that prefer `.await`.
//!
//! # Wound-wait
//!
//! Each transaction has a [`Priority`], its start timestamp (ties broken by
//! its global id, then by its [`TxnId`]): smaller is older. When a request conflicts with a lock held by another
//! transaction:
//!
//! - if the requester is **older** than the holder, it **wounds** the holder:
//!   the table marks the holder wounded and returns it in
//!   [`Acquired::wounded`]. The caller must abort it. The wounded transaction
//!   keeps its locks until the caller calls `release_all` for it (its writes
//!   may still be in flight), and the requester waits for that. Every later
//!   request of a wounded transaction fails with the retryable
//!   [`Error::Wounded`]; if it was waiting when wounded, its waiting request
//!   is dropped at once and reported in [`Acquired::woken`] with that error;
//! - if the requester is **younger**, it waits;
//! - a **prepared** holder (two-phase commit past its point of no return, see
//!   [`LockTable::prepare`]) is never wounded: older requesters wait for it.
//!
//! # Queue policy
//!
//! Every lock has a queue of waiting requests. A waiting request is granted
//! as soon as nothing blocks it, where it is blocked by
//!
//! 1. any *held* lock of another transaction that conflicts with it, and
//! 2. any *waiting* request of another transaction that conflicts with it and
//!    is **older**.
//!
//! So among conflicting requests the queue is ordered by age, and requests
//! that do not conflict (readers) never hold each other up. Since transactions
//! get their timestamps when they start, age order is arrival order for
//! almost every request: a new request comes from a transaction younger than
//! everything already queued, and goes to the back. The exception is a
//! request of an old transaction that arrives late (its third statement, say):
//! it is placed ahead of younger conflicting waiters instead of behind them.
//! The alternatives are worse: waiting behind a younger waiter would create a
//! waits-for edge from old to young, which wound-wait forbids (it is how
//! deadlocks form), and wounding the younger *waiters* would abort
//! transactions that hold nothing it needs.
//!
//! Fairness follows: a new reader cannot overtake a queued writer by sharing
//! the readers' lock (rule 2 stops it, the writer being older), so a writer is
//! not starved by a stream of readers. The requests that can overtake a waiter
//! come from transactions older than it, which are finitely many.
//!
//! **Upgrades.** A transaction holding S that asks for X on the same key (or
//! the same range) has its request queued like any other; when granted, its
//! held lock becomes X in place. By the rules above it waits only for the
//! other holders: a conflicting waiter older than the upgrader would already
//! have wounded it, since that waiter conflicts with the upgrader's S lock.
//! A request already covered by what the transaction holds (the same or a
//! weaker mode, on the same key, or on a key or range inside a held range) is
//! granted at once and changes nothing.
//!
//! # Deadlock freedom
//!
//! The table keeps two invariants (the randomized tests check both after
//! every step):
//!
//! - **I1**: every waits-for edge, from a waiting request to a transaction
//!   that blocks it, points to an *older* transaction, or to a *wounded* or
//!   *prepared* one.
//! - **I2**: wounded and prepared transactions never wait.
//!
//! A cycle in the waits-for graph would consist of waiting transactions only,
//! hence (I2) of transactions neither wounded nor prepared, hence (I1) of
//! edges that all point to strictly older transactions: impossible. I1 holds
//! when a request starts waiting (younger conflicting holders are wounded
//! unless prepared; waiters ahead are older by rule 2) and stays true: a
//! transaction can newly block a waiter only by being granted a conflicting
//! lock, which rule 2 refuses to any transaction younger than the waiter.
//! Progress follows too: the oldest waiting transaction waits only for
//! transactions that are running, wounded (the caller aborts them) or
//! prepared (they commit or abort).
//!
//! # Timeouts and cancellation
//!
//! Each waiting request carries a deadline chosen by the caller.
//! [`LockTable::expire_waiters`] drops the requests whose deadline is `<= now`
//! and reports them with [`Error::LockTimeout`]; [`LockTable::next_deadline`]
//! says when to call it next. A deadline already reached at the time of the
//! request means "no wait" (`NOWAIT`): a request that would wait fails at once
//! with a timeout of 0 ms, and wounds nobody. [`LockTable::cancel_wait`]
//! withdraws a waiting request, e.g. when its client went away.
//!
//! # Data structures
//!
//! - requests live in a slab and are referred to by small integer ids;
//! - key requests (held and waiting) are indexed by key in a `BTreeMap`;
//! - range requests are indexed by a segment map (see the `index` module),
//!   which answers "which ranges contain this key" in `O(log n)`, so a key
//!   request never scans the range locks;
//! - each transaction lists the requests it holds, so releasing costs
//!   `O(locks held × log n)` plus the waiters it lets through;
//! - waiting requests are indexed by deadline, for `expire_waiters`.
//!
//! A key is copied once, into a shared `Arc<[u8]>`, when it is first locked.
//! An acquire makes one pass over the requests overlapping its target, which
//! answers at once whether it is covered, an upgrade, blocked, and whom it
//! wounds; an uncontended key lock costs two `BTreeMap` lookups and a slab
//! slot (see `benches/lock_table.rs`).
//!
//! # Left out
//!
//! - one waiting request per transaction: a transaction asks for its locks
//!   one at a time (a second request while the first waits is refused);
//! - no lock escalation (many key locks are not merged into a range lock),
//!   and no coalescing of a transaction's overlapping locks;
//! - no intent modes (IS/IX) and no update (U) mode: S and X only;
//! - no persistence: after a leader change the new leader re-acquires the
//!   locks of prepared transactions from the Paxos log (the 2PC layer's job);
//! - the table forgets a transaction at `release_all`: a late request of a
//!   transaction that already finished fails as an unknown transaction.

mod dump;
mod index;
mod manager;
mod types;

#[cfg(test)]
mod random_tests;
#[cfg(test)]
mod tests;

pub use manager::{LockManager, LockWait};
pub use types::{
    Acquired, KeyRange, LockMode, LockStatus, LockTarget, Priority, RequestInfo, RequestState,
    TxnId, TxnInfo, Wakeups, Wound,
};

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Bound, ControlFlow};
use std::time::Duration;

use meridian_error::{Error, Result};
use meridian_truetime::Timestamp;

use index::{Key, ReqId, SegmentMap, Slab};
use types::SpanRef;

/// A transaction's place in the wound-wait order: its priority, ties broken
/// by id. Smaller is older, and older wins.
type Rank = (Priority, TxnId);

/// What a stored request locks, with keys shared through [`Key`].
#[derive(Clone, Debug)]
enum Span {
    /// A single key.
    Key(Key),
    /// `[start, end)`; `None` is unbounded.
    Range(Key, Option<Key>),
}

impl Span {
    /// The borrowed view used for overlap arithmetic.
    fn as_ref(&self) -> SpanRef<'_> {
        match self {
            Span::Key(key) => SpanRef::Key(key),
            Span::Range(start, end) => SpanRef::Range(start, end.as_deref()),
        }
    }

    /// An owned copy for the caller.
    fn to_target(&self) -> LockTarget {
        match self {
            Span::Key(key) => LockTarget::Key(key.to_vec()),
            Span::Range(start, end) => LockTarget::Range(KeyRange {
                start: start.to_vec(),
                end: end.as_ref().map(|end| end.to_vec()),
            }),
        }
    }
}

/// One lock request, held or waiting.
#[derive(Debug)]
struct Request {
    /// The requesting transaction.
    txn: TxnId,
    /// The transaction's priority, copied here for queue decisions.
    prio: Rank,
    /// What it locks.
    span: Span,
    /// In which mode.
    mode: LockMode,
    /// `None` when held; the wait's times when waiting.
    wait: Option<Wait>,
}

impl Request {
    /// Whether this request keeps a request of `txn` (priority `prio`) for
    /// `mode` on an overlapping span from being granted: it belongs to another
    /// transaction, conflicts, and is either held or an older waiter.
    fn blocks(&self, txn: TxnId, prio: Rank, mode: LockMode) -> bool {
        self.txn != txn
            && self.mode.conflicts_with(mode)
            && (self.wait.is_none() || self.prio < prio)
    }
}

/// The times of a waiting request.
#[derive(Clone, Copy, Debug)]
struct Wait {
    /// When it started waiting.
    since: Timestamp,
    /// When it times out.
    deadline: Timestamp,
}

/// The table's record of a transaction.
#[derive(Debug)]
struct TxnState {
    /// Its wound-wait priority.
    prio: Rank,
    /// Prepared: never wounded, takes no new locks.
    prepared: bool,
    /// The older transaction that wounded it.
    wounded_by: Option<TxnId>,
    /// The requests it holds.
    held: Vec<ReqId>,
    /// Its waiting request, if any.
    waiting: Option<ReqId>,
}

/// Shared and exclusive locks on keys and key ranges, with wound-wait. See
/// the [module documentation](self) for the rules.
#[derive(Debug, Default)]
pub struct LockTable {
    /// Every transaction between `begin` and `release_all`.
    txns: HashMap<TxnId, TxnState>,
    /// Every request, held or waiting.
    requests: Slab<Request>,
    /// Key requests by key.
    keys: BTreeMap<Key, Vec<ReqId>>,
    /// Range requests by the segments they cover.
    ranges: SegmentMap,
    /// Waiting requests by deadline.
    deadlines: BTreeSet<(Timestamp, ReqId)>,
}

/// The error for a transaction the table does not know.
fn unknown_txn(txn: TxnId) -> Error {
    Error::InvalidInput(format!("unknown transaction {txn}"))
}

/// Whole milliseconds, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl LockTable {
    /// An empty lock table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers transaction `txn` with its priority under wound-wait (a
    /// start timestamp is the priority of a transaction of one group).
    /// Fails if `txn` is already known.
    pub fn begin(&mut self, txn: TxnId, priority: impl Into<Priority>) -> Result<()> {
        match self.txns.entry(txn) {
            std::collections::hash_map::Entry::Occupied(_) => Err(Error::InvalidInput(format!(
                "transaction {txn} already exists"
            ))),
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(TxnState {
                    prio: (priority.into(), txn),
                    prepared: false,
                    wounded_by: None,
                    held: Vec::new(),
                    waiting: None,
                });
                Ok(())
            }
        }
    }

    /// Requests a lock on `target` in `mode` for `txn`, at time `now`; if it
    /// has to wait, it times out at `deadline` (see
    /// [`LockTable::expire_waiters`]; `Timestamp::MAX` waits forever, and a
    /// deadline `<= now` fails at once instead of waiting).
    ///
    /// Returns whether the lock is granted or waits, the transactions this
    /// request wounded (the caller must abort them) and the waiters that the
    /// wounds decided. Errors:
    /// - [`Error::Wounded`] if `txn` was wounded: it must abort;
    /// - [`Error::LockTimeout`] if it would wait and `deadline <= now`;
    /// - [`Error::InvalidInput`] for an unknown transaction, an empty range, a
    ///   transaction that already waits, or a prepared transaction asking for
    ///   a lock it does not hold yet.
    pub fn acquire(
        &mut self,
        txn: TxnId,
        target: LockTarget,
        mode: LockMode,
        now: Timestamp,
        deadline: Timestamp,
    ) -> Result<Acquired> {
        let span = target.span();
        if let SpanRef::Range(start, Some(end)) = span {
            if end <= start {
                return Err(Error::InvalidInput(format!("empty lock {target}")));
            }
        }
        let state = self.txns.get(&txn).ok_or_else(|| unknown_txn(txn))?;
        if let Some(by) = state.wounded_by {
            return Err(Wound { txn, by }.error());
        }
        if state.waiting.is_some() {
            return Err(Error::InvalidInput(format!(
                "transaction {txn} already waits for a lock"
            )));
        }
        let (prio, prepared) = (state.prio, state.prepared);

        // One scan of the overlapping requests: is the request covered by a
        // lock `txn` holds, does `txn` hold a weaker lock on the same span (an
        // upgrade), who blocks it, and which of those it wounds.
        let mut same_span = None;
        let mut blockers = Vec::new();
        let mut victims = Vec::new();
        let covered = self
            .for_each_overlapping(span, |id, other| {
                if other.txn == txn {
                    if other.wait.is_none() {
                        let other_span = other.span.as_ref();
                        if other.mode.covers(mode) && other_span.contains(span) {
                            return ControlFlow::Break(());
                        }
                        if other_span == span {
                            same_span = Some(id);
                        }
                    }
                } else if other.blocks(txn, prio, mode) {
                    blockers.push(other.txn);
                    if other.wait.is_none() && other.prio > prio {
                        victims.push(other.txn);
                    }
                }
                ControlFlow::Continue(())
            })
            .is_break();
        if covered {
            return Ok(Acquired::now());
        }
        if prepared {
            return Err(Error::InvalidInput(format!(
                "transaction {txn} is prepared and cannot take new locks"
            )));
        }

        if blockers.is_empty() {
            match same_span {
                // Not covered, so `mode` is stronger: an upgrade in place.
                Some(held) => self.requests[held].mode = mode,
                None => {
                    let id = self.insert_request(txn, prio, target, mode, None);
                    self.txn_mut(txn).held.push(id);
                }
            }
            return Ok(Acquired::now());
        }
        if deadline <= now {
            return Err(Error::LockTimeout {
                txn: txn.0,
                waited_ms: 0,
                what: target.to_string(),
            });
        }

        blockers.sort_unstable();
        blockers.dedup();
        victims.sort_unstable();
        victims.dedup();
        let wait = Wait {
            since: now,
            deadline,
        };
        let id = self.insert_request(txn, prio, target, mode, Some(wait));
        self.deadlines.insert((deadline, id));
        self.txn_mut(txn).waiting = Some(id);

        let mut wounded = Vec::new();
        let mut woken = Wakeups::default();
        let mut candidates = Vec::new();
        for victim in victims {
            let state = self.txn_mut(victim);
            if state.prepared || state.wounded_by.is_some() {
                continue;
            }
            state.wounded_by = Some(txn);
            let wound = Wound {
                txn: victim,
                by: txn,
            };
            wounded.push(wound);
            if let Some(waiting) = state.waiting.take() {
                self.remove_request(waiting, &mut candidates);
                woken.failed.push((victim, wound.error()));
            }
        }
        self.grant_unblocked(candidates, &mut woken.granted);
        Ok(Acquired {
            status: LockStatus::Waiting { blockers },
            wounded,
            woken,
        })
    }

    /// Marks `txn` prepared (two-phase commit: it voted yes and can no longer
    /// abort on its own). A prepared transaction is never wounded, so it
    /// cannot lose its locks before the outcome is known; it takes no new
    /// locks. A single-group commit calls this too, before logging its commit
    /// record: it is the point after which the transaction cannot be wounded.
    ///
    /// Fails with [`Error::Wounded`] if `txn` was already wounded (it must
    /// vote no and abort), and with [`Error::InvalidInput`] if it is unknown
    /// or waiting for a lock.
    pub fn prepare(&mut self, txn: TxnId) -> Result<()> {
        let state = self.txns.get_mut(&txn).ok_or_else(|| unknown_txn(txn))?;
        if let Some(by) = state.wounded_by {
            return Err(Wound { txn, by }.error());
        }
        if state.waiting.is_some() {
            return Err(Error::InvalidInput(format!(
                "transaction {txn} cannot prepare while it waits for a lock"
            )));
        }
        state.prepared = true;
        Ok(())
    }

    /// Releases every lock of `txn` and withdraws its waiting request, when it
    /// commits or aborts, and forgets it. Returns the waiters now granted.
    /// Does nothing for an unknown transaction (release is idempotent).
    pub fn release_all(&mut self, txn: TxnId) -> Wakeups {
        let Some(state) = self.txns.remove(&txn) else {
            return Wakeups::default();
        };
        let mut candidates = Vec::new();
        for id in state.waiting.into_iter().chain(state.held) {
            self.remove_request(id, &mut candidates);
        }
        let mut woken = Wakeups::default();
        self.grant_unblocked(candidates, &mut woken.granted);
        woken
    }

    /// Withdraws the waiting request of `txn`, if it has one (its locks stay
    /// held). Returns the waiters that this lets through.
    pub fn cancel_wait(&mut self, txn: TxnId) -> Wakeups {
        let Some(id) = self
            .txns
            .get_mut(&txn)
            .and_then(|state| state.waiting.take())
        else {
            return Wakeups::default();
        };
        let mut candidates = Vec::new();
        self.remove_request(id, &mut candidates);
        let mut woken = Wakeups::default();
        self.grant_unblocked(candidates, &mut woken.granted);
        woken
    }

    /// Times out every waiting request whose deadline is `<= now`: they fail
    /// with [`Error::LockTimeout`], and the waiters behind them may be granted.
    pub fn expire_waiters(&mut self, now: Timestamp) -> Wakeups {
        let mut woken = Wakeups::default();
        let mut candidates = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            let request = self.remove_request(id, &mut candidates);
            self.txn_mut(request.txn).waiting = None;
            let since = request.wait.map_or(now, |wait| wait.since);
            woken.failed.push((
                request.txn,
                Error::LockTimeout {
                    txn: request.txn.0,
                    waited_ms: millis(now.duration_since(since)),
                    what: request.span.as_ref().to_string(),
                },
            ));
        }
        self.grant_unblocked(candidates, &mut woken.granted);
        woken
    }

    /// The earliest deadline of a waiting request: when `expire_waiters` has
    /// something to do next.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|&(deadline, _)| deadline)
    }

    /// The transaction that wounded `txn`, if `txn` is known and wounded.
    pub fn wounded_by(&self, txn: TxnId) -> Option<TxnId> {
        self.txns.get(&txn).and_then(|state| state.wounded_by)
    }

    /// What the table knows of `txn`, if anything.
    pub fn txn(&self, txn: TxnId) -> Option<TxnInfo> {
        self.txns.get(&txn).map(|state| TxnInfo {
            priority: state.prio.0,
            prepared: state.prepared,
            wounded_by: state.wounded_by,
            locks_held: state.held.len(),
            waiting: state.waiting.is_some(),
        })
    }

    /// The locks `txn` holds, in the order it took them (empty if unknown):
    /// what a participant's prepare record carries, so that a new leader
    /// can take them again.
    pub fn held_by(&self, txn: TxnId) -> Vec<(LockTarget, LockMode)> {
        self.txns.get(&txn).map_or_else(Vec::new, |state| {
            state
                .held
                .iter()
                .map(|&id| {
                    let request = &self.requests[id];
                    (request.span.to_target(), request.mode)
                })
                .collect()
        })
    }

    /// Every known transaction, sorted by id.
    pub fn txn_ids(&self) -> Vec<TxnId> {
        let mut ids: Vec<TxnId> = self.txns.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The transactions that the waiting request of `txn` waits for right
    /// now, sorted by id; empty if it does not wait.
    pub fn waits_for(&self, txn: TxnId) -> Vec<TxnId> {
        let Some(id) = self.txns.get(&txn).and_then(|state| state.waiting) else {
            return Vec::new();
        };
        let request = &self.requests[id];
        let mut blockers = Vec::new();
        let _ = self.for_each_overlapping::<()>(request.span.as_ref(), |_, other| {
            if other.blocks(request.txn, request.prio, request.mode) {
                blockers.push(other.txn);
            }
            ControlFlow::Continue(())
        });
        blockers.sort_unstable();
        blockers.dedup();
        blockers
    }

    /// Every request, held or waiting, sorted by target, then held before
    /// waiting, then by transaction age. For inspection and tests; it copies.
    pub fn requests(&self) -> Vec<RequestInfo> {
        let mut requests: Vec<&Request> = self.requests.iter().map(|(_, r)| r).collect();
        requests.sort_by(|a, b| dump::display_order(a, b));
        requests
            .into_iter()
            .map(|r| RequestInfo {
                txn: r.txn,
                target: r.span.to_target(),
                mode: r.mode,
                state: match r.wait {
                    None => RequestState::Held,
                    Some(wait) => RequestState::Waiting {
                        since: wait.since,
                        deadline: wait.deadline,
                    },
                },
            })
            .collect()
    }

    /// Whether the table has no transactions (and so no locks).
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    // ----- internals -------------------------------------------------------

    /// The state of a transaction the table's own indexes refer to.
    fn txn_mut(&mut self, txn: TxnId) -> &mut TxnState {
        self.txns
            .get_mut(&txn)
            .expect("indexed transaction is live")
    }

    /// Calls `f` with every request (held or waiting) overlapping `span`.
    /// Range requests may be passed more than once.
    fn for_each_overlapping<B>(
        &self,
        span: SpanRef<'_>,
        mut f: impl FnMut(ReqId, &Request) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        match span {
            SpanRef::Key(key) => {
                if let Some(ids) = self.keys.get(key) {
                    for &id in ids {
                        f(id, &self.requests[id])?;
                    }
                }
                for &id in self.ranges.at(key) {
                    f(id, &self.requests[id])?;
                }
            }
            SpanRef::Range(start, end) => {
                let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
                for (_, ids) in self.keys.range::<[u8], _>((Bound::Included(start), upper)) {
                    for &id in ids {
                        f(id, &self.requests[id])?;
                    }
                }
                self.ranges
                    .for_each_overlapping(start, end, |id| f(id, &self.requests[id]))?;
            }
        }
        ControlFlow::Continue(())
    }

    /// The lock `txn` holds on exactly `span`, other than request `except`.
    fn held_same_span(
        &self,
        txn: TxnId,
        span: SpanRef<'_>,
        except: Option<ReqId>,
    ) -> Option<ReqId> {
        let same = |id: &&ReqId| {
            let held = &self.requests[**id];
            Some(**id) != except
                && held.txn == txn
                && held.wait.is_none()
                && held.span.as_ref() == span
        };
        match span {
            SpanRef::Key(key) => self.keys.get(key)?.iter().find(same).copied(),
            SpanRef::Range(start, _) => self.ranges.at(start).iter().find(same).copied(),
        }
    }

    /// Stores a new request and indexes it by span (not by deadline).
    fn insert_request(
        &mut self,
        txn: TxnId,
        prio: Rank,
        target: LockTarget,
        mode: LockMode,
        wait: Option<Wait>,
    ) -> ReqId {
        let id = self.requests.next_id();
        let span = match target {
            LockTarget::Key(key) => {
                // One lookup: share the key of its entry if it is locked.
                let bounds = (Bound::Included(&key[..]), Bound::Included(&key[..]));
                let existing = self.keys.range_mut::<[u8], _>(bounds).next();
                Span::Key(match existing {
                    Some((shared, ids)) => {
                        ids.push(id);
                        Key::clone(shared)
                    }
                    None => {
                        let shared = Key::from(key);
                        self.keys.insert(Key::clone(&shared), vec![id]);
                        shared
                    }
                })
            }
            LockTarget::Range(range) => {
                let (start, end) = (Key::from(range.start), range.end.map(Key::from));
                self.ranges.insert(&start, end.as_ref(), id);
                Span::Range(start, end)
            }
        };
        let inserted = self.requests.insert(Request {
            txn,
            prio,
            span,
            mode,
            wait,
        });
        debug_assert_eq!(inserted, id);
        id
    }

    /// Removes a request from the slab and every index, and adds to
    /// `waiters` the waiting requests overlapping it: the ones its removal
    /// may unblock. The caller fixes the owning transaction's
    /// `held`/`waiting`.
    fn remove_request(&mut self, id: ReqId, waiters: &mut Vec<ReqId>) -> Request {
        let request = self.requests.remove(id);
        if let Some(wait) = request.wait {
            self.deadlines.remove(&(wait.deadline, id));
        }
        match &request.span {
            Span::Key(key) => {
                let requests = &self.requests;
                let waiting = |other: &ReqId| requests[*other].wait.is_some();
                if let Entry::Occupied(mut entry) = self.keys.entry(Key::clone(key)) {
                    let ids = entry.get_mut();
                    if let Some(pos) = ids.iter().position(|&other| other == id) {
                        ids.swap_remove(pos);
                    }
                    waiters.extend(ids.iter().filter(|id| waiting(id)));
                    if ids.is_empty() {
                        entry.remove();
                    }
                }
                waiters.extend(self.ranges.at(key).iter().filter(|id| waiting(id)));
            }
            Span::Range(start, end) => {
                self.ranges.remove(start, end.as_deref(), id);
                self.collect_waiters(request.span.as_ref(), waiters);
            }
        }
        request
    }

    /// Adds the waiting requests overlapping `span` to `out`: the ones that
    /// the removal of a request on `span` may have unblocked.
    fn collect_waiters(&self, span: SpanRef<'_>, out: &mut Vec<ReqId>) {
        let _ = self.for_each_overlapping::<()>(span, |id, request| {
            if request.wait.is_some() {
                out.push(id);
            }
            ControlFlow::Continue(())
        });
    }

    /// Grants every candidate waiter that nothing blocks any more, oldest
    /// first. One pass suffices: granting a waiter never unblocks another (it
    /// goes on blocking as a holder whoever it blocked as an older waiter).
    fn grant_unblocked(&mut self, candidates: Vec<ReqId>, granted: &mut Vec<TxnId>) {
        if candidates.is_empty() {
            return;
        }
        let mut order: Vec<(Rank, ReqId)> = candidates
            .into_iter()
            .filter_map(|id| {
                let request = self.requests.get(id)?;
                request.wait.is_some().then_some((request.prio, id))
            })
            .collect();
        order.sort_unstable();
        order.dedup();
        for (_, id) in order {
            let request = &self.requests[id];
            let (txn, prio, mode) = (request.txn, request.prio, request.mode);
            let blocked = self
                .for_each_overlapping(request.span.as_ref(), |_, other| {
                    if other.blocks(txn, prio, mode) {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .is_break();
            if !blocked {
                self.grant_waiting(id);
                granted.push(txn);
            }
        }
    }

    /// Turns waiting request `id` into a held lock, merging it into the lock
    /// its transaction already holds on the same span (an upgrade).
    fn grant_waiting(&mut self, id: ReqId) {
        let request = &mut self.requests[id];
        let wait = request.wait.take().expect("granting a waiting request");
        let (txn, mode) = (request.txn, request.mode);
        self.deadlines.remove(&(wait.deadline, id));
        let same = self.held_same_span(txn, self.requests[id].span.as_ref(), Some(id));
        self.txn_mut(txn).waiting = None;
        match same {
            Some(held) => {
                let held = &mut self.requests[held];
                held.mode = held.mode.max(mode);
                // Whoever it blocked as a waiter, the upgraded lock blocks.
                self.remove_request(id, &mut Vec::new());
            }
            None => self.txn_mut(txn).held.push(id),
        }
    }
}

impl Acquired {
    /// Granted at once, with no side effects.
    fn now() -> Self {
        Acquired {
            status: LockStatus::Granted,
            wounded: Vec::new(),
            woken: Wakeups::default(),
        }
    }
}
