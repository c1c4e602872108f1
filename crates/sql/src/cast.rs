//! Casts between types, and the contexts that allow them.
//!
//! PostgreSQL distinguishes three cast contexts, and so does Meridian
//! ([`CastContext`]):
//!
//! - **implicit**: applied silently inside expressions, only where no
//!   information can be lost in a surprising way: integer widening,
//!   integer to numeric or float, numeric to float, date to timestamp,
//!   timestamp to timestamptz, and an untyped literal to anything;
//! - **assignment**: storing into a column (`INSERT`, `UPDATE`), which also
//!   allows narrowing numbers (with range checks, 22003) and anything to a
//!   string type (through its text form);
//! - **explicit**: `CAST(x AS t)` and `x::t`, which allow everything that
//!   has a meaning, including parsing text.
//!
//! The length and precision modifiers are enforced at the end of every
//! cast: `numeric(p,s)` rounds half away from zero to `s` digits and fails
//! with 22003 when the integer part has more than `p - s` digits;
//! `varchar(n)` and `char(n)` fail with 22001 when the value is longer,
//! unless the cast is explicit (then it truncates, like PostgreSQL) or the
//! excess is only blanks. `char(n)` values are stored without trailing
//! blanks (see `types.rs`).
//!
//! Numbers convert like PostgreSQL: numeric to integer rounds half away
//! from zero, float to integer rounds half to even, float to numeric goes
//! through the float's 15 (`real`: 6) significant digits.

use meridian_error::{Error, Result};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::text::{int_range, parse_numeric};
use crate::types::{decimal_to_f64, DataType, Family, Value};

/// Where a cast happens, which decides whether it is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum CastContext {
    /// Inside an expression, without being asked.
    Implicit,
    /// Storing into a column.
    Assignment,
    /// `CAST` or `::`.
    Explicit,
}

/// Whether a value of type `from` may be cast to `to` in `context`.
pub(crate) fn cast_allowed(from: &DataType, to: &DataType, context: CastContext) -> bool {
    use Family as F;
    let (f, t) = (from.family(), to.family());
    if f == F::Unknown {
        return true;
    }
    if f == t {
        // Within a family only widening is implicit (int8 to int4 is not).
        let width = |ty: &DataType| match ty {
            DataType::Int2 => 2,
            DataType::Int4 | DataType::Float4 => 4,
            DataType::Int8 | DataType::Float8 => 8,
            _ => 0,
        };
        return context != CastContext::Implicit || width(from) <= width(to);
    }
    let widening = matches!(
        (f, t),
        (F::Int, F::Numeric | F::Float)
            | (F::Numeric, F::Float)
            | (F::Date, F::Timestamp | F::TimestampTz)
            | (F::Timestamp, F::TimestampTz)
    );
    if widening {
        return true;
    }
    if context == CastContext::Implicit {
        return false;
    }
    let assignment = matches!(
        (f, t),
        (
            F::Int | F::Float | F::Numeric,
            F::Int | F::Float | F::Numeric
        ) | (F::TimestampTz, F::Timestamp | F::Date)
            | (F::Timestamp, F::Date)
            | (_, F::Text)
    );
    if assignment {
        return true;
    }
    if context == CastContext::Assignment {
        return false;
    }
    matches!((f, t), (F::Text, _) | (F::Int, F::Bool) | (F::Bool, F::Int))
}

