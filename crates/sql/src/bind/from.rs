//! Binding `FROM`: tables, derived tables, `WITH` references and joins, and
//! choosing join methods.
//!
//! `FROM` is first bound into a [`Rel`] tree that still holds its
//! predicates as conjunct lists, so `WHERE` and `ON` conjuncts can be pushed
//! to where they apply: into a table's conjuncts (which the planner turns
//! into key spans and a residual filter), or into a join's condition. A
//! conjunct moves below a join only where that cannot change the result: to
//! either side of an inner join, to the preserved side of an outer join for
//! `WHERE`, to the null-extended side for `ON`.
//!
//! Join methods, in order of preference:
//!
//! 1. **Lookup join** (index nested loop) when the inner side is a table
//!    whose index is pinned by the join condition and constants: for each
//!    outer row, point lookups or short scans. For an inner join the sides
//!    may be swapped to make this possible.
//! 2. **Hash join** when the condition has equalities between the sides.
//! 3. **Nested loop** otherwise (cross joins, inequality joins).
//!
//! `RIGHT JOIN` is planned as a `LEFT JOIN` with the sides swapped and the
//! columns put back in order by a projection.

use std::sync::Arc;

use meridian_error::{Error, Result};
use meridian_txn::LockStrength;
use sqlparser::ast;

use super::names::{ident, object_name};
use super::{Binder, Scope, ScopeColumn};
use crate::cast::CastContext;
use crate::catalog::TableDesc;
use crate::expr::{CmpOp, Expr};
use crate::ops::common_type;
use crate::plan::{JoinKind, Plan};
use crate::planner::{plan_lookup, plan_scan, OrderColumn};

/// A `FROM` tree whose predicates are not yet placed.
pub(crate) enum Rel {
    /// A table and the conjuncts (over its row) that apply to it.
    Table {
        /// The table.
        table: Arc<TableDesc>,
        /// The name used in the query.
        alias: String,
        /// Conjuncts over the table row.
        conjuncts: Vec<Expr>,
    },
    /// A planned input (derived table, `WITH` query, no `FROM`).
    Planned {
        /// The plan.
        plan: Plan,
        /// Its number of columns.
        width: usize,
    },
    /// A join.
    Join {
        /// Inner, left, right (planned as left) or full.
        kind: RelJoin,
        /// Left input.
        left: Box<Rel>,
        /// Right input.
        right: Box<Rel>,
        /// Conjuncts over `left ++ right`.
        on: Vec<Expr>,
    },
}

/// Join types of the `FROM` tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RelJoin {
    /// Inner (and cross).
    Inner,
    /// Left outer.
    Left,
    /// Right outer.
    Right,
    /// Full outer.
    Full,
}

impl Rel {
    /// The number of columns.
    pub(crate) fn width(&self) -> usize {
        match self {
            Rel::Table { table, .. } => table.columns.len(),
            Rel::Planned { width, .. } => *width,
            Rel::Join { left, right, .. } => left.width() + right.width(),
        }
    }

    /// Pushes a conjunct over this relation's row as deep as it may go;
    /// returns it back if it must stay above.
    pub(crate) fn push_conjunct(&mut self, c: Expr) -> Option<Expr> {
        let (lo, hi) = match column_range(&c) {
            Some(r) => r,
            None => return Some(c),
        };
        match self {
            Rel::Table { conjuncts, .. } => {
                conjuncts.push(c);
                None
            }
            Rel::Planned { .. } => Some(c),
            Rel::Join {
                kind,
                left,
                right,
                on,
            } => {
                let lw = left.width();
                let into_left = hi < lw && matches!(kind, RelJoin::Inner | RelJoin::Left);
                let into_right = lo >= lw && matches!(kind, RelJoin::Inner | RelJoin::Right);
                if into_left {
                    return match left.push_conjunct(c) {
                        Some(back) if *kind == RelJoin::Inner => {
                            on.push(back);
                            None
                        }
                        other => other,
                    };
                }
                if into_right {
                    return match right.push_conjunct(shift(c, -(lw as isize))) {
                        Some(back) if *kind == RelJoin::Inner => {
                            on.push(shift(back, lw as isize));
                            None
                        }
                        Some(back) => Some(shift(back, lw as isize)),
                        None => None,
                    };
                }
                if *kind == RelJoin::Inner {
                    on.push(c);
                    None
                } else {
                    Some(c)
                }
            }
        }
    }
}

