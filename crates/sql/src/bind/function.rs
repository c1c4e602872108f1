//! Binding function calls: aggregates, the special forms (`coalesce`,
//! `nullif`, `greatest`, `least`), functions answered from the session
//! (`version()`, `current_user`, ...), and scalar functions resolved by
//! argument types (`functions.rs`).
//!
//! An aggregate is bound over the current (input) scope, registered with
//! the query being bound, and replaced by a placeholder that `query.rs`
//! turns into a column of the aggregation's output. Aggregates are refused
//! where PostgreSQL refuses them (`WHERE`, `GROUP BY`, nested) with 42803.
//! Result types are PostgreSQL's: `count` is `bigint`, `sum(int)` is
//! `bigint`, `sum(bigint)` and `avg` of integers are `numeric`, `avg` of
//! floats is `double precision`.

use meridian_error::{Error, Result};
use sqlparser::ast;

use super::names::object_name;
use super::Binder;
use crate::cast::CastContext;
use crate::expr::Expr;
use crate::functions::{no_such_function, resolve_function, Func};
use crate::ops::common_type;
use crate::plan::{AggCall, AggFunc};
use crate::types::{DataType, Value};

/// The version string `version()` reports.
pub(crate) const VERSION: &str = "PostgreSQL 15.0 (Meridian 0.1.0)";

impl Binder<'_> {
    /// Binds a function call: aggregates, special forms, constants of the
    /// session, then scalar functions.
    pub(crate) fn bind_function(&mut self, f: &ast::Function) -> Result<(Expr, DataType)> {
        let name = object_name(&f.name)?;
        if f.over.is_some() {
            return Err(Error::FeatureNotSupported(
                "window functions are not supported".into(),
            ));
        }
        let (args, distinct, star) = match &f.args {
            ast::FunctionArguments::None => (vec![], false, false),
            ast::FunctionArguments::Subquery(_) => {
                return Err(Error::FeatureNotSupported(
                    "function over a subquery".into(),
                ))
            }
            ast::FunctionArguments::List(list) => {
                let mut args = Vec::new();
                let mut star = false;
                for a in &list.args {
                    match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => args.push(e),
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard) => star = true,
                        _ => {
                            return Err(Error::FeatureNotSupported(
                                "named or qualified function arguments".into(),
                            ))
                        }
                    }
                }
                let distinct = matches!(
                    list.duplicate_treatment,
                    Some(ast::DuplicateTreatment::Distinct)
                );
                (args, distinct, star)
            }
        };
        if let Some(func) = aggregate_func(&name, star) {
            return self.bind_aggregate(func, &name, &args, distinct, f.filter.as_deref());
        }
        if star || distinct {
            return Err(Error::SyntaxError(format!(
                "syntax error: {name}(*) or DISTINCT outside an aggregate"
            )));
        }
        match name.as_str() {
            "coalesce" | "greatest" | "least" => {
                let bound: Vec<(Expr, DataType)> = args
                    .iter()
                    .map(|a| self.bind_expr(a))
                    .collect::<Result<_>>()?;
                let ty = self.unify(&bound, &name.to_uppercase())?;
                let mut coerced = Vec::with_capacity(bound.len());
                for (e, t) in bound {
                    coerced.push(self.coerce(e, &t, &ty, CastContext::Implicit)?);
                }
                let e = if name == "coalesce" {
                    Expr::Coalesce(coerced)
                } else {
                    Expr::MinMax {
                        args: coerced,
                        greatest: name == "greatest",
                    }
                };
                Ok((e, ty))
            }
            "nullif" if args.len() == 2 => {
                let (a, at) = self.bind_expr(args[0])?;
                let (b, bt) = self.bind_expr(args[1])?;
                let ty = common_type(&at, &bt)
                    .ok_or_else(|| super::expr::operator_error("=", &at, &bt))?;
                let ty = if ty == DataType::Unknown {
                    DataType::Text
                } else {
                    ty
                };
                let a = self.coerce(a, &at, &ty, CastContext::Implicit)?;
                let b = self.coerce(b, &bt, &ty, CastContext::Implicit)?;
                Ok((Expr::NullIf(Box::new(a), Box::new(b)), ty))
            }
            "version" if args.is_empty() => {
                Ok((Expr::Const(Value::Text(VERSION.into())), DataType::Text))
            }
            "current_database" | "current_catalog" if args.is_empty() => Ok((
                Expr::Const(Value::Text(self.session.database.clone())),
                DataType::Text,
            )),
            "current_schema" if args.is_empty() => {
                Ok((Expr::Const(Value::Text("public".into())), DataType::Text))
            }
            "current_user" | "session_user" | "user" | "current_role" if args.is_empty() => Ok((
                Expr::Const(Value::Text(self.session.user.clone())),
                DataType::Text,
            )),
            "pg_backend_pid" if args.is_empty() => Ok((Expr::Const(Value::Int(1)), DataType::Int4)),
            "pg_typeof" if args.len() == 1 => {
                let (_, t) = self.bind_expr(args[0])?;
                Ok((Expr::Const(Value::Text(t.pg_name())), DataType::Text))
            }
            _ => {
                let bound: Vec<(Expr, DataType)> = args
                    .iter()
                    .map(|a| self.bind_expr(a))
                    .collect::<Result<_>>()?;
                self.call(&name, bound)
            }
        }
    }

    /// Resolves and binds a scalar function call over bound arguments.
    pub(crate) fn call(
        &mut self,
        name: &str,
        args: Vec<(Expr, DataType)>,
    ) -> Result<(Expr, DataType)> {
        let types: Vec<DataType> = args.iter().map(|(_, t)| t.clone()).collect();
        let resolved = resolve_function(name, &types)?;
        // concat() takes "any": arguments go through their text form.
        let context = match resolved.func {
            Func::Concat | Func::ConcatWs => CastContext::Explicit,
            _ => CastContext::Implicit,
        };
        let mut bound = Vec::with_capacity(args.len());
        for ((e, t), p) in args.into_iter().zip(&resolved.params) {
            bound.push(self.coerce(e, &t, p, context)?);
        }
        Ok((
            Expr::Func {
                func: resolved.func,
                args: bound,
                ty: resolved.ret.clone(),
            },
            resolved.ret,
        ))
    }

    /// Binds an aggregate call, registering it; returns its placeholder.
    fn bind_aggregate(
        &mut self,
        func: AggFunc,
        name: &str,
        args: &[&ast::Expr],
        distinct: bool,
        filter: Option<&ast::Expr>,
    ) -> Result<(Expr, DataType)> {
        if self.aggregates.is_none() {
            return Err(Error::GroupingError(
                "aggregate functions are not allowed here".into(),
            ));
        }
        if self.in_aggregate {
            return Err(Error::GroupingError(
                "aggregate function calls cannot be nested".into(),
            ));
        }
        self.in_aggregate = true;
        let bound: Result<Vec<(Expr, DataType)>> = args.iter().map(|a| self.bind_expr(a)).collect();
        let filter = filter.map(|f| self.bind_condition(f, "FILTER")).transpose();
        self.in_aggregate = false;
        let mut bound = bound?;
        let filter = filter?;
        let expected = if matches!(func, AggFunc::CountStar) {
            0
        } else if func == AggFunc::StringAgg {
            2
        } else {
            1
        };
        if bound.len() != expected {
            let types: Vec<DataType> = bound.iter().map(|(_, t)| t.clone()).collect();
            return Err(no_such_function(name, &types));
        }
        let arg_ty = bound
            .first()
            .map(|(_, t)| t.clone())
            .unwrap_or(DataType::Unknown);
        let ty = aggregate_type(func, &arg_ty)
            .ok_or_else(|| no_such_function(name, std::slice::from_ref(&arg_ty)))?;
        let arg_ty = match func {
            AggFunc::StringAgg => DataType::Text,
            AggFunc::BoolAnd | AggFunc::BoolOr => DataType::Bool,
            _ if arg_ty == DataType::Unknown => DataType::Text,
            _ => arg_ty,
        };
        let mut args = Vec::with_capacity(bound.len());
        for (i, (e, t)) in bound.drain(..).enumerate() {
            let target = if i == 0 {
                arg_ty.clone()
            } else {
                DataType::Text
            };
            let target = if func == AggFunc::Count {
                t.clone()
            } else {
                target
            };
            args.push(self.coerce(e, &t, &target, CastContext::Implicit)?);
        }
        let aggs = self.aggregates.as_mut().expect("checked above");
        aggs.push(AggCall {
            func,
            args,
            distinct,
            filter,
            arg_ty,
            ty: ty.clone(),
        });
        Ok((Expr::Agg(aggs.len() - 1), ty))
    }
}

