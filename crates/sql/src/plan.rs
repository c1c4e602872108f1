//! Plans: the operator trees the binder and planner build and the executor
//! runs.
//!
//! A query plan is a tree of relational operators, each producing rows
//! (`Vec<Value>`) whose columns its parent addresses by position. The leaves
//! read tables through a [`Scan`]: an index (the primary index or a
//! secondary one), a set of key [`Spans`] over that index, a residual filter,
//! a direction, an optional row limit pushed down from `LIMIT`, and the lock
//! strength the reads take. Span bounds are expressions, evaluated when the
//! scan starts (they may be parameters, or, under a lookup join, columns of
//! the outer row), so one plan serves every execution of a prepared
//! statement.
//!
//! Subqueries in expressions are separate plans, numbered statement-wide
//! ([`Statement::subqueries`]); see `expr.rs` for how they are evaluated.
//!
//! `EXPLAIN` prints the tree (`explain.rs`).

use std::sync::Arc;

use meridian_txn::LockStrength;

use crate::catalog::{IndexDesc, TableDesc, PRIMARY_INDEX_ID};
use crate::expr::Expr;
use crate::types::DataType;

/// A result column: name and type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OutputColumn {
    /// The column name as the client sees it.
    pub name: String,
    /// Its type.
    pub ty: DataType,
}

/// A bound statement of the kind that reads or writes rows.
#[derive(Debug)]
pub(crate) struct Statement {
    /// The plan.
    pub plan: Plan,
    /// The result columns (empty for DML without `RETURNING`).
    pub columns: Vec<OutputColumn>,
    /// The subquery plans that expressions refer to by number.
    pub subqueries: Vec<Plan>,
    /// The tables the plan depends on, for plan-cache validation.
    pub tables: Vec<Arc<TableDesc>>,
    /// The command tag verb for DML (`INSERT`, `UPDATE`, `DELETE`), or
    /// `SELECT`.
    pub verb: &'static str,
}

/// A relational operator.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Constant rows (`VALUES`, or one empty row for `SELECT` without `FROM`).
    Values {
        /// The rows' expressions.
        rows: Vec<Vec<Expr>>,
        /// The number of columns.
        width: usize,
    },
    /// Reads a table.
    Scan(Box<Scan>),
    /// Keeps rows whose predicate is true.
    Filter {
        /// The input.
        input: Box<Plan>,
        /// The condition.
        predicate: Expr,
    },
    /// Computes new columns from each row.
    Project {
        /// The input.
        input: Box<Plan>,
        /// One expression per output column.
        exprs: Vec<Expr>,
        /// Output column names (for EXPLAIN).
        names: Vec<String>,
    },
    /// Joins by evaluating `on` for every pair of rows.
    NestedLoopJoin {
        /// The outer input.
        left: Box<Plan>,
        /// The inner input (materialized once).
        right: Box<Plan>,
        /// Inner, left or full.
        kind: JoinKind,
        /// The join condition over `left ++ right` rows.
        on: Option<Expr>,
    },
    /// An equi-join: builds a hash table of the right input on its keys.
    HashJoin {
        /// The probe input.
        left: Box<Plan>,
        /// The build input.
        right: Box<Plan>,
        /// Inner, left or full.
        kind: JoinKind,
        /// Key expressions over left rows.
        left_keys: Vec<Expr>,
        /// Key expressions over right rows, pairwise equal to `left_keys`.
        right_keys: Vec<Expr>,
        /// A residual condition over `left ++ right` rows.
        on: Option<Expr>,
    },
    /// An index nested-loop join: for each left row, the right table is read
    /// through its key spans, whose expressions are over the left row.
    LookupJoin {
        /// The outer input.
        left: Box<Plan>,
        /// The inner table access; span expressions read the left row.
        right: Box<Scan>,
        /// Inner or left.
        kind: JoinKind,
        /// A residual condition over `left ++ right` rows.
        on: Option<Expr>,
    },
    /// Groups and aggregates.
    Aggregate {
        /// The input.
        input: Box<Plan>,
        /// Grouping expressions (output columns `0..n`).
        group_by: Vec<Expr>,
        /// Aggregates (output columns `n..`).
        aggregates: Vec<AggCall>,
    },
    /// Removes duplicate rows.
    Distinct {
        /// The input.
        input: Box<Plan>,
    },
    /// Sorts.
    Sort {
        /// The input.
        input: Box<Plan>,
        /// The sort keys, most significant first.
        keys: Vec<SortKey>,
    },
    /// `LIMIT` / `OFFSET`.
    Limit {
        /// The input.
        input: Box<Plan>,
        /// At most this many rows (evaluated once).
        limit: Option<Expr>,
        /// Skip this many rows first.
        offset: Option<Expr>,
    },
    /// `UNION`, `INTERSECT`, `EXCEPT`.
    SetOp {
        /// Which operation.
        op: SetOpKind,
        /// `ALL` (keep duplicates).
        all: bool,
        /// Left input.
        left: Box<Plan>,
        /// Right input.
        right: Box<Plan>,
    },
    /// `INSERT`.
    Insert(Box<Insert>),
    /// `UPDATE`.
    Update(Box<Update>),
    /// `DELETE`.
    Delete(Box<Delete>),
}

