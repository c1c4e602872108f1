//! Operators: which operand types they take, what they return, and how they
//! compute, with PostgreSQL's promotion and overflow rules.
//!
//! The planner resolves every operator once, with [`resolve_arith`] and
//! [`common_type`]: it decides the type both operands are cast to and the
//! result type (`int2 + int4` is `int4`, `int + numeric` is `numeric`,
//! `numeric + float8` is `float8`, `date + int` is `date`, `timestamp -
//! timestamp` is `interval`, ...). At run time [`arith`] then only sees
//! operands of the resolved types and checks the result against the result
//! type: integer overflow is 22003 (`integer out of range`) rather than a
//! silent wrap, float overflow is 22003, division by zero is 22012.
//!
//! Numeric results keep PostgreSQL's display scales: `+` and `-` take the
//! larger input scale, `*` the sum of the scales, and `/` the scale chosen by
//! PostgreSQL's `select_div_scale` (at least 16 significant digits, at least
//! the inputs' scales), so `5::numeric / 2` is `2.5000000000000000`.
//! `rust_decimal` holds 28 digits; results that need more are rounded there,
//! and the scale is capped at 28.
//!
//! Also here: the rounding family (`round`/`trunc`/`ceil`/`floor`; numeric
//! rounds half away from zero, float half to even), the float-based math
//! functions, and SQL `LIKE` matching (`%`, `_`, an escape character, the
//! whole string must match).

use chrono::{Datelike, Duration, Months, NaiveDate, NaiveDateTime};
use meridian_error::{Error, Result};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::cast::{check_int, float_to_f4, float_to_numeric, int_out_of_range};
use crate::functions::{float_result, Func};
use crate::types::{decimal_to_f64, DataType, Family, Interval, Value, MICROS_PER_DAY};

/// An arithmetic (or concatenation) operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `||`
    Concat,
}

impl ArithOp {
    /// The operator's SQL spelling.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
            ArithOp::Concat => "||",
        }
    }
}

/// The type two values are compared or combined in, PostgreSQL style:
/// untyped literals take the other side's type, numbers widen
/// (int → numeric → float), strings become text, dates widen to timestamps.
/// `None` when the types do not mix.
pub(crate) fn common_type(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType as T;
    if a == b {
        return Some(a.clone());
    }
    match (a, b) {
        (T::Unknown, T::Unknown) => Some(T::Text),
        (T::Unknown, t) | (t, T::Unknown) => Some(t.clone()),
        _ if a.is_numeric() && b.is_numeric() => Some(numeric_promotion(a, b)),
        _ if a.is_string() && b.is_string() => Some(match (a, b) {
            (T::Char(_), T::Char(_)) => a.clone(),
            (T::Varchar(_), T::Varchar(_)) => T::Varchar(None),
            _ => T::Text,
        }),
        (T::Date, T::Timestamp) | (T::Timestamp, T::Date) => Some(T::Timestamp),
        (T::TimestampTz, t) | (t, T::TimestampTz) if t.is_datetime() => Some(T::TimestampTz),
        _ if a.family() == b.family() => Some(a.without_modifiers()),
        _ => None,
    }
}

/// The wider of two numeric types.
fn numeric_promotion(a: &DataType, b: &DataType) -> DataType {
    use DataType as T;
    let rank = |t: &DataType| match t {
        T::Int2 => 0,
        T::Int4 => 1,
        T::Int8 => 2,
        T::Numeric { .. } => 3,
        T::Float4 => 4,
        _ => 5,
    };
    let (ra, rb) = (rank(a), rank(b));
    // float4 with anything but float4 is float8, like PostgreSQL's operators.
    if (ra == 4 && rb != 4) || (rb == 4 && ra != 4) {
        return T::Float8;
    }
    let wider = if ra >= rb { a } else { b };
    wider.without_modifiers()
}

