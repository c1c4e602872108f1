//! The executor: runs a bound statement inside one transaction.
//!
//! Operators are evaluated recursively and materialize their output as a
//! vector of rows; the transaction API is asynchronous, so every operator is
//! an `async` step and recursion goes through boxed futures. Materializing
//! keeps the executor short and is cheap for the statements an OLTP
//! database serves: the reads that could be large are table scans, and
//! those stop early when a limit was pushed into them (see `scan.rs`).
//!
//! Subqueries: before an operator evaluates an expression that contains
//! subqueries, it runs them for the current row (`subquery_values`) and
//! passes the outcomes to evaluation through the [`Env`]. Uncorrelated
//! subqueries (no outer arguments) run once per statement and are cached.
//!
//! Joins: nested loop (the inner input is materialized once), hash join on
//! equality keys (build on the right input), and lookup join (for each outer
//! row, point lookups or short scans on the inner table's index, through
//! the same scan code). Left and full outer joins pad with NULLs.
//!
//! DML and DDL live in `dml.rs` and `ddl.rs`.

mod agg;
pub(crate) mod ddl;
mod dml;
mod scan;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use meridian_error::{Error, Result};
use meridian_txn::Transaction;

use crate::expr::{Env, Expr, SubqueryKind, SubqueryValue};
use crate::plan::{JoinKind, Plan, SetOpKind, SortKey, Statement};
use crate::types::Value;

/// A row of values.
pub(crate) type Row = Vec<Value>;

/// A boxed, sendable future (for recursive operators).
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Hands out hidden row ids: the transaction's start time in microseconds,
/// shifted left 12 bits, plus a per-transaction counter. Two transactions
/// starting in the same microsecond can produce the same id; the insert
/// checks for an existing row and takes the next id then.
#[derive(Debug, Default)]
pub(crate) struct RowIds {
    /// Ids handed out in this transaction.
    pub counter: u64,
}

/// Runs one statement in a transaction.
pub(crate) struct Executor<'a, T: Transaction> {
    /// The transaction.
    pub txn: &'a mut T,
    /// The statement (for its subquery plans).
    pub stmt: &'a Statement,
    /// The parameter values.
    pub params: &'a [Value],
    /// `now()`.
    pub now: DateTime<Utc>,
    /// The transaction's row id generator.
    pub rowids: &'a mut RowIds,
    /// Outcomes of uncorrelated subqueries, by id.
    cache: HashMap<usize, SubqueryValue>,
}

impl<'a, T: Transaction> Executor<'a, T> {
    /// An executor for `stmt` in `txn`.
    pub(crate) fn new(
        txn: &'a mut T,
        stmt: &'a Statement,
        params: &'a [Value],
        rowids: &'a mut RowIds,
    ) -> Self {
        let now = txn.start_ts().to_datetime();
        Executor {
            txn,
            stmt,
            params,
            now,
            rowids,
            cache: HashMap::new(),
        }
    }

    /// Runs the statement: its rows (the result or `RETURNING`) and the
    /// number of rows affected (for DML command tags).
    pub(crate) async fn run_statement(&mut self) -> Result<(Vec<Row>, u64)> {
        let stmt = self.stmt;
        match &stmt.plan {
            Plan::Insert(insert) => self.insert(insert).await,
            Plan::Update(update) => self.update(update).await,
            Plan::Delete(delete) => self.delete(delete).await,
            plan => {
                let rows = self.run(plan, &[]).await?;
                let n = rows.len() as u64;
                Ok((rows, n))
            }
        }
    }

