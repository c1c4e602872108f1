//! `EXPLAIN`: the plan tree as text, one line per row of the `QUERY PLAN`
//! column.
//!
//! Every operator is one line, children indented below it with tree
//! branches. Table accesses show what the planner chose and why it is
//! cheap:
//!
//! ```text
//! Get t@primary key=(3)                      point lookup on the full key
//! Get t@primary as x key=(3)                 the same, `t` is aliased `x` in the query
//! Get t@primary keys=(1), (3)                several points (pk IN (...))
//! Scan t@primary spans=[/1 - /5]             primary key range
//! Scan t@primary spans=(/1/5 - /1]           composite prefix a = 1 AND b > 5
//! Scan t@primary spans=FULL                  no usable key predicate
//! IndexScan t@t_b_idx spans=[/7 - /7]        secondary index, then rows by pk
//! IndexGet t@t_b_key key=(7)                 unique secondary index point
//! ```
//!
//! followed by `filter=...` (the residual predicate), `reverse` (descending
//! key order, e.g. for `ORDER BY pk DESC`), `limit=n` (a limit pushed into
//! the scan) and `lock=exclusive` (`FOR UPDATE`, and the read part of
//! `UPDATE`/`DELETE`). A span is written like CockroachDB's: `/` before
//! each key column value, `[`/`]` for inclusive and `(`/`)` for exclusive
//! bounds, nothing after `-` for an open end. Subquery plans follow the main
//! tree.

use crate::expr::{Expr, SubqueryKind};
use crate::plan::{
    AggCall, AggFunc, ConflictAction, JoinKind, Plan, Scan, SetOpKind, SortKey, Statement,
};
use crate::types::{DataType, Value};

/// The lines of `EXPLAIN` for a statement.
pub(crate) fn explain(stmt: &Statement) -> Vec<String> {
    let mut out = Vec::new();
    node(&stmt.plan, "", "", &mut out);
    for (i, sub) in stmt.subqueries.iter().enumerate() {
        out.push(format!("subquery {i}"));
        node(sub, "└── ", "    ", &mut out);
    }
    out
}

/// Prints `plan` with `first` before its line and `rest` before its
/// children's lines.
fn node(plan: &Plan, first: &str, rest: &str, out: &mut Vec<String>) {
    out.push(format!("{first}{}", describe(plan)));
    let children: Vec<&Plan> = match plan {
        Plan::Values { .. } | Plan::Scan(_) => vec![],
        Plan::Filter { input, .. }
        | Plan::Project { input, .. }
        | Plan::Aggregate { input, .. }
        | Plan::Distinct { input }
        | Plan::Sort { input, .. }
        | Plan::Limit { input, .. } => vec![input],
        Plan::NestedLoopJoin { left, right, .. } | Plan::HashJoin { left, right, .. } => {
            vec![left, right]
        }
        Plan::SetOp { left, right, .. } => vec![left, right],
        Plan::LookupJoin { left, .. } => vec![left],
        Plan::Insert(i) => vec![&i.source],
        Plan::Update(u) => vec![&u.source],
        Plan::Delete(d) => vec![&d.source],
    };
    let n = children.len();
    for (i, child) in children.into_iter().enumerate() {
        let last = i + 1 == n;
        let (branch, indent) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        node(
            child,
            &format!("{rest}{branch}"),
            &format!("{rest}{indent}"),
            out,
        );
    }
}

