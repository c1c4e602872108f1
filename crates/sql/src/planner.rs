//! Access paths: which index a table is read through, and which key spans.
//!
//! The planner looks at the conjuncts of a table's predicate (`WHERE a = 1
//! AND b > 5 AND c LIKE 'x%'` has three) and finds, for the primary index
//! and every secondary index, the longest prefix of the index's columns
//! pinned by equalities (`col = v`, or `col IN (v1, v2)`, `col = v1 OR
//! col = v2` or `col IN (SELECT ...)` for several points)
//! followed by at most one range (`col > v`, `col <= v`, both sides of a
//! `BETWEEN`) on the next column. A value is anything that does not read
//! the table's own row: constants, parameters, outer references of a
//! correlated subquery, uncorrelated scalar subqueries, or, for the inner
//! side of a lookup join, columns of the outer row. Conjuncts that became spans are dropped; the rest stay as
//! the scan's residual filter.
//!
//! Rules, in order:
//!
//! 1. A unique index (the primary key first) with every column pinned is a
//!    point lookup: one `get` per point (`pk IN (...)` gives several).
//! 2. Otherwise the index with the most pinned columns wins, a range on the
//!    next column counting as half a column; the primary index wins ties
//!    (it needs no second lookup), and a secondary index must pin or bound
//!    at least one column to be used at all.
//! 3. When the query has `ORDER BY ... LIMIT`, an index whose order gives
//!    the requested order (after the pinned columns, all ascending or all
//!    descending; a secondary index continues with the primary key) counts
//!    as ten times cheaper: it reads only the rows it returns, in order,
//!    forward or reverse, and the sort disappears.
//! 4. With no usable predicate, the primary index is scanned in full.
//!
//! The estimate is deliberately simple (no statistics): each pinned column
//! divides the rows by ten, a range by three. That is enough to never scan
//! a table where a key or an index answers, which is what matters for
//! point-heavy workloads such as TPC-C.

use std::sync::Arc;

use meridian_txn::LockStrength;

use crate::catalog::{IndexDesc, TableDesc, PRIMARY_INDEX_ID};
use crate::expr::{CmpOp, Expr, SubqueryKind};
use crate::plan::{Scan, Spans};

/// The most points an `IN` list cross product may produce as spans.
const MAX_POINTS: usize = 1000;

/// One requested sort key, as a table column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OrderColumn {
    /// The table column position.
    pub column: usize,
    /// Descending.
    pub desc: bool,
    /// NULLs first.
    pub nulls_first: bool,
}

/// A conjunct the planner can turn into a span bound.
#[derive(Clone, Debug)]
struct KeyPredicate {
    /// Which conjunct it came from.
    conjunct: usize,
    /// The table column.
    column: usize,
    /// The comparison (`Eq` for `IN` lists too).
    op: CmpOp,
    /// The value(s) compared with.
    values: Vec<Expr>,
}

/// The chosen access path.
pub(crate) struct Access {
    /// The scan (spans, residual filter, direction).
    pub scan: Scan,
    /// Whether the scan's order is the requested order.
    pub ordered: bool,
}

/// Plans the read of `table` under `conjuncts` (over the table row).
/// `order` is the requested order (empty if none); `limited` says a limit
/// applies, which makes an ordered index attractive.
pub(crate) fn plan_scan(
    table: Arc<TableDesc>,
    alias: String,
    conjuncts: Vec<Expr>,
    lock: LockStrength,
    order: &[OrderColumn],
    limited: bool,
) -> Access {
    let col_of = |e: &Expr| match e {
        Expr::Column(c) => Some(*c),
        _ => None,
    };
    let is_value = |e: &Expr| !e.uses_columns();
    let preds = key_predicates(&conjuncts, &col_of, &is_value);
    let choice = choose(&table, &preds, order, limited, false);
    let (index_id, spans, used, reverse, ordered) = match choice {
        Some(c) => (c.index_id, c.spans, c.used, c.reverse, c.ordered),
        None => {
            let (ordered, reverse) =
                order_satisfied(&table, &table.primary, &Spans::default(), order);
            (PRIMARY_INDEX_ID, Spans::default(), vec![], reverse, ordered)
        }
    };
    let residual: Vec<Expr> = conjuncts
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(i))
        .map(|(_, e)| e)
        .collect();
    Access {
        scan: Scan {
            table,
            alias,
            index_id,
            spans,
            filter: Expr::and_all(residual),
            reverse,
            limit: None,
            lock,
        },
        ordered,
    }
}

