//! Scalar functions: resolution by name and argument types, and evaluation.
//!
//! [`resolve_function`] picks the implementation the way PostgreSQL's
//! function resolution would for the types Meridian has: each function
//! lists its signatures, and arguments are implicitly cast to the chosen
//! signature's parameter types (an untyped literal becomes text for text
//! functions, an integer becomes `double precision` for `round(x)` or
//! numeric for `round(x, 2)`). The result types follow PostgreSQL:
//! `length` is `integer`, `extract` is `numeric`, `date_part` is `double
//! precision`, `abs` keeps its argument's type, `now()` is `timestamptz`.
//!
//! Every function is strict (NULL in, NULL out) except `concat` and
//! `concat_ws`, which skip NULLs. `now()` and its synonyms return the
//! transaction's timestamp, constant within a transaction, as PostgreSQL's
//! `now()` does.
//!
//! Left out: `to_char` and other formatting functions, regular expressions,
//! time zones in `date_trunc`/`extract`, set-returning functions.

use chrono::NaiveDate;
use meridian_error::{Error, Result};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::cast::{cast_allowed, float_to_numeric, CastContext};
use crate::datetime::{age, date_part, date_trunc};
use crate::expr::Env;
use crate::ops::{float_math, numeric_arith, rounding, ArithOp};
use crate::types::{decimal_to_f64, DataType, Value};

/// The longest string `repeat`, `lpad` and `rpad` build (PostgreSQL's
/// limit is 1 GB; this one keeps a runaway call from exhausting memory).
const MAX_STRING_CHARS: usize = 1 << 26;

/// A resolved scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    /// Characters in a string (`length`, `char_length`).
    Length,
    /// Bytes of a string or bytea.
    OctetLength,
    /// Bytes of a bytea (`length(bytea)`).
    ByteaLength,
    /// `lower`.
    Lower,
    /// `upper`.
    Upper,
    /// `initcap`.
    Initcap,
    /// `substr(s, from [, count])`.
    Substr,
    /// `btrim(s [, chars])` (both ends).
    Btrim,
    /// `ltrim(s [, chars])`.
    Ltrim,
    /// `rtrim(s [, chars])`.
    Rtrim,
    /// `concat(...)`, NULLs skipped.
    Concat,
    /// `concat_ws(sep, ...)`, NULLs skipped.
    ConcatWs,
    /// `replace(s, from, to)`.
    Replace,
    /// `strpos(s, sub)` (and `position(sub IN s)`).
    Strpos,
    /// `left(s, n)`.
    Left,
    /// `right(s, n)`.
    Right,
    /// `lpad(s, n [, fill])`.
    Lpad,
    /// `rpad(s, n [, fill])`.
    Rpad,
    /// `repeat(s, n)`.
    Repeat,
    /// `reverse(s)`.
    Reverse,
    /// `split_part(s, delimiter, n)`.
    SplitPart,
    /// `starts_with(s, prefix)`.
    StartsWith,
    /// `ascii(s)`.
    Ascii,
    /// `chr(n)`.
    Chr,
    /// `encode(bytea, format)`.
    Encode,
    /// `decode(text, format)`.
    Decode,
    /// `abs(x)`.
    Abs,
    /// `round(x)` / `round(numeric, s)`.
    Round,
    /// `trunc(x)` / `trunc(numeric, s)`.
    Trunc,
    /// `ceil(x)`.
    Ceil,
    /// `floor(x)`.
    Floor,
    /// `sign(x)`.
    Sign,
    /// `mod(a, b)`.
    Mod,
    /// `power(a, b)`.
    Power,
    /// `sqrt(x)`.
    Sqrt,
    /// `cbrt(x)`.
    Cbrt,
    /// `exp(x)`.
    Exp,
    /// `ln(x)`.
    Ln,
    /// `log(x)` / `log10(x)`: base 10.
    Log10,
    /// `pi()`.
    Pi,
    /// `random()`.
    Random,
    /// `now()` and friends: the transaction timestamp.
    Now,
    /// `localtimestamp`: the transaction timestamp without zone.
    LocalTimestamp,
    /// `current_date`.
    CurrentDate,
    /// `date_trunc(field, ts)`.
    DateTrunc,
    /// `date_part(field, ts)` (double precision).
    DatePart,
    /// `extract(field FROM ts)` (numeric).
    Extract,
    /// `age(a, b)`.
    Age,
    /// `make_date(y, m, d)`.
    MakeDate,
    /// `to_timestamp(seconds)`.
    ToTimestamp,
}

