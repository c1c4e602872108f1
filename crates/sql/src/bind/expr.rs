//! Binding expressions: names to positions, operators and functions to
//! typed implementations, implicit coercions to explicit casts.
//!
//! Type resolution follows PostgreSQL closely enough for its error classes
//! to match: an operator whose operand types do not mix is 42883
//! (`operator does not exist: integer = text`), a non-boolean `WHERE` is
//! 42804, a nested aggregate 42803. Untyped string literals take the type
//! their context needs and are parsed right away, so `WHERE id = 'abc'`
//! fails at bind time with 22P02 like in PostgreSQL. Numeric literals are
//! `integer` when they fit, then `bigint`, then `numeric`.

use meridian_error::{Error, Result};
use sqlparser::ast;

use super::names::ident;
use super::Binder;
use crate::cast::{cast, cast_allowed, CastContext};
use crate::expr::{CmpOp, Expr, SubqueryKind};
use crate::ops::{common_type, resolve_arith, ArithOp};
use crate::plan::Plan;
use crate::text::{parse_interval, parse_numeric};
use crate::types::{DataType, Value};

impl Binder<'_> {
    /// Binds an expression in the current scope.
    pub(crate) fn bind_expr(&mut self, e: &ast::Expr) -> Result<(Expr, DataType)> {
        use ast::Expr as E;
        match e {
            E::Identifier(id) => self.resolve_column(None, &ident(id)),
            E::CompoundIdentifier(ids) => {
                let parts: Vec<String> = ids.iter().map(ident).collect();
                match parts.as_slice() {
                    [t, c] => self.resolve_column(Some(t), c),
                    [_, t, c] => self.resolve_column(Some(t), c),
                    _ => Err(Error::FeatureNotSupported(format!(
                        "name {}",
                        parts.join(".")
                    ))),
                }
            }
            E::Value(v) => self.bind_value(&v.value, false),
            E::TypedString(ts) => {
                let ty = super::data_type_from_ast(&ts.data_type)?;
                let text = literal_text(&ts.value.value)?;
                let v = cast(
                    Value::Text(text),
                    &DataType::Unknown,
                    &ty,
                    CastContext::Explicit,
                )?;
                Ok((Expr::Const(v), ty))
            }
            E::Cast {
                kind,
                expr,
                data_type,
                ..
            } => {
                if matches!(kind, ast::CastKind::TryCast | ast::CastKind::SafeCast) {
                    return Err(Error::FeatureNotSupported("TRY_CAST".into()));
                }
                let ty = super::data_type_from_ast(data_type)?;
                let (bound, from) = self.bind_expr(expr)?;
                Ok((self.coerce(bound, &from, &ty, CastContext::Explicit)?, ty))
            }
            E::Nested(inner) | E::Collate { expr: inner, .. } => self.bind_expr(inner),
            E::UnaryOp { op, expr } => self.bind_unary(op, expr),
            E::BinaryOp { left, op, right } => self.bind_binary(left, op, right),
            E::IsNull(x) | E::IsNotNull(x) => {
                let (bound, _) = self.bind_expr(x)?;
                Ok((
                    Expr::IsNull {
                        expr: Box::new(bound),
                        negated: matches!(e, E::IsNotNull(_)),
                    },
                    DataType::Bool,
                ))
            }
            E::IsTrue(x)
            | E::IsNotTrue(x)
            | E::IsFalse(x)
            | E::IsNotFalse(x)
            | E::IsUnknown(x)
            | E::IsNotUnknown(x) => {
                let bound = self.bind_condition(x, "IS TRUE")?;
                let (value, negated) = match e {
                    E::IsTrue(_) => (Some(true), false),
                    E::IsNotTrue(_) => (Some(true), true),
                    E::IsFalse(_) => (Some(false), false),
                    E::IsNotFalse(_) => (Some(false), true),
                    E::IsUnknown(_) => (None, false),
                    _ => (None, true),
                };
                Ok((
                    Expr::IsTruth {
                        expr: Box::new(bound),
                        value,
                        negated,
                    },
                    DataType::Bool,
                ))
            }
            E::IsDistinctFrom(l, r) | E::IsNotDistinctFrom(l, r) => {
                let (l, r) = self.bind_comparable(l, r, "IS DISTINCT FROM")?;
                Ok((
                    Expr::IsDistinct {
                        left: Box::new(l),
                        right: Box::new(r),
                        negated: matches!(e, E::IsNotDistinctFrom(..)),
                    },
                    DataType::Bool,
                ))
            }
            E::In {
                expr,
                target,
                negated,
                ..
            } => match target {
                ast::InTarget::List(list) => self.bind_in_list(expr, list, *negated),
                ast::InTarget::Subquery(q) => {
                    let e = self.bind_quantified(expr, CmpOp::Eq, false, q)?;
                    Ok((
                        if *negated { Expr::Not(Box::new(e)) } else { e },
                        DataType::Bool,
                    ))
                }
                _ => Err(Error::FeatureNotSupported("IN UNNEST / IN table".into())),
            },
            E::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let (x, xt) = self.bind_expr(expr)?;
                let (lo, lt) = self.bind_expr(low)?;
                let (hi, ht) = self.bind_expr(high)?;
                let ty = common_type(&xt, &lt)
                    .and_then(|t| common_type(&t, &ht))
                    .ok_or_else(|| operator_error("BETWEEN", &xt, &lt))?;
                let x = self.coerce(x, &xt, &ty, CastContext::Implicit)?;
                let lo = self.coerce(lo, &lt, &ty, CastContext::Implicit)?;
                let hi = self.coerce(hi, &ht, &ty, CastContext::Implicit)?;
                let cmp = |op, a: &Expr, b: Expr| Expr::Compare {
                    op,
                    left: Box::new(a.clone()),
                    right: Box::new(b),
                };
                let e = if *negated {
                    Expr::Or(vec![cmp(CmpOp::Lt, &x, lo), cmp(CmpOp::Gt, &x, hi)])
                } else {
                    Expr::And(vec![cmp(CmpOp::GtEq, &x, lo), cmp(CmpOp::LtEq, &x, hi)])
                };
                Ok((e, DataType::Bool))
            }
            E::Like {
                negated,
                expr,
                pattern,
                escape_char,
                any,
            }
            | E::ILike {
                negated,
                expr,
                pattern,
                escape_char,
                any,
            } => {
                if *any {
                    return Err(Error::FeatureNotSupported("LIKE ANY".into()));
                }
                let s = self.bind_text_arg(expr, "~~")?;
                let p = self.bind_text_arg(pattern, "~~")?;
                let escape = match escape_char {
                    Some(esc) => Some(Box::new(self.bind_text_arg(esc, "ESCAPE")?)),
                    None => None,
                };
                Ok((
                    Expr::Like {
                        expr: Box::new(s),
                        pattern: Box::new(p),
                        escape,
                        case_insensitive: matches!(e, E::ILike { .. }),
                        negated: *negated,
                    },
                    DataType::Bool,
                ))
            }
            E::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.bind_case(operand.as_deref(), conditions, else_result.as_deref()),
            E::Function(f) => self.bind_function(f),
            E::Extract { field, expr, .. } => {
                let field = datetime_field_name(field);
                let (x, xt) = self.bind_expr(expr)?;
                self.call(
                    "extract",
                    vec![(Expr::Const(Value::Text(field)), DataType::Text), (x, xt)],
                )
            }
            E::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![self.bind_expr(expr)?];
                args.push(match substring_from {
                    Some(f) => self.bind_expr(f)?,
                    None => (Expr::Const(Value::Int(1)), DataType::Int4),
                });
                if let Some(n) = substring_for {
                    args.push(self.bind_expr(n)?);
                }
                self.call("substr", args)
            }
            E::Trim {
                expr,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                if trim_characters.is_some() {
                    return Err(Error::FeatureNotSupported(
                        "TRIM with a character list".into(),
                    ));
                }
                let name = match trim_where {
                    Some(ast::TrimWhereField::Leading) => "ltrim",
                    Some(ast::TrimWhereField::Trailing) => "rtrim",
                    _ => "btrim",
                };
                let mut args = vec![self.bind_expr(expr)?];
                if let Some(w) = trim_what {
                    args.push(self.bind_expr(w)?);
                }
                self.call(name, args)
            }
            E::Position { expr, r#in } => {
                let args = vec![self.bind_expr(r#in)?, self.bind_expr(expr)?];
                self.call("strpos", args)
            }
            E::Ceil { expr, .. } => {
                let arg = self.bind_expr(expr)?;
                self.call("ceil", vec![arg])
            }
            E::Floor { expr, .. } => {
                let arg = self.bind_expr(expr)?;
                self.call("floor", vec![arg])
            }
            E::Exists { subquery, negated } => {
                let (id, args, _) = self.bind_subquery(subquery)?;
                let e = Expr::Subquery {
                    id,
                    kind: SubqueryKind::Exists,
                    args,
                };
                Ok((
                    if *negated { Expr::Not(Box::new(e)) } else { e },
                    DataType::Bool,
                ))
            }
            E::Subquery(q) => {
                let (id, args, columns) = self.bind_subquery(q)?;
                if columns.len() != 1 {
                    return Err(Error::SyntaxError(
                        "subquery must return only one column".into(),
                    ));
                }
                Ok((
                    Expr::Subquery {
                        id,
                        kind: SubqueryKind::Scalar,
                        args,
                    },
                    columns[0].ty.clone(),
                ))
            }
            E::AnyOp {
                left,
                compare_op,
                right,
                ..
            }
            | E::AllOp {
                left,
                compare_op,
                right,
            } => {
                let ast::Expr::Subquery(q) = right.as_ref() else {
                    return Err(Error::FeatureNotSupported("ANY/ALL over arrays".into()));
                };
                let op = cmp_op(compare_op)
                    .ok_or_else(|| Error::FeatureNotSupported(format!("{compare_op} ANY")))?;
                let e = self.bind_quantified(left, op, matches!(e, E::AllOp { .. }), q)?;
                Ok((e, DataType::Bool))
            }
            E::Interval(iv) => {
                let (inner, _) = self.bind_expr(&iv.value)?;
                let mut text = match inner {
                    Expr::Const(Value::Text(t)) => t,
                    Expr::Const(Value::Int(i)) => i.to_string(),
                    Expr::Const(Value::Numeric(d)) => d.to_string(),
                    _ => {
                        return Err(Error::FeatureNotSupported(
                            "INTERVAL of a non-constant".into(),
                        ))
                    }
                };
                if let Some(field) = &iv.leading_field {
                    if iv.last_field.is_none() && text.trim().parse::<f64>().is_ok() {
                        text = format!("{text} {}", datetime_field_name(field));
                    }
                }
                Ok((
                    Expr::Const(Value::Interval(parse_interval(&text)?)),
                    DataType::Interval,
                ))
            }
            E::Tuple(_) => Err(Error::FeatureNotSupported("row constructors".into())),
            E::AtTimeZone { .. } => Err(Error::FeatureNotSupported("AT TIME ZONE".into())),
            E::Array(_) => Err(Error::FeatureNotSupported("arrays".into())),
            E::Wildcard(_) | E::QualifiedWildcard(..) => {
                Err(Error::SyntaxError("syntax error at or near \"*\"".into()))
            }
            other => Err(Error::FeatureNotSupported(format!("expression {other}"))),
        }
    }

    /// Binds a literal; `negate` makes a number negative first.
    fn bind_value(&mut self, v: &ast::Value, negate: bool) -> Result<(Expr, DataType)> {
        use ast::Value as V;
        Ok(match v {
            V::Number(text, _) => {
                let text = if negate {
                    format!("-{text}")
                } else {
                    text.clone()
                };
                match text.parse::<i64>() {
                    Ok(i) if i32::try_from(i).is_ok() => {
                        (Expr::Const(Value::Int(i)), DataType::Int4)
                    }
                    Ok(i) => (Expr::Const(Value::Int(i)), DataType::Int8),
                    Err(_) => (
                        Expr::Const(Value::Numeric(parse_numeric(&text)?)),
                        DataType::NUMERIC,
                    ),
                }
            }
            V::Boolean(b) => (Expr::Const(Value::Bool(*b)), DataType::Bool),
            V::Null => (Expr::Const(Value::Null), DataType::Unknown),
            V::Placeholder(p) => {
                let n: usize = p
                    .strip_prefix('$')
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        Error::SyntaxError(format!("syntax error at or near \"{p}\""))
                    })?;
                if self.params.len() < n {
                    self.params.resize(n, DataType::Unknown);
                    self.fixed_params.resize(n, false);
                }
                (Expr::Param(n - 1), self.params[n - 1].clone())
            }
            other => (
                Expr::Const(Value::Text(literal_text(other)?)),
                DataType::Unknown,
            ),
        })
    }

    /// Binds a unary operator.
    fn bind_unary(
        &mut self,
        op: &ast::UnaryOperator,
        expr: &ast::Expr,
    ) -> Result<(Expr, DataType)> {
        match op {
            ast::UnaryOperator::Minus => {
                if let ast::Expr::Value(v) = expr {
                    if let ast::Value::Number(..) = v.value {
                        return self.bind_value(&v.value, true);
                    }
                }
                let (x, ty) = self.bind_expr(expr)?;
                let (x, ty) = if ty == DataType::Unknown {
                    (
                        self.coerce(x, &ty, &DataType::NUMERIC, CastContext::Implicit)?,
                        DataType::NUMERIC,
                    )
                } else {
                    (x, ty.without_modifiers())
                };
                if !ty.is_numeric() && ty != DataType::Interval {
                    return Err(Error::UndefinedFunction(format!(
                        "operator does not exist: - {ty}"
                    )));
                }
                Ok((
                    Expr::Neg {
                        expr: Box::new(x),
                        ty: ty.clone(),
                    },
                    ty,
                ))
            }
            ast::UnaryOperator::Plus => {
                let (x, ty) = self.bind_expr(expr)?;
                if !ty.is_numeric() && ty != DataType::Interval && ty != DataType::Unknown {
                    return Err(Error::UndefinedFunction(format!(
                        "operator does not exist: + {ty}"
                    )));
                }
                Ok((x, ty))
            }
            ast::UnaryOperator::Not => Ok((
                Expr::Not(Box::new(self.bind_condition(expr, "NOT")?)),
                DataType::Bool,
            )),
            other => Err(Error::FeatureNotSupported(format!("operator {other}"))),
        }
    }

    /// Binds a binary operator.
    fn bind_binary(
        &mut self,
        left: &ast::Expr,
        op: &ast::BinaryOperator,
        right: &ast::Expr,
    ) -> Result<(Expr, DataType)> {
        use ast::BinaryOperator as B;
        if let Some(cmp) = cmp_op(op) {
            let (l, r) = self.bind_comparable(left, right, cmp.symbol())?;
            return Ok((
                Expr::Compare {
                    op: cmp,
                    left: Box::new(l),
                    right: Box::new(r),
                },
                DataType::Bool,
            ));
        }
        let arith = match op {
            B::And | B::Or => {
                let l = self.bind_condition(left, if *op == B::And { "AND" } else { "OR" })?;
                let r = self.bind_condition(right, if *op == B::And { "AND" } else { "OR" })?;
                let mut items = Vec::new();
                for side in [l, r] {
                    match (side, op) {
                        (Expr::And(inner), B::And) | (Expr::Or(inner), B::Or) => {
                            items.extend(inner)
                        }
                        (other, _) => items.push(other),
                    }
                }
                return Ok((
                    if *op == B::And {
                        Expr::And(items)
                    } else {
                        Expr::Or(items)
                    },
                    DataType::Bool,
                ));
            }
            B::Plus => ArithOp::Add,
            B::Minus => ArithOp::Sub,
            B::Multiply => ArithOp::Mul,
            B::Divide => ArithOp::Div,
            B::Modulo => ArithOp::Mod,
            B::StringConcat => ArithOp::Concat,
            B::PGExp => {
                let args = vec![self.bind_expr(left)?, self.bind_expr(right)?];
                return self.call("power", args);
            }
            other => return Err(Error::FeatureNotSupported(format!("operator {other}"))),
        };
        let (l, lt) = self.bind_expr(left)?;
        let (r, rt) = self.bind_expr(right)?;
        let (lt2, rt2, ty) = resolve_arith(arith, &lt, &rt)
            .ok_or_else(|| operator_error(arith.symbol(), &lt, &rt))?;
        // `||` converts a non-string side through its text form.
        let context = if arith == ArithOp::Concat {
            CastContext::Explicit
        } else {
            CastContext::Implicit
        };
        let l = self.coerce(l, &lt, &lt2, context)?;
        let r = self.coerce(r, &rt, &rt2, context)?;
        Ok((
            Expr::Arith {
                op: arith,
                left: Box::new(l),
                right: Box::new(r),
                ty: ty.clone(),
            },
            ty,
        ))
    }

    /// Binds two operands to be compared, coerced to their common type.
    fn bind_comparable(
        &mut self,
        left: &ast::Expr,
        right: &ast::Expr,
        op: &str,
    ) -> Result<(Expr, Expr)> {
        let (l, lt) = self.bind_expr(left)?;
        let (r, rt) = self.bind_expr(right)?;
        let ty = common_type(&lt, &rt).ok_or_else(|| operator_error(op, &lt, &rt))?;
        let ty = if ty.is_string() { DataType::Text } else { ty };
        // Comparing with a blank-padded CHAR keeps CHAR semantics: a literal
        // on the other side is read as CHAR (trailing blanks dropped).
        let (lty, rty) = match (&lt, &rt) {
            (DataType::Char(_), DataType::Unknown) => (lt.clone(), lt.clone()),
            (DataType::Unknown, DataType::Char(_)) => (rt.clone(), rt.clone()),
            _ => (ty.clone(), ty),
        };
        let l = self.coerce(l, &lt, &lty, CastContext::Implicit)?;
        let r = self.coerce(r, &rt, &rty, CastContext::Implicit)?;
        Ok((l, r))
    }

    /// Binds `x [NOT] IN (a, b, ...)`.
    fn bind_in_list(
        &mut self,
        expr: &ast::Expr,
        list: &[ast::Expr],
        negated: bool,
    ) -> Result<(Expr, DataType)> {
        let (x, xt) = self.bind_expr(expr)?;
        let mut items = Vec::with_capacity(list.len());
        let mut ty = xt.clone();
        for item in list {
            let (e, t) = self.bind_expr(item)?;
            ty = common_type(&ty, &t).ok_or_else(|| operator_error("=", &xt, &t))?;
            items.push((e, t));
        }
        let ty = if ty.is_string() && !matches!(xt, DataType::Char(_)) {
            DataType::Text
        } else {
            ty
        };
        let x = self.coerce(x, &xt, &ty, CastContext::Implicit)?;
        let mut bound = Vec::with_capacity(items.len());
        for (e, t) in items {
            bound.push(self.coerce(e, &t, &ty, CastContext::Implicit)?);
        }
        Ok((
            Expr::InList {
                expr: Box::new(x),
                list: bound,
                negated,
            },
            DataType::Bool,
        ))
    }

    /// Binds `x op ANY|ALL (subquery)` (and `x IN (subquery)`).
    fn bind_quantified(
        &mut self,
        left: &ast::Expr,
        op: CmpOp,
        all: bool,
        q: &ast::Query,
    ) -> Result<Expr> {
        let (x, xt) = self.bind_expr(left)?;
        let (id, args, columns) = self.bind_subquery(q)?;
        if columns.len() != 1 {
            return Err(Error::SyntaxError("subquery has too many columns".into()));
        }
        let st = columns[0].ty.clone();
        let ty = common_type(&xt, &st).ok_or_else(|| operator_error(op.symbol(), &xt, &st))?;
        let x = self.coerce(x, &xt, &ty, CastContext::Implicit)?;
        if st.family() != ty.family() {
            // Cast the subquery's column to the comparison type.
            let plan = std::mem::replace(
                &mut self.subqueries[id],
                Plan::Values {
                    rows: vec![],
                    width: 1,
                },
            );
            let cast = self.coerce(Expr::Column(0), &st, &ty, CastContext::Implicit)?;
            self.subqueries[id] = Plan::Project {
                input: Box::new(plan),
                exprs: vec![cast],
                names: vec![columns[0].name.clone()],
            };
        }
        Ok(Expr::Subquery {
            id,
            kind: SubqueryKind::Quantified {
                expr: Box::new(x),
                op,
                all,
            },
            args,
        })
    }

    /// Binds a string argument (of LIKE and friends), coerced to text.
    fn bind_text_arg(&mut self, e: &ast::Expr, op: &str) -> Result<Expr> {
        let (x, t) = self.bind_expr(e)?;
        if !t.is_string() && t != DataType::Unknown {
            return Err(operator_error(op, &t, &DataType::Unknown));
        }
        self.coerce(x, &t, &DataType::Text, CastContext::Implicit)
    }

    /// Binds a condition: a boolean expression (42804 otherwise).
    pub(crate) fn bind_condition(&mut self, e: &ast::Expr, context: &str) -> Result<Expr> {
        let (x, t) = self.bind_expr(e)?;
        match t {
            DataType::Bool => Ok(x),
            DataType::Unknown => self.coerce(x, &t, &DataType::Bool, CastContext::Implicit),
            other => Err(Error::DatatypeMismatch(format!(
                "argument of {context} must be type boolean, not type {}",
                other.pg_name()
            ))),
        }
    }

    /// Binds `CASE`; a simple `CASE x WHEN v` compares `x = v`.
    fn bind_case(
        &mut self,
        operand: Option<&ast::Expr>,
        conditions: &[ast::CaseWhen],
        else_result: Option<&ast::Expr>,
    ) -> Result<(Expr, DataType)> {
        let operand = operand.map(|o| self.bind_expr(o)).transpose()?;
        let mut whens = Vec::with_capacity(conditions.len());
        let mut results = Vec::with_capacity(conditions.len() + 1);
        for cw in conditions {
            let cond = match &operand {
                Some((x, xt)) => {
                    let (v, vt) = self.bind_expr(&cw.condition)?;
                    let ty = common_type(xt, &vt).ok_or_else(|| operator_error("=", xt, &vt))?;
                    let l = self.coerce(x.clone(), xt, &ty, CastContext::Implicit)?;
                    let r = self.coerce(v, &vt, &ty, CastContext::Implicit)?;
                    Expr::Compare {
                        op: CmpOp::Eq,
                        left: Box::new(l),
                        right: Box::new(r),
                    }
                }
                None => self.bind_condition(&cw.condition, "CASE/WHEN")?,
            };
            whens.push(cond);
            results.push(self.bind_expr(&cw.result)?);
        }
        let else_bound = match else_result {
            Some(e) => self.bind_expr(e)?,
            None => (Expr::Const(Value::Null), DataType::Unknown),
        };
        results.push(else_bound);
        let ty = self.unify(&results, "CASE")?;
        let mut coerced = Vec::with_capacity(results.len());
        for (e, t) in results {
            coerced.push(self.coerce(e, &t, &ty, CastContext::Implicit)?);
        }
        let else_result = coerced.pop().expect("else branch pushed");
        Ok((
            Expr::Case {
                whens: whens.into_iter().zip(coerced).collect(),
                else_result: Box::new(else_result),
            },
            ty,
        ))
    }

    /// The common type of several branches (all-unknown is text).
    pub(crate) fn unify(&self, items: &[(Expr, DataType)], what: &str) -> Result<DataType> {
        let mut ty = DataType::Unknown;
        for (_, t) in items {
            ty = common_type(&ty, t).ok_or_else(|| {
                Error::DatatypeMismatch(format!(
                    "{what} types {} and {} cannot be matched",
                    ty.pg_name(),
                    t.pg_name()
                ))
            })?;
        }
        Ok(if ty == DataType::Unknown {
            DataType::Text
        } else {
            ty
        })
    }

    /// Converts `e` of type `from` to `to` in `context`: constants are
    /// converted now, untyped parameters take the type, otherwise a cast is
    /// added if one is needed and allowed.
    pub(crate) fn coerce(
        &mut self,
        e: Expr,
        from: &DataType,
        to: &DataType,
        context: CastContext,
    ) -> Result<Expr> {
        if from == to || *to == DataType::Unknown {
            return Ok(e);
        }
        if let Expr::Param(i) = e {
            if *from == DataType::Unknown && !self.fixed_params[i] {
                let declared = to.without_modifiers();
                self.params[i] = declared.clone();
                return self.coerce(Expr::Param(i), &declared, to, context);
            }
        }
        if !cast_allowed(from, to, context) {
            return Err(Error::DatatypeMismatch(format!(
                "cannot cast type {} to {}",
                from.pg_name(),
                to.pg_name()
            )));
        }
        if let Expr::Const(v) = e {
            return Ok(Expr::Const(cast(v, from, to, context)?));
        }
        if no_op_cast(from, to) {
            return Ok(e);
        }
        Ok(Expr::Cast {
            expr: Box::new(e),
            from: from.clone(),
            to: to.clone(),
            context,
        })
    }
}

