//! History checkers (feature `testing`): is what the clients saw consistent?
//!
//! A test harness runs a workload against a cluster, records every operation
//! with the real time at which the client invoked it and at which it saw the
//! outcome, and hands the history to one of the pure checkers here. They do
//! no IO, read no clock and draw no random numbers, so a failing history can
//! be saved and re-checked forever. Timestamps (`commit_ts`) are the
//! database's, in nanoseconds; `invoked_at` and `completed_at` are nanoseconds
//! of the harness's monotonic wall clock, which is *not* the database's clock
//! (TrueTime is what is being tested, so it cannot also be the referee).
//!
//! Three checkers, from the weakest to the strongest:
//!
//! - [`check_bank`]: the bank workload moves money between accounts; every
//!   snapshot read of all balances must add up to the initial total and no
//!   balance may be negative. Cheap, and catches torn snapshots.
//! - [`check_external_consistency`]: Spanner's guarantee (Spanner §4.1.2):
//!   if T1 commits before T2 starts, then `s1 < s2`. A read-only transaction
//!   at snapshot `s_read` (§4.1.4) sees every commit at `<= s_read`, so when
//!   the later transaction is read-only the rule is `s1 <= s2`; otherwise it
//!   is strict. One sort by invocation, one by completion and a sweep that
//!   keeps the largest timestamp completed so far: `O(n log n)`.
//! - [`check_list_append`]: Elle (Kingsbury & Alvaro, "Elle: Inferring
//!   Isolation Anomalies from Experimental Observations", VLDB 2020) on the
//!   list-append model, checking strict serializability. Every key holds a
//!   list; transactions append unique values and read whole lists. Because a
//!   read returns the whole list, it reveals the *version order* of the key
//!   (Elle's "recoverability" and "traceability"): all reads of a key must
//!   be prefixes of the longest one, which is taken as the version order.
//!   The checker first rejects anomalies that need no cycle (Adya's G1a
//!   aborted read, G1b intermediate read, garbage and duplicated elements,
//!   internal inconsistency within one transaction), then builds Adya's
//!   direct serialization graph over the committed transactions: `ww`
//!   (T2 appended the element right after T1's), `wr` (T2 read a list ending
//!   in T1's element) and `rw` (T1 read a list that T2's element extends
//!   next). A cycle is an anomaly: G0 (only `ww`), G1c (`ww` and `wr`),
//!   G-single (exactly one `rw`) or G2 (several). Finally it adds real-time
//!   edges (T1 completed before T2 was invoked); a cycle that appears only
//!   now is serializable but not *strictly* serializable, reported as
//!   `<class>-realtime`.
//!
//! Invariants the list-append checker relies on and enforces: values are
//! unique per key across the whole history (a duplicate append is reported
//! as a malformed history); reads of aborted and ambiguous (`Unknown`)
//! transactions carry no information and are ignored; an `Unknown`
//! transaction whose appends some committed read observed did commit and
//! joins the graph, one never observed is dropped (it may never have
//! happened). An `Unknown` transaction has no known completion time, so it
//! has no outgoing real-time edges.
//!
//! Graph search is linear and non-recursive: Tarjan's strongly connected
//! components with an explicit stack (histories reach 100k operations), run
//! on growing edge sets (`ww`; `ww+wr`; `ww+wr+rw`; all) so the weakest
//! anomaly is reported first, then a breadth-first search inside the first
//! non-trivial component for a short cycle. Real-time edges keep a
//! "frontier" (each transaction gets edges only from the transactions that
//! completed before its invocation and that no other such transaction
//! follows; the rest are implied by transitivity): `O(n * concurrency)`
//! edges rather than `O(n^2)`, with the same cycles.
//!
//! Left out: version orders are inferred from reads only (an append nobody
//! read is in no version order and gets no `ww`/`rw` edges); no per-process
//! (session) order edges; other data models (registers, sets, counters);
//! only the first violation is reported, not all of them; the G-single
//! search is best effort (it tries the first 64 `rw` edges of the
//! component, so a G-single hidden behind more may be reported as G2); the
//! cycle shown is short but not always the shortest.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;

/// One snapshot read of every account balance in the bank workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankRead {
    /// The read's operation id, named in a violation.
    pub id: u64,
    /// Each account's balance as the snapshot saw it.
    pub balances: Vec<i64>,
}

/// A finished transaction as the external-consistency check sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampedTxn {
    /// The transaction's id, named in a violation.
    pub id: u64,
    /// Its commit timestamp or, if read-only, its snapshot read timestamp (ns).
    pub commit_ts: u64,
    /// Harness wall time when the client called begin (ns).
    pub invoked_at: u64,
    /// Harness wall time when the client saw the commit acknowledged (ns).
    pub completed_at: u64,
    /// Whether it was a read-only transaction (a snapshot read at `commit_ts`).
    pub read_only: bool,
}

/// One operation inside a list-append transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MicroOp {
    /// Append a value (unique per key over the history) to a key's list.
    Append(u64, u64),
    /// Read a key's whole list, as observed.
    Read(u64, Vec<u64>),
}

/// How a transaction ended, as the client knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged as committed.
    Committed,
    /// Known to have aborted: none of its appends may ever be seen.
    Aborted,
    /// Ambiguous (timeout, lost connection): it may or may not have committed.
    Unknown,
}