/// One operator's line.
fn describe(plan: &Plan) -> String {
    match plan {
        Plan::Values { rows, .. } => {
            if rows.len() == 1 && rows[0].is_empty() {
                "Values (one empty row)".into()
            } else {
                format!(
                    "Values {} row{}",
                    rows.len(),
                    if rows.len() == 1 { "" } else { "s" }
                )
            }
        }
        Plan::Scan(scan) => describe_scan(scan, &[]),
        Plan::Filter { input, predicate } => {
            format!("Filter {}", fmt_expr(predicate, &input.output_names()))
        }
        Plan::Project { input, exprs, .. } => {
            let names = input.output_names();
            let list: Vec<String> = exprs.iter().map(|e| fmt_expr(e, &names)).collect();
            format!("Project {}", list.join(", "))
        }
        Plan::NestedLoopJoin { kind, on, .. } => {
            let names = plan.output_names();
            format!(
                "NestedLoopJoin {}{}",
                kind_name(*kind),
                on.as_ref()
                    .map(|e| format!(" on {}", fmt_expr(e, &names)))
                    .unwrap_or_default()
            )
        }
        Plan::HashJoin {
            left,
            right,
            kind,
            left_keys,
            right_keys,
            on,
        } => {
            let ln = left.output_names();
            let rn = right.output_names();
            let keys: Vec<String> = left_keys
                .iter()
                .zip(right_keys)
                .map(|(l, r)| format!("{} = {}", fmt_expr(l, &ln), fmt_expr(r, &rn)))
                .collect();
            let names = plan.output_names();
            format!(
                "HashJoin {} keys=({}){}",
                kind_name(*kind),
                keys.join(", "),
                on.as_ref()
                    .map(|e| format!(" filter={}", fmt_expr(e, &names)))
                    .unwrap_or_default()
            )
        }
        Plan::LookupJoin {
            left,
            right,
            kind,
            on,
        } => {
            let names = plan.output_names();
            format!(
                "LookupJoin {} {}{}",
                kind_name(*kind),
                describe_scan(right, &left.output_names()),
                on.as_ref()
                    .map(|e| format!(" on {}", fmt_expr(e, &names)))
                    .unwrap_or_default()
            )
        }
        Plan::Aggregate {
            input,
            group_by,
            aggregates,
        } => {
            let names = input.output_names();
            let groups: Vec<String> = group_by.iter().map(|e| fmt_expr(e, &names)).collect();
            let aggs: Vec<String> = aggregates.iter().map(|a| fmt_agg(a, &names)).collect();
            let mut s = "Aggregate".to_string();
            if !groups.is_empty() {
                s.push_str(&format!(" group=({})", groups.join(", ")));
            }
            if !aggs.is_empty() {
                s.push_str(&format!(" aggs=({})", aggs.join(", ")));
            }
            s
        }
        Plan::Distinct { .. } => "Distinct".into(),
        Plan::Sort { input, keys } => {
            let names = input.output_names();
            let list: Vec<String> = keys.iter().map(|k| fmt_sort_key(k, &names)).collect();
            format!("Sort {}", list.join(", "))
        }
        Plan::Limit { limit, offset, .. } => {
            let mut s = "Limit".to_string();
            if let Some(l) = limit {
                s.push_str(&format!(" {}", fmt_expr(l, &[])));
            }
            if let Some(o) = offset {
                s.push_str(&format!(" offset {}", fmt_expr(o, &[])));
            }
            s
        }
        Plan::SetOp { op, all, .. } => {
            let name = match op {
                SetOpKind::Union => "Union",
                SetOpKind::Intersect => "Intersect",
                SetOpKind::Except => "Except",
            };
            format!("{name}{}", if *all { " all" } else { "" })
        }
        Plan::Insert(i) => {
            let mut s = format!("Insert {}", i.table.name);
            if let Some(c) = &i.on_conflict {
                s.push_str(match c.action {
                    ConflictAction::Nothing => " on conflict do nothing",
                    ConflictAction::Update { .. } => " on conflict do update",
                });
            }
            s
        }
        Plan::Update(u) => {
            let names: Vec<String> = u.table.columns.iter().map(|c| c.name.clone()).collect();
            let sets: Vec<String> = u
                .assignments
                .iter()
                .map(|(pos, e)| format!("{} = {}", names[*pos], fmt_expr(e, &names)))
                .collect();
            format!("Update {} set {}", u.table.name, sets.join(", "))
        }
        Plan::Delete(d) => format!("Delete {}", d.table.name),
    }
}

/// The name of a join kind.
fn kind_name(kind: JoinKind) -> &'static str {
    match kind {
        JoinKind::Inner => "inner",
        JoinKind::Left => "left",
        JoinKind::Full => "full",
    }
}