/// Resolves `left op right`: the types to cast the operands to and the
/// result type; `None` if the operator does not exist for these types.
pub(crate) fn resolve_arith(
    op: ArithOp,
    left: &DataType,
    right: &DataType,
) -> Option<(DataType, DataType, DataType)> {
    use DataType as T;
    if op == ArithOp::Concat {
        // `text || anynonarray`: the other side goes through its text form.
        return match (left.family(), right.family()) {
            (Family::Bytea, Family::Bytea | Family::Unknown) | (Family::Unknown, Family::Bytea) => {
                Some((T::Bytea, T::Bytea, T::Bytea))
            }
            (Family::Text | Family::Unknown, _) | (_, Family::Text | Family::Unknown) => {
                Some((T::Text, T::Text, T::Text))
            }
            _ => None,
        };
    }
    let l = if *left == T::Unknown && *right != T::Unknown {
        right
    } else {
        left
    };
    let r = if *right == T::Unknown && *left != T::Unknown {
        left
    } else {
        right
    };
    if l.is_numeric() && r.is_numeric() {
        let t = numeric_promotion(l, r);
        return Some((t.clone(), t.clone(), t));
    }
    let int = |t: &DataType| t.is_integer();
    match (op, l, r) {
        (ArithOp::Add, T::Date, t) if int(t) => Some((T::Date, T::Int4, T::Date)),
        (ArithOp::Add, t, T::Date) if int(t) => Some((T::Int4, T::Date, T::Date)),
        (ArithOp::Sub, T::Date, t) if int(t) => Some((T::Date, T::Int4, T::Date)),
        (ArithOp::Sub, T::Date, T::Date) => Some((T::Date, T::Date, T::Int4)),
        (ArithOp::Add, T::Date, T::Interval) | (ArithOp::Sub, T::Date, T::Interval) => {
            Some((T::Timestamp, T::Interval, T::Timestamp))
        }
        (ArithOp::Add, T::Interval, T::Date) => Some((T::Interval, T::Timestamp, T::Timestamp)),
        (ArithOp::Add | ArithOp::Sub, T::Timestamp | T::TimestampTz, T::Interval) => {
            Some((l.clone(), T::Interval, l.clone()))
        }
        (ArithOp::Add, T::Interval, T::Timestamp | T::TimestampTz) => {
            Some((T::Interval, r.clone(), r.clone()))
        }
        (ArithOp::Sub, T::Timestamp, T::Timestamp)
        | (ArithOp::Sub, T::TimestampTz, T::TimestampTz) => {
            Some((l.clone(), r.clone(), T::Interval))
        }
        (
            ArithOp::Sub,
            T::Timestamp | T::TimestampTz | T::Date,
            T::Timestamp | T::TimestampTz | T::Date,
        ) => {
            let t = common_type(l, r)?;
            Some((t.clone(), t, T::Interval))
        }
        (ArithOp::Add | ArithOp::Sub, T::Interval, T::Interval) => {
            Some((T::Interval, T::Interval, T::Interval))
        }
        (ArithOp::Mul, T::Interval, t) if t.is_numeric() => {
            Some((T::Interval, T::Float8, T::Interval))
        }
        (ArithOp::Mul, t, T::Interval) if t.is_numeric() => {
            Some((T::Float8, T::Interval, T::Interval))
        }
        (ArithOp::Div, T::Interval, t) if t.is_numeric() => {
            Some((T::Interval, T::Float8, T::Interval))
        }
        _ => None,
    }
}

/// `numeric value overflows` for decimal results that do not fit.
fn numeric_overflow() -> Error {
    Error::NumericOutOfRange("value overflows numeric format".into())
}

/// Float overflow, 22003.
fn float_overflow() -> Error {
    Error::NumericOutOfRange("value out of range: overflow".into())
}