/// One transaction of a list-append history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListAppendTxn {
    /// The transaction's id, named in a violation.
    pub id: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Its micro-operations, in program order.
    pub ops: Vec<MicroOp>,
    /// Harness wall time when the client called begin (ns).
    pub invoked_at: u64,
    /// Harness wall time when the client saw the outcome (ns); unused if `Unknown`.
    pub completed_at: u64,
}

/// The kind of an edge of the serialization graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EdgeKind {
    /// Write-write: the later transaction appended right after the earlier.
    Ww,
    /// Write-read: the later transaction read the earlier one's append last.
    Wr,
    /// Read-write anti-dependency: the later appended right after what the earlier read.
    Rw,
    /// Real time: the earlier completed before the later was invoked.
    Realtime,
}

/// Adya's class of a dependency cycle, by the edges it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CycleClass {
    /// Only write-write edges (dirty write).
    G0,
    /// Write-write and write-read edges (circular information flow).
    G1c,
    /// Exactly one anti-dependency edge (e.g. a lost update or a stale read).
    GSingle,
    /// Several anti-dependency edges (e.g. write skew).
    G2,
}

/// A cycle in the serialization graph, as found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    /// Its class, from its dependency edges (real-time edges aside).
    pub class: CycleClass,
    /// Whether it needs real-time edges: serializable, not strictly so.
    pub realtime: bool,
    /// Each transaction id with the kind of the edge leaving it to the next.
    pub steps: Vec<(u64, EdgeKind)>,
}

/// What a successful list-append check looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckSummary {
    /// Transactions in the graph (committed, and observed `Unknown` ones).
    pub txns: usize,
    /// Distinct transaction pairs with a write-write edge.
    pub ww: usize,
    /// Distinct transaction pairs with a write-read edge.
    pub wr: usize,
    /// Distinct transaction pairs with a read-write anti-dependency edge.
    pub rw: usize,
    /// Real-time edges after the frontier reduction.
    pub realtime: usize,
}

/// A consistency violation found in a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A bank snapshot whose balances do not add up to the total.
    WrongTotal {
        /// The read's id.
        read: u64,
        /// The sum it saw.
        sum: i128,
        /// The sum it should have seen.
        total: i64,
    },
    /// A bank snapshot with a negative balance.
    NegativeBalance {
        /// The read's id.
        read: u64,
        /// The account's index.
        account: usize,
        /// Its balance.
        balance: i64,
    },
    /// T2 began after T1 committed, but its timestamp does not follow T1's.
    ExternalConsistency {
        /// The transaction that completed first.
        earlier: TimestampedTxn,
        /// The transaction invoked after it.
        later: TimestampedTxn,
    },
    /// Malformed history: the same value appended twice to one key.
    DuplicateAppend {
        /// The key.
        key: u64,
        /// The value.
        value: u64,
        /// The transaction that appended it first.
        first: u64,
        /// The transaction that appended it again.
        second: u64,
    },
    /// Two reads of a key, neither a prefix of the other: no version order.
    IncompatibleOrder {
        /// The key.
        key: u64,
        /// The transaction of the offending read.
        txn: u64,
        /// The offending read.
        read: Vec<u64>,
        /// The transaction of the longest read.
        other_txn: u64,
        /// The longest read of the key.
        other: Vec<u64>,
    },
    /// A read containing a value nobody appended.
    GarbageRead {
        /// The reading transaction.
        txn: u64,
        /// The key.
        key: u64,
        /// The value.
        value: u64,
    },
    /// A read containing the same value twice.
    DuplicateElement {
        /// The reading transaction.
        txn: u64,
        /// The key.
        key: u64,
        /// The value.
        value: u64,
    },
    /// G1a: a committed read saw a value appended by an aborted transaction.
    AbortedRead {
        /// The reading transaction.
        txn: u64,
        /// The key.
        key: u64,
        /// The value.
        value: u64,
        /// The aborted transaction that appended it.
        writer: u64,
    },
    /// G1b: a read ended in a value that its writer later followed with another.
    IntermediateRead {
        /// The reading transaction.
        txn: u64,
        /// The key.
        key: u64,
        /// The intermediate value read last.
        value: u64,
        /// The transaction that appended it and more.
        writer: u64,
    },
    /// A transaction's read disagrees with its own earlier reads and appends.
    InternalInconsistency {
        /// The transaction.
        txn: u64,
        /// The key.
        key: u64,
        /// What it should have read (the whole list if `whole`, else a suffix).
        expected: Vec<u64>,
        /// Whether `expected` is the whole list (a prior read fixed the prefix).
        whole: bool,
        /// What it read.
        read: Vec<u64>,
    },
    /// A cycle in the serialization graph.
    Cycle(Cycle),
}

impl fmt::Display for EdgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EdgeKind::Ww => "ww",
            EdgeKind::Wr => "wr",
            EdgeKind::Rw => "rw",
            EdgeKind::Realtime => "rt",
        })
    }
}

