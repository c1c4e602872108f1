//! A linearizability checker for per-key registers (Wing & Gong's search
//! with Lowe's memoization, as in Porcupine/Knossos).
//!
//! A history is a list of operations with invoke and response times; an
//! operation that never returned (the client gave up, or its node crashed)
//! has response `u64::MAX`: it may take effect at any point after its
//! invocation, or never (taking effect after everything else is the same as
//! never, for a register nobody read it from). Keys are independent
//! registers, so each key's sub-history is checked on its own.
//!
//! The search linearizes operations one at a time: an operation may come
//! next if no other pending operation returned before it was invoked; a read
//! must return the register's current value. States already explored (the
//! set of linearized operations plus the register value) are cached, which
//! keeps the search polynomial on the histories the simulator produces.

use std::collections::{BTreeMap, HashSet};

/// One operation on a register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Write a value (values are unique per history in the simulator).
    Write(u64),
    /// Read, returning the value seen (`None`: never written).
    Read(Option<u64>),
}

/// An operation with its key and real-time interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The register.
    pub key: u64,
    /// What it did.
    pub op: Op,
    /// When the client invoked it.
    pub invoke: u64,
    /// When it returned (`u64::MAX`: unknown outcome).
    pub response: u64,
}

/// Checks every key's sub-history; `Err` names the first key that is not
/// linearizable, with its history.
pub fn check(history: &[Call]) -> Result<(), String> {
    let mut by_key: BTreeMap<u64, Vec<&Call>> = BTreeMap::new();
    for call in history {
        by_key.entry(call.key).or_default().push(call);
    }
    for (key, calls) in by_key {
        if !check_register(&calls) {
            let mut calls = calls.clone();
            calls.sort_by_key(|c| (c.invoke, c.response));
            let lines: Vec<String> = calls
                .iter()
                .map(|c| {
                    let end = if c.response == u64::MAX {
                        "?".to_string()
                    } else {
                        c.response.to_string()
                    };
                    format!("  [{}, {end}] {:?}", c.invoke, c.op)
                })
                .collect();
            return Err(format!(
                "key {key} is not linearizable:\n{}",
                lines.join("\n")
            ));
        }
    }
    Ok(())
}