/// Computes `left op right`; both operands already have the types
/// [`resolve_arith`] chose, and `ty` is the result type.
pub(crate) fn arith(op: ArithOp, left: Value, right: Value, ty: &DataType) -> Result<Value> {
    use Value as V;
    if left.is_null() || right.is_null() {
        return Ok(V::Null);
    }
    Ok(match (op, left, right) {
        (ArithOp::Concat, V::Text(mut a), V::Text(b)) => {
            a.push_str(&b);
            V::Text(a)
        }
        (ArithOp::Concat, V::Bytes(mut a), V::Bytes(b)) => {
            a.extend_from_slice(&b);
            V::Bytes(a)
        }
        (op, V::Int(a), V::Int(b)) if ty.is_integer() => V::Int(int_arith(op, a, b, ty)?),
        (op, V::Float(a), V::Float(b)) => V::Float(float_arith(op, a, b, ty)?),
        (op, V::Numeric(a), V::Numeric(b)) => V::Numeric(numeric_arith(op, a, b)?),
        (op, V::Date(d), V::Int(n)) => {
            V::Date(date_add_days(d, if op == ArithOp::Sub { -n } else { n })?)
        }
        (ArithOp::Add, V::Int(n), V::Date(d)) => V::Date(date_add_days(d, n)?),
        (ArithOp::Sub, V::Date(a), V::Date(b)) => V::Int((a - b).num_days()),
        (op, V::Timestamp(t), V::Interval(i)) => {
            V::Timestamp(add_interval(t, i, op == ArithOp::Sub)?)
        }
        (ArithOp::Add, V::Interval(i), V::Timestamp(t)) => V::Timestamp(add_interval(t, i, false)?),
        (op, V::TimestampTz(t), V::Interval(i)) => {
            V::TimestampTz(add_interval(t.naive_utc(), i, op == ArithOp::Sub)?.and_utc())
        }
        (ArithOp::Add, V::Interval(i), V::TimestampTz(t)) => {
            V::TimestampTz(add_interval(t.naive_utc(), i, false)?.and_utc())
        }
        (ArithOp::Sub, V::Timestamp(a), V::Timestamp(b)) => V::Interval(timestamp_diff(a, b)?),
        (ArithOp::Sub, V::TimestampTz(a), V::TimestampTz(b)) => {
            V::Interval(timestamp_diff(a.naive_utc(), b.naive_utc())?)
        }
        (ArithOp::Add, V::Interval(a), V::Interval(b)) => V::Interval(interval_add(a, b, 1)?),
        (ArithOp::Sub, V::Interval(a), V::Interval(b)) => V::Interval(interval_add(a, b, -1)?),
        (ArithOp::Mul, V::Interval(i), V::Float(f))
        | (ArithOp::Mul, V::Float(f), V::Interval(i)) => V::Interval(interval_scale(i, f)?),
        (ArithOp::Div, V::Interval(i), V::Float(f)) => {
            if f == 0.0 {
                return Err(Error::DivisionByZero);
            }
            V::Interval(interval_scale(i, 1.0 / f)?)
        }
        (op, a, b) => {
            return Err(Error::Internal(format!(
                "operator {} applied to {a:?} and {b:?}",
                op.symbol()
            )))
        }
    })
}

/// Integer arithmetic with overflow checks against `ty`.
fn int_arith(op: ArithOp, a: i64, b: i64, ty: &DataType) -> Result<i64> {
    let r = match op {
        ArithOp::Add => a.checked_add(b),
        ArithOp::Sub => a.checked_sub(b),
        ArithOp::Mul => a.checked_mul(b),
        ArithOp::Div => {
            if b == 0 {
                return Err(Error::DivisionByZero);
            }
            a.checked_div(b)
        }
        ArithOp::Mod => {
            if b == 0 {
                return Err(Error::DivisionByZero);
            }
            Some(a.checked_rem(b).unwrap_or(0))
        }
        ArithOp::Concat => None,
    };
    check_int(r.ok_or_else(|| int_out_of_range(ty))?, ty)
}

/// Float arithmetic; overflow and division by zero are errors, like
/// PostgreSQL's `float8pl` and friends.
fn float_arith(op: ArithOp, a: f64, b: f64, ty: &DataType) -> Result<f64> {
    let r = match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        ArithOp::Div => {
            if b == 0.0 {
                return Err(Error::DivisionByZero);
            }
            a / b
        }
        ArithOp::Mod => {
            if b == 0.0 {
                return Err(Error::DivisionByZero);
            }
            a % b
        }
        ArithOp::Concat => return Err(Error::Internal("|| on floats".into())),
    };
    if r.is_infinite() && a.is_finite() && b.is_finite() {
        return Err(float_overflow());
    }
    if *ty == DataType::Float4 {
        float_to_f4(r)
    } else {
        Ok(r)
    }
}