    /// An evaluation environment without subquery outcomes.
    fn env<'e>(
        &'e self,
        outer: &'e [Value],
        subqueries: &'e HashMap<usize, SubqueryValue>,
    ) -> Env<'e> {
        Env {
            params: self.params,
            outer,
            subqueries,
            now: self.now,
        }
    }

    /// Evaluates `e` over `row`, running its subqueries first if it has any.
    pub(crate) async fn eval(
        &mut self,
        e: &Expr,
        row: &[Value],
        outer: &[Value],
        has_subquery: bool,
    ) -> Result<Value> {
        if !has_subquery {
            let empty = HashMap::new();
            return e.eval(row, &self.env(outer, &empty));
        }
        let subs = self.subquery_values(e, row, outer).await?;
        e.eval(row, &self.env(outer, &subs))
    }

    /// Runs the subqueries of `e` for `row`.
    async fn subquery_values(
        &mut self,
        e: &Expr,
        row: &[Value],
        outer: &[Value],
    ) -> Result<HashMap<usize, SubqueryValue>> {
        let mut nodes = Vec::new();
        e.subqueries(&mut nodes);
        let mut out = HashMap::new();
        for node in nodes {
            let Expr::Subquery { id, kind, args } = node else {
                continue;
            };
            if out.contains_key(id) {
                continue;
            }
            if args.is_empty() {
                if let Some(v) = self.cache.get(id) {
                    out.insert(*id, v.clone());
                    continue;
                }
            }
            let empty = HashMap::new();
            let mut values = Vec::with_capacity(args.len());
            for a in args {
                values.push(a.eval(row, &self.env(outer, &empty))?);
            }
            let stmt = self.stmt;
            let plan = &stmt.subqueries[*id];
            let rows = self.run(plan, &values).await?;
            let value = match kind {
                SubqueryKind::Scalar => match rows.len() {
                    0 => SubqueryValue::Scalar(Value::Null),
                    1 => SubqueryValue::Scalar(
                        rows.into_iter()
                            .next()
                            .and_then(|r| r.into_iter().next())
                            .unwrap_or(Value::Null),
                    ),
                    _ => return Err(Error::CardinalityViolation),
                },
                SubqueryKind::Exists => SubqueryValue::Exists(!rows.is_empty()),
                SubqueryKind::Quantified { .. } => SubqueryValue::Column(
                    rows.into_iter()
                        .map(|r| r.into_iter().next().unwrap_or(Value::Null))
                        .collect(),
                ),
            };
            if args.is_empty() {
                self.cache.insert(*id, value.clone());
            }
            out.insert(*id, value);
        }
        Ok(out)
    }

    /// Runs a plan; `outer` holds the values a correlated subquery receives.
    pub(crate) fn run<'b>(
        &'b mut self,
        plan: &'b Plan,
        outer: &'b [Value],
    ) -> BoxFuture<'b, Result<Vec<Row>>> {
        Box::pin(async move {
            match plan {
                Plan::Values { rows, .. } => {
                    let mut out = Vec::with_capacity(rows.len());
                    for exprs in rows {
                        let mut row = Vec::with_capacity(exprs.len());
                        for e in exprs {
                            let sub = e.has_subquery();
                            row.push(self.eval(e, &[], outer, sub).await?);
                        }
                        out.push(row);
                    }
                    Ok(out)
                }
                Plan::Scan(scan) => self.scan(scan, &[], outer).await,
                Plan::Filter { input, predicate } => {
                    let rows = self.run(input, outer).await?;
                    let sub = predicate.has_subquery();
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        if matches!(
                            self.eval(predicate, &row, outer, sub).await?,
                            Value::Bool(true)
                        ) {
                            out.push(row);
                        }
                    }
                    Ok(out)
                }
                Plan::Project { input, exprs, .. } => {
                    let rows = self.run(input, outer).await?;
                    let subs: Vec<bool> = exprs.iter().map(Expr::has_subquery).collect();
                    // A pure column selection moves values instead of cloning.
                    if let Some(cols) = column_selection(exprs) {
                        return Ok(rows.into_iter().map(|r| select_columns(r, &cols)).collect());
                    }
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        let mut projected = Vec::with_capacity(exprs.len());
                        for (e, sub) in exprs.iter().zip(&subs) {
                            projected.push(self.eval(e, &row, outer, *sub).await?);
                        }
                        out.push(projected);
                    }
                    Ok(out)
                }
                Plan::NestedLoopJoin {
                    left,
                    right,
                    kind,
                    on,
                } => {
                    let l = self.run(left, outer).await?;
                    let r = self.run(right, outer).await?;
                    let rw = right.output_names().len();
                    let lw = left.output_names().len();
                    self.nested_loop(l, r, *kind, on.as_ref(), lw, rw, outer)
                }
                Plan::HashJoin {
                    left,
                    right,
                    kind,
                    left_keys,
                    right_keys,
                    on,
                } => {
                    let l = self.run(left, outer).await?;
                    let r = self.run(right, outer).await?;
                    let lw = left.output_names().len();
                    let rw = right.output_names().len();
                    self.hash_join(
                        l,
                        r,
                        *kind,
                        left_keys,
                        right_keys,
                        on.as_ref(),
                        lw,
                        rw,
                        outer,
                    )
                }
                Plan::LookupJoin {
                    left,
                    right,
                    kind,
                    on,
                } => {
                    let l = self.run(left, outer).await?;
                    let rw = right.table.columns.len();
                    let empty = HashMap::new();
                    let mut out = Vec::new();
                    for lrow in l {
                        let matches = self.scan(right, &lrow, outer).await?;
                        let mut matched = false;
                        for rrow in matches {
                            let mut joined = lrow.clone();
                            joined.extend(rrow);
                            let keep = match on {
                                Some(c) => c.eval_bool(&joined, &self.env(outer, &empty))?,
                                None => true,
                            };
                            if keep {
                                matched = true;
                                out.push(joined);
                            }
                        }
                        if !matched && *kind == JoinKind::Left {
                            let mut joined = lrow;
                            joined.extend(std::iter::repeat_n(Value::Null, rw));
                            out.push(joined);
                        }
                    }
                    Ok(out)
                }
                Plan::Aggregate {
                    input,
                    group_by,
                    aggregates,
                } => {
                    let rows = self.run(input, outer).await?;
                    let empty = HashMap::new();
                    let env = self.env(outer, &empty);
                    agg::aggregate(rows, group_by, aggregates, &env)
                }
                Plan::Distinct { input } => {
                    let rows = self.run(input, outer).await?;
                    let mut seen = HashSet::with_capacity(rows.len());
                    Ok(rows
                        .into_iter()
                        .filter(|r| seen.insert(r.clone()))
                        .collect())
                }
                Plan::Sort { input, keys } => {
                    let rows = self.run(input, outer).await?;
                    let empty = HashMap::new();
                    sort_rows(rows, keys, &self.env(outer, &empty))
                }
                Plan::Limit {
                    input,
                    limit,
                    offset,
                } => {
                    let rows = self.run(input, outer).await?;
                    let empty = HashMap::new();
                    let env = self.env(outer, &empty);
                    let offset = count(offset.as_ref(), &env, "OFFSET")?.unwrap_or(0);
                    let limit = count(limit.as_ref(), &env, "LIMIT")?;
                    let it = rows.into_iter().skip(offset);
                    Ok(match limit {
                        Some(n) => it.take(n).collect(),
                        None => it.collect(),
                    })
                }
                Plan::SetOp {
                    op,
                    all,
                    left,
                    right,
                } => {
                    let l = self.run(left, outer).await?;
                    let r = self.run(right, outer).await?;
                    Ok(set_op(*op, *all, l, r))
                }
                Plan::Insert(_) | Plan::Update(_) | Plan::Delete(_) => Err(
                    Error::FeatureNotSupported("data-modifying statements inside queries".into()),
                ),
            }
        })
    }

    /// A nested-loop join.
    #[allow(clippy::too_many_arguments)]
    fn nested_loop(
        &self,
        l: Vec<Row>,
        r: Vec<Row>,
        kind: JoinKind,
        on: Option<&Expr>,
        lw: usize,
        rw: usize,
        outer: &[Value],
    ) -> Result<Vec<Row>> {
        let empty = HashMap::new();
        let env = self.env(outer, &empty);
        let mut out = Vec::new();
        let mut right_matched = vec![false; r.len()];
        for lrow in l {
            let matched = join_row(
                &lrow,
                0..r.len(),
                &r,
                on,
                &env,
                &mut right_matched,
                &mut out,
            )?;
            pad_unmatched_left(&mut out, lrow, matched, kind, rw);
        }
        if kind == JoinKind::Full {
            pad_unmatched_right(&mut out, r, &right_matched, lw);
        }
        Ok(out)
    }

    /// A hash join: builds on the right input's keys, probes with the left.
    #[allow(clippy::too_many_arguments)]
    fn hash_join(
        &self,
        l: Vec<Row>,
        r: Vec<Row>,
        kind: JoinKind,
        left_keys: &[Expr],
        right_keys: &[Expr],
        on: Option<&Expr>,
        lw: usize,
        rw: usize,
        outer: &[Value],
    ) -> Result<Vec<Row>> {
        let empty = HashMap::new();
        let env = self.env(outer, &empty);
        let mut table: HashMap<Vec<Value>, Vec<usize>> = HashMap::with_capacity(r.len());
        for (i, row) in r.iter().enumerate() {
            let key: Vec<Value> = right_keys
                .iter()
                .map(|k| k.eval(row, &env))
                .collect::<Result<_>>()?;
            if key.iter().any(Value::is_null) {
                continue;
            }
            table.entry(key).or_default().push(i);
        }
        let mut out = Vec::new();
        let mut right_matched = vec![false; r.len()];
        for lrow in l {
            let key: Vec<Value> = left_keys
                .iter()
                .map(|k| k.eval(&lrow, &env))
                .collect::<Result<_>>()?;
            // A NULL key matches nothing.
            let candidates = if key.iter().any(Value::is_null) {
                None
            } else {
                table.get(&key)
            };
            let candidates = candidates.into_iter().flatten().copied();
            let matched = join_row(
                &lrow,
                candidates,
                &r,
                on,
                &env,
                &mut right_matched,
                &mut out,
            )?;
            pad_unmatched_left(&mut out, lrow, matched, kind, rw);
        }
        if kind == JoinKind::Full {
            pad_unmatched_right(&mut out, r, &right_matched, lw);
        }
        Ok(out)
    }
}

