//! Grouping and aggregate functions.
//!
//! Rows are grouped in a hash table keyed by the group values (NULLs form
//! one group, as in PostgreSQL); groups come out in the order they were
//! first seen. Without `GROUP BY` there is exactly one group, even over no
//! rows, so `count(*)` of an empty table is 0 and `sum` is NULL.
//!
//! Aggregates skip NULL arguments (`count(*)` counts rows). `DISTINCT`
//! keeps a set of the argument values seen. Result types follow PostgreSQL:
//! `sum` of integers is computed exactly (in `i128`, then `bigint` for
//! `int2`/`int4` input or `numeric` for `int8`), `avg` of integers and
//! numerics is a numeric division with PostgreSQL's scale, `avg` of floats
//! is a float.

use std::collections::{HashMap, HashSet};

use meridian_error::{Error, Result};
use rust_decimal::Decimal;

use super::Row;
use crate::cast::float_to_f4;
use crate::expr::{Env, Expr};
use crate::ops::{arith, numeric_div, ArithOp};
use crate::plan::{AggCall, AggFunc};
use crate::types::{DataType, Interval, Value};

/// The running state of one aggregate in one group.
#[derive(Debug)]
enum State {
    /// `count`.
    Count(i64),
    /// `sum`/`avg` over integers.
    IntSum { sum: i128, n: i64 },
    /// `sum`/`avg` over numerics.
    NumSum { sum: Decimal, n: i64 },
    /// `sum`/`avg` over floats.
    FloatSum { sum: f64, n: i64 },
    /// `sum`/`avg` over intervals.
    IntervalSum { sum: Interval, n: i64 },
    /// `min`/`max`.
    Extreme(Value),
    /// `bool_and`/`bool_or`.
    Bool(Option<bool>),
    /// `string_agg`.
    Strings(Option<String>),
}

/// One group: its key, the states, and the distinct sets.
struct Group {
    /// The group values.
    key: Row,
    /// One state per aggregate.
    states: Vec<State>,
    /// Values seen, per `DISTINCT` aggregate.
    seen: Vec<HashSet<Vec<Value>>>,
}

/// The initial state of an aggregate.
fn initial(call: &AggCall) -> State {
    match call.func {
        AggFunc::CountStar | AggFunc::Count => State::Count(0),
        AggFunc::Sum | AggFunc::Avg => match &call.arg_ty {
            t if t.is_integer() => State::IntSum { sum: 0, n: 0 },
            DataType::Numeric { .. } => State::NumSum {
                sum: Decimal::ZERO,
                n: 0,
            },
            DataType::Interval => State::IntervalSum {
                sum: Interval::default(),
                n: 0,
            },
            _ => State::FloatSum { sum: 0.0, n: 0 },
        },
        AggFunc::Min | AggFunc::Max => State::Extreme(Value::Null),
        AggFunc::BoolAnd | AggFunc::BoolOr => State::Bool(None),
        AggFunc::StringAgg => State::Strings(None),
    }
}

/// Groups `rows` and computes the aggregates; each output row is the group
/// values followed by the aggregate results.
pub(crate) fn aggregate(
    rows: Vec<Row>,
    group_by: &[Expr],
    calls: &[AggCall],
    env: &Env,
) -> Result<Vec<Row>> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<Row, usize> = HashMap::new();
    let new_group = |key: Row| Group {
        key,
        states: calls.iter().map(initial).collect(),
        seen: calls.iter().map(|_| HashSet::new()).collect(),
    };
    if group_by.is_empty() {
        groups.push(new_group(vec![]));
    }
    for row in &rows {
        let g = if group_by.is_empty() {
            0
        } else {
            let key: Row = group_by
                .iter()
                .map(|e| e.eval(row, env))
                .collect::<Result<_>>()?;
            match index.get(&key) {
                Some(&g) => g,
                None => {
                    groups.push(new_group(key.clone()));
                    index.insert(key, groups.len() - 1);
                    groups.len() - 1
                }
            }
        };
        let group = &mut groups[g];
        for (i, call) in calls.iter().enumerate() {
            if let Some(f) = &call.filter {
                if !f.eval_bool(row, env)? {
                    continue;
                }
            }
            let args: Vec<Value> = call
                .args
                .iter()
                .map(|a| a.eval(row, env))
                .collect::<Result<_>>()?;
            if call.func != AggFunc::CountStar && args.first().is_none_or(Value::is_null) {
                continue;
            }
            if call.distinct && !group.seen[i].insert(args.clone()) {
                continue;
            }
            accumulate(&mut group.states[i], call, args)?;
        }
    }
    groups
        .into_iter()
        .map(|g| {
            let mut out = g.key;
            for (state, call) in g.states.into_iter().zip(calls) {
                out.push(finish(state, call)?);
            }
            Ok(out)
        })
        .collect()
}

