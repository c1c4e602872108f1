//! The lock table's vocabulary: transaction ids, lock modes, lock targets (a
//! key or a key range) and the results that tell the caller what to do next.
//!
//! These are plain values that the caller builds and reads; the bookkeeping
//! behind them lives in the parent module. Keys are byte strings ordered
//! bytewise, the order of Meridian's one keyspace.

use std::fmt;

use meridian_error::Error;
use meridian_truetime::Timestamp;

/// A transaction's identity, unique among the transactions the table sees.
///
/// The same number as the `txn` and `by` fields of [`Error::Wounded`] and
/// [`Error::LockTimeout`]. Prints as `t7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnId(pub u64);

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl From<u64> for TxnId {
    fn from(id: u64) -> Self {
        TxnId(id)
    }
}

/// A transaction's wound-wait priority: smaller is older, and older wins.
///
/// The start timestamp, ties broken by `tiebreak`: a transaction spanning
/// groups has the same priority in every group (its global id breaks the
/// tie), so every group orders two of them alike and no cycle of waits can
/// form across groups. A transaction of one group has `tiebreak` 0; two
/// with equal priorities are ordered by their [`TxnId`] in the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority {
    /// The transaction's start timestamp.
    pub start_ts: Timestamp,
    /// Breaks ties between equal start timestamps.
    pub tiebreak: u128,
}

impl From<Timestamp> for Priority {
    /// The priority of a transaction of one group.
    fn from(start_ts: Timestamp) -> Self {
        Priority {
            start_ts,
            tiebreak: 0,
        }
    }
}

/// A lock mode. Ordered by strength: `Shared < Exclusive`.
///
/// Compatibility matrix (a request conflicts with a lock of another
/// transaction on an overlapping target unless both are shared):
///
/// | held \ requested | S          | X        |
/// |------------------|------------|----------|
/// | S                | compatible | conflict |
/// | X                | conflict   | conflict |
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    /// A read lock (S): many transactions may share it.
    Shared,
    /// A write lock (X): excludes every other transaction.
    Exclusive,
}

impl LockMode {
    /// Whether locks of these two modes, held by two different transactions on
    /// overlapping targets, conflict: true unless both are shared.
    pub fn conflicts_with(self, other: LockMode) -> bool {
        self == LockMode::Exclusive || other == LockMode::Exclusive
    }

    /// Whether holding `self` already grants `other` (X covers S and X; S
    /// covers S).
    pub fn covers(self, other: LockMode) -> bool {
        self >= other
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockMode::Shared => "S",
            LockMode::Exclusive => "X",
        })
    }
}

/// A half-open key range `[start, end)`; `end: None` is unbounded above.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyRange {
    /// The first key in the range (inclusive). The empty key is the start of
    /// the keyspace.
    pub start: Vec<u8>,
    /// The first key past the range (exclusive), or `None` for "to the end of
    /// the keyspace".
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// The range `[start, end)`.
    pub fn new(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        KeyRange {
            start: start.into(),
            end: Some(end.into()),
        }
    }

    /// The range from `start` (inclusive) to the end of the keyspace.
    pub fn starting_at(start: impl Into<Vec<u8>>) -> Self {
        KeyRange {
            start: start.into(),
            end: None,
        }
    }

    /// Whether the range holds no key (`end <= start`). The lock table
    /// rejects empty ranges.
    pub fn is_empty(&self) -> bool {
        self.end
            .as_deref()
            .is_some_and(|end| end <= &self.start[..])
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        SpanRef::Range(&self.start, self.end.as_deref()).overlaps(SpanRef::Key(key))
    }

    /// Whether the two ranges share at least one key.
    pub fn overlaps(&self, other: &KeyRange) -> bool {
        SpanRef::Range(&self.start, self.end.as_deref())
            .overlaps(SpanRef::Range(&other.start, other.end.as_deref()))
    }
}