/// Numeric arithmetic with PostgreSQL's result scales.
pub(crate) fn numeric_arith(op: ArithOp, a: Decimal, b: Decimal) -> Result<Decimal> {
    // The display scale PostgreSQL gives the result (rust_decimal may drop
    // trailing zeros, e.g. of a zero product).
    let with_scale = |r: Option<Decimal>, scale: u32| -> Result<Decimal> {
        let mut r = r.ok_or_else(numeric_overflow)?;
        let scale = scale.min(28);
        if r.scale() < scale {
            r.rescale(scale);
        }
        Ok(r)
    };
    match op {
        ArithOp::Add => with_scale(a.checked_add(b), a.scale().max(b.scale())),
        ArithOp::Sub => with_scale(a.checked_sub(b), a.scale().max(b.scale())),
        ArithOp::Mul => with_scale(a.checked_mul(b), a.scale() + b.scale()),
        ArithOp::Div => numeric_div(a, b),
        ArithOp::Mod => {
            if b.is_zero() {
                return Err(Error::DivisionByZero);
            }
            a.checked_rem(b).ok_or_else(numeric_overflow)
        }
        ArithOp::Concat => Err(Error::Internal("|| on numerics".into())),
    }
}

/// Numeric division with PostgreSQL's result scale (`select_div_scale`).
pub(crate) fn numeric_div(a: Decimal, b: Decimal) -> Result<Decimal> {
    if b.is_zero() {
        return Err(Error::DivisionByZero);
    }
    let scale = div_scale(&a, &b).min(28);
    let q = a.checked_div(b).ok_or_else(numeric_overflow)?;
    let mut q = q.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
    q.rescale(scale);
    Ok(q)
}

/// PostgreSQL's `select_div_scale`: enough digits for 16 significant ones
/// in the quotient, and no fewer than either input's scale.
fn div_scale(a: &Decimal, b: &Decimal) -> u32 {
    let (w1, d1) = base10000_lead(a);
    let (w2, d2) = base10000_lead(b);
    let mut qweight = w1 - w2;
    if d1 <= d2 {
        qweight -= 1;
    }
    let rscale = 16 - qweight * 4;
    rscale.max(a.scale() as i32).max(b.scale() as i32).max(0) as u32
}

/// The weight (power of 10000) and value of the leading base-10000 digit of
/// `d`, as PostgreSQL's numeric stores it; `(0, 0)` for zero.
fn base10000_lead(d: &Decimal) -> (i32, i128) {
    let m = d.mantissa().unsigned_abs();
    if m == 0 {
        return (0, 0);
    }
    let digits = m.ilog10() as i32 + 1;
    let e10 = digits - 1 - d.scale() as i32;
    let weight = e10.div_euclid(4);
    let shift = d.scale() as i32 + 4 * weight;
    let lead = if shift >= 0 {
        m / 10u128.pow(shift as u32)
    } else {
        m * 10u128.pow((-shift) as u32)
    };
    (weight, lead as i128)
}

/// `date + days`.
fn date_add_days(d: NaiveDate, days: i64) -> Result<NaiveDate> {
    d.checked_add_signed(Duration::days(days))
        .ok_or_else(|| Error::DatetimeFieldOverflow("date out of range".into()))
}

/// `timestamp ± interval`: months first (clamping the day to the month's
/// end, like PostgreSQL), then days, then the time.
pub(crate) fn add_interval(t: NaiveDateTime, i: Interval, subtract: bool) -> Result<NaiveDateTime> {
    let sign = if subtract { -1 } else { 1 };
    let overflow = || Error::DatetimeFieldOverflow("timestamp out of range".into());
    let months = i64::from(i.months) * sign;
    let mut out = if months >= 0 {
        t.checked_add_months(Months::new(months as u32))
    } else {
        t.checked_sub_months(Months::new((-months) as u32))
    }
    .ok_or_else(overflow)?;
    out = out
        .checked_add_signed(Duration::days(i64::from(i.days) * sign))
        .ok_or_else(overflow)?;
    out.checked_add_signed(Duration::microseconds(i.micros * sign))
        .ok_or_else(overflow)
}

