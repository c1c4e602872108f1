//! Golden-script tests of the lock table, the invariant checker shared with
//! the randomized tests, and unit tests of edge cases.
//!
//! The scripts in `testscripts/` use this DSL (times are milliseconds; `now`
//! starts at 0 and is moved by `expire` or an `acquire ... now=`):
//!
//! ```text
//! new-txn t1 ts=10                      begin t1 with start timestamp 10 ms
//! acquire t1 key=a mode=S               lock a key (mode S or X)
//! acquire t2 range=a..c mode=X deadline=50 now=5
//!                                       lock [a, c) ("a.." is unbounded)
//! prepare t1                            mark prepared (2PC)
//! commit t1                             prepare, then release everything
//! abort t1 / release t1                 release everything
//! cancel t2                             withdraw t2's waiting request
//! expire now=60                         time out waiters with deadline <= 60
//! show                                  dump the table
//! ```
//!
//! After every command the runner checks the table's invariants (no
//! conflicting holders, every waiter blocked and by exactly the transactions
//! the rules say, waits-for edges old-ward and acyclic).
//! Regenerate the expected output with `UPDATE_GOLDENFILES=1 cargo test`.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error as StdError;
use std::fmt::Write as _;
use std::time::Duration;

use meridian_error::Error;
use meridian_truetime::Timestamp;

use super::*;

/// `ms` milliseconds after the epoch.
pub(super) fn ms(ms: u64) -> Timestamp {
    Timestamp::from_nanos(0).saturating_add(Duration::from_millis(ms))
}

impl LockTable {
    /// Asserts the consistency of every index with the requests (tests only).
    pub(super) fn check_indexes(&self) {
        self.ranges.check();
        let mut indexed = 0;
        for (key, ids) in &self.keys {
            assert!(!ids.is_empty(), "empty key entry {key:?}");
            for &id in ids {
                let request = &self.requests[id];
                assert!(matches!(&request.span, Span::Key(k) if k == key));
                indexed += 1;
            }
        }
        let mut deadlines = 0;
        for (id, request) in self.requests.iter() {
            let state = &self.txns[&request.txn];
            assert_eq!(request.prio, state.prio);
            match request.wait {
                None => assert!(state.held.contains(&id), "held request not listed"),
                Some(wait) => {
                    assert_eq!(state.waiting, Some(id));
                    assert!(self.deadlines.contains(&(wait.deadline, id)));
                    assert!(!state.prepared && state.wounded_by.is_none(), "I2");
                    deadlines += 1;
                }
            }
            if let Span::Range(start, end) = &request.span {
                assert!(self.ranges.at(start).contains(&id));
                let mut found = false;
                let _ = self
                    .ranges
                    .for_each_overlapping::<()>(start, end.as_deref(), |other| {
                        found |= other == id;
                        ControlFlow::Continue(())
                    });
                assert!(found);
                indexed += 1;
            }
        }
        assert_eq!(indexed, self.requests.len());
        assert_eq!(deadlines, self.deadlines.len());
        let listed: usize = self
            .txns
            .values()
            .map(|s| s.held.len() + usize::from(s.waiting.is_some()))
            .sum();
        assert_eq!(listed, self.requests.len());
    }
}