impl fmt::Display for CycleClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CycleClass::G0 => "G0",
            CycleClass::G1c => "G1c",
            CycleClass::GSingle => "G-single",
            CycleClass::G2 => "G2",
        })
    }
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.class)?;
        if self.realtime {
            f.write_str(
                "-realtime (strict serializability; serializable without real-time order)",
            )?;
        }
        f.write_str(" cycle: ")?;
        for (id, kind) in &self.steps {
            write!(f, "T{id} -{kind}-> ")?;
        }
        match self.steps.first() {
            Some((id, _)) => write!(f, "T{id}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::WrongTotal { read, sum, total } => {
                write!(f, "bank read {read} sums to {sum}, expected {total}")
            }
            Violation::NegativeBalance {
                read,
                account,
                balance,
            } => {
                write!(f, "bank read {read} saw account {account} at {balance} < 0")
            }
            Violation::ExternalConsistency {
                earlier: e,
                later: l,
            } => write!(
                f,
                "external consistency: T{} completed at {} with ts {}, \
                 T{} invoked at {} got {}ts {}",
                e.id,
                e.completed_at,
                e.commit_ts,
                l.id,
                l.invoked_at,
                if l.read_only { "read-only " } else { "" },
                l.commit_ts
            ),
            Violation::DuplicateAppend {
                key,
                value,
                first,
                second,
            } => {
                let both = format!("T{first} and T{second} both append {value}");
                write!(f, "malformed history: {both} to key {key}")
            }
            Violation::IncompatibleOrder {
                key,
                txn,
                read,
                other_txn,
                other,
            } => write!(
                f,
                "incompatible order of key {key}: T{txn} read {read:?}, T{other_txn} read {other:?}"
            ),
            Violation::GarbageRead { txn, key, value } => {
                write!(
                    f,
                    "garbage read: T{txn} read {value} in key {key}, never appended"
                )
            }
            Violation::DuplicateElement { txn, key, value } => {
                write!(
                    f,
                    "duplicate element: T{txn} read {value} twice in key {key}"
                )
            }
            Violation::AbortedRead {
                txn,
                key,
                value,
                writer,
            } => write!(
                f,
                "G1a aborted read: T{txn} read {value} in key {key}, appended by aborted T{writer}"
            ),
            Violation::IntermediateRead {
                txn,
                key,
                value,
                writer,
            } => write!(
                f,
                "G1b intermediate read: T{txn} read key {key} ending in {value}, \
                 not T{writer}'s last append"
            ),
            Violation::InternalInconsistency {
                txn,
                key,
                expected,
                whole,
                read,
            } => {
                let shape = if *whole { "be" } else { "end with" };
                write!(
                    f,
                    "internal inconsistency: T{txn} read key {key} as {read:?}, \
                     should {shape} {expected:?}"
                )
            }
            Violation::Cycle(cycle) => cycle.fmt(f),
        }
    }
}

impl std::error::Error for Violation {}

/// Checks the bank workload: every snapshot read sums to `total` and has no
/// negative balance. Reports the first offending read.
pub fn check_bank(total: i64, reads: &[BankRead]) -> Result<(), Violation> {
    for read in reads {
        if let Some((account, &balance)) = read.balances.iter().enumerate().find(|(_, b)| **b < 0) {
            return Err(Violation::NegativeBalance {
                read: read.id,
                account,
                balance,
            });
        }
        let sum: i128 = read.balances.iter().map(|&b| i128::from(b)).sum();
        if sum != i128::from(total) {
            return Err(Violation::WrongTotal {
                read: read.id,
                sum,
                total,
            });
        }
    }
    Ok(())
}

/// Checks external consistency (Spanner §4.1.2): whenever a read-write T1
/// completed strictly before T2 was invoked, `T1.commit_ts < T2.commit_ts`,
/// or `<=` if T2 is read-only (its snapshot sees commits at its own
/// timestamp). A read-only T1 is never the earlier one: Spanner does not
/// commit-wait reads, so a strong read may return before its timestamp has
/// passed in true time (what it saw is still checked, through the data, by
/// [`check_list_append`]). `O(n log n)`.
pub fn check_external_consistency(txns: &[TimestampedTxn]) -> Result<(), Violation> {
    let mut by_invocation: Vec<&TimestampedTxn> = txns.iter().collect();
    by_invocation.sort_by_key(|t| (t.invoked_at, t.id));
    let mut by_completion: Vec<&TimestampedTxn> = txns.iter().collect();
    by_completion.sort_by_key(|t| (t.completed_at, t.id));
    let mut completed = by_completion.into_iter().peekable();
    // The completed transaction with the largest timestamp so far: if any
    // completed transaction breaks the rule against `later`, this one does.
    let mut latest: Option<&TimestampedTxn> = None;
    for later in by_invocation {
        while let Some(t) = completed.next_if(|t| t.completed_at < later.invoked_at) {
            if !t.read_only && latest.is_none_or(|l| t.commit_ts > l.commit_ts) {
                latest = Some(t);
            }
        }
        if let Some(earlier) = latest {
            let ordered = if later.read_only {
                earlier.commit_ts <= later.commit_ts
            } else {
                earlier.commit_ts < later.commit_ts
            };
            if !ordered {
                return Err(Violation::ExternalConsistency {
                    earlier: *earlier,
                    later: *later,
                });
            }
        }
    }
    Ok(())
}