/// Joins `lrow` with each candidate right row (by index into `r`) that
/// satisfies `on`, appending the joined rows to `out` and marking the right
/// rows matched. Returns whether any did.
fn join_row(
    lrow: &Row,
    candidates: impl Iterator<Item = usize>,
    r: &[Row],
    on: Option<&Expr>,
    env: &Env<'_>,
    right_matched: &mut [bool],
    out: &mut Vec<Row>,
) -> Result<bool> {
    let mut matched = false;
    for i in candidates {
        let mut joined = lrow.clone();
        joined.extend(r[i].iter().cloned());
        if on.map_or(Ok(true), |c| c.eval_bool(&joined, env))? {
            matched = true;
            right_matched[i] = true;
            out.push(joined);
        }
    }
    Ok(matched)
}

/// For an outer join, appends `lrow` NULL-padded on the right when no right
/// row matched it.
fn pad_unmatched_left(out: &mut Vec<Row>, lrow: Row, matched: bool, kind: JoinKind, rw: usize) {
    if !matched && kind != JoinKind::Inner {
        let mut joined = lrow;
        joined.extend(std::iter::repeat_n(Value::Null, rw));
        out.push(joined);
    }
}

/// Appends the right rows no left row matched, NULL-padded on the left.
fn pad_unmatched_right(out: &mut Vec<Row>, r: Vec<Row>, matched: &[bool], lw: usize) {
    for (rrow, m) in r.into_iter().zip(matched) {
        if !m {
            let mut joined: Row = std::iter::repeat_n(Value::Null, lw).collect();
            joined.extend(rrow);
            out.push(joined);
        }
    }
}