/// Whether values of `from` are already valid values of `to`.
fn no_op_cast(from: &DataType, to: &DataType) -> bool {
    use DataType as T;
    match (from, to) {
        (T::Int2, T::Int4 | T::Int8) | (T::Int4, T::Int8) => true,
        (T::Float4, T::Float8) => true,
        (
            T::Numeric { .. },
            T::Numeric {
                precision: None, ..
            },
        ) => true,
        (T::Text | T::Varchar(_) | T::Char(_), T::Text | T::Varchar(None)) => true,
        (T::Varchar(_), T::Varchar(Some(_))) | (T::Char(_), T::Char(_)) => false,
        _ => false,
    }
}

/// The text of a string-like literal.
fn literal_text(v: &ast::Value) -> Result<String> {
    use ast::Value as V;
    match v {
        V::SingleQuotedString(s)
        | V::EscapedStringLiteral(s)
        | V::NationalStringLiteral(s)
        | V::DoubleQuotedString(s)
        | V::UnicodeStringLiteral(s) => Ok(s.clone()),
        V::DollarQuotedString(d) => Ok(d.value.clone()),
        V::Number(n, _) => Ok(n.clone()),
        other => Err(Error::FeatureNotSupported(format!("literal {other}"))),
    }
}

/// The comparison operator of a binary operator, if it is one.
fn cmp_op(op: &ast::BinaryOperator) -> Option<CmpOp> {
    use ast::BinaryOperator as B;
    Some(match op {
        B::Eq => CmpOp::Eq,
        B::NotEq => CmpOp::NotEq,
        B::Lt => CmpOp::Lt,
        B::LtEq => CmpOp::LtEq,
        B::Gt => CmpOp::Gt,
        B::GtEq => CmpOp::GtEq,
        _ => return None,
    })
}

/// 42883 for an operator without an implementation for these types.
pub(crate) fn operator_error(op: &str, l: &DataType, r: &DataType) -> Error {
    Error::UndefinedFunction(format!(
        "operator does not exist: {} {op} {}",
        l.pg_name(),
        r.pg_name()
    ))
}

/// The field name of `EXTRACT(field FROM ...)` and interval qualifiers.
fn datetime_field_name(field: &ast::DateTimeField) -> String {
    match field {
        ast::DateTimeField::Custom(id) => ident(id),
        other => other.to_string().to_lowercase(),
    }
}
