//! Binding queries: `SELECT`, set operations, `VALUES`, `WITH`, `ORDER BY`
//! and `LIMIT`.
//!
//! A `SELECT` becomes, bottom up: the `FROM` tree (with `WHERE` conjuncts
//! pushed into table scans and join conditions), a filter for the conjuncts
//! that could not be pushed (those with subqueries), the aggregation and
//! `HAVING` filter if the query groups, a projection of the select list
//! plus any `ORDER BY` expressions not in it, `DISTINCT`, the sort, the
//! limit, and a final projection that drops the extra sort columns.
//!
//! Aggregation follows PostgreSQL: the select list, `HAVING` and `ORDER BY`
//! are bound over the input rows with aggregate calls collected on the way;
//! then every subexpression equal to a `GROUP BY` expression is replaced by
//! the group column, every aggregate by its result column, and any column
//! reference left over is error 42803 (`column "t.x" must appear in the
//! GROUP BY clause or be used in an aggregate function`). `ORDER BY` accepts
//! output names and ordinals first, then input expressions; `GROUP BY`
//! accepts input columns first, then output names and ordinals.
//!
//! The sort and the limit disappear into the table scan when the query
//! reads one table and the chosen index already yields the requested order
//! (see `planner.rs`); the limit (plus offset) is then pushed into the scan,
//! which stops reading when it has enough rows.

use meridian_error::{Error, Result};
use sqlparser::ast;

use super::from::Rel;
use super::names::{ident, object_name, output_name};
use super::{Binder, Cte, Scope, ScopeColumn};
use crate::cast::CastContext;
use crate::expr::Expr;
use crate::ops::{common_type, ArithOp};
use crate::plan::{OutputColumn, Plan, SetOpKind, SortKey};
use crate::planner::OrderColumn;
use crate::types::{DataType, Value};
use meridian_txn::LockStrength;

/// An `ORDER BY` key before it is placed: an output column or an
/// expression over the input.
enum SortRef {
    /// Select-list column `i`.
    Output(usize),
    /// An expression over the input row.
    Input(Expr),
}

/// What `bind_select` receives from the enclosing query.
struct QueryTail<'q> {
    /// `ORDER BY`.
    order_by: Option<&'q ast::OrderBy>,
    /// `LIMIT`, bound.
    limit: Option<Expr>,
    /// `OFFSET`, bound.
    offset: Option<Expr>,
    /// `FOR UPDATE` / `FOR SHARE`.
    lock: LockStrength,
}