/// The smallest and largest column a conjunct reads, `None` if none.
fn column_range(e: &Expr) -> Option<(usize, usize)> {
    let mut range: Option<(usize, usize)> = None;
    collect_columns(e, &mut |c| {
        range = Some(match range {
            Some((lo, hi)) => (lo.min(c), hi.max(c)),
            None => (c, c),
        })
    });
    range
}

/// Calls `f` with every column an expression reads.
fn collect_columns(e: &Expr, f: &mut dyn FnMut(usize)) {
    if let Expr::Column(c) = e {
        f(*c);
    }
    for child in e.children() {
        collect_columns(child, f);
    }
}

/// Shifts every column reference by `delta`.
pub(crate) fn shift(e: Expr, delta: isize) -> Expr {
    if delta == 0 {
        return e;
    }
    e.transform(&mut |x| {
        Ok(match x {
            Expr::Column(c) => Expr::Column((c as isize + delta) as usize),
            other => other,
        })
    })
    .expect("shifting cannot fail")
}

impl Binder<'_> {
    /// Binds a `FROM` list (comma-separated items are cross joined).
    pub(crate) fn bind_from(
        &mut self,
        from: &[ast::TableWithJoins],
        lock: LockStrength,
    ) -> Result<(Rel, Scope)> {
        let _ = lock;
        if from.is_empty() {
            return Ok((
                Rel::Planned {
                    plan: Plan::Values {
                        rows: vec![vec![]],
                        width: 0,
                    },
                    width: 0,
                },
                Scope::default(),
            ));
        }
        let mut acc: Option<(Rel, Scope)> = None;
        for item in from {
            let next = self.bind_table_with_joins(item)?;
            acc = Some(match acc {
                None => next,
                Some((rel, scope)) => {
                    let scope = scope.concat(&next.1);
                    (
                        Rel::Join {
                            kind: RelJoin::Inner,
                            left: Box::new(rel),
                            right: Box::new(next.0),
                            on: vec![],
                        },
                        scope,
                    )
                }
            });
        }
        Ok(acc.expect("from is not empty"))
    }

    /// Binds one `FROM` item with its joins.
    fn bind_table_with_joins(&mut self, twj: &ast::TableWithJoins) -> Result<(Rel, Scope)> {
        let (mut rel, mut scope) = self.bind_factor(&twj.relation)?;
        for join in &twj.joins {
            let (right, right_scope) = self.bind_factor(&join.relation)?;
            use ast::JoinOperator as J;
            let (kind, constraint) = match &join.join_operator {
                J::Join(c) | J::Inner(c) => (RelJoin::Inner, Some(c)),
                J::Left(c) | J::LeftOuter(c) => (RelJoin::Left, Some(c)),
                J::Right(c) | J::RightOuter(c) => (RelJoin::Right, Some(c)),
                J::FullOuter(c) => (RelJoin::Full, Some(c)),
                J::CrossJoin(_) => (RelJoin::Inner, None),
                other => return Err(Error::FeatureNotSupported(format!("join type {other:?}"))),
            };
            let lw = scope.columns.len();
            let mut combined = scope.concat(&right_scope);
            let mut on = Vec::new();
            match constraint {
                None | Some(ast::JoinConstraint::None) => {
                    if kind != RelJoin::Inner {
                        return Err(Error::SyntaxError(
                            "syntax error: outer join requires a join condition".into(),
                        ));
                    }
                }
                Some(ast::JoinConstraint::On(e)) => {
                    let saved = std::mem::replace(&mut self.frame().scope, combined.clone());
                    let cond = self.bind_condition(e, "JOIN/ON");
                    self.frame().scope = saved;
                    on = cond?.conjuncts();
                }
                Some(ast::JoinConstraint::Using(cols)) => {
                    let names: Vec<String> = cols.iter().map(object_name).collect::<Result<_>>()?;
                    on = self.using_conjuncts(&names, &mut combined, lw)?;
                }
                Some(ast::JoinConstraint::Natural) => {
                    let names: Vec<String> = scope
                        .columns
                        .iter()
                        .filter(|c| {
                            !c.hidden
                                && right_scope
                                    .columns
                                    .iter()
                                    .any(|r| !r.hidden && r.name == c.name)
                        })
                        .map(|c| c.name.clone())
                        .collect();
                    on = self.using_conjuncts(&names, &mut combined, lw)?;
                }
                Some(other) => {
                    return Err(Error::FeatureNotSupported(format!(
                        "join constraint {other:?}"
                    )))
                }
            }
            let mut left = rel;
            let mut right = right;
            // ON conjuncts over one side only move into that side when the
            // join allows it.
            let mut kept = Vec::new();
            for c in on {
                if c.has_subquery() {
                    return Err(Error::FeatureNotSupported(
                        "subqueries in JOIN conditions".into(),
                    ));
                }
                match column_range(&c) {
                    Some((lo, _)) if lo >= lw && matches!(kind, RelJoin::Inner | RelJoin::Left) => {
                        if let Some(back) = right.push_conjunct(shift(c, -(lw as isize))) {
                            kept.push(shift(back, lw as isize));
                        }
                    }
                    Some((_, hi)) if hi < lw && matches!(kind, RelJoin::Inner | RelJoin::Right) => {
                        if let Some(back) = left.push_conjunct(c) {
                            kept.push(back);
                        }
                    }
                    _ => kept.push(c),
                }
            }
            rel = Rel::Join {
                kind,
                left: Box::new(left),
                right: Box::new(right),
                on: kept,
            };
            scope = combined;
        }
        Ok((rel, scope))
    }

    /// The equalities of `USING (cols)`; hides the right side's copies.
    fn using_conjuncts(
        &mut self,
        names: &[String],
        combined: &mut Scope,
        lw: usize,
    ) -> Result<Vec<Expr>> {
        let mut on = Vec::new();
        for name in names {
            let find = |range: std::ops::Range<usize>| {
                range
                    .clone()
                    .find(|&i| !combined.columns[i].hidden && combined.columns[i].name == *name)
            };
            let (Some(l), Some(r)) = (find(0..lw), find(lw..combined.columns.len())) else {
                return Err(Error::UndefinedColumn(format!(
                    "column \"{name}\" specified in USING clause does not exist in both tables"
                )));
            };
            let (lt, rt) = (
                combined.columns[l].ty.clone(),
                combined.columns[r].ty.clone(),
            );
            let ty =
                common_type(&lt, &rt).ok_or_else(|| super::expr::operator_error("=", &lt, &rt))?;
            let le = self.coerce(Expr::Column(l), &lt, &ty, CastContext::Implicit)?;
            let re = self.coerce(Expr::Column(r), &rt, &ty, CastContext::Implicit)?;
            on.push(Expr::Compare {
                op: CmpOp::Eq,
                left: Box::new(le),
                right: Box::new(re),
            });
            combined.columns[r].hidden = true;
        }
        Ok(on)
    }

    /// Binds one table factor.
    fn bind_factor(&mut self, factor: &ast::TableFactor) -> Result<(Rel, Scope)> {
        match factor {
            ast::TableFactor::Table {
                name, alias, args, ..
            } => {
                if args.is_some() {
                    return Err(Error::FeatureNotSupported("table functions".into()));
                }
                let table_name = object_name(name)?;
                let alias_name = alias.as_ref().map(|a| ident(&a.name));
                let renames: Vec<String> = alias
                    .as_ref()
                    .map(|a| a.columns.iter().map(|c| ident(&c.name)).collect())
                    .unwrap_or_default();
                if name.0.len() == 1 {
                    if let Some(cte) = self
                        .ctes
                        .iter()
                        .rev()
                        .find(|c| c.name == table_name)
                        .cloned()
                    {
                        let (plan, columns) = self.bind_derived(&cte.query)?;
                        let label = alias_name.unwrap_or(table_name);
                        let mut names: Vec<String> =
                            columns.iter().map(|c| c.name.clone()).collect();
                        rename(&mut names, &cte.columns);
                        rename(&mut names, &renames);
                        let scope = Scope {
                            columns: names
                                .into_iter()
                                .zip(columns)
                                .map(|(n, c)| ScopeColumn {
                                    table: Some(label.clone()),
                                    name: n,
                                    ty: c.ty,
                                    hidden: false,
                                })
                                .collect(),
                        };
                        let width = scope.columns.len();
                        return Ok((Rel::Planned { plan, width }, scope));
                    }
                }
                let table = self.table(&table_name)?;
                let label = alias_name.unwrap_or_else(|| table.name.clone());
                let mut names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
                let visible: Vec<usize> = (0..names.len())
                    .filter(|&i| !table.columns[i].hidden)
                    .collect();
                for (new, &i) in renames.iter().zip(&visible) {
                    names[i] = new.clone();
                }
                let scope = Scope {
                    columns: table
                        .columns
                        .iter()
                        .zip(names)
                        .map(|(c, n)| ScopeColumn {
                            table: Some(label.clone()),
                            name: n,
                            ty: c.ty.clone(),
                            hidden: c.hidden,
                        })
                        .collect(),
                };
                Ok((
                    Rel::Table {
                        table,
                        alias: label,
                        conjuncts: vec![],
                    },
                    scope,
                ))
            }
            ast::TableFactor::Derived {
                lateral,
                subquery,
                alias,
                ..
            } => {
                if *lateral {
                    return Err(Error::FeatureNotSupported("LATERAL".into()));
                }
                let (plan, columns) = self.bind_derived(subquery)?;
                let label = alias.as_ref().map(|a| ident(&a.name));
                let mut names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
                if let Some(a) = alias {
                    let renames: Vec<String> = a.columns.iter().map(|c| ident(&c.name)).collect();
                    rename(&mut names, &renames);
                }
                let scope = Scope {
                    columns: names
                        .into_iter()
                        .zip(columns)
                        .map(|(n, c)| ScopeColumn {
                            table: label.clone(),
                            name: n,
                            ty: c.ty,
                            hidden: false,
                        })
                        .collect(),
                };
                let width = scope.columns.len();
                Ok((Rel::Planned { plan, width }, scope))
            }
            ast::TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                if alias.is_some() {
                    return Err(Error::FeatureNotSupported(
                        "aliases on parenthesized joins".into(),
                    ));
                }
                self.bind_table_with_joins(table_with_joins)
            }
            other => Err(Error::FeatureNotSupported(format!("FROM item {other}"))),
        }
    }

    /// Plans a `FROM` tree. `order` and `scan_limit` apply to a single table
    /// (see `bind_select`); returns the plan and whether it is in `order`.
    pub(crate) fn rel_to_plan(
        &mut self,
        rel: Rel,
        order: &[OrderColumn],
        scan_limit: Option<Expr>,
        lock: LockStrength,
    ) -> Result<(Plan, bool)> {
        match rel {
            Rel::Table {
                table,
                alias,
                conjuncts,
            } => {
                let access = plan_scan(table, alias, conjuncts, lock, order, scan_limit.is_some());
                let mut scan = access.scan;
                if access.ordered {
                    scan.limit = scan_limit;
                }
                Ok((Plan::Scan(Box::new(scan)), access.ordered))
            }
            Rel::Planned { plan, .. } => Ok((plan, order.is_empty())),
            Rel::Join {
                kind,
                left,
                right,
                on,
            } => {
                let lw = left.width();
                let rw = right.width();
                match kind {
                    RelJoin::Right => {
                        // Plan as `right LEFT JOIN left`, then restore the column order.
                        let on = on.into_iter().map(|c| swap_sides(c, lw, rw)).collect();
                        let plan = self.plan_join(JoinKind::Left, *right, *left, on, lock)?;
                        Ok((reorder(plan, lw, rw), order.is_empty()))
                    }
                    RelJoin::Inner => {
                        // Prefer a lookup into the right table; else try the left one.
                        if !matches!(*right, Rel::Table { .. })
                            || !self.lookup_possible(&right, &on, lw)
                        {
                            if let Rel::Table { .. } = *left {
                                let swapped: Vec<Expr> =
                                    on.iter().cloned().map(|c| swap_sides(c, lw, rw)).collect();
                                if self.lookup_possible(&left, &swapped, rw) {
                                    let plan = self.plan_join(
                                        JoinKind::Inner,
                                        *right,
                                        *left,
                                        swapped,
                                        lock,
                                    )?;
                                    return Ok((reorder(plan, lw, rw), order.is_empty()));
                                }
                            }
                        }
                        Ok((
                            self.plan_join(JoinKind::Inner, *left, *right, on, lock)?,
                            order.is_empty(),
                        ))
                    }
                    RelJoin::Left => Ok((
                        self.plan_join(JoinKind::Left, *left, *right, on, lock)?,
                        order.is_empty(),
                    )),
                    RelJoin::Full => Ok((
                        self.plan_join(JoinKind::Full, *left, *right, on, lock)?,
                        order.is_empty(),
                    )),
                }
            }
        }
    }

    /// Whether a lookup join into `right` would be planned.
    fn lookup_possible(&self, right: &Rel, on: &[Expr], lw: usize) -> bool {
        let Rel::Table {
            table, conjuncts, ..
        } = right
        else {
            return false;
        };
        let mut all: Vec<Expr> = on.to_vec();
        all.extend(conjuncts.iter().cloned().map(|c| shift(c, lw as isize)));
        plan_lookup(table.clone(), String::new(), all, lw, LockStrength::Shared).is_some()
    }

    /// Plans `left kind right ON on` (on over `left ++ right`).
    fn plan_join(
        &mut self,
        kind: JoinKind,
        left: Rel,
        right: Rel,
        on: Vec<Expr>,
        lock: LockStrength,
    ) -> Result<Plan> {
        let lw = left.width();
        let (left_plan, _) = self.rel_to_plan(left, &[], None, lock)?;
        if kind != JoinKind::Full {
            if let Rel::Table {
                table,
                alias,
                conjuncts,
            } = &right
            {
                let mut all = on.clone();
                all.extend(conjuncts.iter().cloned().map(|c| shift(c, lw as isize)));
                if let Some((mut scan, residual)) =
                    plan_lookup(table.clone(), alias.clone(), all, lw, lock)
                {
                    // Residual conjuncts over the right row alone filter the scan.
                    let mut join_on = Vec::new();
                    let mut filter = Vec::new();
                    for c in residual {
                        match column_range(&c) {
                            Some((lo, _)) if lo >= lw => filter.push(shift(c, -(lw as isize))),
                            _ => join_on.push(c),
                        }
                    }
                    scan.filter = Expr::and_all(filter);
                    return Ok(Plan::LookupJoin {
                        left: Box::new(left_plan),
                        right: Box::new(scan),
                        kind,
                        on: Expr::and_all(join_on),
                    });
                }
            }
        }
        let (right_plan, _) = self.rel_to_plan(right, &[], None, lock)?;
        // Equalities between the two sides become hash keys.
        let mut left_keys = Vec::new();
        let mut right_keys = Vec::new();
        let mut residual = Vec::new();
        for c in on {
            if let Expr::Compare {
                op: CmpOp::Eq,
                left: l,
                right: r,
            } = &c
            {
                let side = |e: &Expr| match column_range(e) {
                    Some((_, hi)) if hi < lw => Some(true),
                    Some((lo, _)) if lo >= lw => Some(false),
                    _ => None,
                };
                match (side(l), side(r)) {
                    (Some(true), Some(false)) => {
                        left_keys.push((**l).clone());
                        right_keys.push(shift((**r).clone(), -(lw as isize)));
                        continue;
                    }
                    (Some(false), Some(true)) => {
                        left_keys.push((**r).clone());
                        right_keys.push(shift((**l).clone(), -(lw as isize)));
                        continue;
                    }
                    _ => {}
                }
            }
            residual.push(c);
        }
        if !left_keys.is_empty() {
            return Ok(Plan::HashJoin {
                left: Box::new(left_plan),
                right: Box::new(right_plan),
                kind,
                left_keys,
                right_keys,
                on: Expr::and_all(residual),
            });
        }
        Ok(Plan::NestedLoopJoin {
            left: Box::new(left_plan),
            right: Box::new(right_plan),
            kind,
            on: Expr::and_all(residual),
        })
    }
}

/// Renames the first columns to `renames`.
fn rename(names: &mut [String], renames: &[String]) {
    for (n, r) in names.iter_mut().zip(renames) {
        *n = r.clone();
    }
}

/// Remaps a conjunct over `left ++ right` (widths `lw`, `rw`) to
/// `right ++ left`.
fn swap_sides(e: Expr, lw: usize, rw: usize) -> Expr {
    e.transform(&mut |x| {
        Ok(match x {
            Expr::Column(c) if c < lw => Expr::Column(c + rw),
            Expr::Column(c) => Expr::Column(c - lw),
            other => other,
        })
    })
    .expect("remapping cannot fail")
}

/// Projects rows of `right ++ left` back to `left ++ right`.
fn reorder(plan: Plan, lw: usize, rw: usize) -> Plan {
    let names = plan.output_names();
    let exprs: Vec<Expr> = (0..lw)
        .map(|i| Expr::Column(rw + i))
        .chain((0..rw).map(Expr::Column))
        .collect();
    let names = exprs
        .iter()
        .map(|e| match e {
            Expr::Column(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .collect();
    Plan::Project {
        input: Box::new(plan),
        exprs,
        names,
    }
}