/// What a lock covers: one key, or every key of a range (including keys that
/// do not exist yet, which is how range scans avoid phantoms).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LockTarget {
    /// A single key.
    Key(Vec<u8>),
    /// Every key in a half-open range.
    Range(KeyRange),
}

impl LockTarget {
    /// A lock on one key.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        LockTarget::Key(key.into())
    }

    /// A lock on the range `[start, end)`.
    pub fn range(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        LockTarget::Range(KeyRange::new(start, end))
    }

    /// A lock on every key from `start` on.
    pub fn range_from(start: impl Into<Vec<u8>>) -> Self {
        LockTarget::Range(KeyRange::starting_at(start))
    }

    /// Whether the two targets share at least one key.
    pub fn overlaps(&self, other: &LockTarget) -> bool {
        self.span().overlaps(other.span())
    }

    /// Whether every key of `other` is also in `self`.
    pub fn contains(&self, other: &LockTarget) -> bool {
        self.span().contains(other.span())
    }

    /// A borrowed view, for the shared span arithmetic.
    pub(super) fn span(&self) -> SpanRef<'_> {
        match self {
            LockTarget::Key(key) => SpanRef::Key(key),
            LockTarget::Range(range) => SpanRef::Range(&range.start, range.end.as_deref()),
        }
    }
}

/// Prints `key 'a'` or `range ['a', 'c')`, with non-printable bytes escaped.
impl fmt::Display for LockTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.span().fmt(f)
    }
}

/// A borrowed key or range: the one place where overlap and containment are
/// computed, for the caller's [`LockTarget`] and the table's stored spans alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SpanRef<'a> {
    /// A single key.
    Key(&'a [u8]),
    /// `[start, end)`, `None` being unbounded.
    Range(&'a [u8], Option<&'a [u8]>),
}

impl<'a> SpanRef<'a> {
    /// Whether `key` lies in the span.
    fn contains_key(self, key: &[u8]) -> bool {
        match self {
            SpanRef::Key(k) => k == key,
            SpanRef::Range(start, end) => start <= key && end.is_none_or(|end| key < end),
        }
    }

    /// Whether the two spans share a key.
    pub(super) fn overlaps(self, other: SpanRef<'_>) -> bool {
        match (self, other) {
            (SpanRef::Key(key), span) => span.contains_key(key),
            (span, SpanRef::Key(key)) => span.contains_key(key),
            (SpanRef::Range(s1, e1), SpanRef::Range(s2, e2)) => {
                e2.is_none_or(|e2| s1 < e2) && e1.is_none_or(|e1| s2 < e1)
            }
        }
    }

    /// Whether every key of `other` is in `self`.
    pub(super) fn contains(self, other: SpanRef<'_>) -> bool {
        match (self, other) {
            (span, SpanRef::Key(key)) => span.contains_key(key),
            // A key holds only itself; no non-empty range fits in it.
            (SpanRef::Key(_), SpanRef::Range(..)) => false,
            (SpanRef::Range(s1, e1), SpanRef::Range(s2, e2)) => {
                s1 <= s2
                    && match (e1, e2) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(e1), Some(e2)) => e2 <= e1,
                    }
            }
        }
    }
}

impl fmt::Display for SpanRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SpanRef::Key(key) => write!(f, "key {}", QuotedKey(key)),
            SpanRef::Range(start, Some(end)) => {
                write!(f, "range [{}, {})", QuotedKey(start), QuotedKey(end))
            }
            SpanRef::Range(start, None) => write!(f, "range [{}, +inf)", QuotedKey(start)),
        }
    }
}

/// A key printed for people: `'abc'`, with bytes outside printable ASCII
/// escaped as `\xNN`.
pub(super) struct QuotedKey<'a>(pub(super) &'a [u8]);

impl fmt::Display for QuotedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("'")?;
        for &byte in self.0 {
            write!(f, "{}", std::ascii::escape_default(byte))?;
        }
        f.write_str("'")
    }
}

