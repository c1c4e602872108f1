//! Bound scalar expressions and their evaluation.
//!
//! The binder turns sqlparser's syntax tree into an [`Expr`]: names are
//! resolved to positions ([`Expr::Column`] indexes the operator's input row,
//! [`Expr::Outer`] the values a correlated subquery receives from its outer
//! row, [`Expr::Param`] the statement's `$n` parameters), every operator and
//! function is resolved to its typed implementation, and every implicit
//! conversion is an explicit [`Expr::Cast`]. Evaluation therefore never
//! looks at names or types again; it is a plain recursive walk over a row.
//!
//! SQL's three-valued logic is implemented here: `AND` is false if any side
//! is false, else unknown if any side is unknown; `OR` the dual; `NOT
//! unknown` is unknown; comparisons with `NULL` are unknown; `x IN (...)`
//! is true if some element equals `x`, else unknown if some element (or `x`)
//! is `NULL`, else false. A `WHERE` keeps a row only when its condition is
//! true.
//!
//! Subqueries are evaluated *before* the expression that contains them: the
//! executor runs each [`Expr::Subquery`] for the current row (uncorrelated
//! ones once per statement), stores the outcome in the [`Env`], and
//! evaluation reads it from there. That keeps evaluation synchronous while
//! subqueries read from storage asynchronously.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use meridian_error::{Error, Result};

use crate::cast::{cast, CastContext};
use crate::functions::{eval_function, Func};
use crate::ops::{arith, like, negate, ArithOp};
use crate::types::{DataType, Value};

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CmpOp {
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

impl CmpOp {
    /// The operator's SQL spelling.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "<>",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
        }
    }

    /// The operator with its operands swapped (`a < b` is `b > a`).
    pub(crate) fn flip(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::LtEq => CmpOp::GtEq,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::GtEq => CmpOp::LtEq,
            other => other,
        }
    }

    /// Whether an ordering satisfies the operator.
    pub(crate) fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Eq => ord == Equal,
            CmpOp::NotEq => ord != Equal,
            CmpOp::Lt => ord == Less,
            CmpOp::LtEq => ord != Greater,
            CmpOp::Gt => ord == Greater,
            CmpOp::GtEq => ord != Less,
        }
    }
}

/// What a subquery expression asks of its subquery.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SubqueryKind {
    /// `(SELECT x ...)`: the single value (NULL for no rows, 21000 for more).
    Scalar,
    /// `EXISTS (...)`.
    Exists,
    /// `x op ANY (...)` (and `x IN (...)`), or `x op ALL (...)`.
    Quantified {
        /// The left operand, in the containing row.
        expr: Box<Expr>,
        /// The comparison.
        op: CmpOp,
        /// `ALL` rather than `ANY`.
        all: bool,
    },
}