/// Plans the inner side of a lookup join. `conjuncts` are over the joined
/// row (`left ++ table row`, the left row `left_width` wide). Returns the
/// scan, whose span expressions read the left row, and the conjuncts it did
/// not absorb (still over the joined row); `None` when no index is pinned
/// by the left row.
pub(crate) fn plan_lookup(
    table: Arc<TableDesc>,
    alias: String,
    conjuncts: Vec<Expr>,
    left_width: usize,
    lock: LockStrength,
) -> Option<(Scan, Vec<Expr>)> {
    let col_of = |e: &Expr| match e {
        Expr::Column(c) if *c >= left_width => Some(*c - left_width),
        _ => None,
    };
    let is_value = |e: &Expr| {
        !e.has_subquery() && !e.any(&|x| matches!(x, Expr::Column(c) if *c >= left_width))
    };
    let preds = key_predicates(&conjuncts, &col_of, &is_value);
    let choice = choose(&table, &preds, &[], false, true)?;
    // Only worth it if the outer row pins something.
    let pinned_by_left = choice.spans.eq.iter().flatten().any(|e| e.uses_columns());
    if !pinned_by_left {
        return None;
    }
    let mut residual = Vec::new();
    for (i, c) in conjuncts.into_iter().enumerate() {
        if !choice.used.contains(&i) {
            residual.push(c);
        }
    }
    Some((
        Scan {
            table,
            alias,
            index_id: choice.index_id,
            spans: choice.spans,
            filter: None,
            reverse: false,
            limit: None,
            lock,
        },
        residual,
    ))
}