/// Asserts every invariant of the table, computing the expected state by
/// brute force over [`LockTable::requests`], independently of its indexes:
///
/// - no two conflicting locks of different transactions are held at once;
/// - every waiting request is blocked, by exactly the transactions that the
///   queue rules name (conflicting holders and older conflicting waiters):
///   nothing that could be granted is left waiting (no lost wakeup);
/// - every waits-for edge points to an older, wounded or prepared
///   transaction (I1), and the waits-for graph has no cycle;
/// - wounded and prepared transactions do not wait (I2), and the indexes
///   agree with the requests.
pub(super) fn check_invariants(table: &LockTable) {
    table.check_indexes();
    let requests = table.requests();
    let info: BTreeMap<TxnId, TxnInfo> = table
        .txn_ids()
        .into_iter()
        .map(|txn| (txn, table.txn(txn).expect("listed txn")))
        .collect();
    let prio = |txn: TxnId| (info[&txn].priority, txn);
    let conflict = |a: &RequestInfo, b: &RequestInfo| {
        a.txn != b.txn && a.mode.conflicts_with(b.mode) && a.target.overlaps(&b.target)
    };

    let held: Vec<&RequestInfo> = requests
        .iter()
        .filter(|r| r.state == RequestState::Held)
        .collect();
    for (i, a) in held.iter().enumerate() {
        for b in &held[i + 1..] {
            assert!(
                !conflict(a, b),
                "conflicting locks held: {a:?} and {b:?}\n{table}"
            );
        }
    }

    let mut edges: BTreeMap<TxnId, BTreeSet<TxnId>> = BTreeMap::new();
    for waiter in requests.iter().filter(|r| r.state != RequestState::Held) {
        let me = info[&waiter.txn].clone();
        assert!(
            me.waiting && !me.prepared && me.wounded_by.is_none(),
            "I2: {waiter:?}"
        );
        let expected: BTreeSet<TxnId> = requests
            .iter()
            .filter(|other| conflict(waiter, other))
            .filter(|other| other.state == RequestState::Held || prio(other.txn) < prio(waiter.txn))
            .map(|other| other.txn)
            .collect();
        assert!(
            !expected.is_empty(),
            "lost wakeup: {waiter:?} is not blocked\n{table}"
        );
        let actual: BTreeSet<TxnId> = table.waits_for(waiter.txn).into_iter().collect();
        assert_eq!(actual, expected, "blockers of {waiter:?}\n{table}");
        for &blocker in &expected {
            let b = &info[&blocker];
            assert!(
                prio(blocker) < prio(waiter.txn) || b.wounded_by.is_some() || b.prepared,
                "I1: {} waits for younger {blocker} that is neither wounded nor prepared\n{table}",
                waiter.txn
            );
        }
        edges.insert(waiter.txn, expected);
    }
    for (txn, state) in &info {
        assert_eq!(
            state.waiting,
            edges.contains_key(txn),
            "waiting flag of {txn}"
        );
    }
    assert_acyclic(&edges, table);
}

/// Panics if the waits-for graph has a cycle (depth-first search).
fn assert_acyclic(edges: &BTreeMap<TxnId, BTreeSet<TxnId>>, table: &LockTable) {
    /// 1 = on the current path, 2 = done.
    fn visit(
        txn: TxnId,
        edges: &BTreeMap<TxnId, BTreeSet<TxnId>>,
        color: &mut BTreeMap<TxnId, u8>,
    ) -> bool {
        match color.get(&txn) {
            Some(1) => return false,
            Some(_) => return true,
            None => {}
        }
        color.insert(txn, 1);
        for &next in edges.get(&txn).into_iter().flatten() {
            if !visit(next, edges, color) {
                return false;
            }
        }
        color.insert(txn, 2);
        true
    }
    let mut color = BTreeMap::new();
    for &txn in edges.keys() {
        assert!(
            visit(txn, edges, &mut color),
            "deadlock: waits-for cycle through {txn}\n{table}"
        );
    }
}

/// Runs the lock table DSL.
struct Runner {
    /// The table under test.
    table: LockTable,
    /// The current time.
    now: Timestamp,
}

/// Parses `t7` into `TxnId(7)`.
fn parse_txn(arg: Option<&str>) -> Result<TxnId, Box<dyn StdError>> {
    let arg = arg.ok_or("transaction name (e.g. t1) missing")?;
    let id = arg
        .strip_prefix('t')
        .ok_or_else(|| format!("bad transaction name {arg}"))?;
    Ok(TxnId(id.parse()?))
}

/// Parses milliseconds into a timestamp.
fn parse_ms(arg: &str) -> Result<Timestamp, Box<dyn StdError>> {
    Ok(ms(arg.parse()?))
}