/// A table access; `key_names` names the columns span expressions may read
/// (the outer row of a lookup join).
pub(crate) fn describe_scan(scan: &Scan, key_names: &[String]) -> String {
    let index = scan.index();
    let mut target = format!(
        "{}@{}",
        scan.table.name,
        if scan.is_primary() {
            "primary"
        } else {
            &index.name
        }
    );
    if scan.alias != scan.table.name && !scan.alias.is_empty() {
        target.push_str(&format!(" as {}", scan.alias));
    }
    let mut s = if scan.is_point_lookup() {
        let points = cross_product(&scan.spans.eq, key_names);
        let op = if scan.is_primary() { "Get" } else { "IndexGet" };
        if points.len() == 1 {
            format!("{op} {target} key=({})", points[0].join(", "))
        } else {
            let list: Vec<String> = points
                .iter()
                .map(|p| format!("({})", p.join(", ")))
                .collect();
            format!("{op} {target} keys={}", list.join(", "))
        }
    } else {
        let op = if scan.is_primary() {
            "Scan"
        } else {
            "IndexScan"
        };
        format!("{op} {target} spans={}", fmt_spans(scan, key_names))
    };
    if let Some(f) = &scan.filter {
        let names = scan.column_names();
        s.push_str(&format!(" filter={}", fmt_expr(f, &names)));
    }
    if scan.reverse {
        s.push_str(" reverse");
    }
    if let Some(l) = &scan.limit {
        s.push_str(&format!(" limit={}", fmt_expr(l, &[])));
    }
    if scan.lock == meridian_txn::LockStrength::Exclusive {
        s.push_str(" lock=exclusive");
    }
    s
}

/// Every combination of the alternatives of each equality column.
fn cross_product(eq: &[Vec<Expr>], names: &[String]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![vec![]];
    for alternatives in eq {
        let mut next = Vec::new();
        for prefix in &out {
            for alt in alternatives {
                let mut p = prefix.clone();
                p.push(match alt {
                    // The values of `IN (SELECT ...)`.
                    Expr::Subquery {
                        id,
                        kind: SubqueryKind::Quantified { .. },
                        ..
                    } => format!("ANY(subquery {id})"),
                    other => fmt_expr(other, names),
                });
                next.push(p);
            }
        }
        out = next;
    }
    out
}

/// The spans of a range scan, CockroachDB style.
fn fmt_spans(scan: &Scan, names: &[String]) -> String {
    let spans = &scan.spans;
    if spans.is_full() {
        return "FULL".into();
    }
    let prefixes = cross_product(&spans.eq, names);
    let key = |parts: &[String]| parts.iter().map(|p| format!("/{p}")).collect::<String>();
    let list: Vec<String> = prefixes
        .iter()
        .map(|p| {
            let mut start = p.clone();
            let mut end = p.clone();
            let mut open = '[';
            let mut close = ']';
            if let Some((e, inclusive)) = &spans.lower {
                start.push(fmt_expr(e, names));
                if !inclusive {
                    open = '(';
                }
            }
            if let Some((e, inclusive)) = &spans.upper {
                end.push(fmt_expr(e, names));
                if !inclusive {
                    close = ')';
                }
            }
            format!("{open}{} - {}{close}", key(&start), key(&end))
        })
        .collect();
    list.join(" ")
}

/// A sort key.
fn fmt_sort_key(k: &SortKey, names: &[String]) -> String {
    let mut s = fmt_expr(&k.expr, names);
    if k.desc {
        s.push_str(" DESC");
    }
    if k.nulls_first != k.desc {
        s.push_str(if k.nulls_first {
            " NULLS FIRST"
        } else {
            " NULLS LAST"
        });
    }
    s
}

/// An aggregate call.
pub(crate) fn fmt_agg(a: &AggCall, names: &[String]) -> String {
    if a.func == AggFunc::CountStar {
        return "count(*)".into();
    }
    let args: Vec<String> = a.args.iter().map(|e| fmt_expr(e, names)).collect();
    format!(
        "{}({}{})",
        a.func.name(),
        if a.distinct { "DISTINCT " } else { "" },
        args.join(", ")
    )
}