/// A bound scalar expression.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Expr {
    /// A constant.
    Const(Value),
    /// Column `i` of the input row.
    Column(usize),
    /// Value `i` passed to a correlated subquery from its outer row.
    Outer(usize),
    /// Statement parameter `$i+1`.
    Param(usize),
    /// A conversion.
    Cast {
        /// The converted expression.
        expr: Box<Expr>,
        /// Its type.
        from: DataType,
        /// The target type.
        to: DataType,
        /// The context, which decides truncation versus error.
        context: CastContext,
    },
    /// Arithmetic or concatenation; operands have the resolved types.
    Arith {
        /// The operator.
        op: ArithOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
        /// The result type (decides overflow checks).
        ty: DataType,
    },
    /// Unary minus.
    Neg {
        /// The operand.
        expr: Box<Expr>,
        /// Its type.
        ty: DataType,
    },
    /// A comparison of two operands of one type.
    Compare {
        /// The operator.
        op: CmpOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// Conjunction (three-valued).
    And(Vec<Expr>),
    /// Disjunction (three-valued).
    Or(Vec<Expr>),
    /// Negation (three-valued).
    Not(Box<Expr>),
    /// `IS [NOT] NULL`.
    IsNull {
        /// The tested expression.
        expr: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `IS [NOT] TRUE | FALSE | UNKNOWN`.
    IsTruth {
        /// The tested expression.
        expr: Box<Expr>,
        /// `Some(b)` for TRUE/FALSE, `None` for UNKNOWN.
        value: Option<bool>,
        /// `IS NOT ...`.
        negated: bool,
    },
    /// `IS [NOT] DISTINCT FROM`.
    IsDistinct {
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
        /// `IS NOT DISTINCT FROM`.
        negated: bool,
    },
    /// `x [NOT] IN (a, b, ...)`.
    InList {
        /// The tested expression.
        expr: Box<Expr>,
        /// The candidates (same type as `expr`).
        list: Vec<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `[NOT] LIKE` / `ILIKE`.
    Like {
        /// The string.
        expr: Box<Expr>,
        /// The pattern.
        pattern: Box<Expr>,
        /// The escape character (default backslash).
        escape: Option<Box<Expr>>,
        /// `ILIKE`.
        case_insensitive: bool,
        /// `NOT LIKE`.
        negated: bool,
    },
    /// A searched `CASE` (a simple `CASE` is bound to one).
    Case {
        /// `(condition, result)` pairs.
        whens: Vec<(Expr, Expr)>,
        /// The `ELSE` result (NULL if absent).
        else_result: Box<Expr>,
    },
    /// `COALESCE(...)`: the first non-null argument.
    Coalesce(Vec<Expr>),
    /// `NULLIF(a, b)`.
    NullIf(Box<Expr>, Box<Expr>),
    /// `GREATEST(...)` or `LEAST(...)`, ignoring NULLs.
    MinMax {
        /// The arguments.
        args: Vec<Expr>,
        /// `GREATEST` rather than `LEAST`.
        greatest: bool,
    },
    /// A scalar function call.
    Func {
        /// The function.
        func: Func,
        /// Its arguments, cast to the parameter types.
        args: Vec<Expr>,
        /// The result type.
        ty: DataType,
    },
    /// A subquery; its outcome for the current row is looked up in the
    /// [`Env`] by `id`.
    Subquery {
        /// The statement-wide subquery number.
        id: usize,
        /// What is asked of it.
        kind: SubqueryKind,
        /// Values from the current row that the subquery reads as
        /// [`Expr::Outer`].
        args: Vec<Expr>,
    },
    /// An aggregate's result; only exists while binding.
    Agg(usize),
}

/// The outcome of a subquery for one row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SubqueryValue {
    /// A scalar subquery's value.
    Scalar(Value),
    /// Whether `EXISTS` found a row.
    Exists(bool),
    /// The first column of every row (for `IN`, `ANY`, `ALL`).
    Column(Vec<Value>),
}

/// What evaluation can see besides the row.
pub(crate) struct Env<'a> {
    /// The statement's parameters.
    pub params: &'a [Value],
    /// Values passed in from the outer row of a correlated subquery.
    pub outer: &'a [Value],
    /// Subquery outcomes for the current row, by subquery id.
    pub subqueries: &'a HashMap<usize, SubqueryValue>,
    /// The transaction's timestamp, the value of `now()`.
    pub now: DateTime<Utc>,
}