/// `timestamp - timestamp`: whole days and the remaining time, like
/// PostgreSQL's `timestamp_mi` (which justifies hours into days).
fn timestamp_diff(a: NaiveDateTime, b: NaiveDateTime) -> Result<Interval> {
    let micros = (a - b)
        .num_microseconds()
        .ok_or_else(|| Error::DatetimeFieldOverflow("interval out of range".into()))?;
    Ok(Interval {
        months: 0,
        days: (micros / MICROS_PER_DAY) as i32,
        micros: micros % MICROS_PER_DAY,
    })
}

/// `a + sign * b` field by field.
fn interval_add(a: Interval, b: Interval, sign: i32) -> Result<Interval> {
    let overflow = || Error::DatetimeFieldOverflow("interval out of range".into());
    Ok(Interval {
        months: a.months.checked_add(b.months * sign).ok_or_else(overflow)?,
        days: a.days.checked_add(b.days * sign).ok_or_else(overflow)?,
        micros: a
            .micros
            .checked_add(b.micros * i64::from(sign))
            .ok_or_else(overflow)?,
    })
}

/// `interval * factor`, cascading fractional months into days and
/// fractional days into time, like PostgreSQL's `interval_mul`.
fn interval_scale(i: Interval, factor: f64) -> Result<Interval> {
    let months = f64::from(i.months) * factor;
    let whole_months = months.trunc();
    let days = f64::from(i.days) * factor + (months - whole_months) * 30.0;
    let whole_days = days.trunc();
    let micros = i.micros as f64 * factor + (days - whole_days) * MICROS_PER_DAY as f64;
    if !micros.is_finite()
        || whole_months.abs() > f64::from(i32::MAX)
        || whole_days.abs() > f64::from(i32::MAX)
    {
        return Err(Error::DatetimeFieldOverflow("interval out of range".into()));
    }
    Ok(Interval {
        months: whole_months as i32,
        days: whole_days as i32,
        micros: micros.round() as i64,
    })
}

/// Unary minus of a value of type `ty`.
pub(crate) fn negate(v: Value, ty: &DataType) -> Result<Value> {
    Ok(match v {
        Value::Null => Value::Null,
        Value::Int(i) => Value::Int(check_int(
            i.checked_neg().ok_or_else(|| int_out_of_range(ty))?,
            ty,
        )?),
        Value::Float(f) => Value::Float(-f),
        Value::Numeric(d) => Value::Numeric(-d),
        Value::Interval(i) => Value::Interval(Interval {
            months: -i.months,
            days: -i.days,
            micros: -i.micros,
        }),
        other => return Err(Error::Internal(format!("unary minus of {other:?}"))),
    })
}

/// The day of the week, Sunday = 0 (for `extract(dow ...)`).
pub(crate) fn day_of_week(d: NaiveDate) -> u32 {
    d.weekday().num_days_from_sunday()
}

/// `sqrt`, `exp`, `ln`, `log10`, `cbrt` on floats, or on numerics through
/// floats (with the result's digits kept to a float's precision).
pub(crate) fn float_math(func: Func, v: &Value) -> Result<Value> {
    let (x, numeric) = match v {
        Value::Float(f) => (*f, false),
        Value::Numeric(d) => (decimal_to_f64(d), true),
        _ => return Ok(Value::Null),
    };
    if matches!(func, Func::Sqrt) && x < 0.0 {
        return Err(Error::InvalidInput(
            "cannot take square root of a negative number".into(),
        ));
    }
    if matches!(func, Func::Ln | Func::Log10) && x <= 0.0 {
        return Err(Error::InvalidInput(if x == 0.0 {
            "cannot take logarithm of zero".into()
        } else {
            "cannot take logarithm of a negative number".into()
        }));
    }
    let r = float_result(match func {
        Func::Sqrt => x.sqrt(),
        Func::Exp => x.exp(),
        Func::Ln => x.ln(),
        Func::Log10 => x.log10(),
        _ => x.cbrt(),
    })?;
    Ok(if numeric {
        let d = float_to_numeric(r, false)?;
        let scale = 16u32
            .saturating_sub(d.trunc().abs().to_string().len() as u32)
            .max(d.scale().min(16));
        let mut d = d.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
        d.rescale(scale.min(16));
        Value::Numeric(d)
    } else {
        Value::Float(r)
    })
}