/// A resolved call: the function, the types its arguments are cast to, and
/// the result type.
pub(crate) struct Resolved {
    /// The implementation.
    pub func: Func,
    /// Parameter types, one per argument.
    pub params: Vec<DataType>,
    /// The result type.
    pub ret: DataType,
}

/// 42883 with PostgreSQL's message.
pub(crate) fn no_such_function(name: &str, args: &[DataType]) -> Error {
    let list: Vec<String> = args.iter().map(DataType::pg_name).collect();
    Error::UndefinedFunction(format!(
        "function {name}({}) does not exist",
        list.join(", ")
    ))
}

/// Resolves `name(args...)`; `name` is lower case.
pub(crate) fn resolve_function(name: &str, args: &[DataType]) -> Result<Resolved> {
    use DataType as T;
    let n = args.len();
    let fits = |params: &[DataType]| {
        params.len() == n
            && args
                .iter()
                .zip(params)
                .all(|(a, p)| cast_allowed(a, p, CastContext::Implicit))
    };
    // Numeric polymorphism: the argument's own numeric type, or numeric
    // for untyped literals.
    let num_arg = |i: usize| -> Option<DataType> {
        match args.get(i) {
            Some(t) if t.is_numeric() => Some(t.without_modifiers()),
            Some(T::Unknown) => Some(T::NUMERIC),
            _ => None,
        }
    };
    let sig = |func: Func, params: Vec<DataType>, ret: DataType| -> Option<Resolved> {
        fits(&params).then_some(Resolved { func, params, ret })
    };
    let text_fn = |func: Func, params: Vec<DataType>, ret: DataType| sig(func, params, ret);
    let float_or_numeric = |func: Func| -> Option<Resolved> {
        match num_arg(0)? {
            T::Numeric { .. } => sig(func, vec![T::NUMERIC], T::NUMERIC),
            _ => sig(func, vec![T::Float8], T::Float8),
        }
    };
    let resolved = match name {
        "length" | "char_length" | "character_length" if n == 1 && args[0] == T::Bytea => {
            sig(Func::ByteaLength, vec![T::Bytea], T::Int4)
        }
        "length" | "char_length" | "character_length" => {
            text_fn(Func::Length, vec![T::Text], T::Int4)
        }
        "octet_length" if n == 1 && args[0] == T::Bytea => {
            sig(Func::ByteaLength, vec![T::Bytea], T::Int4)
        }
        "octet_length" => text_fn(Func::OctetLength, vec![T::Text], T::Int4),
        "lower" => text_fn(Func::Lower, vec![T::Text], T::Text),
        "upper" => text_fn(Func::Upper, vec![T::Text], T::Text),
        "initcap" => text_fn(Func::Initcap, vec![T::Text], T::Text),
        "substr" | "substring" if n == 2 => text_fn(Func::Substr, vec![T::Text, T::Int8], T::Text),
        "substr" | "substring" => text_fn(Func::Substr, vec![T::Text, T::Int8, T::Int8], T::Text),
        "btrim" | "trim" | "ltrim" | "rtrim" => {
            let func = match name {
                "ltrim" => Func::Ltrim,
                "rtrim" => Func::Rtrim,
                _ => Func::Btrim,
            };
            if n == 1 {
                text_fn(func, vec![T::Text], T::Text)
            } else {
                text_fn(func, vec![T::Text, T::Text], T::Text)
            }
        }
        "concat" => Some(Resolved {
            func: Func::Concat,
            params: args.iter().map(|_| T::Text).collect(),
            ret: T::Text,
        }),
        "concat_ws" if n >= 1 => Some(Resolved {
            func: Func::ConcatWs,
            params: args.iter().map(|_| T::Text).collect(),
            ret: T::Text,
        }),
        "replace" => text_fn(Func::Replace, vec![T::Text, T::Text, T::Text], T::Text),
        "strpos" => text_fn(Func::Strpos, vec![T::Text, T::Text], T::Int4),
        "left" => text_fn(Func::Left, vec![T::Text, T::Int8], T::Text),
        "right" => text_fn(Func::Right, vec![T::Text, T::Int8], T::Text),
        "lpad" | "rpad" => {
            let func = if name == "lpad" {
                Func::Lpad
            } else {
                Func::Rpad
            };
            if n == 2 {
                text_fn(func, vec![T::Text, T::Int8], T::Text)
            } else {
                text_fn(func, vec![T::Text, T::Int8, T::Text], T::Text)
            }
        }
        "repeat" => text_fn(Func::Repeat, vec![T::Text, T::Int8], T::Text),
        "reverse" => text_fn(Func::Reverse, vec![T::Text], T::Text),
        "split_part" => text_fn(Func::SplitPart, vec![T::Text, T::Text, T::Int8], T::Text),
        "starts_with" => text_fn(Func::StartsWith, vec![T::Text, T::Text], T::Bool),
        "ascii" => text_fn(Func::Ascii, vec![T::Text], T::Int4),
        "chr" => sig(Func::Chr, vec![T::Int8], T::Text),
        "encode" => sig(Func::Encode, vec![T::Bytea, T::Text], T::Text),
        "decode" => sig(Func::Decode, vec![T::Text, T::Text], T::Bytea),
        "abs" => num_arg(0).and_then(|t| sig(Func::Abs, vec![t.clone()], t)),
        "round" | "trunc" if n == 2 => {
            let func = if name == "round" {
                Func::Round
            } else {
                Func::Trunc
            };
            sig(func, vec![T::NUMERIC, T::Int8], T::NUMERIC)
        }
        "round" => float_or_numeric(Func::Round),
        "trunc" => float_or_numeric(Func::Trunc),
        "ceil" | "ceiling" => float_or_numeric(Func::Ceil),
        "floor" => float_or_numeric(Func::Floor),
        "sign" => float_or_numeric(Func::Sign),
        "sqrt" => float_or_numeric(Func::Sqrt),
        "exp" => float_or_numeric(Func::Exp),
        "ln" => float_or_numeric(Func::Ln),
        "log" | "log10" if n == 1 => float_or_numeric(Func::Log10),
        "cbrt" => sig(Func::Cbrt, vec![T::Float8], T::Float8),
        "mod" if n == 2 => match (num_arg(0), num_arg(1)) {
            (Some(a), Some(b)) => {
                let t = crate::ops::common_type(&a, &b).unwrap_or(T::NUMERIC);
                let t = if t.is_float() { T::NUMERIC } else { t };
                sig(Func::Mod, vec![t.clone(), t.clone()], t)
            }
            _ => None,
        },
        "power" | "pow" if n == 2 => match (num_arg(0), num_arg(1)) {
            (Some(T::Numeric { .. }), Some(b)) | (Some(b), Some(T::Numeric { .. }))
                if !b.is_float() =>
            {
                sig(Func::Power, vec![T::NUMERIC, T::NUMERIC], T::NUMERIC)
            }
            _ => sig(Func::Power, vec![T::Float8, T::Float8], T::Float8),
        },
        "pi" => sig(Func::Pi, vec![], T::Float8),
        "random" => sig(Func::Random, vec![], T::Float8),
        "now"
        | "current_timestamp"
        | "transaction_timestamp"
        | "statement_timestamp"
        | "clock_timestamp" => sig(Func::Now, vec![], T::TimestampTz),
        "localtimestamp" => sig(Func::LocalTimestamp, vec![], T::Timestamp),
        "current_date" => sig(Func::CurrentDate, vec![], T::Date),
        "date_trunc" if n == 2 => match &args[1] {
            T::Timestamp => sig(Func::DateTrunc, vec![T::Text, T::Timestamp], T::Timestamp),
            T::Interval => None,
            _ => sig(
                Func::DateTrunc,
                vec![T::Text, T::TimestampTz],
                T::TimestampTz,
            ),
        },
        "date_part" if n == 2 => date_part_sig(Func::DatePart, &args[1], T::Float8, &fits),
        "extract" if n == 2 => date_part_sig(Func::Extract, &args[1], T::NUMERIC, &fits),
        "age" if n == 2 => match common_ts(&args[0], &args[1]) {
            Some(t) => sig(Func::Age, vec![t.clone(), t], T::Interval),
            None => None,
        },
        "make_date" => sig(Func::MakeDate, vec![T::Int4, T::Int4, T::Int4], T::Date),
        "to_timestamp" if n == 1 => sig(Func::ToTimestamp, vec![T::Float8], T::TimestampTz),
        _ => None,
    };
    resolved.ok_or_else(|| no_such_function(name, args))
}