/// The column positions of a projection that only selects columns.
fn column_selection(exprs: &[Expr]) -> Option<Vec<usize>> {
    exprs
        .iter()
        .map(|e| match e {
            Expr::Column(i) => Some(*i),
            _ => None,
        })
        .collect()
}

/// Selects columns of a row, moving values where each is used once.
fn select_columns(mut row: Row, cols: &[usize]) -> Row {
    let mut uses = vec![0usize; row.len()];
    for &c in cols {
        uses[c] += 1;
    }
    let mut out = Vec::with_capacity(cols.len());
    for &c in cols {
        uses[c] -= 1;
        out.push(if uses[c] == 0 {
            std::mem::replace(&mut row[c], Value::Null)
        } else {
            row[c].clone()
        });
    }
    out
}

/// Evaluates a `LIMIT`/`OFFSET` count.
pub(crate) fn count(e: Option<&Expr>, env: &Env, what: &str) -> Result<Option<usize>> {
    let Some(e) = e else {
        return Ok(None);
    };
    match e.eval(&[], env)? {
        Value::Null => Ok(None),
        Value::Int(n) if n >= 0 => Ok(Some(n as usize)),
        Value::Int(_) => Err(Error::InvalidInput(format!("{what} must not be negative"))),
        other => Err(Error::Internal(format!("{what} evaluated to {other:?}"))),
    }
}