impl Expr {
    /// Evaluates the expression over `row`.
    pub(crate) fn eval(&self, row: &[Value], env: &Env) -> Result<Value> {
        Ok(match self {
            Expr::Const(v) => v.clone(),
            Expr::Column(i) => row
                .get(*i)
                .cloned()
                .ok_or_else(|| Error::Internal(format!("column {i} out of range")))?,
            Expr::Outer(i) => env
                .outer
                .get(*i)
                .cloned()
                .ok_or_else(|| Error::Internal(format!("outer value {i} missing")))?,
            Expr::Param(i) => {
                env.params.get(*i).cloned().ok_or_else(|| {
                    Error::InvalidInput(format!("there is no parameter ${}", i + 1))
                })?
            }
            Expr::Cast {
                expr,
                from,
                to,
                context,
            } => cast(expr.eval(row, env)?, from, to, *context)?,
            Expr::Arith {
                op,
                left,
                right,
                ty,
            } => arith(*op, left.eval(row, env)?, right.eval(row, env)?, ty)?,
            Expr::Neg { expr, ty } => negate(expr.eval(row, env)?, ty)?,
            Expr::Compare { op, left, right } => {
                let l = left.eval(row, env)?;
                let r = right.eval(row, env)?;
                Value::from_bool_opt(l.sql_cmp(&r).map(|o| op.holds(o)))
            }
            Expr::And(items) => {
                let mut unknown = false;
                for item in items {
                    match item.eval(row, env)? {
                        Value::Bool(false) => return Ok(Value::Bool(false)),
                        Value::Null => unknown = true,
                        _ => {}
                    }
                }
                if unknown {
                    Value::Null
                } else {
                    Value::Bool(true)
                }
            }
            Expr::Or(items) => {
                let mut unknown = false;
                for item in items {
                    match item.eval(row, env)? {
                        Value::Bool(true) => return Ok(Value::Bool(true)),
                        Value::Null => unknown = true,
                        _ => {}
                    }
                }
                if unknown {
                    Value::Null
                } else {
                    Value::Bool(false)
                }
            }
            Expr::Not(e) => match e.eval(row, env)? {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Null,
            },
            Expr::IsNull { expr, negated } => {
                Value::Bool(expr.eval(row, env)?.is_null() != *negated)
            }
            Expr::IsTruth {
                expr,
                value,
                negated,
            } => {
                let v = match expr.eval(row, env)? {
                    Value::Bool(b) => Some(b),
                    _ => None,
                };
                Value::Bool((v == *value) != *negated)
            }
            Expr::IsDistinct {
                left,
                right,
                negated,
            } => {
                let l = left.eval(row, env)?;
                let r = right.eval(row, env)?;
                let distinct = match (l.is_null(), r.is_null()) {
                    (true, true) => false,
                    (true, false) | (false, true) => true,
                    _ => l.compare(&r) != std::cmp::Ordering::Equal,
                };
                Value::Bool(distinct != *negated)
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let v = expr.eval(row, env)?;
                let mut candidates = Vec::with_capacity(list.len());
                for item in list {
                    candidates.push(item.eval(row, env)?);
                }
                in_values(&v, candidates.iter(), CmpOp::Eq, false, *negated)
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                case_insensitive,
                negated,
            } => {
                let s = expr.eval(row, env)?;
                let p = pattern.eval(row, env)?;
                let esc = match escape {
                    Some(e) => e.eval(row, env)?,
                    None => Value::Text("\\".into()),
                };
                match (s, p, esc) {
                    (Value::Text(s), Value::Text(p), Value::Text(e)) => {
                        let esc = match e.chars().count() {
                            0 => None,
                            1 => e.chars().next(),
                            _ => {
                                return Err(Error::InvalidInput(
                                    "invalid escape string: escape string must be empty or one character".into(),
                                ))
                            }
                        };
                        let matched = if *case_insensitive {
                            like(&s.to_lowercase(), &p.to_lowercase(), esc)?
                        } else {
                            like(&s, &p, esc)?
                        };
                        Value::Bool(matched != *negated)
                    }
                    _ => Value::Null,
                }
            }
            Expr::Case { whens, else_result } => {
                for (cond, result) in whens {
                    if let Value::Bool(true) = cond.eval(row, env)? {
                        return result.eval(row, env);
                    }
                }
                else_result.eval(row, env)?
            }
            Expr::Coalesce(args) => {
                for arg in args {
                    let v = arg.eval(row, env)?;
                    if !v.is_null() {
                        return Ok(v);
                    }
                }
                Value::Null
            }
            Expr::NullIf(a, b) => {
                let a = a.eval(row, env)?;
                let b = b.eval(row, env)?;
                if a.sql_cmp(&b) == Some(std::cmp::Ordering::Equal) {
                    Value::Null
                } else {
                    a
                }
            }
            Expr::MinMax { args, greatest } => {
                let mut best = Value::Null;
                for arg in args {
                    let v = arg.eval(row, env)?;
                    if v.is_null() {
                        continue;
                    }
                    let better = best.is_null() || {
                        let ord = v.compare(&best);
                        if *greatest {
                            ord.is_gt()
                        } else {
                            ord.is_lt()
                        }
                    };
                    if better {
                        best = v;
                    }
                }
                best
            }
            Expr::Func { func, args, ty } => {
                let mut values = Vec::with_capacity(args.len());
                for arg in args {
                    values.push(arg.eval(row, env)?);
                }
                eval_function(*func, values, ty, env)?
            }
            Expr::Subquery { id, kind, .. } => {
                let outcome = env
                    .subqueries
                    .get(id)
                    .ok_or_else(|| Error::Internal(format!("subquery {id} not evaluated")))?;
                match (kind, outcome) {
                    (SubqueryKind::Scalar, SubqueryValue::Scalar(v)) => v.clone(),
                    (SubqueryKind::Exists, SubqueryValue::Exists(b)) => Value::Bool(*b),
                    (SubqueryKind::Quantified { expr, op, all }, SubqueryValue::Column(values)) => {
                        let v = expr.eval(row, env)?;
                        in_values(&v, values.iter(), *op, *all, false)
                    }
                    _ => return Err(Error::Internal(format!("subquery {id} outcome mismatch"))),
                }
            }
            Expr::Agg(i) => return Err(Error::Internal(format!("unbound aggregate {i}"))),
        })
    }