/// `round`, `trunc`, `ceil`, `floor`.
pub(crate) fn rounding(func: Func, v: &Value, places: Option<i64>) -> Result<Value> {
    Ok(match v {
        Value::Float(f) => Value::Float(match func {
            Func::Round => f.round_ties_even().copysign(*f),
            Func::Trunc => f.trunc(),
            Func::Ceil => f.ceil(),
            _ => f.floor(),
        }),
        Value::Numeric(d) => {
            let places = places.unwrap_or(0);
            let strategy = match func {
                Func::Round => RoundingStrategy::MidpointAwayFromZero,
                Func::Trunc => RoundingStrategy::ToZero,
                Func::Ceil => RoundingStrategy::ToPositiveInfinity,
                _ => RoundingStrategy::ToNegativeInfinity,
            };
            if places >= 0 {
                let p = places.min(28) as u32;
                let mut r = d.round_dp_with_strategy(p, strategy);
                if matches!(func, Func::Round | Func::Trunc) {
                    r.rescale(p);
                }
                Value::Numeric(r)
            } else {
                let factor = Decimal::from_i128_with_scale(10i128.pow((-places).min(28) as u32), 0);
                let mut r = (d / factor).round_dp_with_strategy(0, strategy) * factor;
                r.rescale(0);
                Value::Numeric(r)
            }
        }
        other => other.clone(),
    })
}