/// Prints wakeups, one per line: failures (the cause) before grants.
fn write_wakeups(out: &mut String, woken: &Wakeups) -> std::fmt::Result {
    for (txn, err) in &woken.failed {
        writeln!(out, "{txn} failed: {err}")?;
    }
    for txn in &woken.granted {
        writeln!(out, "{txn} granted")?;
    }
    Ok(())
}

impl goldenscript::Runner for Runner {
    type Command = goldenscript::Command;

    fn run(
        &mut self,
        command: &goldenscript::Command,
        _: &goldenscript::Context,
    ) -> Result<String, Box<dyn StdError>> {
        let mut out = String::new();
        let mut args = command.consume_args();
        match command.name.as_str() {
            "new-txn" => {
                let txn = parse_txn(args.next_pos())?;
                let ts = parse_ms(args.take_key("ts").ok_or("ts= missing")?)?;
                args.reject_next()?;
                self.table.begin(txn, ts)?;
            }
            "acquire" => {
                let txn = parse_txn(args.next_pos())?;
                let target = match (args.take_key("key"), args.take_key("range")) {
                    (Some(key), None) => LockTarget::key(key),
                    (None, Some(range)) => {
                        let (start, end) = range.split_once("..").ok_or("range=START..END")?;
                        if end.is_empty() {
                            LockTarget::range_from(start)
                        } else {
                            LockTarget::range(start, end)
                        }
                    }
                    _ => return Err("give one of key= or range=".into()),
                };
                let mode = match args.take_key("mode").ok_or("mode= missing")? {
                    "S" => LockMode::Shared,
                    "X" => LockMode::Exclusive,
                    other => return Err(format!("bad mode {other}").into()),
                };
                if let Some(now) = args.take_key("now") {
                    self.now = parse_ms(now)?;
                }
                let deadline = match args.take_key("deadline") {
                    Some(deadline) => parse_ms(deadline)?,
                    None => Timestamp::MAX,
                };
                args.reject_next()?;
                let acquired = self.table.acquire(txn, target, mode, self.now, deadline)?;
                match &acquired.status {
                    LockStatus::Granted => writeln!(out, "granted")?,
                    LockStatus::Waiting { blockers } => {
                        let list: Vec<String> = blockers.iter().map(ToString::to_string).collect();
                        writeln!(out, "waiting for {}", list.join(", "))?;
                    }
                }
                for wound in &acquired.wounded {
                    writeln!(out, "wounded {}", wound.txn)?;
                }
                write_wakeups(&mut out, &acquired.woken)?;
            }
            "prepare" => {
                let txn = parse_txn(args.next_pos())?;
                args.reject_next()?;
                self.table.prepare(txn)?;
            }
            "commit" => {
                let txn = parse_txn(args.next_pos())?;
                args.reject_next()?;
                if !self.table.txn(txn).is_some_and(|info| info.prepared) {
                    self.table.prepare(txn)?;
                }
                write_wakeups(&mut out, &self.table.release_all(txn))?;
            }
            "abort" | "release" => {
                let txn = parse_txn(args.next_pos())?;
                args.reject_next()?;
                write_wakeups(&mut out, &self.table.release_all(txn))?;
            }
            "cancel" => {
                let txn = parse_txn(args.next_pos())?;
                args.reject_next()?;
                write_wakeups(&mut out, &self.table.cancel_wait(txn))?;
            }
            "expire" => {
                self.now = parse_ms(args.take_key("now").ok_or("now= missing")?)?;
                args.reject_next()?;
                write_wakeups(&mut out, &self.table.expire_waiters(self.now))?;
            }
            "show" => {
                args.reject_next()?;
                write!(out, "{}", self.table)?;
            }
            name => return Err(format!("unknown command {name}").into()),
        }
        Ok(out)
    }

    fn end_command(
        &mut self,
        _: &goldenscript::Command,
        _: &goldenscript::Context,
    ) -> Result<String, Box<dyn StdError>> {
        check_invariants(&self.table);
        Ok(String::new())
    }
}

/// The directory of the scripts, relative to the crate (cargo test's cwd).
const SCRIPTS: &str = "src/lock_table/testscripts";