    /// Evaluates a condition: true only for a true result (not NULL).
    pub(crate) fn eval_bool(&self, row: &[Value], env: &Env) -> Result<bool> {
        Ok(matches!(self.eval(row, env)?, Value::Bool(true)))
    }

    /// Calls `f` on every direct child expression.
    pub(crate) fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Const(_) | Expr::Column(_) | Expr::Outer(_) | Expr::Param(_) | Expr::Agg(_) => {
                vec![]
            }
            Expr::Cast { expr, .. } | Expr::Neg { expr, .. } | Expr::Not(expr) => vec![expr],
            Expr::IsNull { expr, .. } | Expr::IsTruth { expr, .. } => vec![expr],
            Expr::Arith { left, right, .. }
            | Expr::Compare { left, right, .. }
            | Expr::IsDistinct { left, right, .. } => vec![left, right],
            Expr::NullIf(a, b) => vec![a, b],
            Expr::And(items) | Expr::Or(items) | Expr::Coalesce(items) => items.iter().collect(),
            Expr::MinMax { args, .. } | Expr::Func { args, .. } => args.iter().collect(),
            Expr::InList { expr, list, .. } => {
                std::iter::once(&**expr).chain(list.iter()).collect()
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                ..
            } => {
                let mut v: Vec<&Expr> = vec![expr, pattern];
                if let Some(e) = escape {
                    v.push(e);
                }
                v
            }
            Expr::Case { whens, else_result } => whens
                .iter()
                .flat_map(|(c, r)| [c, r])
                .chain(std::iter::once(&**else_result))
                .collect(),
            Expr::Subquery { kind, args, .. } => {
                let mut v: Vec<&Expr> = args.iter().collect();
                if let SubqueryKind::Quantified { expr, .. } = kind {
                    v.push(expr);
                }
                v
            }
        }
    }

    /// Whether any node satisfies `pred`.
    pub(crate) fn any(&self, pred: &dyn Fn(&Expr) -> bool) -> bool {
        pred(self) || self.children().into_iter().any(|c| c.any(pred))
    }

    /// Whether the expression reads the input row.
    pub(crate) fn uses_columns(&self) -> bool {
        self.any(&|e| matches!(e, Expr::Column(_)))
    }

    /// Whether the expression contains a subquery.
    pub(crate) fn has_subquery(&self) -> bool {
        self.any(&|e| matches!(e, Expr::Subquery { .. }))
    }

    /// Collects the subquery nodes, outermost first.
    pub(crate) fn subqueries<'a>(&'a self, out: &mut Vec<&'a Expr>) {
        if let Expr::Subquery { .. } = self {
            out.push(self);
        }
        for c in self.children() {
            c.subqueries(out);
        }
    }

    /// Rewrites the expression bottom-up with `f` (children first).
    pub(crate) fn transform(self, f: &mut dyn FnMut(Expr) -> Result<Expr>) -> Result<Expr> {
        let e = self.map_children(&mut |c| c.transform(f))?;
        f(e)
    }

    /// Rebuilds the expression with `f` applied to each direct child.
    pub(crate) fn map_children(self, f: &mut dyn FnMut(Expr) -> Result<Expr>) -> Result<Expr> {
        #[allow(clippy::boxed_local)]
        fn t(e: Box<Expr>, f: &mut dyn FnMut(Expr) -> Result<Expr>) -> Result<Box<Expr>> {
            Ok(Box::new(f(*e)?))
        }
        fn all(v: Vec<Expr>, f: &mut dyn FnMut(Expr) -> Result<Expr>) -> Result<Vec<Expr>> {
            v.into_iter().map(&mut *f).collect()
        }
        let rebuilt = match self {
            e @ (Expr::Const(_)
            | Expr::Column(_)
            | Expr::Outer(_)
            | Expr::Param(_)
            | Expr::Agg(_)) => e,
            Expr::Cast {
                expr,
                from,
                to,
                context,
            } => Expr::Cast {
                expr: t(expr, f)?,
                from,
                to,
                context,
            },
            Expr::Arith {
                op,
                left,
                right,
                ty,
            } => Expr::Arith {
                op,
                left: t(left, f)?,
                right: t(right, f)?,
                ty,
            },
            Expr::Neg { expr, ty } => Expr::Neg {
                expr: t(expr, f)?,
                ty,
            },
            Expr::Compare { op, left, right } => Expr::Compare {
                op,
                left: t(left, f)?,
                right: t(right, f)?,
            },
            Expr::And(items) => Expr::And(all(items, f)?),
            Expr::Or(items) => Expr::Or(all(items, f)?),
            Expr::Not(e) => Expr::Not(t(e, f)?),
            Expr::IsNull { expr, negated } => Expr::IsNull {
                expr: t(expr, f)?,
                negated,
            },
            Expr::IsTruth {
                expr,
                value,
                negated,
            } => Expr::IsTruth {
                expr: t(expr, f)?,
                value,
                negated,
            },
            Expr::IsDistinct {
                left,
                right,
                negated,
            } => Expr::IsDistinct {
                left: t(left, f)?,
                right: t(right, f)?,
                negated,
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                expr: t(expr, f)?,
                list: all(list, f)?,
                negated,
            },
            Expr::Like {
                expr,
                pattern,
                escape,
                case_insensitive,
                negated,
            } => Expr::Like {
                expr: t(expr, f)?,
                pattern: t(pattern, f)?,
                escape: match escape {
                    Some(e) => Some(t(e, f)?),
                    None => None,
                },
                case_insensitive,
                negated,
            },
            Expr::Case { whens, else_result } => {
                let mut out = Vec::with_capacity(whens.len());
                for (c, r) in whens {
                    out.push((f(c)?, f(r)?));
                }
                Expr::Case {
                    whens: out,
                    else_result: t(else_result, f)?,
                }
            }
            Expr::Coalesce(items) => Expr::Coalesce(all(items, f)?),
            Expr::NullIf(a, b) => Expr::NullIf(t(a, f)?, t(b, f)?),
            Expr::MinMax { args, greatest } => Expr::MinMax {
                args: all(args, f)?,
                greatest,
            },
            Expr::Func { func, args, ty } => Expr::Func {
                func,
                args: all(args, f)?,
                ty,
            },
            Expr::Subquery { id, kind, args } => Expr::Subquery {
                id,
                kind: match kind {
                    SubqueryKind::Quantified { expr, op, all } => SubqueryKind::Quantified {
                        expr: t(expr, f)?,
                        op,
                        all,
                    },
                    k => k,
                },
                args: all(args, f)?,
            },
        };
        Ok(rebuilt)
    }

    /// Splits a conjunction into its conjuncts.
    pub(crate) fn conjuncts(self) -> Vec<Expr> {
        match self {
            Expr::And(items) => items.into_iter().flat_map(Expr::conjuncts).collect(),
            Expr::Const(Value::Bool(true)) => vec![],
            e => vec![e],
        }
    }

    /// Joins conjuncts back into one condition (`None` when empty).
    pub(crate) fn and_all(mut items: Vec<Expr>) -> Option<Expr> {
        match items.len() {
            0 => None,
            1 => items.pop(),
            _ => Some(Expr::And(items)),
        }
    }
}