/// Adds one (non-null) input to a state.
fn accumulate(state: &mut State, call: &AggCall, mut args: Vec<Value>) -> Result<()> {
    let first = if args.is_empty() {
        Value::Null
    } else {
        args.swap_remove(0)
    };
    match state {
        State::Count(n) => *n += 1,
        State::IntSum { sum, n } => {
            if let Value::Int(i) = first {
                *sum += i128::from(i);
                *n += 1;
            }
        }
        State::NumSum { sum, n } => {
            if let Value::Numeric(d) = first {
                *sum = sum.checked_add(d).ok_or_else(|| {
                    Error::NumericOutOfRange("value overflows numeric format".into())
                })?;
                *n += 1;
            }
        }
        State::FloatSum { sum, n } => {
            if let Value::Float(f) = first {
                *sum += f;
                *n += 1;
            }
        }
        State::IntervalSum { sum, n } => {
            if let Value::Interval(i) = first {
                match arith(
                    ArithOp::Add,
                    Value::Interval(*sum),
                    Value::Interval(i),
                    &DataType::Interval,
                )? {
                    Value::Interval(r) => *sum = r,
                    _ => unreachable!("interval + interval is an interval"),
                }
                *n += 1;
            }
        }
        State::Extreme(best) => {
            let better = best.is_null() || {
                let ord = first.compare(best);
                if call.func == AggFunc::Max {
                    ord.is_gt()
                } else {
                    ord.is_lt()
                }
            };
            if better {
                *best = first;
            }
        }
        State::Bool(acc) => {
            if let Value::Bool(b) = first {
                *acc = Some(match (call.func, *acc) {
                    (AggFunc::BoolAnd, Some(a)) => a && b,
                    (AggFunc::BoolOr, Some(a)) => a || b,
                    _ => b,
                });
            }
        }
        State::Strings(acc) => {
            if let Value::Text(s) = first {
                match acc {
                    Some(out) => {
                        if let Some(Value::Text(sep)) = args.first() {
                            out.push_str(sep);
                        }
                        out.push_str(&s);
                    }
                    None => *acc = Some(s),
                }
            }
        }
    }
    Ok(())
}