/// A constant as SQL.
fn fmt_const(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => crate::text::format_float(*f, false),
        Value::Numeric(d) => d.to_string(),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Bytes(b) => format!("'{}'", crate::text::format_bytea(b)),
        Value::Date(_) => format!("'{}'", v.to_pg_text(&DataType::Date).unwrap_or_default()),
        Value::Timestamp(_) => format!(
            "'{}'",
            v.to_pg_text(&DataType::Timestamp).unwrap_or_default()
        ),
        Value::TimestampTz(_) => format!(
            "'{}'",
            v.to_pg_text(&DataType::TimestampTz).unwrap_or_default()
        ),
        Value::Interval(_) => format!(
            "'{}'",
            v.to_pg_text(&DataType::Interval).unwrap_or_default()
        ),
    }
}

/// An expression as SQL-like text, naming columns with `names`.
pub(crate) fn fmt_expr(e: &Expr, names: &[String]) -> String {
    let f = |e: &Expr| fmt_expr(e, names);
    let list = |items: &[Expr]| items.iter().map(f).collect::<Vec<_>>().join(", ");
    match e {
        Expr::Const(v) => fmt_const(v),
        Expr::Column(i) => names.get(*i).cloned().unwrap_or_else(|| format!("#{i}")),
        Expr::Outer(i) => format!("outer.{i}"),
        Expr::Param(i) => format!("${}", i + 1),
        Expr::Cast { expr, to, .. } => format!("{}::{}", f(expr), to.pg_name()),
        Expr::Arith {
            op, left, right, ..
        } => format!("({} {} {})", f(left), op.symbol(), f(right)),
        Expr::Neg { expr, .. } => format!("-{}", f(expr)),
        Expr::Compare { op, left, right } => format!("({} {} {})", f(left), op.symbol(), f(right)),
        Expr::And(items) => format!(
            "({})",
            items.iter().map(f).collect::<Vec<_>>().join(" AND ")
        ),
        Expr::Or(items) => format!("({})", items.iter().map(f).collect::<Vec<_>>().join(" OR ")),
        Expr::Not(e) => format!("NOT {}", f(e)),
        Expr::IsNull { expr, negated } => format!(
            "({} IS {}NULL)",
            f(expr),
            if *negated { "NOT " } else { "" }
        ),
        Expr::IsTruth {
            expr,
            value,
            negated,
        } => format!(
            "({} IS {}{})",
            f(expr),
            if *negated { "NOT " } else { "" },
            match value {
                Some(true) => "TRUE",
                Some(false) => "FALSE",
                None => "UNKNOWN",
            }
        ),
        Expr::IsDistinct {
            left,
            right,
            negated,
        } => format!(
            "({} IS {}DISTINCT FROM {})",
            f(left),
            if *negated { "NOT " } else { "" },
            f(right)
        ),
        Expr::InList {
            expr,
            list: items,
            negated,
        } => {
            format!(
                "({} {}IN ({}))",
                f(expr),
                if *negated { "NOT " } else { "" },
                list(items)
            )
        }
        Expr::Like {
            expr,
            pattern,
            case_insensitive,
            negated,
            ..
        } => format!(
            "({} {}{} {})",
            f(expr),
            if *negated { "NOT " } else { "" },
            if *case_insensitive { "ILIKE" } else { "LIKE" },
            f(pattern)
        ),
        Expr::Case { whens, else_result } => {
            let mut s = "CASE".to_string();
            for (c, r) in whens {
                s.push_str(&format!(" WHEN {} THEN {}", f(c), f(r)));
            }
            s.push_str(&format!(" ELSE {} END", f(else_result)));
            s
        }
        Expr::Coalesce(items) => format!("coalesce({})", list(items)),
        Expr::NullIf(a, b) => format!("nullif({}, {})", f(a), f(b)),
        Expr::MinMax { args, greatest } => {
            format!(
                "{}({})",
                if *greatest { "greatest" } else { "least" },
                list(args)
            )
        }
        Expr::Func { func, args, .. } => {
            format!("{}({})", format!("{func:?}").to_lowercase(), list(args))
        }
        Expr::Subquery { id, kind, .. } => match kind {
            SubqueryKind::Scalar => format!("(subquery {id})"),
            SubqueryKind::Exists => format!("EXISTS(subquery {id})"),
            SubqueryKind::Quantified { expr, op, all } => format!(
                "({} {} {}(subquery {id}))",
                f(expr),
                op.symbol(),
                if *all { "ALL" } else { "ANY" }
            ),
        },
        Expr::Agg(i) => format!("agg#{i}"),
    }
}