/// Edge-kind bits of the graph's adjacency masks, in order of preference
/// when one pair of transactions has several.
const WW: u8 = 1;
/// Write-read bit.
const WR: u8 = 2;
/// Read-write (anti-dependency) bit.
const RW: u8 = 4;
/// Real-time bit.
const RT: u8 = 8;

/// Adjacency lists: per transaction index, its successors with edge-kind masks.
type Graph = Vec<Vec<(usize, u8)>>;

/// Checks a list-append history for strict serializability, Elle-style (see
/// the module docs). Returns the first anomaly found, the weakest first.
pub fn check_list_append(history: &[ListAppendTxn]) -> Result<CheckSummary, Violation> {
    let id = |t: usize| history[t].id;

    // Who appended each (key, value), and each transaction's last append per key.
    let mut writer: HashMap<(u64, u64), usize> = HashMap::new();
    let mut last_append: HashMap<(usize, u64), u64> = HashMap::new();
    for (t, txn) in history.iter().enumerate() {
        for op in &txn.ops {
            if let MicroOp::Append(key, value) = *op {
                if let Some(&first) = writer.get(&(key, value)) {
                    let (first, second) = (id(first), txn.id);
                    return Err(Violation::DuplicateAppend {
                        key,
                        value,
                        first,
                        second,
                    });
                }
                writer.insert((key, value), t);
                last_append.insert((t, key), value);
            }
        }
    }

    // Committed reads grouped by key; each transaction checked against itself.
    let mut reads: BTreeMap<u64, Vec<(usize, &[u64])>> = BTreeMap::new();
    for (t, txn) in history.iter().enumerate() {
        if txn.outcome == Outcome::Committed {
            check_internal(txn)?;
            for op in &txn.ops {
                if let MicroOp::Read(key, list) = op {
                    reads.entry(*key).or_default().push((t, list));
                }
            }
        }
    }

    // Version orders: every read of a key is a prefix of its longest read,
    // so checking the elements of the longest checks those of all reads.
    let mut orders: BTreeMap<u64, &[u64]> = BTreeMap::new();
    for (&key, key_reads) in &reads {
        let Some(&(longest_txn, longest)) = key_reads.iter().max_by_key(|(_, l)| l.len()) else {
            continue;
        };
        check_elements(history, &writer, longest_txn, key, longest)?;
        for &(t, read) in key_reads {
            if !longest.starts_with(read) {
                check_elements(history, &writer, t, key, read)?;
                let (txn, read, other_txn) = (id(t), read.to_vec(), id(longest_txn));
                let other = longest.to_vec();
                return Err(Violation::IncompatibleOrder {
                    key,
                    txn,
                    read,
                    other_txn,
                    other,
                });
            }
            let Some(&value) = read.last() else { continue };
            let w = writer[&(key, value)];
            if w != t && last_append[&(w, key)] != value {
                let (txn, writer) = (id(t), id(w));
                return Err(Violation::IntermediateRead {
                    txn,
                    key,
                    value,
                    writer,
                });
            }
        }
        orders.insert(key, longest);
    }

    // The graph's transactions: committed ones, and Unknown ones observed.
    let mut in_graph: Vec<bool> = history
        .iter()
        .map(|t| t.outcome == Outcome::Committed)
        .collect();
    for (&key, order) in &orders {
        for &value in order.iter() {
            in_graph[writer[&(key, value)]] = true;
        }
    }

    // Dependency edges, then real-time edges.
    let mut edges: Vec<(usize, usize, u8)> = Vec::new();
    for (&key, order) in &orders {
        let writer_of = |value: u64| writer[&(key, value)];
        for pair in order.windows(2) {
            edges.push((writer_of(pair[0]), writer_of(pair[1]), WW));
        }
        for &(t, list) in &reads[&key] {
            if let Some(&last) = list.last() {
                edges.push((writer_of(last), t, WR));
            }
            if let Some(&next) = order.get(list.len()) {
                edges.push((t, writer_of(next), RW));
            }
        }
    }
    realtime_edges(history, &in_graph, &mut edges);
    edges.retain(|&(from, to, _)| from != to);
    edges.sort_unstable();
    let mut graph: Graph = vec![Vec::new(); history.len()];
    for (from, to, kind) in edges {
        match graph[from].last_mut() {
            Some((last, mask)) if *last == to => *mask |= kind,
            _ => graph[from].push((to, kind)),
        }
    }

    let mut summary = CheckSummary {
        txns: in_graph.iter().filter(|&&b| b).count(),
        ..CheckSummary::default()
    };
    for &(_, mask) in graph.iter().flatten() {
        summary.ww += usize::from(mask & WW != 0);
        summary.wr += usize::from(mask & WR != 0);
        summary.rw += usize::from(mask & RW != 0);
        summary.realtime += usize::from(mask & RT != 0);
    }

    for allowed in [WW, WW | WR, WW | WR | RW, WW | WR | RW | RT] {
        if let Some(component) = first_cycle_component(&graph, allowed) {
            let steps = component_cycle(&graph, allowed, &component);
            return Err(Violation::Cycle(classify(history, &steps)));
        }
    }
    Ok(summary)
}