impl Binder<'_> {
    /// Binds a query.
    pub(crate) fn bind_query(&mut self, q: &ast::Query) -> Result<(Plan, Vec<OutputColumn>)> {
        let saved_ctes = self.ctes.len();
        if let Some(with) = &q.with {
            if with.recursive {
                return Err(Error::FeatureNotSupported("WITH RECURSIVE".into()));
            }
            for cte in &with.cte_tables {
                self.ctes.push(Cte {
                    name: ident(&cte.alias.name),
                    query: (*cte.query).clone(),
                    columns: cte.alias.columns.iter().map(|c| ident(&c.name)).collect(),
                });
            }
        }
        let result = self.bind_query_body(q);
        self.ctes.truncate(saved_ctes);
        result
    }

    /// Binds a query whose `WITH` is in place.
    fn bind_query_body(&mut self, q: &ast::Query) -> Result<(Plan, Vec<OutputColumn>)> {
        let (limit, offset) = self.bind_limit(q)?;
        let lock = if q.locks.iter().any(|l| l.lock_type == ast::LockType::Update) {
            LockStrength::Exclusive
        } else {
            LockStrength::Shared
        };
        if let ast::SetExpr::Select(select) = q.body.as_ref() {
            return self.bind_select(
                select,
                QueryTail {
                    order_by: q.order_by.as_ref(),
                    limit,
                    offset,
                    lock,
                },
            );
        }
        let (mut plan, columns) = self.bind_set_expr(&q.body)?;
        if let Some(order_by) = &q.order_by {
            // ORDER BY over the output columns by name, ordinal or expression.
            let scope = Scope {
                columns: columns
                    .iter()
                    .map(|c| ScopeColumn {
                        table: None,
                        name: c.name.clone(),
                        ty: c.ty.clone(),
                        hidden: false,
                    })
                    .collect(),
            };
            let saved = std::mem::replace(&mut self.frame().scope, scope);
            let keys = self.bind_output_order(order_by, &columns);
            self.frame().scope = saved;
            plan = Plan::Sort {
                input: Box::new(plan),
                keys: keys?,
            };
        }
        if limit.is_some() || offset.is_some() {
            plan = Plan::Limit {
                input: Box::new(plan),
                limit,
                offset,
            };
        }
        Ok((plan, columns))
    }

    /// Sort keys over output columns only (for set operations and VALUES).
    fn bind_output_order(
        &mut self,
        order_by: &ast::OrderBy,
        columns: &[OutputColumn],
    ) -> Result<Vec<SortKey>> {
        let ast::OrderByKind::Expressions(items) = &order_by.kind else {
            return Err(Error::FeatureNotSupported("ORDER BY ALL".into()));
        };
        let mut keys = Vec::new();
        for item in items {
            let expr = match ordinal(&item.expr)? {
                Some(i) if i < columns.len() => Expr::Column(i),
                Some(i) => return Err(order_position_error(i)),
                None => self.bind_expr(&item.expr)?.0,
            };
            let (desc, nulls_first) = direction(&item.options);
            keys.push(SortKey {
                expr,
                desc,
                nulls_first,
            });
        }
        Ok(keys)
    }

    /// Binds `LIMIT` and `OFFSET` (and `FETCH FIRST`).
    fn bind_limit(&mut self, q: &ast::Query) -> Result<(Option<Expr>, Option<Expr>)> {
        let bind = |b: &mut Self, e: &ast::Expr, what: &str| -> Result<Option<Expr>> {
            let (x, t) = b.bind_expr(e)?;
            if x.uses_columns() {
                return Err(Error::InvalidStatement(format!(
                    "argument of {what} must not contain variables"
                )));
            }
            if x == Expr::Const(Value::Null) {
                return Ok(None);
            }
            Ok(Some(b.coerce(
                x,
                &t,
                &DataType::Int8,
                CastContext::Assignment,
            )?))
        };
        let (mut limit, mut offset) = (None, None);
        match &q.limit_clause {
            Some(ast::LimitClause::LimitOffset {
                limit: l,
                offset: o,
                ..
            }) => {
                if let Some(l) = l {
                    limit = bind(self, l, "LIMIT")?;
                }
                if let Some(o) = o {
                    offset = bind(self, &o.value, "OFFSET")?;
                }
            }
            Some(ast::LimitClause::OffsetCommaLimit {
                offset: o,
                limit: l,
            }) => {
                limit = bind(self, l, "LIMIT")?;
                offset = bind(self, o, "OFFSET")?;
            }
            None => {}
        }
        if let Some(fetch) = &q.fetch {
            if fetch.percent || fetch.with_ties {
                return Err(Error::FeatureNotSupported(
                    "FETCH ... PERCENT / WITH TIES".into(),
                ));
            }
            limit = match &fetch.quantity {
                Some(n) => bind(self, n, "FETCH")?,
                None => Some(Expr::Const(Value::Int(1))),
            };
        }
        Ok((limit, offset))
    }

    /// Binds the body of a query other than a plain `SELECT`.
    pub(crate) fn bind_set_expr(
        &mut self,
        body: &ast::SetExpr,
    ) -> Result<(Plan, Vec<OutputColumn>)> {
        match body {
            ast::SetExpr::Select(s) => self.bind_select(
                s,
                QueryTail {
                    order_by: None,
                    limit: None,
                    offset: None,
                    lock: LockStrength::Shared,
                },
            ),
            ast::SetExpr::Query(q) => self.bind_query(q),
            ast::SetExpr::Values(v) => self.bind_values(v, None),
            ast::SetExpr::SetOperation {
                left,
                op,
                set_quantifier,
                right,
            } => {
                let kind = match op {
                    ast::SetOperator::Union => SetOpKind::Union,
                    ast::SetOperator::Intersect => SetOpKind::Intersect,
                    ast::SetOperator::Except | ast::SetOperator::Minus => SetOpKind::Except,
                };
                let all = match set_quantifier {
                    ast::SetQuantifier::All => true,
                    ast::SetQuantifier::Distinct | ast::SetQuantifier::None => false,
                    _ => return Err(Error::FeatureNotSupported("UNION BY NAME".into())),
                };
                let (lp, lc) = self.bind_set_expr(left)?;
                let (rp, rc) = self.bind_set_expr(right)?;
                let name = format!("{op}").to_uppercase();
                if lc.len() != rc.len() {
                    return Err(Error::SyntaxError(format!(
                        "each {name} query must have the same number of columns"
                    )));
                }
                let mut types = Vec::with_capacity(lc.len());
                for (l, r) in lc.iter().zip(&rc) {
                    let t = common_type(&l.ty, &r.ty).ok_or_else(|| {
                        Error::DatatypeMismatch(format!(
                            "{name} types {} and {} cannot be matched",
                            l.ty.pg_name(),
                            r.ty.pg_name()
                        ))
                    })?;
                    types.push(if t == DataType::Unknown {
                        DataType::Text
                    } else {
                        t
                    });
                }
                let lp = self.cast_columns(lp, &lc, &types)?;
                let rp = self.cast_columns(rp, &rc, &types)?;
                let columns = lc
                    .into_iter()
                    .zip(types)
                    .map(|(c, ty)| OutputColumn { name: c.name, ty })
                    .collect();
                Ok((
                    Plan::SetOp {
                        op: kind,
                        all,
                        left: Box::new(lp),
                        right: Box::new(rp),
                    },
                    columns,
                ))
            }
            ast::SetExpr::Table(_) => Err(Error::FeatureNotSupported("TABLE statement".into())),
            _ => Err(Error::FeatureNotSupported(
                "data-modifying statements in queries".into(),
            )),
        }
    }

    /// Wraps `plan` in a projection casting its columns to `types` where
    /// they differ.
    fn cast_columns(
        &mut self,
        plan: Plan,
        columns: &[OutputColumn],
        types: &[DataType],
    ) -> Result<Plan> {
        if columns.iter().zip(types).all(|(c, t)| c.ty == *t) {
            return Ok(plan);
        }
        let mut exprs = Vec::with_capacity(columns.len());
        for (i, (c, t)) in columns.iter().zip(types).enumerate() {
            exprs.push(self.coerce(Expr::Column(i), &c.ty, t, CastContext::Implicit)?);
        }
        Ok(Plan::Project {
            input: Box::new(plan),
            exprs,
            names: columns.iter().map(|c| c.name.clone()).collect(),
        })
    }

    /// Binds `VALUES`; with `targets`, each column is coerced to the given
    /// type as on assignment (for `INSERT`), else types are unified.
    pub(crate) fn bind_values(
        &mut self,
        v: &ast::Values,
        targets: Option<&[DataType]>,
    ) -> Result<(Plan, Vec<OutputColumn>)> {
        let width = v.rows.first().map_or(0, |r| r.content.len());
        let mut rows = Vec::with_capacity(v.rows.len());
        for row in &v.rows {
            if row.content.len() != width {
                return Err(Error::SyntaxError(
                    "VALUES lists must all be the same length".into(),
                ));
            }
            let mut bound = Vec::with_capacity(width);
            for e in &row.content {
                bound.push(self.bind_expr(e)?);
            }
            rows.push(bound);
        }
        let mut types = Vec::with_capacity(width);
        for col in 0..width {
            let ty = match targets.and_then(|t| t.get(col)) {
                Some(t) => t.clone(),
                None => {
                    let items: Vec<(Expr, DataType)> = rows
                        .iter()
                        .map(|r| (Expr::Column(0), r[col].1.clone()))
                        .collect();
                    self.unify(&items, "VALUES")?
                }
            };
            types.push(ty);
        }
        let context = if targets.is_some() {
            CastContext::Assignment
        } else {
            CastContext::Implicit
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut exprs = Vec::with_capacity(width);
            for ((e, t), ty) in row.into_iter().zip(&types) {
                exprs.push(self.coerce(e, &t, ty, context)?);
            }
            out.push(exprs);
        }
        let columns = types
            .into_iter()
            .enumerate()
            .map(|(i, ty)| OutputColumn {
                name: format!("column{}", i + 1),
                ty,
            })
            .collect();
        Ok((Plan::Values { rows: out, width }, columns))
    }

    /// Binds a `SELECT` with its `ORDER BY` and `LIMIT`.
    fn bind_select(
        &mut self,
        s: &ast::Select,
        tail: QueryTail,
    ) -> Result<(Plan, Vec<OutputColumn>)> {
        let distinct = match &s.distinct {
            None | Some(ast::Distinct::All) => false,
            Some(ast::Distinct::Distinct) => true,
            Some(ast::Distinct::On(_)) => {
                return Err(Error::FeatureNotSupported("DISTINCT ON".into()))
            }
        };
        let (mut rel, scope) = self.bind_from(&s.from, tail.lock)?;
        self.set_scope(scope);

        // WHERE: pushable conjuncts go into the FROM tree.
        let mut post_filter = Vec::new();
        if let Some(w) = &s.selection {
            let cond = self.bind_condition(w, "WHERE")?;
            // Conjuncts with subqueries may only go into a table scan (join
            // conditions are evaluated without subqueries).
            let single = rel.is_single_table();
            for c in cond.conjuncts() {
                if c.has_subquery() && !single {
                    post_filter.push(c);
                } else if let Some(left) = rel.push_conjunct(c) {
                    post_filter.push(left);
                }
            }
        }

        // The select list, collecting aggregates.
        self.aggregates = Some(Vec::new());
        let mut exprs = Vec::new();
        let mut columns = Vec::new();
        for item in &s.projection {
            self.bind_select_item(item, &mut exprs, &mut columns)?;
        }

        // GROUP BY: input columns, then output names and ordinals.
        let saved_aggs = self.aggregates.take();
        let groups = self.bind_group_by(&s.group_by, &exprs, &columns);
        self.aggregates = saved_aggs;
        let groups = groups?;

        let having = s
            .having
            .as_ref()
            .map(|h| self.bind_condition(h, "HAVING"))
            .transpose()?;
        let mut sort_refs = Vec::new();
        if let Some(order_by) = tail.order_by {
            let ast::OrderByKind::Expressions(items) = &order_by.kind else {
                return Err(Error::FeatureNotSupported("ORDER BY ALL".into()));
            };
            for item in items {
                let r = self.bind_sort_ref(&item.expr, &columns)?;
                let (desc, nulls_first) = direction(&item.options);
                sort_refs.push((r, desc, nulls_first));
            }
        }
        let aggregates = self.aggregates.take().unwrap_or_default();
        let grouped = !aggregates.is_empty() || !groups.is_empty() || having.is_some();

        let (exprs, having, sort_refs) = if grouped {
            let scope = self.scope().clone();
            let rw = |e: Expr| rewrite_grouped(e, &groups, &scope);
            let exprs = exprs.into_iter().map(rw).collect::<Result<Vec<_>>>()?;
            let having = having.map(rw).transpose()?;
            let mut refs = Vec::new();
            for (r, d, n) in sort_refs {
                refs.push((
                    match r {
                        SortRef::Input(e) => SortRef::Input(rw(e)?),
                        o => o,
                    },
                    d,
                    n,
                ));
            }
            (exprs, having, refs)
        } else {
            (exprs, having, sort_refs)
        };

        // Place the sort keys: select-list columns, or extra hidden columns.
        let visible = exprs.len();
        let mut all_exprs = exprs;
        let mut keys = Vec::new();
        for (r, desc, nulls_first) in sort_refs {
            let col = match r {
                SortRef::Output(i) => i,
                SortRef::Input(e) => match all_exprs.iter().position(|x| *x == e) {
                    Some(i) => i,
                    None => {
                        if distinct {
                            return Err(Error::InvalidStatement(
                                "for SELECT DISTINCT, ORDER BY expressions must appear in select list".into(),
                            ));
                        }
                        all_exprs.push(e);
                        all_exprs.len() - 1
                    }
                },
            };
            keys.push(SortKey {
                expr: Expr::Column(col),
                desc,
                nulls_first,
            });
        }

        // The FROM tree, with the requested order and limit for one table.
        let single_table = !grouped && !distinct && post_filter.is_empty() && rel.is_single_table();
        let order: Option<Vec<OrderColumn>> = if single_table {
            keys.iter()
                .map(|k| match (&k.expr, k.desc, k.nulls_first) {
                    (Expr::Column(i), desc, nulls_first) => match &all_exprs[*i] {
                        Expr::Column(c) => Some(OrderColumn {
                            column: *c,
                            desc,
                            nulls_first,
                        }),
                        _ => None,
                    },
                    _ => None,
                })
                .collect()
        } else {
            None
        };
        let scan_limit = if single_table && order.is_some() {
            match (&tail.limit, &tail.offset) {
                (Some(l), None) => Some(l.clone()),
                (Some(l), Some(o)) => Some(Expr::Arith {
                    op: ArithOp::Add,
                    left: Box::new(l.clone()),
                    right: Box::new(o.clone()),
                    ty: DataType::Int8,
                }),
                _ => None,
            }
        } else {
            None
        };
        let (mut plan, ordered) =
            self.rel_to_plan(rel, order.as_deref().unwrap_or(&[]), scan_limit, tail.lock)?;
        let ordered = ordered && order.is_some();
        if let Some(f) = Expr::and_all(post_filter) {
            plan = Plan::Filter {
                input: Box::new(plan),
                predicate: f,
            };
        }
        if grouped {
            plan = Plan::Aggregate {
                input: Box::new(plan),
                group_by: groups,
                aggregates,
            };
            if let Some(h) = having {
                plan = Plan::Filter {
                    input: Box::new(plan),
                    predicate: h,
                };
            }
        }
        let mut names: Vec<String> = columns
            .iter()
            .map(|c: &OutputColumn| c.name.clone())
            .collect();
        names.extend((visible..all_exprs.len()).map(|i| format!("sort{i}")));
        let hidden = all_exprs.len() > visible;
        // Selecting every input column in order needs no projection.
        let identity = all_exprs.len() == plan.output_names().len()
            && all_exprs
                .iter()
                .enumerate()
                .all(|(i, e)| *e == Expr::Column(i));
        if !identity {
            plan = Plan::Project {
                input: Box::new(plan),
                exprs: all_exprs,
                names,
            };
        }
        if distinct {
            plan = Plan::Distinct {
                input: Box::new(plan),
            };
        }
        if !keys.is_empty() && !ordered {
            plan = Plan::Sort {
                input: Box::new(plan),
                keys,
            };
        }
        if tail.limit.is_some() || tail.offset.is_some() {
            plan = Plan::Limit {
                input: Box::new(plan),
                limit: tail.limit,
                offset: tail.offset,
            };
        }
        if hidden {
            plan = Plan::Project {
                input: Box::new(plan),
                exprs: (0..visible).map(Expr::Column).collect(),
                names: columns.iter().map(|c| c.name.clone()).collect(),
            };
        }
        Ok((plan, columns))
    }

    /// Binds one select-list item, expanding wildcards.
    fn bind_select_item(
        &mut self,
        item: &ast::SelectItem,
        exprs: &mut Vec<Expr>,
        columns: &mut Vec<OutputColumn>,
    ) -> Result<()> {
        let mut expand = |b: &mut Self, table: Option<&str>| -> Result<()> {
            let scope = b.scope().clone();
            let mut any = false;
            for (i, c) in scope.columns.iter().enumerate() {
                if c.hidden || table.is_some_and(|t| c.table.as_deref() != Some(t)) {
                    continue;
                }
                any = true;
                exprs.push(Expr::Column(i));
                columns.push(OutputColumn {
                    name: c.name.clone(),
                    ty: c.ty.clone(),
                });
            }
            match table {
                Some(t) if !any && !scope.has_table(t) => Err(Error::UndefinedTable(t.to_string())),
                None if scope.columns.is_empty() => Err(Error::SyntaxError(
                    "SELECT * with no tables specified is not valid".into(),
                )),
                _ => Ok(()),
            }
        };
        match item {
            ast::SelectItem::Wildcard(_) => expand(self, None),
            ast::SelectItem::QualifiedWildcard(kind, _) => match kind {
                ast::SelectItemQualifiedWildcardKind::ObjectName(name) => {
                    let t = object_name(name)?;
                    expand(self, Some(&t))
                }
                ast::SelectItemQualifiedWildcardKind::Expr(_) => Err(Error::FeatureNotSupported(
                    "expression.* in a select list".into(),
                )),
            },
            ast::SelectItem::UnnamedExpr(e) => {
                let (x, ty) = self.bind_expr(e)?;
                exprs.push(x);
                columns.push(OutputColumn {
                    name: output_name(e),
                    ty,
                });
                Ok(())
            }
            ast::SelectItem::ExprWithAlias { expr, alias } => {
                let (x, ty) = self.bind_expr(expr)?;
                exprs.push(x);
                columns.push(OutputColumn {
                    name: ident(alias),
                    ty,
                });
                Ok(())
            }
            ast::SelectItem::ExprWithAliases { .. } => {
                Err(Error::FeatureNotSupported("multiple aliases".into()))
            }
        }
    }

    /// Binds `GROUP BY` items.
    fn bind_group_by(
        &mut self,
        group_by: &ast::GroupByExpr,
        exprs: &[Expr],
        columns: &[OutputColumn],
    ) -> Result<Vec<Expr>> {
        let items = match group_by {
            ast::GroupByExpr::Expressions(items, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(Error::FeatureNotSupported("GROUP BY modifiers".into()));
                }
                items
            }
            ast::GroupByExpr::All(_) => {
                return Err(Error::FeatureNotSupported("GROUP BY ALL".into()))
            }
        };
        let mut groups = Vec::with_capacity(items.len());
        for item in items {
            let e = if let Some(i) = ordinal(item)? {
                let e = exprs.get(i).ok_or_else(|| {
                    Error::InvalidStatement(format!(
                        "GROUP BY position {} is not in select list",
                        i + 1
                    ))
                })?;
                if e.any(&|x| matches!(x, Expr::Agg(_))) {
                    return Err(Error::GroupingError(
                        "aggregate functions are not allowed in GROUP BY".into(),
                    ));
                }
                e.clone()
            } else {
                match self.bind_expr(item) {
                    Ok((e, _)) => e,
                    Err(err @ Error::UndefinedColumn(_)) => {
                        // An output column name, if the input has no such column.
                        let name = match item {
                            ast::Expr::Identifier(id) => Some(ident(id)),
                            _ => None,
                        };
                        match name.and_then(|n| columns.iter().position(|c| c.name == n)) {
                            Some(i) if !exprs[i].any(&|x| matches!(x, Expr::Agg(_))) => {
                                exprs[i].clone()
                            }
                            _ => return Err(err),
                        }
                    }
                    Err(e) => return Err(e),
                }
            };
            if !groups.contains(&e) {
                groups.push(e);
            }
        }
        Ok(groups)
    }

    /// Resolves an `ORDER BY` item of a `SELECT`.
    fn bind_sort_ref(&mut self, e: &ast::Expr, columns: &[OutputColumn]) -> Result<SortRef> {
        if let Some(i) = ordinal(e)? {
            if i >= columns.len() {
                return Err(order_position_error(i));
            }
            return Ok(SortRef::Output(i));
        }
        if let ast::Expr::Identifier(id) = e {
            let name = ident(id);
            let matches: Vec<usize> = columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.name == name)
                .map(|(i, _)| i)
                .collect();
            if let Some(&i) = matches.first() {
                return Ok(SortRef::Output(i));
            }
        }
        Ok(SortRef::Input(self.bind_expr(e)?.0))
    }
}