/// Whether one register's history is linearizable.
fn check_register(calls: &[&Call]) -> bool {
    let n = calls.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| calls[i].invoke);
    let calls: Vec<&Call> = order.iter().map(|&i| calls[i]).collect();
    let words = n.div_ceil(64).max(1);
    let mut seen: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    // Depth-first search with an explicit stack of (done set, value).
    let mut stack: Vec<(Vec<u64>, Option<u64>)> = vec![(vec![0; words], None)];
    while let Some((done, value)) = stack.pop() {
        let is_done = |i: usize| done[i / 64] & (1 << (i % 64)) != 0;
        // Everything before the first pending op is done: start there.
        let first = (0..n).find(|&i| !is_done(i));
        let Some(first) = first else { return true };
        // The earliest response among pending ops bounds who may go next.
        let min_response = (first..n)
            .filter(|&i| !is_done(i))
            .map(|i| calls[i].response)
            .min()
            .unwrap_or(u64::MAX);
        for (i, c) in calls.iter().enumerate().skip(first) {
            if is_done(i) {
                continue;
            }
            if c.invoke > min_response {
                break; // sorted by invoke: no later op may go next either
            }
            let next = match c.op {
                Op::Write(v) => Some(v),
                Op::Read(seen_value) if seen_value == value => value,
                Op::Read(_) => continue,
            };
            let mut done2 = done.clone();
            done2[i / 64] |= 1 << (i % 64);
            if seen.insert((done2.clone(), next)) {
                stack.push((done2, next));
            }
        }
        // Pending ops that never returned may also never take effect.
        let only_unreturned =
            calls.iter().enumerate().skip(first).all(|(i, c)| {
                is_done(i) || (c.response == u64::MAX && matches!(c.op, Op::Write(_)))
            });
        if only_unreturned {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: u64, invoke: u64, response: u64) -> Call {
        Call {
            key: 1,
            op: Op::Write(v),
            invoke,
            response,
        }
    }
    fn r(v: Option<u64>, invoke: u64, response: u64) -> Call {
        Call {
            key: 1,
            op: Op::Read(v),
            invoke,
            response,
        }
    }

    #[test]
    fn sequential_histories() {
        assert!(check(&[w(1, 0, 1), r(Some(1), 2, 3)]).is_ok());
        assert!(check(&[r(None, 0, 1), w(1, 2, 3), r(Some(1), 4, 5)]).is_ok());
        // A stale read after a completed write.
        assert!(check(&[w(1, 0, 1), w(2, 2, 3), r(Some(1), 4, 5)]).is_err());
        // Reading a value never written.
        assert!(check(&[w(1, 0, 1), r(Some(7), 2, 3)]).is_err());
        // Reading nothing after a write completed.
        assert!(check(&[w(1, 0, 1), r(None, 2, 3)]).is_err());
    }

    #[test]
    fn concurrent_histories() {
        // A read concurrent with a write may see either value.
        assert!(check(&[w(1, 0, 1), w(2, 2, 6), r(Some(1), 3, 4)]).is_ok());
        assert!(check(&[w(1, 0, 1), w(2, 2, 6), r(Some(2), 3, 4)]).is_ok());
        // ...but two sequential reads cannot go back in time.
        assert!(check(&[w(1, 0, 1), w(2, 2, 9), r(Some(2), 3, 4), r(Some(1), 5, 6)]).is_err());
        // Two concurrent writes, then reads agreeing on the winner.
        assert!(check(&[w(1, 0, 5), w(2, 0, 5), r(Some(1), 6, 7), r(Some(1), 8, 9)]).is_ok());
        assert!(check(&[w(1, 0, 5), w(2, 0, 5), r(Some(1), 6, 7), r(Some(2), 8, 9)]).is_err());
    }

    #[test]
    fn unreturned_writes_may_or_may_not_happen() {
        let pending = u64::MAX;
        assert!(check(&[w(1, 0, 1), w(2, 2, pending), r(Some(1), 5, 6)]).is_ok());
        assert!(check(&[w(1, 0, 1), w(2, 2, pending), r(Some(2), 5, 6)]).is_ok());
        // Once seen, it happened: no going back to the old value.
        assert!(check(&[
            w(1, 0, 1),
            w(2, 2, pending),
            r(Some(2), 5, 6),
            r(Some(1), 7, 8)
        ])
        .is_err());
        // It cannot take effect before it was invoked.
        assert!(check(&[w(1, 0, 1), r(Some(2), 2, 3), w(2, 4, pending)]).is_err());
    }

    #[test]
    fn keys_are_independent() {
        let mut h = vec![w(1, 0, 1), r(Some(1), 2, 3)];
        h.push(Call {
            key: 2,
            op: Op::Read(None),
            invoke: 4,
            response: 5,
        });
        assert!(check(&h).is_ok());
        h.push(Call {
            key: 2,
            op: Op::Read(Some(1)),
            invoke: 6,
            response: 7,
        });
        assert!(check(&h).unwrap_err().contains("key 2"));
    }

    #[test]
    fn long_histories_with_bounded_concurrency_stay_fast() {
        // 200 rounds of three overlapping writes then a read of one of
        // them: the shape the simulator's clients produce.
        let mut h = Vec::new();
        for round in 0..200u64 {
            let t = round * 10;
            for c in 0..3 {
                h.push(w(round * 3 + c, t, t + 5 + c));
            }
            h.push(r(Some(round * 3 + 1), t + 8, t + 9));
        }
        assert!(check(&h).is_ok());
        h.push(r(Some(0), 5000, 5001));
        assert!(check(&h).is_err());
    }
}