/// One `#[test]` per script; `every_script_has_a_test` keeps the list whole.
macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        const SCRIPT_NAMES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() -> std::io::Result<()> {
                let path = std::path::Path::new(SCRIPTS).join(stringify!($name));
                goldenscript::run(&mut Runner { table: LockTable::new(), now: ms(0) }, path)
            }
        )*
    };
}

scripts!(
    cancel,
    conflicts,
    cycles,
    errors,
    fairness,
    prepared,
    range_vs_key,
    range_vs_range,
    timeouts,
    upgrade,
    wound_wait,
);

#[test]
fn every_script_has_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(SCRIPTS)
        .expect("scripts directory")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    assert_eq!(files, SCRIPT_NAMES, "add new scripts to scripts!()");
}

// ----- unit tests ----------------------------------------------------------

/// A table with transactions `t1..=tn`, `ti` starting at `i * 10` ms.
fn table_with(n: u64) -> LockTable {
    let mut table = LockTable::new();
    for i in 1..=n {
        table.begin(TxnId(i), ms(i * 10)).unwrap();
    }
    table
}

fn acquire(table: &mut LockTable, txn: u64, target: LockTarget, mode: LockMode) -> Acquired {
    let acquired = table
        .acquire(TxnId(txn), target, mode, ms(0), Timestamp::MAX)
        .unwrap();
    check_invariants(table);
    acquired
}

use LockMode::{Exclusive as X, Shared as S};

#[test]
fn compatibility_matrix() {
    assert!(!S.conflicts_with(S));
    assert!(S.conflicts_with(X));
    assert!(X.conflicts_with(S));
    assert!(X.conflicts_with(X));
    assert!(X.covers(S) && X.covers(X) && S.covers(S) && !S.covers(X));
}

#[test]
fn target_arithmetic() {
    let ac = LockTarget::range("a", "c");
    assert!(ac.overlaps(&LockTarget::key("a")));
    assert!(ac.overlaps(&LockTarget::key("b\x00")));
    assert!(!ac.overlaps(&LockTarget::key("c")));
    assert!(ac.overlaps(&LockTarget::range("b", "z")));
    assert!(!ac.overlaps(&LockTarget::range("c", "z")));
    assert!(LockTarget::range_from("b").overlaps(&LockTarget::range("a", "b\x00")));
    assert!(LockTarget::range_from("").contains(&ac));
    assert!(ac.contains(&LockTarget::range("a", "b")));
    assert!(!ac.contains(&LockTarget::range_from("a")));
    assert!(!LockTarget::key("a").contains(&LockTarget::range("a", "a\x00")));
    assert!(KeyRange::new("b", "b").is_empty());
    assert!(!KeyRange::starting_at("b").is_empty());
    assert!(KeyRange::new("a", "c").contains(b"b"));
    assert!(KeyRange::new("a", "c").overlaps(&KeyRange::starting_at("b")));
    assert_eq!(
        LockTarget::key(vec![b'a', 0, 0xff]).to_string(),
        r"key 'a\x00\xff'"
    );
    assert_eq!(LockTarget::range_from("a").to_string(), "range ['a', +inf)");
}