/// SQL `LIKE`: `%` matches any run, `_` one character, `esc` quotes the
/// next character. The whole string must match.
pub(crate) fn like(s: &str, pattern: &str, esc: Option<char>) -> Result<bool> {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        /// `%`: any run of characters.
        Any,
        /// `_`: one character.
        One,
        /// A literal character.
        Lit(char),
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == esc {
            match chars.next() {
                Some(n) => toks.push(Tok::Lit(n)),
                None => {
                    return Err(Error::InvalidInput(
                        "LIKE pattern must not end with escape character".into(),
                    ))
                }
            }
        } else if c == '%' {
            if toks.last() != Some(&Tok::Any) {
                toks.push(Tok::Any);
            }
        } else if c == '_' {
            toks.push(Tok::One);
        } else {
            toks.push(Tok::Lit(c));
        }
    }
    let text: Vec<char> = s.chars().collect();
    // Greedy matching with backtracking to the last `%`.
    let (mut si, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < text.len() {
        match toks.get(pi) {
            Some(Tok::Any) => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(Tok::One) => {
                si += 1;
                pi += 1;
            }
            Some(Tok::Lit(c)) if *c == text[si] => {
                si += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return Ok(false),
            },
        }
    }
    while toks.get(pi) == Some(&Tok::Any) {
        pi += 1;
    }
    Ok(pi == toks.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_whole_strings() {
        assert!(like("hello", "h%", Some('\\')).unwrap());
        assert!(like("hello", "%ll%", Some('\\')).unwrap());
        assert!(like("hello", "h_llo", Some('\\')).unwrap());
        assert!(!like("hello", "h_lo", Some('\\')).unwrap());
        assert!(!like("hello", "hell", Some('\\')).unwrap());
        assert!(like("", "%", Some('\\')).unwrap());
        assert!(like("50%", "50\\%", Some('\\')).unwrap());
        assert!(!like("50x", "50\\%", Some('\\')).unwrap());
        assert!(like("a_b", "a#_b", Some('#')).unwrap());
        assert!(like("abcabc", "%abc", Some('\\')).unwrap());
        assert!(like("aXbXc", "a%b%c", None).unwrap());
    }

    fn num(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn integer_results_are_range_checked_by_type() {
        let err = arith(
            ArithOp::Add,
            Value::Int(2147483647),
            Value::Int(1),
            &DataType::Int4,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "integer out of range");
        assert_eq!(
            arith(
                ArithOp::Add,
                Value::Int(2147483647),
                Value::Int(1),
                &DataType::Int8
            )
            .unwrap(),
            Value::Int(2147483648)
        );
        assert_eq!(
            arith(ArithOp::Div, Value::Int(-7), Value::Int(2), &DataType::Int4).unwrap(),
            Value::Int(-3)
        );
        assert_eq!(
            arith(ArithOp::Mod, Value::Int(-7), Value::Int(3), &DataType::Int4).unwrap(),
            Value::Int(-1)
        );
        assert_eq!(
            arith(ArithOp::Div, Value::Int(1), Value::Int(0), &DataType::Int4),
            Err(Error::DivisionByZero)
        );
    }

    #[test]
    fn numeric_division_scale_follows_postgres() {
        assert_eq!(
            numeric_div(num("5"), num("2")).unwrap().to_string(),
            "2.5000000000000000"
        );
        assert_eq!(
            numeric_div(num("10.0"), num("3")).unwrap().to_string(),
            "3.3333333333333333"
        );
        assert_eq!(
            numeric_div(num("1.0"), num("8")).unwrap().to_string(),
            "0.12500000000000000000"
        );
        assert_eq!(
            numeric_div(num("2"), num("3")).unwrap().to_string(),
            "0.66666666666666666667"
        );
        assert_eq!(
            numeric_div(num("123460.13"), num("7")).unwrap().to_string(),
            "17637.161428571429"
        );
    }

    #[test]
    fn numeric_scales_of_add_and_mul() {
        assert_eq!(
            numeric_arith(ArithOp::Add, num("0.1"), num("0.2"))
                .unwrap()
                .to_string(),
            "0.3"
        );
        assert_eq!(
            numeric_arith(ArithOp::Mul, num("1.50"), num("2"))
                .unwrap()
                .to_string(),
            "3.00"
        );
        assert_eq!(
            numeric_arith(ArithOp::Sub, num("10.00"), num("0.005"))
                .unwrap()
                .to_string(),
            "9.995"
        );
        assert_eq!(
            numeric_arith(ArithOp::Mul, num("0.75"), num("0"))
                .unwrap()
                .to_string(),
            "0.00"
        );
    }

    #[test]
    fn promotion_follows_postgres() {
        let n = DataType::NUMERIC;
        assert_eq!(
            common_type(&DataType::Int2, &DataType::Int4),
            Some(DataType::Int4)
        );
        assert_eq!(common_type(&DataType::Int4, &n), Some(n.clone()));
        assert_eq!(common_type(&n, &DataType::Float8), Some(DataType::Float8));
        assert_eq!(
            common_type(&DataType::Int4, &DataType::Float4),
            Some(DataType::Float8)
        );
        assert_eq!(
            common_type(&DataType::Date, &DataType::Timestamp),
            Some(DataType::Timestamp)
        );
        assert_eq!(common_type(&DataType::Int4, &DataType::Text), None);
        let (_, _, ty) = resolve_arith(ArithOp::Sub, &DataType::Date, &DataType::Date).unwrap();
        assert_eq!(ty, DataType::Int4);
        let (_, _, ty) = resolve_arith(ArithOp::Add, &DataType::Date, &DataType::Interval).unwrap();
        assert_eq!(ty, DataType::Timestamp);
    }

    #[test]
    fn month_arithmetic_clamps_to_month_end() {
        let t = NaiveDate::from_ymd_opt(2024, 1, 31)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let month = Interval {
            months: 1,
            days: 0,
            micros: 0,
        };
        let r = add_interval(t, month, false).unwrap();
        assert_eq!(r.date(), NaiveDate::from_ymd_opt(2024, 2, 29).unwrap());
    }

    #[test]
    fn timestamp_difference_justifies_hours() {
        let a = NaiveDate::from_ymd_opt(2024, 1, 15)
            .unwrap()
            .and_hms_opt(10, 30, 0)
            .unwrap();
        let b = NaiveDate::from_ymd_opt(2024, 1, 14)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        let i = timestamp_diff(a, b).unwrap();
        assert_eq!((i.days, i.micros), (1, 5_400_000_000));
    }
}