/// The timestamp type two `age` arguments share.
fn common_ts(a: &DataType, b: &DataType) -> Option<DataType> {
    match crate::ops::common_type(a, b)? {
        DataType::Date | DataType::Unknown => Some(DataType::Timestamp),
        t if t.is_datetime() => Some(t),
        _ => None,
    }
}

/// Signatures of `date_part`/`extract` over dates, timestamps, intervals.
fn date_part_sig(
    func: Func,
    arg: &DataType,
    ret: DataType,
    fits: &dyn Fn(&[DataType]) -> bool,
) -> Option<Resolved> {
    let t = match arg {
        DataType::Date => DataType::Date,
        DataType::Timestamp => DataType::Timestamp,
        DataType::Interval => DataType::Interval,
        _ => DataType::TimestampTz,
    };
    let params = vec![DataType::Text, t];
    fits(&params).then_some(Resolved { func, params, ret })
}

/// Text of a value the binder cast to text.
fn text(v: &Value) -> &str {
    match v {
        Value::Text(s) => s,
        _ => "",
    }
}

/// An integer argument.
fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        _ => 0,
    }
}

/// Evaluates `func` on already-cast arguments.
pub(crate) fn eval_function(
    func: Func,
    args: Vec<Value>,
    ty: &DataType,
    env: &Env,
) -> Result<Value> {
    match func {
        Func::Concat => {
            let mut out = String::new();
            for a in &args {
                out.push_str(text(a));
            }
            return Ok(Value::Text(out));
        }
        Func::ConcatWs => {
            if args[0].is_null() {
                return Ok(Value::Null);
            }
            let parts: Vec<&str> = args[1..]
                .iter()
                .filter(|a| !a.is_null())
                .map(text)
                .collect();
            return Ok(Value::Text(parts.join(text(&args[0]))));
        }
        _ => {}
    }
    if args.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    let a = |i: usize| &args[i];
    Ok(match func {
        Func::Length => Value::Int(text(a(0)).chars().count() as i64),
        Func::OctetLength => Value::Int(text(a(0)).len() as i64),
        Func::ByteaLength => match a(0) {
            Value::Bytes(b) => Value::Int(b.len() as i64),
            _ => Value::Null,
        },
        Func::Lower => Value::Text(text(a(0)).to_lowercase()),
        Func::Upper => Value::Text(text(a(0)).to_uppercase()),
        Func::Initcap => Value::Text(initcap(text(a(0)))),
        Func::Substr => Value::Text(substr(text(a(0)), int(a(1)), args.get(2).map(int))?),
        Func::Btrim | Func::Ltrim | Func::Rtrim => {
            let chars: Vec<char> = args.get(1).map_or(vec![' '], |c| text(c).chars().collect());
            let s = text(a(0));
            let s = if func == Func::Rtrim {
                s
            } else {
                s.trim_start_matches(&chars[..])
            };
            let s = if func == Func::Ltrim {
                s
            } else {
                s.trim_end_matches(&chars[..])
            };
            Value::Text(s.to_string())
        }
        Func::Replace => {
            let from = text(a(1));
            if from.is_empty() {
                a(0).clone()
            } else {
                Value::Text(text(a(0)).replace(from, text(a(2))))
            }
        }
        Func::Strpos => Value::Int(match text(a(0)).find(text(a(1))) {
            Some(byte) => text(a(0))[..byte].chars().count() as i64 + 1,
            None => 0,
        }),
        Func::Left | Func::Right => {
            let chars: Vec<char> = text(a(0)).chars().collect();
            let len = chars.len() as i64;
            let n = int(a(1));
            let take = if n >= 0 { n.min(len) } else { (len + n).max(0) } as usize;
            let s: String = if func == Func::Left {
                chars[..take].iter().collect()
            } else {
                chars[chars.len() - take..].iter().collect()
            };
            Value::Text(s)
        }
        Func::Lpad | Func::Rpad => {
            let fill: Vec<char> = args.get(2).map_or(vec![' '], |f| text(f).chars().collect());
            let s: Vec<char> = text(a(0)).chars().collect();
            let n = int(a(1)).max(0) as usize;
            if n > MAX_STRING_CHARS {
                return Err(Error::InvalidInput("requested length too large".into()));
            }
            let out: String = if s.len() >= n || fill.is_empty() {
                s[..n.min(s.len())].iter().collect()
            } else {
                let pad: String = fill.iter().cycle().take(n - s.len()).collect();
                let body: String = s.iter().collect();
                if func == Func::Lpad {
                    pad + &body
                } else {
                    body + &pad
                }
            };
            Value::Text(out)
        }
        Func::Repeat => {
            let n = int(a(1)).max(0) as usize;
            if text(a(0)).len().saturating_mul(n) > MAX_STRING_CHARS {
                return Err(Error::InvalidInput("requested length too large".into()));
            }
            Value::Text(text(a(0)).repeat(n))
        }
        Func::Reverse => Value::Text(text(a(0)).chars().rev().collect()),
        Func::SplitPart => {
            let n = int(a(2));
            if n == 0 {
                return Err(Error::InvalidInput(
                    "field position must not be zero".into(),
                ));
            }
            let s = text(a(0));
            let delim = text(a(1));
            let parts: Vec<&str> = if delim.is_empty() {
                vec![s]
            } else {
                s.split(delim).collect()
            };
            let idx = if n > 0 { n - 1 } else { parts.len() as i64 + n };
            Value::Text(
                parts
                    .get(idx as usize)
                    .filter(|_| idx >= 0)
                    .unwrap_or(&"")
                    .to_string(),
            )
        }
        Func::StartsWith => Value::Bool(text(a(0)).starts_with(text(a(1)))),
        Func::Ascii => Value::Int(text(a(0)).chars().next().map_or(0, |c| c as i64)),
        Func::Chr => match char::from_u32(int(a(0)) as u32).filter(|c| *c != '\0') {
            Some(c) => Value::Text(c.to_string()),
            None => {
                return Err(Error::InvalidInput(
                    "requested character too large for encoding".into(),
                ))
            }
        },
        Func::Encode => encode(a(0), text(a(1)))?,
        Func::Decode => decode(text(a(0)), text(a(1)))?,
        Func::Abs => match a(0) {
            Value::Int(i) => Value::Int(crate::cast::check_int(
                i.checked_abs()
                    .ok_or_else(|| crate::cast::int_out_of_range(ty))?,
                ty,
            )?),
            Value::Float(f) => Value::Float(f.abs()),
            Value::Numeric(d) => Value::Numeric(d.abs()),
            v => v.clone(),
        },
        Func::Round | Func::Trunc | Func::Ceil | Func::Floor => {
            rounding(func, a(0), args.get(1).map(int))?
        }
        Func::Sign => match a(0) {
            Value::Float(f) => Value::Float(if *f > 0.0 {
                1.0
            } else if *f < 0.0 {
                -1.0
            } else {
                0.0
            }),
            Value::Numeric(d) => Value::Numeric(Decimal::from(d.cmp(&Decimal::ZERO) as i8)),
            v => v.clone(),
        },
        Func::Mod => match (a(0), a(1)) {
            (Value::Int(x), Value::Int(y)) => {
                if *y == 0 {
                    return Err(Error::DivisionByZero);
                }
                Value::Int(x.checked_rem(*y).unwrap_or(0))
            }
            (Value::Numeric(x), Value::Numeric(y)) => {
                Value::Numeric(numeric_arith(ArithOp::Mod, *x, *y)?)
            }
            _ => Value::Null,
        },
        Func::Power => match (a(0), a(1)) {
            (Value::Float(x), Value::Float(y)) => {
                if *x == 0.0 && *y < 0.0 {
                    return Err(Error::InvalidInput(
                        "zero raised to a negative power is undefined".into(),
                    ));
                }
                Value::Float(float_result(x.powf(*y))?)
            }
            (Value::Numeric(x), Value::Numeric(y)) => {
                if y.is_integer() && y.abs() <= Decimal::from(64) {
                    let mut r = Decimal::ONE;
                    let base = if y.is_sign_negative() {
                        Decimal::ONE / *x
                    } else {
                        *x
                    };
                    for _ in 0..y.abs().to_i64().unwrap_or(0) {
                        r = r.checked_mul(base).ok_or_else(|| {
                            Error::NumericOutOfRange("value overflows numeric format".into())
                        })?;
                    }
                    Value::Numeric(r.normalize())
                } else {
                    let f = decimal_to_f64(x).powf(decimal_to_f64(y));
                    Value::Numeric(float_to_numeric(float_result(f)?, false)?)
                }
            }
            _ => Value::Null,
        },
        Func::Sqrt | Func::Exp | Func::Ln | Func::Log10 | Func::Cbrt => float_math(func, a(0))?,
        Func::Pi => Value::Float(std::f64::consts::PI),
        Func::Random => Value::Float(next_random()),
        Func::Now => Value::TimestampTz(env.now),
        Func::LocalTimestamp => Value::Timestamp(env.now.naive_utc()),
        Func::CurrentDate => Value::Date(env.now.naive_utc().date()),
        Func::DateTrunc => date_trunc(text(a(0)), a(1))?,
        Func::DatePart | Func::Extract => {
            let part = date_part(text(a(0)), a(1))?;
            if func == Func::DatePart {
                Value::Float(decimal_to_f64(&part))
            } else {
                Value::Numeric(part)
            }
        }
        Func::Age => match (a(0), a(1)) {
            (Value::Timestamp(x), Value::Timestamp(y)) => Value::Interval(age(*x, *y)),
            (Value::TimestampTz(x), Value::TimestampTz(y)) => {
                Value::Interval(age(x.naive_utc(), y.naive_utc()))
            }
            _ => Value::Null,
        },
        Func::MakeDate => {
            let (y, m, d) = (int(a(0)), int(a(1)), int(a(2)));
            match NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32) {
                Some(date) => Value::Date(date),
                None => {
                    return Err(Error::DatetimeFieldOverflow(format!(
                        "date field value out of range: {y}-{m:02}-{d:02}"
                    )))
                }
            }
        }
        Func::ToTimestamp => match a(0) {
            Value::Float(secs) => {
                let micros = (secs * 1e6).round();
                match chrono::DateTime::from_timestamp_micros(micros as i64) {
                    Some(t) if micros.is_finite() => Value::TimestampTz(t),
                    _ => {
                        return Err(Error::DatetimeFieldOverflow(
                            "timestamp out of range".into(),
                        ))
                    }
                }
            }
            _ => Value::Null,
        },
        Func::Concat | Func::ConcatWs => unreachable!("handled above"),
    })
}