/// A join type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JoinKind {
    /// Matching pairs only.
    Inner,
    /// Every left row, NULL-extended when nothing matches.
    Left,
    /// Every row of both sides.
    Full,
}

/// A set operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetOpKind {
    /// `UNION`.
    Union,
    /// `INTERSECT`.
    Intersect,
    /// `EXCEPT`.
    Except,
}

/// One sort key.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SortKey {
    /// The key, over the input row.
    pub expr: Expr,
    /// Descending.
    pub desc: bool,
    /// NULLs before non-NULLs.
    pub nulls_first: bool,
}

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AggFunc {
    /// `count(*)`.
    CountStar,
    /// `count(x)`.
    Count,
    /// `sum(x)`.
    Sum,
    /// `avg(x)`.
    Avg,
    /// `min(x)`.
    Min,
    /// `max(x)`.
    Max,
    /// `bool_and(x)` / `every(x)`.
    BoolAnd,
    /// `bool_or(x)`.
    BoolOr,
    /// `string_agg(x, sep)`.
    StringAgg,
}

impl AggFunc {
    /// The SQL name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            AggFunc::CountStar | AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::BoolAnd => "bool_and",
            AggFunc::BoolOr => "bool_or",
            AggFunc::StringAgg => "string_agg",
        }
    }
}

/// One aggregate call.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AggCall {
    /// The function.
    pub func: AggFunc,
    /// Its arguments, over the input row.
    pub args: Vec<Expr>,
    /// `DISTINCT`.
    pub distinct: bool,
    /// `FILTER (WHERE ...)`.
    pub filter: Option<Expr>,
    /// The type of the first argument.
    pub arg_ty: DataType,
    /// The result type.
    pub ty: DataType,
}

/// Key spans over an index: equality on a prefix of its columns (each with
/// one or more alternative values), then optionally a range on the next one.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Spans {
    /// Per leading key column, the values it may equal (an `IN` list gives
    /// several; the spans are their cross product).
    pub eq: Vec<Vec<Expr>>,
    /// Lower bound on the next key column: value and whether inclusive.
    pub lower: Option<(Expr, bool)>,
    /// Upper bound on the next key column: value and whether inclusive.
    pub upper: Option<(Expr, bool)>,
}

impl Spans {
    /// Whether the spans constrain nothing (a full scan of the index).
    pub(crate) fn is_full(&self) -> bool {
        self.eq.is_empty() && self.lower.is_none() && self.upper.is_none()
    }
}

/// How to read one table.
#[derive(Debug)]
pub(crate) struct Scan {
    /// The table.
    pub table: Arc<TableDesc>,
    /// The name the query uses for it (for EXPLAIN).
    pub alias: String,
    /// The index read: `PRIMARY_INDEX_ID` or a secondary index.
    pub index_id: u32,
    /// The key spans.
    pub spans: Spans,
    /// A residual filter over the table row.
    pub filter: Option<Expr>,
    /// Read in descending key order.
    pub reverse: bool,
    /// Stop after this many rows have passed the filter.
    pub limit: Option<Expr>,
    /// The lock reads take in a read-write transaction.
    pub lock: LockStrength,
}

impl Scan {
    /// The index read.
    pub(crate) fn index(&self) -> &IndexDesc {
        self.table
            .index(self.index_id)
            .unwrap_or(&self.table.primary)
    }

    /// The names of the row's columns, qualified by the alias when the
    /// query renamed the table (for EXPLAIN).
    pub(crate) fn column_names(&self) -> Vec<String> {
        let qualify = !self.alias.is_empty() && self.alias != self.table.name;
        self.table
            .columns
            .iter()
            .map(|c| {
                if qualify {
                    format!("{}.{}", self.alias, c.name)
                } else {
                    c.name.clone()
                }
            })
            .collect()
    }