/// Checks the elements of transaction `t`'s read of `key`: no duplicates, no
/// garbage (never appended), none appended by an aborted transaction (G1a).
fn check_elements(
    history: &[ListAppendTxn],
    writer: &HashMap<(u64, u64), usize>,
    t: usize,
    key: u64,
    list: &[u64],
) -> Result<(), Violation> {
    let txn = history[t].id;
    let mut seen = HashSet::with_capacity(list.len());
    for &value in list {
        if !seen.insert(value) {
            return Err(Violation::DuplicateElement { txn, key, value });
        }
        match writer.get(&(key, value)) {
            None => return Err(Violation::GarbageRead { txn, key, value }),
            Some(&w) if history[w].outcome == Outcome::Aborted => {
                let writer = history[w].id;
                return Err(Violation::AbortedRead {
                    txn,
                    key,
                    value,
                    writer,
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Checks one committed transaction against itself: a read of a key must
/// end with the transaction's own earlier appends to it and, if it read the
/// key before, be that read followed by those appends.
fn check_internal(txn: &ListAppendTxn) -> Result<(), Violation> {
    // Per key: the list as last read here (if read), and appends since.
    let mut state: HashMap<u64, (Option<&[u64]>, Vec<u64>)> = HashMap::new();
    for op in &txn.ops {
        match op {
            MicroOp::Append(key, value) => state.entry(*key).or_default().1.push(*value),
            MicroOp::Read(key, list) => {
                let (prior, own) = state.entry(*key).or_default();
                let consistent = match prior {
                    Some(prior) => {
                        list.len() == prior.len() + own.len()
                            && list.starts_with(prior)
                            && list.ends_with(own)
                    }
                    None => list.ends_with(own),
                };
                if !consistent {
                    return Err(Violation::InternalInconsistency {
                        txn: txn.id,
                        key: *key,
                        expected: prior.map_or_else(|| own.clone(), |p| [p, &own[..]].concat()),
                        whole: prior.is_some(),
                        read: list.clone(),
                    });
                }
                *prior = Some(list);
                own.clear();
            }
        }
    }
    Ok(())
}

/// Adds real-time edges among the graph's transactions: T1 -> T2 whenever T1
/// completed strictly before T2 was invoked, up to transitivity. Sweeps
/// invocations and completions in time order keeping the *frontier*: the
/// completed transactions no other completed one follows in real time. An
/// invocation gets edges from the frontier; a completion replaces, in the
/// frontier, the transactions that preceded its invocation.
fn realtime_edges(
    history: &[ListAppendTxn],
    in_graph: &[bool],
    edges: &mut Vec<(usize, usize, u8)>,
) {
    // (time, 0 = invocation / 1 = completion, transaction): at equal times
    // invocations come first, as they are not strictly after the completion.
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (t, txn) in history.iter().enumerate().filter(|(t, _)| in_graph[*t]) {
        events.push((txn.invoked_at, 0, t));
        if txn.outcome == Outcome::Committed {
            events.push((txn.completed_at, 1, t));
        }
    }
    events.sort_unstable();
    let mut frontier: BTreeSet<usize> = BTreeSet::new();
    let mut preceding: HashMap<usize, Vec<usize>> = HashMap::new();
    for (_, event, t) in events {
        if event == 0 {
            let before: Vec<usize> = frontier.iter().copied().collect();
            edges.extend(before.iter().map(|&p| (p, t, RT)));
            preceding.insert(t, before);
        } else {
            for p in preceding.remove(&t).unwrap_or_default() {
                frontier.remove(&p);
            }
            frontier.insert(t);
        }
    }
}

/// Tarjan's strongly connected components over the edges with a kind in
/// `allowed`, iteratively (an explicit call stack, no recursion). Returns
/// the first component with more than one transaction, which holds a cycle.
fn first_cycle_component(graph: &Graph, allowed: u8) -> Option<Vec<usize>> {
    const UNVISITED: usize = usize::MAX;
    let n = graph.len();
    let mut index = vec![UNVISITED; n];
    let mut lowlink = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    // The simulated call stack: (node, next edge to look at).
    let mut calls: Vec<(usize, usize)> = Vec::new();
    let mut next_index = 0;
    for root in 0..n {
        if index[root] != UNVISITED {
            continue;
        }
        calls.push((root, 0));
        while let Some(&(v, i)) = calls.last() {
            if index[v] == UNVISITED {
                // Entering v.
                (index[v], lowlink[v]) = (next_index, next_index);
                next_index += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&(w, mask)) = graph[v].get(i) {
                calls.last_mut().expect("a frame is on the stack").1 += 1;
                if mask & allowed == 0 {
                    continue;
                }
                if index[w] == UNVISITED {
                    calls.push((w, 0));
                } else if on_stack[w] {
                    lowlink[v] = lowlink[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                lowlink[u] = lowlink[u].min(lowlink[v]);
            }
            if lowlink[v] == index[v] {
                let mut component = Vec::new();
                loop {
                    let w = stack.pop().expect("v is on the stack");
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    return Some(component);
                }
            }
        }
    }
    None
}

/// A cycle inside a strongly connected component, as (transaction index,
/// edge-kind bit leaving it) steps. With anti-dependencies allowed, first
/// looks for a G-single (one `rw` edge closed by `ww`/`wr` edges).
fn component_cycle(graph: &Graph, allowed: u8, component: &[usize]) -> Vec<(usize, u8)> {
    let mut within = vec![false; graph.len()];
    for &t in component {
        within[t] = true;
    }
    if allowed == WW | WR | RW {
        let anti = component
            .iter()
            .flat_map(|&a| graph[a].iter().map(move |&(b, m)| (a, b, m)));
        let anti = anti.filter(|&(_, b, m)| within[b] && m & allowed == RW);
        for (a, b, _) in anti.take(64) {
            if let Some(path) = shortest_path(graph, WW | WR, &within, b, a) {
                let mut steps = vec![(a, RW)];
                steps.extend(path);
                return steps;
            }
        }
    }
    let start = *component.iter().min().expect("a component is not empty");
    shortest_path(graph, allowed, &within, start, start).expect("a component has a cycle")
}

/// Breadth-first search for a shortest path `from` -> `to` (a cycle if
/// equal) over `allowed` edges between transactions `within`; returns its
/// steps, each labelled with the preferred (lowest) allowed kind bit.
fn shortest_path(
    graph: &Graph,
    allowed: u8,
    within: &[bool],
    from: usize,
    to: usize,
) -> Option<Vec<(usize, u8)>> {
    let label = |mask: u8| mask & mask.wrapping_neg();
    let mut parent: HashMap<usize, (usize, u8)> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(v) = queue.pop_front() {
        for &(w, mask) in &graph[v] {
            let mask = mask & allowed;
            if mask == 0 || !within[w] {
                continue;
            }
            if w == to {
                let mut steps = vec![(v, label(mask))];
                let mut current = v;
                while current != from {
                    let (p, m) = parent[&current];
                    steps.push((p, label(m)));
                    current = p;
                }
                steps.reverse();
                return Some(steps);
            }
            if w != from && !parent.contains_key(&w) {
                parent.insert(w, (v, mask));
                queue.push_back(w);
            }
        }
    }
    None
}

/// Names a cycle's transactions and edges, and classifies it.
fn classify(history: &[ListAppendTxn], steps: &[(usize, u8)]) -> Cycle {
    let kind = |bit: u8| match bit {
        WW => EdgeKind::Ww,
        WR => EdgeKind::Wr,
        RW => EdgeKind::Rw,
        _ => EdgeKind::Realtime,
    };
    let steps: Vec<(u64, EdgeKind)> = steps
        .iter()
        .map(|&(t, bit)| (history[t].id, kind(bit)))
        .collect();
    let count = |k: EdgeKind| steps.iter().filter(|(_, e)| *e == k).count();
    let class = match (count(EdgeKind::Rw), count(EdgeKind::Wr)) {
        (0, 0) => CycleClass::G0,
        (0, _) => CycleClass::G1c,
        (1, _) => CycleClass::GSingle,
        _ => CycleClass::G2,
    };
    Cycle {
        class,
        realtime: count(EdgeKind::Realtime) > 0,
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MicroOp::{Append, Read};

    /// A committed transaction running over `[invoked_at, completed_at]`.
    fn txn(id: u64, invoked_at: u64, completed_at: u64, ops: Vec<MicroOp>) -> ListAppendTxn {
        let outcome = Outcome::Committed;
        ListAppendTxn {
            id,
            outcome,
            ops,
            invoked_at,
            completed_at,
        }
    }

    /// A committed transaction concurrent with every other (no real-time order).
    fn concurrent(id: u64, ops: Vec<MicroOp>) -> ListAppendTxn {
        txn(id, 0, 1000, ops)
    }

    /// The violation a history must be rejected with, as displayed.
    fn fails(history: &[ListAppendTxn]) -> String {
        check_list_append(history).unwrap_err().to_string()
    }

    #[test]
    fn serial_history_passes() {
        let history = vec![
            txn(1, 0, 10, vec![Read(1, vec![]), Append(1, 1), Append(2, 1)]),
            txn(
                2,
                20,
                30,
                vec![Read(1, vec![1]), Append(1, 2), Read(1, vec![1, 2])],
            ),
            txn(3, 40, 50, vec![Read(2, vec![1]), Read(1, vec![1, 2])]),
            txn(4, 60, 70, vec![Append(2, 2), Read(2, vec![1, 2])]),
        ];
        let summary = check_list_append(&history).unwrap();
        let (txns, ww, wr, rw, realtime) = (4, 2, 3, 1, 3);
        assert_eq!(
            summary,
            CheckSummary {
                txns,
                ww,
                wr,
                rw,
                realtime
            }
        );
    }

    #[test]
    fn lost_update_is_g_single() {
        // Both read the empty list and append: one update is lost.
        let history = vec![
            concurrent(1, vec![Read(1, vec![]), Append(1, 1)]),
            concurrent(2, vec![Read(1, vec![]), Append(1, 2)]),
            concurrent(3, vec![Read(1, vec![1, 2])]),
        ];
        assert_eq!(fails(&history), "G-single cycle: T2 -rw-> T1 -ww-> T2");
    }

    #[test]
    fn write_skew_is_g2() {
        let history = vec![
            concurrent(1, vec![Read(1, vec![]), Read(2, vec![]), Append(1, 1)]),
            concurrent(2, vec![Read(1, vec![]), Read(2, vec![]), Append(2, 2)]),
            concurrent(3, vec![Read(1, vec![1]), Read(2, vec![2])]),
        ];
        assert_eq!(fails(&history), "G2 cycle: T1 -rw-> T2 -rw-> T1");
    }

    #[test]
    fn dirty_write_cycle_is_g0() {
        let history = vec![
            concurrent(1, vec![Append(1, 1), Append(2, 1)]),
            concurrent(2, vec![Append(1, 2), Append(2, 2)]),
            concurrent(3, vec![Read(1, vec![1, 2]), Read(2, vec![2, 1])]),
        ];
        assert_eq!(fails(&history), "G0 cycle: T1 -ww-> T2 -ww-> T1");
    }

    #[test]
    fn circular_information_flow_is_g1c() {
        let history = vec![
            concurrent(1, vec![Append(1, 1), Read(2, vec![2])]),
            concurrent(2, vec![Append(2, 2), Read(1, vec![1])]),
        ];
        assert_eq!(fails(&history), "G1c cycle: T1 -wr-> T2 -wr-> T1");
    }

    #[test]
    fn stale_read_violates_only_real_time_order() {
        // T2 starts after T1's append is acknowledged, yet reads the empty
        // list: serializable (T2 before T1), not strictly serializable.
        let history = vec![
            txn(1, 0, 10, vec![Append(1, 1)]),
            txn(2, 20, 30, vec![Read(1, vec![])]),
            txn(3, 40, 50, vec![Read(1, vec![1])]),
        ];
        let Err(Violation::Cycle(cycle)) = check_list_append(&history) else {
            panic!("a stale read must be a cycle");
        };
        assert_eq!((cycle.class, cycle.realtime), (CycleClass::GSingle, true));
        assert_eq!(
            cycle.to_string(),
            "G-single-realtime (strict serializability; serializable without real-time order) \
             cycle: T1 -rt-> T2 -rw-> T1"
        );
        // Overlapping in real time (touching at 10 is not "after"), the
        // same observations are fine.
        let mut overlapping = history.clone();
        overlapping[1].invoked_at = 10;
        assert!(check_list_append(&overlapping).is_ok());
    }

    #[test]
    fn aborted_read_is_g1a() {
        let mut aborted = concurrent(1, vec![Append(1, 1)]);
        aborted.outcome = Outcome::Aborted;
        let history = vec![aborted, concurrent(2, vec![Read(1, vec![1])])];
        let expected = "G1a aborted read: T2 read 1 in key 1, appended by aborted T1";
        assert_eq!(fails(&history), expected);
    }

    #[test]
    fn unknown_outcomes_join_only_if_observed() {
        let mut observed = concurrent(1, vec![Append(1, 1)]);
        observed.outcome = Outcome::Unknown;
        let mut unobserved = concurrent(2, vec![Append(1, 2)]);
        unobserved.outcome = Outcome::Unknown;
        let reader = txn(3, 2000, 2001, vec![Read(1, vec![1])]);
        let summary = check_list_append(&[observed, unobserved, reader]).unwrap();
        assert_eq!((summary.txns, summary.wr, summary.realtime), (2, 1, 0));
    }

    #[test]
    fn incompatible_orders_are_rejected() {
        let history = vec![
            concurrent(1, vec![Append(1, 1)]),
            concurrent(2, vec![Append(1, 2)]),
            concurrent(3, vec![Read(1, vec![1, 2])]),
            concurrent(4, vec![Read(1, vec![2])]),
        ];
        let expected = "incompatible order of key 1: T4 read [2], T3 read [1, 2]";
        assert_eq!(fails(&history), expected);
    }

    #[test]
    fn single_read_anomalies() {
        let garbage = vec![concurrent(1, vec![Read(1, vec![7])])];
        let expected = "garbage read: T1 read 7 in key 1, never appended";
        assert_eq!(fails(&garbage), expected);
        let appended = concurrent(1, vec![Append(1, 1)]);
        let duplicate = vec![appended.clone(), concurrent(2, vec![Read(1, vec![1, 1])])];
        let expected = "duplicate element: T2 read 1 twice in key 1";
        assert_eq!(fails(&duplicate), expected);
        let intermediate = vec![
            concurrent(1, vec![Append(1, 1), Append(1, 2)]),
            concurrent(2, vec![Read(1, vec![1])]),
        ];
        let expected = "G1b intermediate read: T2 read key 1 ending in 1, not T1's last append";
        assert_eq!(fails(&intermediate), expected);
        let twice = vec![appended, concurrent(2, vec![Append(1, 1)])];
        let expected = "malformed history: T1 and T2 both append 1 to key 1";
        assert_eq!(fails(&twice), expected);
    }

    #[test]
    fn internal_inconsistency_is_rejected() {
        // Its own append must end the list it reads next.
        let history = vec![
            concurrent(1, vec![Append(1, 1)]),
            concurrent(2, vec![Append(1, 2), Read(1, vec![2, 1])]),
        ];
        let expected = "internal inconsistency: T2 read key 1 as [2, 1], should end with [2]";
        assert_eq!(fails(&history), expected);
        // A second read must equal the first plus its own appends since.
        let history = vec![
            concurrent(1, vec![Append(1, 1)]),
            concurrent(2, vec![Read(1, vec![]), Append(1, 2), Read(1, vec![1, 2])]),
        ];
        let expected = "internal inconsistency: T2 read key 1 as [1, 2], should be [2]";
        assert_eq!(fails(&history), expected);
    }

    #[test]
    fn bank_reads() {
        let read = |id, balances: &[i64]| BankRead {
            id,
            balances: balances.to_vec(),
        };
        assert_eq!(
            check_bank(100, &[read(1, &[60, 40]), read(2, &[0, 100])]),
            Ok(())
        );
        let wrong = check_bank(100, &[read(1, &[60, 40]), read(2, &[60, 60])]);
        assert_eq!(
            wrong.unwrap_err().to_string(),
            "bank read 2 sums to 120, expected 100"
        );
        let negative = check_bank(100, &[read(3, &[150, -50])]);
        let expected = "bank read 3 saw account 1 at -50 < 0";
        assert_eq!(negative.unwrap_err().to_string(), expected);
    }

    /// A read-write transaction for the external-consistency check.
    fn timed(id: u64, commit_ts: u64, invoked_at: u64, completed_at: u64) -> TimestampedTxn {
        let read_only = false;
        TimestampedTxn {
            id,
            commit_ts,
            invoked_at,
            completed_at,
            read_only,
        }
    }

    #[test]
    fn external_consistency_violation() {
        // T1 is acknowledged at 10, T2 begins at 20 but commits earlier.
        let txns = [timed(1, 100, 0, 10), timed(2, 90, 20, 30)];
        let violation = check_external_consistency(&txns).unwrap_err();
        let expected = "external consistency: T1 completed at 10 with ts 100, \
                        T2 invoked at 20 got ts 90";
        assert_eq!(violation.to_string(), expected);
        // Equal timestamps: wrong for a read-write successor...
        let equal = [timed(1, 100, 0, 10), timed(2, 100, 20, 30)];
        assert!(check_external_consistency(&equal).is_err());
        // ...right for a read-only one, whose snapshot at 100 sees T1.
        let read_only = true;
        let snapshot = TimestampedTxn {
            read_only,
            ..equal[1]
        };
        assert_eq!(check_external_consistency(&[equal[0], snapshot]), Ok(()));
    }

    #[test]
    fn external_consistency_allows_concurrent_reordering() {
        // T1, T2 and T4 overlap, so any order among them is fine; T3 follows
        // T1 and T2 in real time, and has a larger timestamp.
        let txns = [
            timed(1, 100, 0, 50),
            timed(2, 90, 10, 60),
            timed(3, 101, 70, 80),
            timed(4, 95, 45, 90),
        ];
        assert_eq!(check_external_consistency(&txns), Ok(()));
        // Starting as T1 completes is not after it...
        let touching = [timed(1, 100, 0, 10), timed(2, 90, 10, 20)];
        assert_eq!(check_external_consistency(&touching), Ok(()));
        // ...but T4 starting after T1 completed may not commit below it.
        let invoked_at = 51;
        let late = [
            txns[0],
            TimestampedTxn {
                invoked_at,
                ..txns[3]
            },
        ];
        assert!(check_external_consistency(&late).is_err());
    }

    /// A strictly serializable history of `n` transactions drawn from a
    /// fixed-seed LCG: executed serially, observed by overlapping clients.
    fn random_serial_history(n: u64) -> Vec<ListAppendTxn> {
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            seed >> 33
        };
        let mut state: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        let mut value = 0;
        let mut history = Vec::new();
        for id in 0..n {
            let mut ops = Vec::new();
            for _ in 0..1 + next() % 4 {
                let key = next() % 100;
                let list = state.entry(key).or_default();
                if next() % 2 == 0 {
                    value += 1;
                    list.push(value);
                    ops.push(Append(key, value));
                } else {
                    ops.push(Read(key, list.clone()));
                }
            }
            // Each takes effect at 10 * id + 5, inside its real-time span,
            // which overlaps up to 7 later transactions.
            history.push(txn(id, 10 * id, 10 * id + 6 + 10 * (next() % 8), ops));
        }
        history
    }

    #[test]
    fn large_random_history_passes() {
        let history = random_serial_history(20_000);
        let summary = check_list_append(&history).unwrap();
        assert_eq!(summary.txns, 20_000);
        // Real-time edges come from the frontier, not from every pair.
        let realtime = summary.realtime;
        assert!(realtime > 20_000 && realtime < 8 * 20_000, "{summary:?}");
        assert!(summary.ww > 10_000 && summary.wr > 1_000 && summary.rw > 1_000);
    }

    #[test]
    fn large_history_with_one_stale_read_fails() {
        let mut history = random_serial_history(20_000);
        // Drop the last element of the last non-empty read: that element is
        // in the version order, so the stale reader has an rw edge to it.
        let mut ops = history.iter().rev().flat_map(|t| &t.ops);
        let (key, list) = ops
            .find_map(|op| match op {
                Read(key, list) if !list.is_empty() => Some((*key, list.clone())),
                _ => None,
            })
            .unwrap();
        let stale = vec![Read(key, list[..list.len() - 1].to_vec())];
        history.push(txn(1_000_000, 10_000_000, 10_000_001, stale));
        let result = check_list_append(&history);
        let Err(Violation::Cycle(cycle)) = result else {
            panic!("a stale read must be a cycle, got {result:?}");
        };
        assert_eq!((cycle.class, cycle.realtime), (CycleClass::GSingle, true));
    }
}
