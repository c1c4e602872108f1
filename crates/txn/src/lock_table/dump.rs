//! The lock table's debug dump: a deterministic, sorted text picture of
//! every lock, its holders and its queue, and of every transaction, for
//! golden tests, logs and debugging. See the [`fmt::Display`] impl of
//! [`LockTable`] for the format.

use std::fmt;

use meridian_truetime::Timestamp;

use super::types::SpanRef;
use super::{LockTable, Request};

/// The order of [`LockTable::requests`] and of the dump: by span (key
/// before a range with the same start; shorter range first), held before
/// waiting, then oldest first.
pub(super) fn display_order(a: &Request, b: &Request) -> std::cmp::Ordering {
    fn span_key(span: SpanRef<'_>) -> (&[u8], bool, Option<&[u8]>, bool) {
        match span {
            SpanRef::Key(key) => (key, false, None, false),
            // Unbounded sorts after every bounded end.
            SpanRef::Range(start, end) => (start, true, end, end.is_none()),
        }
    }
    let (a_span, b_span) = (span_key(a.span.as_ref()), span_key(b.span.as_ref()));
    (a_span.0, a_span.1, a_span.3, a_span.2)
        .cmp(&(b_span.0, b_span.1, b_span.3, b_span.2))
        .then(a.wait.is_some().cmp(&b.wait.is_some()))
        .then(a.prio.cmp(&b.prio))
}

/// A timestamp for the dump: `12ms` when it is a whole number of
/// milliseconds (as in tests), else nanoseconds.
fn fmt_ts(ts: Timestamp) -> String {
    let nanos = ts.as_nanos();
    if ts == Timestamp::MAX {
        "never".to_string()
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else {
        format!("{nanos}ns")
    }
}

/// A deterministic dump, one line per locked key or range and one per
/// transaction:
///
/// ```text
/// key 'a': held t1 S, t2 S; waiting t3 X
/// range ['b', 'd'): held t1 X
/// t1 ts=10ms
/// t2 ts=20ms wounded by t1
/// t3 ts=30ms waits for t1, t2 (since 0ms, deadline 50ms)
/// ```
///
/// Holders and waiters are listed oldest first; `(upgrade)` marks a waiter
/// that holds a weaker lock on the same target.
impl fmt::Display for LockTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.txns.is_empty() {
            return writeln!(f, "(empty)");
        }
        let mut requests: Vec<&Request> = self.requests.iter().map(|(_, r)| r).collect();
        requests.sort_by(|a, b| display_order(a, b));
        for group in requests.chunk_by(|a, b| a.span.as_ref() == b.span.as_ref()) {
            write!(f, "{}:", group[0].span.as_ref())?;
            let (held, waiting): (Vec<&&Request>, Vec<&&Request>) =
                group.iter().partition(|r| r.wait.is_none());
            if !held.is_empty() {
                let list: Vec<String> = held
                    .iter()
                    .map(|r| format!("{} {}", r.txn, r.mode))
                    .collect();
                write!(f, " held {}", list.join(", "))?;
            }
            if !waiting.is_empty() {
                let list: Vec<String> = waiting
                    .iter()
                    .map(|r| {
                        let upgrade = held.iter().any(|h| h.txn == r.txn);
                        format!(
                            "{} {}{}",
                            r.txn,
                            r.mode,
                            if upgrade { " (upgrade)" } else { "" }
                        )
                    })
                    .collect();
                let sep = if held.is_empty() { "" } else { ";" };
                write!(f, "{sep} waiting {}", list.join(", "))?;
            }
            writeln!(f)?;
        }
        for txn in self.txn_ids() {
            let state = &self.txns[&txn];
            let priority = state.prio.0;
            write!(f, "{txn} ts={}", fmt_ts(priority.start_ts))?;
            if priority.tiebreak != 0 {
                write!(f, " tiebreak={}", priority.tiebreak)?;
            }
            if state.prepared {
                write!(f, " prepared")?;
            }
            if let Some(by) = state.wounded_by {
                write!(f, " wounded by {by}")?;
            }
            if let Some(id) = state.waiting {
                let wait = self.requests[id].wait.expect("waiting request waits");
                let blockers: Vec<String> = self
                    .waits_for(txn)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                write!(f, " waits for {}", blockers.join(", "))?;
                if wait.deadline != Timestamp::MAX {
                    let (since, deadline) = (fmt_ts(wait.since), fmt_ts(wait.deadline));
                    write!(f, " (since {since}, deadline {deadline})")?;
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