/// Sorts rows by `keys` (stable, NULL placement per key).
fn sort_rows(rows: Vec<Row>, keys: &[SortKey], env: &Env) -> Result<Vec<Row>> {
    let mut keyed = Vec::with_capacity(rows.len());
    for row in rows {
        let k: Vec<Value> = keys
            .iter()
            .map(|key| key.expr.eval(&row, env))
            .collect::<Result<_>>()?;
        keyed.push((k, row));
    }
    keyed.sort_by(|(a, _), (b, _)| {
        for ((x, y), key) in a.iter().zip(b).zip(keys) {
            let ord = match (x.is_null(), y.is_null()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => {
                    if key.nulls_first {
                        std::cmp::Ordering::Less
                    } else {
                        std::cmp::Ordering::Greater
                    }
                }
                (false, true) => {
                    if key.nulls_first {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Less
                    }
                }
                (false, false) => {
                    let o = x.compare(y);
                    if key.desc {
                        o.reverse()
                    } else {
                        o
                    }
                }
            };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(keyed.into_iter().map(|(_, r)| r).collect())
}

/// `UNION`/`INTERSECT`/`EXCEPT` with SQL's bag semantics for `ALL`.
fn set_op(op: SetOpKind, all: bool, l: Vec<Row>, r: Vec<Row>) -> Vec<Row> {
    match (op, all) {
        (SetOpKind::Union, true) => l.into_iter().chain(r).collect(),
        (SetOpKind::Union, false) => {
            let mut seen = HashSet::new();
            l.into_iter()
                .chain(r)
                .filter(|row| seen.insert(row.clone()))
                .collect()
        }
        (SetOpKind::Intersect | SetOpKind::Except, _) => {
            let mut counts: HashMap<Row, usize> = HashMap::new();
            for row in r {
                *counts.entry(row).or_default() += 1;
            }
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for row in l {
                let in_right = counts.get_mut(&row).filter(|c| **c > 0);
                let keep = match (op, all) {
                    (SetOpKind::Intersect, true) => match in_right {
                        Some(c) => {
                            *c -= 1;
                            true
                        }
                        None => false,
                    },
                    (SetOpKind::Except, true) => match in_right {
                        Some(c) => {
                            *c -= 1;
                            false
                        }
                        None => true,
                    },
                    (SetOpKind::Intersect, false) => in_right.is_some() && seen.insert(row.clone()),
                    _ => in_right.is_none() && seen.insert(row.clone()),
                };
                if keep {
                    out.push(row);
                }
            }
            out
        }
    }
}