#[test]
fn empty_range_is_rejected() {
    let mut table = table_with(1);
    let err = table
        .acquire(
            TxnId(1),
            LockTarget::range("b", "a"),
            X,
            ms(0),
            Timestamp::MAX,
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
}

#[test]
fn begin_twice_fails() {
    let mut table = table_with(1);
    assert!(matches!(
        table.begin(TxnId(1), ms(5)),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn covered_requests_add_nothing() {
    let mut table = table_with(1);
    acquire(&mut table, 1, LockTarget::range("a", "m"), X);
    acquire(&mut table, 1, LockTarget::key("c"), S);
    acquire(&mut table, 1, LockTarget::key("c"), X);
    acquire(&mut table, 1, LockTarget::range("b", "c"), S);
    assert_eq!(table.txn(TxnId(1)).unwrap().locks_held, 1);
    assert_eq!(table.requests().len(), 1);
}

#[test]
fn upgrade_in_place_keeps_one_lock() {
    let mut table = table_with(1);
    acquire(&mut table, 1, LockTarget::key("a"), S);
    acquire(&mut table, 1, LockTarget::key("a"), X);
    acquire(&mut table, 1, LockTarget::range("b", "d"), S);
    acquire(&mut table, 1, LockTarget::range("b", "d"), X);
    let requests = table.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.mode == X));
}

#[test]
fn release_is_idempotent_and_forgets() {
    let mut table = table_with(2);
    acquire(&mut table, 1, LockTarget::key("a"), X);
    assert!(table.release_all(TxnId(1)).is_empty());
    assert!(table.release_all(TxnId(1)).is_empty());
    assert!(table.txn(TxnId(1)).is_none());
    let err = table
        .acquire(TxnId(1), LockTarget::key("a"), S, ms(0), Timestamp::MAX)
        .unwrap_err();
    assert_eq!(err, Error::InvalidInput("unknown transaction t1".into()));
    table.release_all(TxnId(2));
    assert!(table.is_empty());
    assert_eq!(table.to_string(), "(empty)\n");
}

#[test]
fn nowait_fails_without_wounding() {
    let mut table = table_with(2);
    acquire(&mut table, 2, LockTarget::key("a"), X);
    let err = table
        .acquire(TxnId(1), LockTarget::key("a"), S, ms(5), ms(5))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::LockTimeout {
                txn: 1,
                waited_ms: 0,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_retryable());
    assert_eq!(table.wounded_by(TxnId(2)), None);
    assert!(!table.txn(TxnId(1)).unwrap().waiting);
}

#[test]
fn one_waiting_request_per_txn() {
    let mut table = table_with(2);
    acquire(&mut table, 1, LockTarget::key("a"), X);
    acquire(&mut table, 2, LockTarget::key("a"), X);
    let err = table
        .acquire(TxnId(2), LockTarget::key("b"), X, ms(0), Timestamp::MAX)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(matches!(
        table.prepare(TxnId(2)),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn prepared_txn_takes_no_new_locks_but_may_repeat_held_ones() {
    let mut table = table_with(1);
    acquire(&mut table, 1, LockTarget::key("a"), X);
    table.prepare(TxnId(1)).unwrap();
    assert!(acquire(&mut table, 1, LockTarget::key("a"), S).is_granted());
    let err = table
        .acquire(TxnId(1), LockTarget::key("b"), S, ms(0), Timestamp::MAX)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
}

#[test]
fn wounded_waiter_loses_its_wait_and_unblocks_the_queue() {
    // t3 holds b and waits (X) on a, held S by t1 (older). t4's S request on
    // a queues behind t3's X. t2 then wounds t3 over b: t3's wait on a is
    // dropped and t4, compatible with t1's S, gets a.
    let mut table = table_with(4);
    acquire(&mut table, 1, LockTarget::key("a"), S);
    acquire(&mut table, 3, LockTarget::key("b"), X);
    let waits = acquire(&mut table, 3, LockTarget::key("a"), X);
    assert_eq!(
        waits.status,
        LockStatus::Waiting {
            blockers: vec![TxnId(1)]
        }
    );
    let waits = acquire(&mut table, 4, LockTarget::key("a"), S);
    assert_eq!(
        waits.status,
        LockStatus::Waiting {
            blockers: vec![TxnId(3)]
        }
    );
    let acquired = acquire(&mut table, 2, LockTarget::key("b"), S);
    assert_eq!(
        acquired.status,
        LockStatus::Waiting {
            blockers: vec![TxnId(3)]
        }
    );
    assert_eq!(
        acquired.wounded,
        vec![Wound {
            txn: TxnId(3),
            by: TxnId(2)
        }]
    );
    assert_eq!(acquired.woken.granted, vec![TxnId(4)]);
    assert_eq!(
        acquired.woken.failed,
        vec![(TxnId(3), Error::Wounded { txn: 3, by: 2 })]
    );
    let err = table
        .acquire(TxnId(3), LockTarget::key("c"), S, ms(0), Timestamp::MAX)
        .unwrap_err();
    assert_eq!(err, Error::Wounded { txn: 3, by: 2 });
    assert!(err.is_retryable());
    assert_eq!(
        table.prepare(TxnId(3)),
        Err(Error::Wounded { txn: 3, by: 2 })
    );
    assert_eq!(table.release_all(TxnId(3)).granted, vec![TxnId(2)]);
    check_invariants(&table);
}

#[test]
fn timeout_reports_wait_and_target() {
    let mut table = table_with(2);
    acquire(&mut table, 1, LockTarget::range_from("k"), X);
    table
        .acquire(TxnId(2), LockTarget::key("m"), S, ms(100), ms(350))
        .unwrap();
    assert_eq!(table.next_deadline(), Some(ms(350)));
    assert!(table.expire_waiters(ms(349)).is_empty());
    let woken = table.expire_waiters(ms(400));
    assert_eq!(
        woken.failed,
        vec![(
            TxnId(2),
            Error::LockTimeout {
                txn: 2,
                waited_ms: 300,
                what: "key 'm'".into()
            }
        )]
    );
    assert_eq!(table.next_deadline(), None);
    check_invariants(&table);
}

#[test]
fn same_start_timestamp_ties_break_by_id() {
    let mut table = LockTable::new();
    table.begin(TxnId(1), ms(10)).unwrap();
    table.begin(TxnId(2), ms(10)).unwrap();
    acquire(&mut table, 2, LockTarget::key("a"), X);
    let acquired = acquire(&mut table, 1, LockTarget::key("a"), X);
    assert_eq!(
        acquired.wounded,
        vec![Wound {
            txn: TxnId(2),
            by: TxnId(1)
        }]
    );
}

#[test]
fn equal_start_timestamps_of_global_transactions_tie_break_on_their_global_ids() {
    // Two transactions spanning groups begun at the same timestamp: the one
    // with the smaller global id is older in every group, whatever local
    // ids the groups gave them.
    let older = Priority {
        start_ts: ms(10),
        tiebreak: 7,
    };
    let younger = Priority {
        start_ts: ms(10),
        tiebreak: 9,
    };
    for (older_id, younger_id) in [(1, 2), (2, 1)] {
        let mut table = LockTable::new();
        table.begin(TxnId(older_id), older).unwrap();
        table.begin(TxnId(younger_id), younger).unwrap();
        acquire(&mut table, younger_id, LockTarget::key("a"), X);
        acquire(&mut table, older_id, LockTarget::key("b"), X);
        // The younger waits for the older ...
        let waits = acquire(&mut table, younger_id, LockTarget::key("b"), X);
        assert!(waits.wounded.is_empty() && !waits.is_granted());
        check_invariants(&table);
        // ... and the older wounds the younger.
        let acquired = acquire(&mut table, older_id, LockTarget::key("a"), X);
        assert_eq!(
            acquired.wounded,
            vec![Wound {
                txn: TxnId(younger_id),
                by: TxnId(older_id)
            }]
        );
        check_invariants(&table);
    }
}

#[test]
fn many_keys_release_in_one_call() {
    let mut table = table_with(2);
    for i in 0..100u32 {
        acquire(&mut table, 2, LockTarget::key(i.to_be_bytes()), X);
    }
    let waits = acquire(&mut table, 2, LockTarget::range_from(""), S);
    assert!(waits.is_granted());
    table
        .acquire(
            TxnId(1),
            LockTarget::range(0u32.to_be_bytes(), 50u32.to_be_bytes()),
            S,
            ms(0),
            Timestamp::MAX,
        )
        .unwrap();
    assert_eq!(table.wounded_by(TxnId(2)), Some(TxnId(1)));
    let woken = table.release_all(TxnId(2));
    assert_eq!(woken.granted, vec![TxnId(1)]);
    check_invariants(&table);
    assert_eq!(table.requests().len(), 1);
}