    /// Whether the scan reads the primary index.
    pub(crate) fn is_primary(&self) -> bool {
        self.index_id == PRIMARY_INDEX_ID
    }

    /// Whether the spans pin every key column of a unique index: each
    /// span is a single row, read with a point lookup.
    pub(crate) fn is_point_lookup(&self) -> bool {
        let index = self.index();
        index.unique
            && self.spans.eq.len() == index.columns.len()
            && self.spans.lower.is_none()
            && self.spans.upper.is_none()
    }
}

/// What `INSERT ... ON CONFLICT` does.
#[derive(Debug)]
pub(crate) enum ConflictAction {
    /// Skip the row.
    Nothing,
    /// Update the existing row.
    Update {
        /// `(column position, expression)` over `existing ++ excluded` rows.
        assignments: Vec<(usize, Expr)>,
        /// Only update when this holds (over the same row).
        predicate: Option<Expr>,
    },
}

/// `ON CONFLICT`.
#[derive(Debug)]
pub(crate) struct OnConflict {
    /// The unique index named by the conflict target (`None`: any).
    pub index_id: Option<u32>,
    /// What to do.
    pub action: ConflictAction,
}

/// An `INSERT`.
#[derive(Debug)]
pub(crate) struct Insert {
    /// The table.
    pub table: Arc<TableDesc>,
    /// The rows to insert, one column per target.
    pub source: Plan,
    /// Table column positions the source columns go to.
    pub targets: Vec<usize>,
    /// Default expressions of the other columns (`None` for the row id).
    pub defaults: Vec<(usize, Option<Expr>)>,
    /// `ON CONFLICT`.
    pub on_conflict: Option<OnConflict>,
    /// `RETURNING`, over the inserted row.
    pub returning: Option<Vec<Expr>>,
}

/// An `UPDATE`.
#[derive(Debug)]
pub(crate) struct Update {
    /// The table.
    pub table: Arc<TableDesc>,
    /// The rows to update (full table rows, read with exclusive locks).
    pub source: Plan,
    /// `(column position, expression over the old row)`.
    pub assignments: Vec<(usize, Expr)>,
    /// `RETURNING`, over the new row.
    pub returning: Option<Vec<Expr>>,
}

/// A `DELETE`.
#[derive(Debug)]
pub(crate) struct Delete {
    /// The table.
    pub table: Arc<TableDesc>,
    /// The rows to delete (full table rows, read with exclusive locks).
    pub source: Plan,
    /// `RETURNING`, over the deleted row.
    pub returning: Option<Vec<Expr>>,
}

impl Plan {
    /// The names of the output columns (for EXPLAIN).
    pub(crate) fn output_names(&self) -> Vec<String> {
        match self {
            Plan::Values { width, .. } => (1..=*width).map(|i| format!("column{i}")).collect(),
            Plan::Scan(scan) => scan.column_names(),
            Plan::Filter { input, .. }
            | Plan::Distinct { input }
            | Plan::Sort { input, .. }
            | Plan::Limit { input, .. } => input.output_names(),
            Plan::Project { names, .. } => names.clone(),
            Plan::NestedLoopJoin { left, right, .. } | Plan::HashJoin { left, right, .. } => {
                let mut names = left.output_names();
                names.extend(right.output_names());
                names
            }
            Plan::LookupJoin { left, right, .. } => {
                let mut names = left.output_names();
                names.extend(right.column_names());
                names
            }
            Plan::Aggregate {
                input,
                group_by,
                aggregates,
            } => {
                let inner = input.output_names();
                let mut names: Vec<String> = group_by
                    .iter()
                    .map(|e| crate::explain::fmt_expr(e, &inner))
                    .collect();
                names.extend(
                    aggregates
                        .iter()
                        .map(|a| crate::explain::fmt_agg(a, &inner)),
                );
                names
            }
            Plan::SetOp { left, .. } => left.output_names(),
            Plan::Insert(i) => i.table.columns.iter().map(|c| c.name.clone()).collect(),
            Plan::Update(u) => u.table.columns.iter().map(|c| c.name.clone()).collect(),
            Plan::Delete(d) => d.table.columns.iter().map(|c| c.name.clone()).collect(),
        }
    }
}