/// Casts `value` of type `from` to type `to`. The caller has checked
/// [`cast_allowed`]; `context` only decides truncation versus error for
/// string lengths.
pub(crate) fn cast(
    value: Value,
    from: &DataType,
    to: &DataType,
    context: CastContext,
) -> Result<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let explicit = context == CastContext::Explicit;
    Ok(match (value, to) {
        // To strings: the text form, then the length rule.
        (Value::Bool(b), t) if t.is_string() => {
            Value::Text(fit_string(if b { "true" } else { "false" }, t, explicit)?)
        }
        (Value::Text(s), t) if t.is_string() => Value::Text(fit_string(&s, t, explicit)?),
        (v, t) if t.is_string() => {
            let text = v.to_pg_text(from).unwrap_or_default();
            Value::Text(fit_string(&text, t, explicit)?)
        }
        // From strings: the type's input function.
        (Value::Text(s), t) => Value::from_pg_text(&s, t)?,
        (Value::Bool(b), t) if t.is_integer() => Value::Int(i64::from(b)),
        (Value::Bool(b), DataType::Bool) => Value::Bool(b),
        (Value::Int(i), DataType::Bool) => Value::Bool(i != 0),
        (Value::Int(i), t) if t.is_integer() => Value::Int(check_int(i, t)?),
        (Value::Int(i), DataType::Float4) => Value::Float(f64::from(i as f32)),
        (Value::Int(i), DataType::Float8) => Value::Float(i as f64),
        (Value::Int(i), DataType::Numeric { precision, scale }) => {
            Value::Numeric(apply_numeric_typmod(Decimal::from(i), *precision, *scale)?)
        }
        (Value::Float(f), t) if t.is_integer() => Value::Int(float_to_int(f, t)?),
        (Value::Float(f), DataType::Float4) => Value::Float(float_to_f4(f)?),
        (Value::Float(f), DataType::Float8) => Value::Float(f),
        (Value::Float(f), DataType::Numeric { precision, scale }) => {
            let d = float_to_numeric(f, *from == DataType::Float4)?;
            Value::Numeric(apply_numeric_typmod(d, *precision, *scale)?)
        }
        (Value::Numeric(d), t) if t.is_integer() => Value::Int(numeric_to_int(d, t)?),
        (Value::Numeric(d), DataType::Float4) => Value::Float(float_to_f4(decimal_to_f64(&d))?),
        (Value::Numeric(d), DataType::Float8) => Value::Float(decimal_to_f64(&d)),
        (Value::Numeric(d), DataType::Numeric { precision, scale }) => {
            Value::Numeric(apply_numeric_typmod(d, *precision, *scale)?)
        }
        (Value::Date(d), DataType::Date) => Value::Date(d),
        (Value::Date(d), DataType::Timestamp) => {
            Value::Timestamp(d.and_time(chrono::NaiveTime::MIN))
        }
        (Value::Date(d), DataType::TimestampTz) => {
            Value::TimestampTz(d.and_time(chrono::NaiveTime::MIN).and_utc())
        }
        (Value::Timestamp(t), DataType::Timestamp) => Value::Timestamp(t),
        (Value::Timestamp(t), DataType::Date) => Value::Date(t.date()),
        (Value::Timestamp(t), DataType::TimestampTz) => Value::TimestampTz(t.and_utc()),
        (Value::TimestampTz(t), DataType::TimestampTz) => Value::TimestampTz(t),
        (Value::TimestampTz(t), DataType::Timestamp) => Value::Timestamp(t.naive_utc()),
        (Value::TimestampTz(t), DataType::Date) => Value::Date(t.naive_utc().date()),
        (Value::Interval(i), DataType::Interval) => Value::Interval(i),
        (Value::Bytes(b), DataType::Bytea) => Value::Bytes(b),
        (v, t) => {
            return Err(Error::DatatypeMismatch(format!(
                "cannot cast type {} to {}",
                value_type_name(&v, from),
                t.pg_name()
            )))
        }
    })
}

/// The name of a value's type for messages.
fn value_type_name(v: &Value, declared: &DataType) -> String {
    if *declared != DataType::Unknown {
        return declared.pg_name();
    }
    match v {
        Value::Bool(_) => "boolean",
        Value::Int(_) => "bigint",
        Value::Float(_) => "double precision",
        Value::Numeric(_) => "numeric",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytea",
        Value::Date(_) => "date",
        Value::Timestamp(_) => "timestamp without time zone",
        Value::TimestampTz(_) => "timestamp with time zone",
        Value::Interval(_) => "interval",
        Value::Null => "unknown",
    }
    .to_string()
}