/// Finds the conjuncts of the form `column op value`.
fn key_predicates(
    conjuncts: &[Expr],
    col_of: &dyn Fn(&Expr) -> Option<usize>,
    is_value: &dyn Fn(&Expr) -> bool,
) -> Vec<KeyPredicate> {
    let mut out = Vec::new();
    for (i, c) in conjuncts.iter().enumerate() {
        match c {
            Expr::Compare { op, left, right } if *op != CmpOp::NotEq => {
                if let (Some(col), true) = (col_of(left), is_value(right)) {
                    out.push(KeyPredicate {
                        conjunct: i,
                        column: col,
                        op: *op,
                        values: vec![(**right).clone()],
                    });
                } else if let (Some(col), true) = (col_of(right), is_value(left)) {
                    out.push(KeyPredicate {
                        conjunct: i,
                        column: col,
                        op: op.flip(),
                        values: vec![(**left).clone()],
                    });
                }
            }
            Expr::Subquery {
                kind:
                    SubqueryKind::Quantified {
                        expr,
                        op: CmpOp::Eq,
                        all: false,
                    },
                args,
                ..
            } => {
                // `c IN (SELECT ...)`: the subquery's values are the points.
                if let Some(col) = col_of(expr) {
                    if args.iter().all(is_value) {
                        out.push(KeyPredicate {
                            conjunct: i,
                            column: col,
                            op: CmpOp::Eq,
                            values: vec![c.clone()],
                        });
                    }
                }
            }
            Expr::Or(items) => {
                // `c = 1 OR c = 2` is `c IN (1, 2)`.
                let mut column = None;
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    let Expr::Compare {
                        op: CmpOp::Eq,
                        left,
                        right,
                    } = item
                    else {
                        break;
                    };
                    let (c, v) = match (col_of(left), col_of(right)) {
                        (Some(c), _) if is_value(right) => (c, (**right).clone()),
                        (_, Some(c)) if is_value(left) => (c, (**left).clone()),
                        _ => break,
                    };
                    if column.is_some_and(|prev| prev != c) {
                        break;
                    }
                    column = Some(c);
                    values.push(v);
                }
                if let (Some(column), true) = (column, values.len() == items.len()) {
                    out.push(KeyPredicate {
                        conjunct: i,
                        column,
                        op: CmpOp::Eq,
                        values,
                    });
                }
            }
            Expr::InList {
                expr,
                list,
                negated: false,
            } => {
                if let Some(col) = col_of(expr) {
                    if !list.is_empty() && list.iter().all(is_value) {
                        out.push(KeyPredicate {
                            conjunct: i,
                            column: col,
                            op: CmpOp::Eq,
                            values: list.clone(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// A candidate access path.
struct Choice {
    /// The index.
    index_id: u32,
    /// Its spans.
    spans: Spans,
    /// The conjuncts the spans absorbed.
    used: Vec<usize>,
    /// Scan in reverse for the requested order.
    reverse: bool,
    /// Whether the requested order holds.
    ordered: bool,
    /// The estimated cost.
    cost: f64,
}

/// Picks the cheapest index; `None` when no index is constrained (and no
/// index order is worth using). `lookup` restricts the choice to paths
/// with at least one pinned column.
fn choose(
    table: &TableDesc,
    preds: &[KeyPredicate],
    order: &[OrderColumn],
    limited: bool,
    lookup: bool,
) -> Option<Choice> {
    let mut best: Option<Choice> = None;
    let indexes = std::iter::once(&table.primary).chain(table.indexes.iter());
    for index in indexes {
        let primary = index.id == PRIMARY_INDEX_ID;
        let (spans, used, points) = spans_for(index, preds);
        let pinned = spans.eq.len();
        let ranged = spans.lower.is_some() || spans.upper.is_some();
        if lookup && pinned == 0 {
            continue;
        }
        let (ordered, reverse) = order_satisfied(table, index, &spans, order);
        let useful = pinned > 0 || ranged || (ordered && limited && !order.is_empty());
        if !useful {
            continue;
        }
        let full_point = index.unique && pinned == index.columns.len();
        let mut cost = if full_point {
            points as f64
        } else {
            let mut rows = 1000.0 * points as f64 / 10f64.powi(pinned as i32);
            if ranged {
                rows /= 3.0;
            }
            rows.max(1.5)
        };
        if ordered && limited && !order.is_empty() {
            // Reading in order, the scan stops after the limit.
            cost /= 10.0;
        }
        if !primary {
            cost = cost * 2.0 + 0.5;
        }
        if best.as_ref().is_none_or(|b| cost < b.cost) {
            best = Some(Choice {
                index_id: index.id,
                spans,
                used,
                reverse,
                ordered,
                cost,
            });
        }
    }
    best
}

/// The spans an index gets from the key predicates: equality on a prefix,
/// then a range. Returns the spans, the conjuncts used and the number of
/// points (product of the `IN` list lengths).
fn spans_for(index: &IndexDesc, preds: &[KeyPredicate]) -> (Spans, Vec<usize>, usize) {
    let mut spans = Spans::default();
    let mut used = Vec::new();
    let mut points = 1usize;
    for &col in &index.columns {
        let eq = preds
            .iter()
            .filter(|p| p.column == col && p.op == CmpOp::Eq)
            .min_by_key(|p| p.values.len());
        match eq {
            Some(p) if points * p.values.len() <= MAX_POINTS => {
                points *= p.values.len();
                spans.eq.push(p.values.clone());
                used.push(p.conjunct);
            }
            _ => break,
        }
    }
    if let Some(&col) = index.columns.get(spans.eq.len()) {
        for p in preds
            .iter()
            .filter(|p| p.column == col && p.values.len() == 1)
        {
            let v = p.values[0].clone();
            match p.op {
                CmpOp::Gt | CmpOp::GtEq if spans.lower.is_none() => {
                    spans.lower = Some((v, p.op == CmpOp::GtEq));
                    used.push(p.conjunct);
                }
                CmpOp::Lt | CmpOp::LtEq if spans.upper.is_none() => {
                    spans.upper = Some((v, p.op == CmpOp::LtEq));
                    used.push(p.conjunct);
                }
                _ => {}
            }
        }
    }
    (spans, used, points)
}

/// Whether reading `index` within `spans` yields rows in `order`, and if
/// so whether it must read in reverse.
fn order_satisfied(
    table: &TableDesc,
    index: &IndexDesc,
    spans: &Spans,
    order: &[OrderColumn],
) -> (bool, bool) {
    if order.is_empty() {
        return (true, false);
    }
    // A secondary index's entries are ordered by its columns, then (for a
    // non-unique index) by the primary key.
    let mut columns = index.columns.clone();
    if index.id != PRIMARY_INDEX_ID && !index.unique {
        columns.extend(table.primary.columns.iter().copied());
    }
    // Columns pinned to one value do not vary, wherever they reappear
    // (the primary key columns appended to a secondary index's entries).
    let pinned: Vec<usize> = spans
        .eq
        .iter()
        .zip(&index.columns)
        .filter(|(alts, _)| alts.len() == 1)
        .map(|(_, &c)| c)
        .collect();
    let desc = order[0].desc;
    let mut next = 0;
    for &col in &columns {
        if next == order.len() {
            break;
        }
        let key = order[next];
        if key.column == col {
            let nullable = table.columns[col].nullable && !table.is_key_column(col);
            // Ascending keys put NULLs last, a reverse scan first.
            if key.desc != desc || (nullable && key.nulls_first != desc) {
                return (false, false);
            }
            next += 1;
        } else if !pinned.contains(&col) {
            return (false, false);
        }
    }
    (next == order.len(), desc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ColumnDesc;
    use crate::types::{DataType, Value};

    fn table() -> Arc<TableDesc> {
        let col = |id: u32, name: &str| ColumnDesc {
            id,
            name: name.into(),
            ty: DataType::Int8,
            nullable: id > 2,
            default: None,
            hidden: false,
        };
        Arc::new(TableDesc {
            id: 100,
            name: "t".into(),
            version: 1,
            columns: vec![col(1, "a"), col(2, "b"), col(3, "c"), col(4, "d")],
            primary: IndexDesc {
                id: 1,
                name: "t_pkey".into(),
                columns: vec![0, 1],
                unique: true,
            },
            indexes: vec![
                IndexDesc {
                    id: 2,
                    name: "t_c_idx".into(),
                    columns: vec![2],
                    unique: false,
                },
                IndexDesc {
                    id: 3,
                    name: "t_d_key".into(),
                    columns: vec![3],
                    unique: true,
                },
            ],
            next_column_id: 5,
            next_index_id: 4,
        })
    }

    fn cmp(col: usize, op: CmpOp, v: i64) -> Expr {
        Expr::Compare {
            op,
            left: Box::new(Expr::Column(col)),
            right: Box::new(Expr::Const(Value::Int(v))),
        }
    }

    fn plan(conjuncts: Vec<Expr>) -> Scan {
        plan_scan(
            table(),
            "t".into(),
            conjuncts,
            LockStrength::Shared,
            &[],
            false,
        )
        .scan
    }

    #[test]
    fn full_primary_key_is_a_point_lookup() {
        let s = plan(vec![cmp(0, CmpOp::Eq, 1), cmp(1, CmpOp::Eq, 2)]);
        assert!(s.is_primary() && s.is_point_lookup());
        assert!(s.filter.is_none());
        assert_eq!(
            crate::explain::describe_scan(&s, &[]),
            "Get t@primary key=(1, 2)"
        );
    }

    #[test]
    fn composite_prefix_and_range_become_one_span() {
        let s = plan(vec![
            cmp(0, CmpOp::Eq, 1),
            cmp(1, CmpOp::Gt, 5),
            cmp(2, CmpOp::NotEq, 0),
        ]);
        assert!(s.is_primary() && !s.is_point_lookup());
        assert_eq!(s.spans.eq.len(), 1);
        assert!(s.filter.is_some());
        assert_eq!(
            crate::explain::describe_scan(&s, &[]),
            "Scan t@primary spans=(/1/5 - /1] filter=(c <> 0)"
        );
    }

    #[test]
    fn range_on_leading_column() {
        let s = plan(vec![cmp(0, CmpOp::GtEq, 1), cmp(0, CmpOp::LtEq, 5)]);
        assert_eq!(
            crate::explain::describe_scan(&s, &[]),
            "Scan t@primary spans=[/1 - /5]"
        );
    }

    #[test]
    fn in_list_gives_several_points() {
        let s = plan(vec![
            Expr::InList {
                expr: Box::new(Expr::Column(0)),
                list: vec![Expr::Const(Value::Int(1)), Expr::Const(Value::Int(3))],
                negated: false,
            },
            cmp(1, CmpOp::Eq, 7),
        ]);
        assert_eq!(
            crate::explain::describe_scan(&s, &[]),
            "Get t@primary keys=(1, 7), (3, 7)"
        );
    }

    #[test]
    fn secondary_indexes_when_they_pin_more() {
        let s = plan(vec![cmp(2, CmpOp::Eq, 9)]);
        assert_eq!(s.index_id, 2);
        assert_eq!(
            crate::explain::describe_scan(&s, &[]),
            "IndexScan t@t_c_idx spans=[/9 - /9]"
        );
        let s = plan(vec![cmp(3, CmpOp::Eq, 9)]);
        assert_eq!(
            crate::explain::describe_scan(&s, &[]),
            "IndexGet t@t_d_key key=(9)"
        );
        // The primary key wins when it pins as much.
        let s = plan(vec![cmp(0, CmpOp::Eq, 1), cmp(2, CmpOp::Eq, 9)]);
        assert!(s.is_primary());
    }

    #[test]
    fn no_predicate_is_a_full_scan() {
        let s = plan(vec![cmp(2, CmpOp::NotEq, 1)]);
        assert_eq!(
            crate::explain::describe_scan(&s, &[]),
            "Scan t@primary spans=FULL filter=(c <> 1)"
        );
    }

    #[test]
    fn descending_order_on_the_key_reads_in_reverse() {
        let order = [OrderColumn {
            column: 1,
            desc: true,
            nulls_first: true,
        }];
        let a = plan_scan(
            table(),
            "t".into(),
            vec![cmp(0, CmpOp::Eq, 1)],
            LockStrength::Shared,
            &order,
            true,
        );
        assert!(a.ordered && a.scan.reverse);
        let order = [OrderColumn {
            column: 2,
            desc: false,
            nulls_first: false,
        }];
        let a = plan_scan(
            table(),
            "t".into(),
            vec![],
            LockStrength::Shared,
            &order,
            true,
        );
        assert!(a.ordered && a.scan.index_id == 2);
        let a = plan_scan(
            table(),
            "t".into(),
            vec![],
            LockStrength::Shared,
            &order,
            false,
        );
        assert!(!a.ordered && a.scan.is_primary());
    }

    #[test]
    fn secondary_index_order_continues_with_the_primary_key() {
        // Index on c (non-unique): entries are ordered by (c, a, b), so with
        // c pinned it yields the order of a, and is more selective than
        // reading the primary key in order.
        let order = [OrderColumn {
            column: 0,
            desc: true,
            nulls_first: true,
        }];
        let a = plan_scan(
            table(),
            "t".into(),
            vec![cmp(2, CmpOp::Eq, 5)],
            LockStrength::Shared,
            &order,
            true,
        );
        assert!(a.ordered && a.scan.reverse);
        assert_eq!(a.scan.index_id, 2);
    }

    #[test]
    fn lookup_join_keys_read_the_outer_row() {
        // left row has 2 columns; the table's a = left.#1 and b = 4.
        let join = Expr::Compare {
            op: CmpOp::Eq,
            left: Box::new(Expr::Column(2)),
            right: Box::new(Expr::Column(1)),
        };
        let (scan, residual) = plan_lookup(
            table(),
            "t".into(),
            vec![join, cmp(3, CmpOp::Eq, 4)],
            2,
            LockStrength::Shared,
        )
        .unwrap();
        assert!(scan.is_point_lookup() && residual.is_empty());
        let names = vec!["x".to_string(), "y".to_string()];
        assert_eq!(
            crate::explain::describe_scan(&scan, &names),
            "Get t@primary key=(y, 4)"
        );
    }
}