/// Whether an acquired lock is held now or the request waits in a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockStatus {
    /// The lock is held (or was already covered by a lock the transaction
    /// holds). Nothing to wait for.
    Granted,
    /// The request waits. It is granted later by a [`LockTable::release_all`],
    /// [`LockTable::cancel_wait`], [`LockTable::expire_waiters`] or
    /// [`LockTable::acquire`] whose [`Wakeups::granted`] names this
    /// transaction, or fails through [`Wakeups::failed`].
    ///
    /// [`LockTable::release_all`]: super::LockTable::release_all
    /// [`LockTable::cancel_wait`]: super::LockTable::cancel_wait
    /// [`LockTable::expire_waiters`]: super::LockTable::expire_waiters
    /// [`LockTable::acquire`]: super::LockTable::acquire
    Waiting {
        /// The transactions it waits for right now (conflicting holders, and
        /// older conflicting waiters queued ahead of it), sorted by id.
        blockers: Vec<TxnId>,
    },
}

/// A transaction wounded by an older one (wound-wait): it must abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Wound {
    /// The younger transaction that must abort.
    pub txn: TxnId,
    /// The older transaction whose request wounded it.
    pub by: TxnId,
}

impl Wound {
    /// The retryable error the wounded transaction gets.
    pub fn error(&self) -> Error {
        Error::Wounded {
            txn: self.txn.0,
            by: self.by.0,
        }
    }
}

/// Waiting requests whose fate a call decided: the caller wakes their waiters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wakeups {
    /// Transactions whose waiting request is now granted, in grant order.
    pub granted: Vec<TxnId>,
    /// Transactions whose waiting request was dropped, with the error for
    /// their waiter: [`Error::LockTimeout`] after its deadline passed, or
    /// [`Error::Wounded`] when an older transaction wounded it while it waited.
    pub failed: Vec<(TxnId, Error)>,
}

impl Wakeups {
    /// Whether nobody needs waking.
    pub fn is_empty(&self) -> bool {
        self.granted.is_empty() && self.failed.is_empty()
    }
}

/// The answer to [`LockTable::acquire`](super::LockTable::acquire).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acquired {
    /// Granted, or waiting (and for whom).
    pub status: LockStatus,
    /// Younger transactions this request newly wounded. The caller must abort
    /// them (and then call `release_all` for each); until then they keep
    /// their locks and this request waits for them.
    pub wounded: Vec<Wound>,
    /// Other waiting requests decided as a side effect: a wounded transaction
    /// loses its own waiting request, which can let requests queued behind it
    /// through.
    pub woken: Wakeups,
}

impl Acquired {
    /// Whether the lock is held now.
    pub fn is_granted(&self) -> bool {
        self.status == LockStatus::Granted
    }
}

/// A transaction as the lock table sees it, from [`LockTable::txn`](super::LockTable::txn).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnInfo {
    /// Its priority: smaller is older.
    pub priority: Priority,
    /// Whether it is prepared (past the point of no return; never wounded).
    pub prepared: bool,
    /// The older transaction that wounded it, if one did.
    pub wounded_by: Option<TxnId>,
    /// How many lock entries it holds (a key or range counts once, whatever
    /// the mode).
    pub locks_held: usize,
    /// Whether it has a waiting request.
    pub waiting: bool,
}

/// One lock request, held or waiting, from [`LockTable::requests`](super::LockTable::requests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// The requesting transaction.
    pub txn: TxnId,
    /// What it locks.
    pub target: LockTarget,
    /// In which mode.
    pub mode: LockMode,
    /// Held, or waiting (since when, until when).
    pub state: RequestState,
}

/// Whether a request holds its lock or waits for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestState {
    /// The lock is held until the transaction commits or aborts.
    Held,
    /// The request waits in the queue.
    Waiting {
        /// When it started waiting (the `now` of its `acquire`).
        since: Timestamp,
        /// When it times out.
        deadline: Timestamp,
    },
}