/// 22003 for an integer outside the range of `ty`.
pub(crate) fn int_out_of_range(ty: &DataType) -> Error {
    Error::NumericOutOfRange(format!("{} out of range", ty.base_name()))
}

/// Checks that `v` fits integer type `ty`.
pub(crate) fn check_int(v: i64, ty: &DataType) -> Result<i64> {
    let (lo, hi) = int_range(ty);
    if v < lo || v > hi {
        Err(int_out_of_range(ty))
    } else {
        Ok(v)
    }
}

/// A float rounded half to even into integer type `ty`.
fn float_to_int(f: f64, ty: &DataType) -> Result<i64> {
    let r = f.round_ties_even();
    if !r.is_finite() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r) {
        return Err(int_out_of_range(ty));
    }
    check_int(r as i64, ty)
}

/// A numeric rounded half away from zero into integer type `ty`.
fn numeric_to_int(d: Decimal, ty: &DataType) -> Result<i64> {
    let r = d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    let v = r.to_i64().ok_or_else(|| int_out_of_range(ty))?;
    check_int(v, ty)
}

/// A float as a `real`, failing on overflow like PostgreSQL.
pub(crate) fn float_to_f4(f: f64) -> Result<f64> {
    let r = f as f32;
    if r.is_infinite() && f.is_finite() {
        return Err(Error::NumericOutOfRange(
            "value out of range: overflow".into(),
        ));
    }
    Ok(f64::from(r))
}

/// A float as a numeric, through its significant digits (15 for
/// `double precision`, 6 for `real`), like PostgreSQL's `float8_numeric`.
pub(crate) fn float_to_numeric(f: f64, single: bool) -> Result<Decimal> {
    if f.is_nan() {
        return Err(Error::FeatureNotSupported(
            "numeric NaN is not supported".into(),
        ));
    }
    if f.is_infinite() {
        return Err(Error::FeatureNotSupported(
            "numeric infinity is not supported".into(),
        ));
    }
    let digits = if single { 5 } else { 14 };
    let sci = format!("{f:.digits$e}");
    let d = parse_numeric(&sci)
        .ok()
        .or_else(|| Decimal::from_f64(f))
        .ok_or_else(|| Error::NumericOutOfRange("value overflows numeric format".into()))?;
    Ok(d.normalize())
}