/// The aggregate named `name`, if it is one.
fn aggregate_func(name: &str, star: bool) -> Option<AggFunc> {
    Some(match name {
        "count" if star => AggFunc::CountStar,
        "count" => AggFunc::Count,
        "sum" => AggFunc::Sum,
        "avg" => AggFunc::Avg,
        "min" => AggFunc::Min,
        "max" => AggFunc::Max,
        "bool_and" | "every" => AggFunc::BoolAnd,
        "bool_or" => AggFunc::BoolOr,
        "string_agg" => AggFunc::StringAgg,
        _ => return None,
    })
}

/// The result type of an aggregate over `arg`, PostgreSQL's: `sum(int)` is
/// `bigint`, `sum(bigint)` and `avg(int)` are `numeric`, ...
fn aggregate_type(func: AggFunc, arg: &DataType) -> Option<DataType> {
    use DataType as T;
    Some(match func {
        AggFunc::CountStar | AggFunc::Count => T::Int8,
        AggFunc::Sum => match arg {
            T::Int2 | T::Int4 => T::Int8,
            T::Int8 | T::Numeric { .. } => T::NUMERIC,
            T::Float4 => T::Float4,
            T::Float8 | T::Unknown => T::Float8,
            T::Interval => T::Interval,
            _ => return None,
        },
        AggFunc::Avg => match arg {
            T::Int2 | T::Int4 | T::Int8 | T::Numeric { .. } => T::NUMERIC,
            T::Float4 | T::Float8 | T::Unknown => T::Float8,
            T::Interval => T::Interval,
            _ => return None,
        },
        AggFunc::Min | AggFunc::Max => match arg {
            T::Unknown | T::Varchar(_) => T::Text,
            t => t.without_modifiers(),
        },
        AggFunc::BoolAnd | AggFunc::BoolOr => match arg {
            T::Bool | T::Unknown => T::Bool,
            _ => return None,
        },
        AggFunc::StringAgg => match arg {
            t if t.is_string() || *t == T::Unknown => T::Text,
            _ => return None,
        },
    })
}