/// The result of a state.
fn finish(state: State, call: &AggCall) -> Result<Value> {
    let avg = call.func == AggFunc::Avg;
    Ok(match state {
        State::Count(n) => Value::Int(n),
        State::IntSum { n: 0, .. }
        | State::NumSum { n: 0, .. }
        | State::FloatSum { n: 0, .. }
        | State::IntervalSum { n: 0, .. } => Value::Null,
        State::IntSum { sum, n } => {
            let sum_dec = Decimal::try_from_i128_with_scale(sum, 0)
                .map_err(|_| Error::NumericOutOfRange("value overflows numeric format".into()))?;
            if avg {
                Value::Numeric(numeric_div(sum_dec, Decimal::from(n))?)
            } else if call.ty == DataType::Int8 {
                Value::Int(
                    i64::try_from(sum)
                        .map_err(|_| Error::NumericOutOfRange("bigint out of range".into()))?,
                )
            } else {
                Value::Numeric(sum_dec)
            }
        }
        State::NumSum { sum, n } => {
            if avg {
                Value::Numeric(numeric_div(sum, Decimal::from(n))?)
            } else {
                Value::Numeric(sum)
            }
        }
        State::FloatSum { sum, n } => {
            let v = if avg { sum / n as f64 } else { sum };
            if call.ty == DataType::Float4 {
                Value::Float(float_to_f4(v)?)
            } else {
                Value::Float(v)
            }
        }
        State::IntervalSum { sum, n } => {
            if avg {
                arith(
                    ArithOp::Div,
                    Value::Interval(sum),
                    Value::Float(n as f64),
                    &DataType::Interval,
                )?
            } else {
                Value::Interval(sum)
            }
        }
        State::Extreme(v) => v,
        State::Bool(b) => Value::from_bool_opt(b),
        State::Strings(s) => s.map_or(Value::Null, Value::Text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(func: AggFunc, arg_ty: DataType, ty: DataType, distinct: bool) -> AggCall {
        AggCall {
            func,
            args: if func == AggFunc::CountStar {
                vec![]
            } else {
                vec![Expr::Column(1)]
            },
            distinct,
            filter: None,
            arg_ty,
            ty,
        }
    }

    fn env_run(rows: Vec<Row>, group_by: &[Expr], calls: &[AggCall]) -> Vec<Row> {
        let subs = HashMap::new();
        let env = Env {
            params: &[],
            outer: &[],
            subqueries: &subs,
            now: chrono::DateTime::from_timestamp(0, 0).unwrap(),
        };
        aggregate(rows, group_by, calls, &env).unwrap()
    }

    #[test]
    fn aggregates_skip_nulls_and_group_nulls_together() {
        let rows = vec![
            vec![Value::Text("x".into()), Value::Int(10)],
            vec![Value::Null, Value::Null],
            vec![Value::Text("x".into()), Value::Int(10)],
            vec![Value::Null, Value::Int(30)],
        ];
        let calls = [
            call(AggFunc::CountStar, DataType::Unknown, DataType::Int8, false),
            call(AggFunc::Count, DataType::Int4, DataType::Int8, false),
            call(AggFunc::Sum, DataType::Int4, DataType::Int8, false),
            call(AggFunc::Count, DataType::Int4, DataType::Int8, true),
            call(AggFunc::Avg, DataType::Int4, DataType::NUMERIC, false),
        ];
        let out = env_run(rows, &[Expr::Column(0)], &calls);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0][1..4], [Value::Int(2), Value::Int(2), Value::Int(20)]);
        assert_eq!(out[0][4], Value::Int(1));
        assert_eq!(
            out[0][5].to_pg_text(&DataType::NUMERIC).unwrap(),
            "10.0000000000000000"
        );
        assert_eq!(out[1][0], Value::Null);
        assert_eq!(out[1][1..4], [Value::Int(2), Value::Int(1), Value::Int(30)]);
    }

    #[test]
    fn empty_input_gives_one_row_without_group_by() {
        let calls = [
            call(AggFunc::CountStar, DataType::Unknown, DataType::Int8, false),
            call(AggFunc::Sum, DataType::Int4, DataType::Int8, false),
            call(AggFunc::Max, DataType::Int4, DataType::Int4, false),
        ];
        assert_eq!(
            env_run(vec![], &[], &calls),
            vec![vec![Value::Int(0), Value::Null, Value::Null]]
        );
        assert!(env_run(vec![], &[Expr::Column(0)], &calls).is_empty());
    }

    #[test]
    fn sum_of_bigint_is_numeric_and_exact() {
        let rows = vec![
            vec![Value::Null, Value::Int(i64::MAX)],
            vec![Value::Null, Value::Int(i64::MAX)],
        ];
        let calls = [call(AggFunc::Sum, DataType::Int8, DataType::NUMERIC, false)];
        let out = env_run(rows, &[], &calls);
        assert_eq!(
            out[0][0].to_pg_text(&DataType::NUMERIC).unwrap(),
            "18446744073709551614"
        );
    }
}