/// Rounds `d` to `numeric(precision, scale)`: half away from zero to
/// `scale` digits, then at most `precision - scale` integer digits (22003).
pub(crate) fn apply_numeric_typmod(
    d: Decimal,
    precision: Option<u32>,
    scale: Option<u32>,
) -> Result<Decimal> {
    let Some(p) = precision else {
        return Ok(d);
    };
    let s = scale.unwrap_or(0).min(28);
    let mut r = d.round_dp_with_strategy(s, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(s);
    let int_digits = p.saturating_sub(s);
    if int_digits < 29 {
        let limit = Decimal::from_i128_with_scale(10i128.pow(int_digits), 0);
        if r.abs() >= limit {
            return Err(Error::NumericOutOfRange("numeric field overflow".into()));
        }
    }
    Ok(r)
}

/// Fits a string to a string type: `varchar(n)` and `char(n)` fail with
/// 22001 when longer than `n` (unless `truncate`, or the excess is blanks);
/// `char(n)` drops trailing blanks (its padding is not significant).
pub(crate) fn fit_string(s: &str, ty: &DataType, truncate: bool) -> Result<String> {
    let (limit, is_char) = match ty {
        DataType::Varchar(Some(n)) => (*n as usize, false),
        DataType::Char(0) => (usize::MAX, true),
        DataType::Char(n) => (*n as usize, true),
        _ => return Ok(s.to_string()),
    };
    let mut out = match s.char_indices().nth(limit) {
        None => s.to_string(),
        Some((cut, _)) => {
            if !truncate && s[cut..].chars().any(|c| c != ' ') {
                return Err(Error::StringDataRightTruncation(format!(
                    "value too long for type {}",
                    ty.pg_name()
                )));
            }
            s[..cut].to_string()
        }
    };
    if is_char {
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(v: Value, from: DataType, to: DataType) -> Result<Value> {
        cast(v, &from, &to, CastContext::Explicit)
    }

    fn num(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn numeric_to_int_rounds_half_away_from_zero() {
        let n = DataType::NUMERIC;
        assert_eq!(
            c(Value::Numeric(num("1.5")), n.clone(), DataType::Int4).unwrap(),
            Value::Int(2)
        );
        assert_eq!(
            c(Value::Numeric(num("-1.5")), n.clone(), DataType::Int4).unwrap(),
            Value::Int(-2)
        );
        assert_eq!(
            c(Value::Numeric(num("2.5")), n, DataType::Int4).unwrap(),
            Value::Int(3)
        );
    }

    #[test]
    fn float_to_int_rounds_half_to_even() {
        assert_eq!(
            c(Value::Float(2.5), DataType::Float8, DataType::Int4).unwrap(),
            Value::Int(2)
        );
        assert_eq!(
            c(Value::Float(3.5), DataType::Float8, DataType::Int4).unwrap(),
            Value::Int(4)
        );
        assert!(c(Value::Float(1e10), DataType::Float8, DataType::Int4).is_err());
    }

    #[test]
    fn integer_narrowing_checks_range() {
        let err = c(Value::Int(40000), DataType::Int4, DataType::Int2).unwrap_err();
        assert_eq!(err.to_string(), "smallint out of range");
    }

    #[test]
    fn numeric_typmod_rounds_and_checks_precision() {
        let t =
            |s: &str, p, sc| apply_numeric_typmod(num(s), Some(p), Some(sc)).map(|d| d.to_string());
        assert_eq!(t("99.994", 4, 2).unwrap(), "99.99");
        assert_eq!(t("2.345", 8, 2).unwrap(), "2.35");
        assert_eq!(t("-2.345", 8, 2).unwrap(), "-2.35");
        assert_eq!(t("7", 5, 2).unwrap(), "7.00");
        assert!(t("123.456", 4, 2).is_err());
        assert!(t("99.995", 4, 2).is_err());
    }

    #[test]
    fn strings_fit_or_fail() {
        let v5 = DataType::Varchar(Some(5));
        assert_eq!(fit_string("abcd   ", &v5, false).unwrap(), "abcd ");
        let err = fit_string("abcdef", &v5, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "value too long for type character varying(5)"
        );
        assert_eq!(fit_string("abcdefgh", &v5, true).unwrap(), "abcde");
        assert_eq!(fit_string("ab ", &DataType::Char(3), false).unwrap(), "ab");
        assert!(fit_string("abcd", &DataType::Char(3), false).is_err());
        assert_eq!(
            fit_string("any length  ", &DataType::Char(0), false).unwrap(),
            "any length"
        );
    }

    #[test]
    fn float_to_numeric_uses_significant_digits() {
        assert_eq!(
            float_to_numeric(1024.125, false).unwrap().to_string(),
            "1024.125"
        );
        assert_eq!(float_to_numeric(0.1, false).unwrap().to_string(), "0.1");
        assert_eq!(float_to_numeric(3.0, false).unwrap().to_string(), "3");
    }

    #[test]
    fn contexts_gate_casts() {
        use CastContext::*;
        assert!(cast_allowed(&DataType::Int4, &DataType::Int8, Implicit));
        assert!(!cast_allowed(&DataType::Int8, &DataType::Int4, Implicit));
        assert!(cast_allowed(&DataType::Int8, &DataType::Int4, Assignment));
        assert!(!cast_allowed(&DataType::Text, &DataType::Int4, Assignment));
        assert!(cast_allowed(&DataType::Text, &DataType::Int4, Explicit));
        assert!(cast_allowed(&DataType::Int4, &DataType::Text, Assignment));
        assert!(!cast_allowed(&DataType::Bool, &DataType::Date, Explicit));
    }

    #[test]
    fn bool_to_text_spells_words() {
        assert_eq!(
            c(Value::Bool(true), DataType::Bool, DataType::Text).unwrap(),
            Value::Text("true".into())
        );
    }
}