/// A float result, 22003 if it overflowed.
pub(crate) fn float_result(f: f64) -> Result<f64> {
    if f.is_infinite() {
        Err(Error::NumericOutOfRange(
            "value out of range: overflow".into(),
        ))
    } else {
        Ok(f)
    }
}

/// `initcap`: upper-case the first letter of each word.
fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = true;
        }
    }
    out
}

/// `substr(s, from, count)` with PostgreSQL's handling of positions before
/// the start.
fn substr(s: &str, from: i64, count: Option<i64>) -> Result<String> {
    let start = from;
    let end = match count {
        Some(c) if c < 0 => {
            return Err(Error::InvalidInput(
                "negative substring length not allowed".into(),
            ))
        }
        Some(c) => start.saturating_add(c),
        None => i64::MAX,
    };
    let first = start.max(1);
    if end <= first {
        return Ok(String::new());
    }
    Ok(s.chars()
        .skip((first - 1) as usize)
        .take((end - first) as usize)
        .collect())
}

/// `encode(bytes, 'hex' | 'escape' | 'base64')`.
fn encode(v: &Value, format: &str) -> Result<Value> {
    let Value::Bytes(b) = v else {
        return Ok(Value::Null);
    };
    Ok(Value::Text(match format.to_ascii_lowercase().as_str() {
        "hex" => crate::text::format_bytea(b)[2..].to_string(),
        "escape" => {
            let mut out = String::new();
            for &byte in b {
                match byte {
                    b'\\' => out.push_str("\\\\"),
                    0x20..=0x7e => out.push(byte as char),
                    _ => out.push_str(&format!("\\{byte:03o}")),
                }
            }
            out
        }
        "base64" => base64(b),
        other => {
            return Err(Error::InvalidInput(format!(
                "unrecognized encoding: \"{other}\""
            )))
        }
    }))
}