/// Replaces group expressions and aggregates by the aggregation's output
/// columns; a remaining column reference is 42803.
fn rewrite_grouped(e: Expr, groups: &[Expr], scope: &Scope) -> Result<Expr> {
    if let Some(i) = groups.iter().position(|g| *g == e) {
        return Ok(Expr::Column(i));
    }
    match e {
        Expr::Agg(k) => Ok(Expr::Column(groups.len() + k)),
        Expr::Column(c) => {
            let col = &scope.columns[c];
            let name = match &col.table {
                Some(t) => format!("{t}.{}", col.name),
                None => col.name.clone(),
            };
            Err(Error::GroupingError(format!(
                "column \"{name}\" must appear in the GROUP BY clause or be used in an aggregate function"
            )))
        }
        other => other.map_children(&mut |c| rewrite_grouped(c, groups, scope)),
    }
}

/// An integer literal used as a position (1-based); returns it 0-based.
fn ordinal(e: &ast::Expr) -> Result<Option<usize>> {
    if let ast::Expr::Value(v) = e {
        if let ast::Value::Number(n, _) = &v.value {
            return match n.parse::<usize>() {
                Ok(i) if i >= 1 => Ok(Some(i - 1)),
                _ => Err(order_position_error(0)),
            };
        }
    }
    Ok(None)
}

/// 42P10 for an ORDER BY position outside the select list.
fn order_position_error(i: usize) -> Error {
    Error::InvalidStatement(format!("ORDER BY position {} is not in select list", i + 1))
}

/// `(descending, nulls first)` with PostgreSQL's defaults.
fn direction(options: &ast::OrderByOptions) -> (bool, bool) {
    let desc = matches!(options.sort, Some(ast::OrderBySort::Desc));
    (desc, options.nulls_first.unwrap_or(desc))
}

impl Rel {
    /// Whether the `FROM` clause is one table.
    pub(crate) fn is_single_table(&self) -> bool {
        matches!(self, Rel::Table { .. })
    }
}