/// `v op ANY (values)` (or `ALL`), three-valued, optionally negated (for
/// `NOT IN`).
fn in_values<'a>(
    v: &Value,
    values: impl Iterator<Item = &'a Value>,
    op: CmpOp,
    all: bool,
    negated: bool,
) -> Value {
    let mut unknown = false;
    let mut decided = None;
    for candidate in values {
        match v.sql_cmp(candidate).map(|o| op.holds(o)) {
            None => unknown = true,
            Some(true) if !all => {
                decided = Some(true);
                break;
            }
            Some(false) if all => {
                decided = Some(false);
                break;
            }
            _ => {}
        }
    }
    let result = match decided {
        Some(b) => Some(b),
        None if unknown => None,
        None => Some(all),
    };
    Value::from_bool_opt(result.map(|b| b != negated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_eval(e: &Expr, row: &[Value]) -> Value {
        let subs = HashMap::new();
        let env = Env {
            params: &[],
            outer: &[],
            subqueries: &subs,
            now: DateTime::from_timestamp(0, 0).unwrap(),
        };
        e.eval(row, &env).unwrap()
    }

    fn c(v: Value) -> Expr {
        Expr::Const(v)
    }

    #[test]
    fn three_valued_logic() {
        let null = || c(Value::Null);
        let t = || c(Value::Bool(true));
        let f = || c(Value::Bool(false));
        assert_eq!(
            env_eval(&Expr::And(vec![null(), f()]), &[]),
            Value::Bool(false)
        );
        assert_eq!(env_eval(&Expr::And(vec![null(), t()]), &[]), Value::Null);
        assert_eq!(
            env_eval(&Expr::Or(vec![null(), t()]), &[]),
            Value::Bool(true)
        );
        assert_eq!(env_eval(&Expr::Or(vec![null(), f()]), &[]), Value::Null);
        assert_eq!(env_eval(&Expr::Not(Box::new(null())), &[]), Value::Null);
    }

    #[test]
    fn in_lists_with_nulls() {
        let in_list = |v: i64, list: Vec<Value>, negated| Expr::InList {
            expr: Box::new(c(Value::Int(v))),
            list: list.into_iter().map(c).collect(),
            negated,
        };
        assert_eq!(
            env_eval(&in_list(1, vec![Value::Int(1), Value::Null], false), &[]),
            Value::Bool(true)
        );
        assert_eq!(
            env_eval(&in_list(2, vec![Value::Int(1), Value::Null], false), &[]),
            Value::Null
        );
        assert_eq!(
            env_eval(&in_list(2, vec![Value::Int(1), Value::Null], true), &[]),
            Value::Null
        );
        assert_eq!(
            env_eval(&in_list(2, vec![Value::Int(1), Value::Int(3)], true), &[]),
            Value::Bool(true)
        );
    }

    #[test]
    fn columns_and_comparisons() {
        let e = Expr::Compare {
            op: CmpOp::Lt,
            left: Box::new(Expr::Column(0)),
            right: Box::new(Expr::Column(1)),
        };
        assert_eq!(
            env_eval(&e, &[Value::Int(1), Value::Int(2)]),
            Value::Bool(true)
        );
        assert_eq!(env_eval(&e, &[Value::Int(1), Value::Null]), Value::Null);
        assert!(e.uses_columns());
        assert_eq!(
            Expr::And(vec![
                Expr::Const(Value::Bool(true)),
                Expr::And(vec![Expr::Column(0), Expr::Column(1)])
            ])
            .conjuncts(),
            vec![Expr::Column(0), Expr::Column(1)]
        );
    }
}