/// `decode(text, 'hex' | 'escape')`.
fn decode(s: &str, format: &str) -> Result<Value> {
    Ok(Value::Bytes(match format.to_ascii_lowercase().as_str() {
        "hex" => crate::text::parse_bytea(&format!("\\x{s}"))?,
        "escape" => crate::text::parse_bytea(s)?,
        other => {
            return Err(Error::InvalidInput(format!(
                "unrecognized encoding: \"{other}\""
            )))
        }
    }))
}

/// Standard base64 with padding.
fn base64(b: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | u32::from(x) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A pseudo-random float in `[0, 1)` from a per-thread xorshift generator.
fn next_random() -> f64 {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) });
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn call(name: &str, args: Vec<Value>, types: Vec<DataType>) -> Result<Value> {
        let r = resolve_function(name, &types)?;
        let subs = HashMap::new();
        let env = Env {
            params: &[],
            outer: &[],
            subqueries: &subs,
            now: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        eval_function(r.func, args, &r.ret, &env)
    }

    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn string_functions() {
        let tt = || vec![DataType::Text];
        assert_eq!(
            call("length", vec![t("héllo")], tt()).unwrap(),
            Value::Int(5)
        );
        assert_eq!(call("upper", vec![t("ab")], tt()).unwrap(), t("AB"));
        assert_eq!(
            call(
                "substr",
                vec![t("hello"), Value::Int(2), Value::Int(3)],
                vec![DataType::Text, DataType::Int4, DataType::Int4]
            )
            .unwrap(),
            t("ell")
        );
        assert_eq!(
            call(
                "substr",
                vec![t("hello"), Value::Int(-1), Value::Int(3)],
                vec![DataType::Text, DataType::Int4, DataType::Int4]
            )
            .unwrap(),
            t("h")
        );
        assert_eq!(
            call(
                "split_part",
                vec![t("a,b,c"), t(","), Value::Int(2)],
                vec![DataType::Text, DataType::Text, DataType::Int4]
            )
            .unwrap(),
            t("b")
        );
        assert_eq!(
            call(
                "lpad",
                vec![t("7"), Value::Int(3), t("0")],
                vec![DataType::Text, DataType::Int4, DataType::Text]
            )
            .unwrap(),
            t("007")
        );
        assert_eq!(
            call(
                "concat",
                vec![t("a"), Value::Null, t("b")],
                vec![DataType::Text, DataType::Unknown, DataType::Text]
            )
            .unwrap(),
            t("ab")
        );
        assert_eq!(
            call(
                "strpos",
                vec![t("hello"), t("ll")],
                vec![DataType::Text, DataType::Text]
            )
            .unwrap(),
            Value::Int(3)
        );
        assert!(matches!(
            resolve_function("lower", &[DataType::Int4]),
            Err(Error::UndefinedFunction(_))
        ));
    }

    #[test]
    fn rounding_follows_types() {
        let n = |s: &str| Value::Numeric(s.parse().unwrap());
        let nt = DataType::NUMERIC;
        assert_eq!(
            call("round", vec![n("2.5")], vec![nt.clone()]).unwrap(),
            n("3")
        );
        assert_eq!(
            call("round", vec![n("-2.5")], vec![nt.clone()]).unwrap(),
            n("-3")
        );
        assert_eq!(
            call(
                "round",
                vec![n("1.235"), Value::Int(2)],
                vec![nt.clone(), DataType::Int4]
            )
            .unwrap()
            .to_pg_text(&nt),
            Some("1.24".into())
        );
        assert_eq!(
            call("ceil", vec![n("1.25")], vec![nt.clone()]).unwrap(),
            n("2")
        );
        assert_eq!(call("floor", vec![n("-1.25")], vec![nt]).unwrap(), n("-2"));
        let r = resolve_function("round", &[DataType::Int4]).unwrap();
        assert_eq!(r.ret, DataType::Float8);
    }

    #[test]
    fn bytea_encoding() {
        assert_eq!(
            encode(&Value::Bytes(vec![0, 0xff]), "hex").unwrap(),
            t("00ff")
        );
        assert_eq!(
            encode(&Value::Bytes(b"hi".to_vec()), "base64").unwrap(),
            t("aGk=")
        );
    }
}
