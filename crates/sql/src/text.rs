//! PostgreSQL's text forms of values: the input and output functions.
//!
//! [`Value::to_pg_text`] is what the wire protocol sends in text format and
//! what a cast to `text` produces; [`Value::from_pg_text`] parses text
//! parameters, string literals coerced to a type, and casts from `text`.
//! They follow PostgreSQL 15 with `DateStyle = ISO, MDY`,
//! `IntervalStyle = postgres`, `TimeZone = UTC` and `extra_float_digits = 1`:
//!
//! - `bool` prints `t`/`f` and accepts PostgreSQL's spellings (`yes`, `on`,
//!   unique prefixes of `true`/`false`, `1`, `0`);
//! - floats print the shortest text that reads back to the same value, in
//!   positional form for decimal exponents from -4 up to 14 (`real`: 5) and
//!   as `1e+20` otherwise, like `float8out` since PostgreSQL 12;
//! - `numeric` prints its display scale (`1.50`), parses plain and
//!   scientific forms;
//! - `bytea` prints and parses the hex form `\x0102`, and parses the escape
//!   form (`abc`, `\\`, `\001`);
//! - dates and timestamps are ISO (`2024-01-15 10:30:00.5`), `timestamptz`
//!   adds the zone (`+00`); input accepts `T` or a blank between date and
//!   time, optional seconds and fractions, and zones `Z`, `UTC`, `+hh`,
//!   `+hh:mm`, `+hhmm` (ignored for `timestamp`, like PostgreSQL);
//! - intervals print like `1 year 2 mons 3 days 04:05:06` and parse
//!   `1 day`, `90 minutes`, `-5s`, `1.5 hours`, `01:30:00`, `... ago`.
//!
//! Errors use PostgreSQL's SQLSTATEs and wording: 22P02 `invalid input
//! syntax for type integer: "abc"`, 22003 `value "99999" is out of range
//! for type smallint`, 22008 `date/time field value out of range`, and for a
//! malformed date or time `invalid input syntax for type date` (PostgreSQL's
//! 22007; the workspace error has no such variant yet, so it is reported as
//! 22P02, see [`invalid_datetime`]).
//!
//! Left out: `infinity`, `epoch`, `today` and other special date inputs,
//! BC dates, non-ISO date orders, time zone names other than UTC.

use std::fmt::Write;
use std::str::FromStr;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use meridian_error::{Error, Result};
use rust_decimal::Decimal;

use crate::cast::{apply_numeric_typmod, fit_string};
use crate::types::{DataType, Interval, Value, MICROS_PER_DAY};

impl Value {
    /// PostgreSQL's text output for a value of type `ty` (e.g. bool `t`/`f`,
    /// bytea `\x0102`, timestamptz `2026-11-24 03:18:23.5+00`, float8 in the
    /// shortest form that reads back exactly); `None` for `NULL`.
    pub fn to_pg_text(&self, ty: &DataType) -> Option<String> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f, *ty == DataType::Float4),
            Value::Numeric(d) => d.to_string(),
            Value::Text(s) => match ty {
                DataType::Char(n) => {
                    let len = s.chars().count();
                    let mut padded = s.clone();
                    padded.extend(std::iter::repeat_n(' ', (*n as usize).saturating_sub(len)));
                    padded
                }
                _ => s.clone(),
            },
            Value::Bytes(b) => format_bytea(b),
            Value::Date(d) => format_date(d),
            Value::Timestamp(t) => format_timestamp(t),
            Value::TimestampTz(t) => format!("{}+00", format_timestamp(&t.naive_utc())),
            Value::Interval(i) => format_interval(i),
        })
    }

    /// Parses PostgreSQL's text input for type `ty` (text-format parameters,
    /// literals, casts from text). Length and precision modifiers are
    /// enforced as on assignment: too long for `varchar(n)` is 22001, too
    /// many digits for `numeric(p,s)` 22003.
    pub fn from_pg_text(text: &str, ty: &DataType) -> Result<Value> {
        match ty {
            DataType::Bool => parse_bool(text).map(Value::Bool),
            DataType::Int2 | DataType::Int4 | DataType::Int8 => parse_int(text, ty).map(Value::Int),
            DataType::Float4 | DataType::Float8 => parse_float(text, ty).map(Value::Float),
            DataType::Numeric { precision, scale } => {
                let d = parse_numeric(text)?;
                apply_numeric_typmod(d, *precision, *scale).map(Value::Numeric)
            }
            DataType::Text | DataType::Unknown => Ok(Value::Text(text.to_string())),
            DataType::Varchar(_) | DataType::Char(_) => {
                fit_string(text, ty, false).map(Value::Text)
            }
            DataType::Bytea => parse_bytea(text).map(Value::Bytes),
            DataType::Date => parse_date(text).map(Value::Date),
            DataType::Timestamp => parse_timestamp(text, false).map(|(t, _)| Value::Timestamp(t)),
            DataType::TimestampTz => {
                let (t, offset) = parse_timestamp(text, true)?;
                let utc = t - Duration::seconds(i64::from(offset.unwrap_or(0)));
                Ok(Value::TimestampTz(Utc.from_utc_datetime(&utc)))
            }
            DataType::Interval => parse_interval(text).map(Value::Interval),
        }
    }
}

/// 22P02 for text that is not a value of `ty`.
pub(crate) fn invalid_input(ty: &str, text: &str) -> Error {
    Error::InvalidTextRepresentation(format!("invalid input syntax for type {ty}: \"{text}\""))
}

/// 22007 for a malformed date, time or interval, with PostgreSQL's message.
pub(crate) fn invalid_datetime(ty: &str, text: &str) -> Error {
    Error::InvalidDatetimeFormat(format!("invalid input syntax for type {ty}: \"{text}\""))
}

/// 22008 for a date or time field out of range.
fn field_overflow(text: &str) -> Error {
    Error::DatetimeFieldOverflow(format!("date/time field value out of range: \"{text}\""))
}

/// Parses a boolean the way `boolin` does.
pub(crate) fn parse_bool(text: &str) -> Result<bool> {
    let t = text.trim().to_ascii_lowercase();
    let is_prefix = |word: &str, min: usize| t.len() >= min && word.starts_with(t.as_str());
    if is_prefix("true", 1) || is_prefix("yes", 1) || t == "on" || t == "1" {
        Ok(true)
    } else if is_prefix("false", 1) || is_prefix("no", 1) || is_prefix("off", 2) || t == "0" {
        Ok(false)
    } else {
        Err(invalid_input("boolean", text))
    }
}

/// The range of an integer type.
pub(crate) fn int_range(ty: &DataType) -> (i64, i64) {
    match ty {
        DataType::Int2 => (i64::from(i16::MIN), i64::from(i16::MAX)),
        DataType::Int4 => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    }
}

/// Parses an integer of type `ty` (leading and trailing blanks allowed).
fn parse_int(text: &str, ty: &DataType) -> Result<i64> {
    let t = text.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid_input(ty.base_name(), text));
    }
    let out_of_range = || {
        Error::NumericOutOfRange(format!(
            "value \"{text}\" is out of range for type {}",
            ty.base_name()
        ))
    };
    let v: i64 = t.parse().map_err(|_| out_of_range())?;
    let (lo, hi) = int_range(ty);
    if v < lo || v > hi {
        return Err(out_of_range());
    }
    Ok(v)
}

/// Parses a float (`NaN`, `Infinity` and `inf` included).
fn parse_float(text: &str, ty: &DataType) -> Result<f64> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let special = match lower.trim_start_matches(['+', '-']) {
        "nan" => Some(f64::NAN),
        "infinity" | "inf" => Some(f64::INFINITY),
        _ => None,
    };
    let v = match special {
        Some(v) if lower.starts_with('-') => -v,
        Some(v) => v,
        None => {
            let ok = !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
            let v: f64 = if ok { t.parse().ok() } else { None }
                .ok_or_else(|| invalid_input(ty.base_name(), text))?;
            if v.is_infinite() {
                return Err(Error::NumericOutOfRange(format!(
                    "\"{t}\" is out of range for type {}",
                    ty.base_name()
                )));
            }
            v
        }
    };
    Ok(if *ty == DataType::Float4 {
        f64::from(v as f32)
    } else {
        v
    })
}

/// Parses a numeric literal: `12`, `-1.50`, `.5`, `1e3`.
pub(crate) fn parse_numeric(text: &str) -> Result<Decimal> {
    let t = text.trim();
    let body = t.strip_prefix('+').unwrap_or(t);
    let unsigned = body.strip_prefix('-').unwrap_or(body);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(pos) => (&unsigned[..pos], Some(&unsigned[pos + 1..])),
        None => (unsigned, None),
    };
    let mut parts = mantissa.splitn(2, '.');
    let int_part = parts.next().unwrap_or("");
    let frac_part = parts.next().unwrap_or("");
    let valid = !(int_part.is_empty() && frac_part.is_empty())
        && int_part.bytes().all(|b| b.is_ascii_digit())
        && frac_part.bytes().all(|b| b.is_ascii_digit())
        && exponent.is_none_or(|e| {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
        });
    if !valid {
        return Err(invalid_input("numeric", text));
    }
    let overflow = || Error::NumericOutOfRange("value overflows numeric format".into());
    let negative = body.starts_with('-');
    let plain = format!(
        "{}{}{}{}",
        if negative { "-" } else { "" },
        if int_part.is_empty() { "0" } else { int_part },
        if frac_part.is_empty() { "" } else { "." },
        frac_part
    );
    let mut d = Decimal::from_str(&plain).map_err(|_| overflow())?;
    if let Some(e) = exponent {
        let e: i64 = e.parse().map_err(|_| overflow())?;
        if !(-28..=28).contains(&e) {
            return Err(overflow());
        }
        let ten = Decimal::from(10);
        for _ in 0..e.unsigned_abs() {
            d = if e > 0 {
                d.checked_mul(ten).ok_or_else(overflow)?
            } else {
                d.checked_div(ten).ok_or_else(overflow)?
            };
        }
        if e < 0 {
            let scale = (frac_part.len() as u32 + e.unsigned_abs() as u32).min(28);
            d.rescale(scale);
        } else {
            let scale = (frac_part.len() as i64 - e).max(0) as u32;
            d.rescale(scale);
        }
    }
    Ok(d)
}

/// Prints a float like PostgreSQL 12+ (`extra_float_digits = 1`): the
/// shortest digits that read back exactly, positional for decimal exponents
/// in `-4..15` (`real`: `-4..6`), scientific (`1e+20`) otherwise.
pub(crate) fn format_float(f: f64, single: bool) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = if single {
        format!("{:e}", f as f32)
    } else {
        format!("{f:e}")
    };
    let (mantissa, exp) = sci.split_once('e').expect("LowerExp has an exponent");
    let exp: i32 = exp.parse().expect("LowerExp exponent is an integer");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let max_exp = if single { 6 } else { 15 };
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if exp < -4 || exp >= max_exp {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else if exp < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// `\x` followed by lower-case hex digits.
pub(crate) fn format_bytea(b: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * b.len());
    out.push_str("\\x");
    for byte in b {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Parses bytea input in hex (`\x0a0b`) or escape (`a\\b\001`) form.
pub(crate) fn parse_bytea(text: &str) -> Result<Vec<u8>> {
    if let Some(hex) = text
        .strip_prefix("\\x")
        .or_else(|| text.strip_prefix("\\X"))
    {
        let mut out = Vec::with_capacity(hex.len() / 2);
        let mut chars = hex.chars().filter(|c| !c.is_whitespace());
        while let Some(hi) = chars.next() {
            let digit = |c: char| {
                c.to_digit(16).ok_or_else(|| {
                    Error::InvalidTextRepresentation(format!("invalid hexadecimal digit: \"{c}\""))
                })
            };
            let hi = digit(hi)?;
            let lo = match chars.next() {
                Some(c) => digit(c)?,
                None => {
                    return Err(Error::InvalidTextRepresentation(
                        "invalid hexadecimal data: odd number of digits".into(),
                    ))
                }
            };
            out.push((hi * 16 + lo) as u8);
        }
        return Ok(out);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
            && bytes[i + 1] <= b'3'
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            return Err(invalid_input("bytea", text));
        }
    }
    Ok(out)
}

/// `YYYY-MM-DD`.
pub(crate) fn format_date(d: &NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]`, trailing zeros of the fraction dropped.
pub(crate) fn format_timestamp(t: &NaiveDateTime) -> String {
    let mut out = format!(
        "{} {:02}:{:02}:{:02}",
        format_date(&t.date()),
        t.hour(),
        t.minute(),
        t.second()
    );
    push_fraction(&mut out, t.nanosecond() / 1000);
    out
}

/// Appends `.ffffff` without trailing zeros (nothing for zero).
fn push_fraction(out: &mut String, micros: u32) {
    if micros != 0 {
        let frac = format!("{micros:06}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
}

/// Splits `YYYY-MM-DD` off the front of `s`, returning the rest.
fn parse_date_part<'a>(s: &'a str, text: &str, ty: &str) -> Result<(NaiveDate, &'a str)> {
    let bad = || invalid_datetime(ty, text);
    let mut fields = [0i64; 3];
    let mut rest = s;
    for (i, field) in fields.iter_mut().enumerate() {
        let len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 || (i > 0 && len > 2) || len > 6 {
            return Err(bad());
        }
        *field = rest[..len].parse().map_err(|_| bad())?;
        rest = &rest[len..];
        if i < 2 {
            rest = rest.strip_prefix('-').ok_or_else(bad)?;
        }
    }
    let [y, m, d] = fields;
    let date = NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32)
        .ok_or_else(|| field_overflow(text))?;
    Ok((date, rest))
}

/// Parses a date (`YYYY-MM-DD`, optionally followed by a time, which is
/// ignored).
pub(crate) fn parse_date(text: &str) -> Result<NaiveDate> {
    let t = text.trim();
    let (date, rest) = parse_date_part(t, text, "date")?;
    if !rest.is_empty() {
        // A time part may follow; it must itself be valid.
        let rest = rest
            .strip_prefix(['T', ' '])
            .ok_or_else(|| invalid_datetime("date", text))?;
        parse_time_and_zone(rest.trim_start(), text, "date")?;
    }
    Ok(date)
}

/// Parses `HH:MM[:SS[.frac]]` plus an optional zone; returns the time as
/// microseconds since midnight (24:00:00 allowed) and the zone offset in
/// seconds east of UTC.
fn parse_time_and_zone(s: &str, text: &str, ty: &str) -> Result<(i64, Option<i32>)> {
    let bad = || invalid_datetime(ty, text);
    let mut rest = s;
    let mut fields = [0i64; 2];
    for (i, field) in fields.iter_mut().enumerate() {
        let len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 || len > 2 {
            return Err(bad());
        }
        *field = rest[..len].parse().map_err(|_| bad())?;
        rest = &rest[len..];
        if i == 0 {
            rest = rest.strip_prefix(':').ok_or_else(bad)?;
        }
    }
    let [hour, minute] = fields;
    let mut second = 0i64;
    let mut micros = 0i64;
    if let Some(r) = rest.strip_prefix(':') {
        let len = r.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 || len > 2 {
            return Err(bad());
        }
        second = r[..len].parse().map_err(|_| bad())?;
        rest = &r[len..];
        if let Some(r) = rest.strip_prefix('.') {
            let len = r.bytes().take_while(u8::is_ascii_digit).count();
            let digits = &r[..len];
            let mut value = 0i64;
            for (i, b) in digits.bytes().enumerate().take(7) {
                let d = i64::from(b - b'0');
                if i < 6 {
                    value = value * 10 + d;
                } else if d >= 5 {
                    value += 1;
                }
            }
            for _ in digits.len()..6 {
                value *= 10;
            }
            micros = value;
            rest = &r[len..];
        }
    }
    if hour > 24
        || minute > 59
        || second > 60
        || (hour == 24 && (minute, second, micros) != (0, 0, 0))
    {
        return Err(field_overflow(text));
    }
    let zone = parse_zone(rest.trim(), text, ty)?;
    Ok((
        ((hour * 60 + minute) * 60 + second) * 1_000_000 + micros,
        zone,
    ))
}

/// Parses a zone suffix: empty, `Z`, `UTC`, `GMT`, `+hh`, `+hh:mm`, `+hhmm`.
fn parse_zone(s: &str, text: &str, ty: &str) -> Result<Option<i32>> {
    if s.is_empty() {
        return Ok(None);
    }
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") || s.eq_ignore_ascii_case("gmt")
    {
        return Ok(Some(0));
    }
    let bad = || invalid_datetime(ty, text);
    let sign = match s.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return Err(bad()),
    };
    let body = &s[1..];
    let (h, m) = if let Some((h, m)) = body.split_once(':') {
        (h, m)
    } else if body.len() == 4 {
        (&body[..2], &body[2..])
    } else {
        (body, "0")
    };
    let valid = |p: &str| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit());
    if !valid(h) || !valid(m) {
        return Err(bad());
    }
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 15 || m > 59 {
        return Err(field_overflow(text));
    }
    Ok(Some(sign * (h * 3600 + m * 60)))
}

/// Parses a timestamp; returns the local date-time and the zone offset (in
/// seconds east of UTC) if one was given. A zone is accepted, and ignored,
/// for `timestamp` too, as PostgreSQL does.
pub(crate) fn parse_timestamp(text: &str, with_tz: bool) -> Result<(NaiveDateTime, Option<i32>)> {
    let ty = if with_tz {
        "timestamp with time zone"
    } else {
        "timestamp without time zone"
    };
    let t = text.trim();
    let (date, rest) = parse_date_part(t, text, ty)?;
    let (micros, zone) = if rest.is_empty() {
        (0, None)
    } else {
        let rest = rest
            .strip_prefix(['T', ' '])
            .ok_or_else(|| invalid_datetime(ty, text))?;
        let rest = rest.trim_start();
        if rest.starts_with(['+', '-'])
            || rest.eq_ignore_ascii_case("z")
            || rest.eq_ignore_ascii_case("utc")
        {
            (0, parse_zone(rest, text, ty)?)
        } else {
            parse_time_and_zone(rest, text, ty)?
        }
    };
    let midnight = date.and_time(NaiveTime::MIN);
    let ts = midnight
        .checked_add_signed(Duration::microseconds(micros))
        .ok_or_else(|| field_overflow(text))?;
    Ok((ts, zone))
}

/// Prints an interval in PostgreSQL's `postgres` style.
pub(crate) fn format_interval(i: &Interval) -> String {
    let mut out = String::new();
    let mut is_zero = true;
    let mut is_before = false;
    let years = i.months / 12;
    let months = i.months % 12;
    for (value, unit) in [
        (i64::from(years), "year"),
        (i64::from(months), "mon"),
        (i64::from(i.days), "day"),
    ] {
        if value != 0 {
            let _ = write!(
                out,
                "{}{}{} {}{}",
                if is_zero { "" } else { " " },
                if is_before && value > 0 { "+" } else { "" },
                value,
                unit,
                if value != 1 { "s" } else { "" }
            );
            is_before = value < 0;
            is_zero = false;
        }
    }
    if i.micros != 0 || is_zero {
        let minus = i.micros < 0;
        let abs = i.micros.unsigned_abs();
        let hours = abs / 3_600_000_000;
        let minutes = (abs / 60_000_000) % 60;
        let seconds = (abs / 1_000_000) % 60;
        let _ = write!(
            out,
            "{}{}{:02}:{:02}:{:02}",
            if is_zero { "" } else { " " },
            if minus {
                "-"
            } else if is_before {
                "+"
            } else {
                ""
            },
            hours,
            minutes,
            seconds
        );
        push_fraction(&mut out, (abs % 1_000_000) as u32);
    }
    out
}

/// Parses interval input: `1 day`, `90 minutes`, `-5s`, `1 year 2 mons`,
/// `1.5 hours`, `01:30:00`, `1 day 02:00`, `3 days ago`; a bare number is
/// seconds.
pub(crate) fn parse_interval(text: &str) -> Result<Interval> {
    let bad = || invalid_datetime("interval", text);
    let lower = text.trim().to_ascii_lowercase();
    let mut words: Vec<&str> = lower.split_whitespace().collect();
    let ago = words.last() == Some(&"ago");
    if ago {
        words.pop();
    }
    if words.is_empty() {
        return Err(bad());
    }
    let mut months = 0f64;
    let mut days = 0f64;
    let mut micros = 0f64;
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        i += 1;
        let (sign, body) = match word.strip_prefix('-') {
            Some(b) => (-1.0, b),
            None => (1.0, word.strip_prefix('+').unwrap_or(word)),
        };
        if body.contains(':') {
            let parts: Vec<&str> = body.split(':').collect();
            if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
                return Err(bad());
            }
            let num = |p: &str| p.parse::<f64>().map_err(|_| bad());
            let h = num(parts[0])?;
            let m = num(parts[1])?;
            let s = if parts.len() == 3 {
                num(parts[2])?
            } else {
                0.0
            };
            micros += sign * ((h * 60.0 + m) * 60.0 + s) * 1e6;
            continue;
        }
        let num_len = body
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        if num_len == 0 {
            return Err(bad());
        }
        let number: f64 = body[..num_len].parse().map_err(|_| bad())?;
        let number = sign * number;
        let mut unit = &body[num_len..];
        if unit.is_empty() {
            match words.get(i) {
                Some(next) if next.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                    unit = next;
                    i += 1;
                }
                _ => {
                    micros += number * 1e6;
                    continue;
                }
            }
        }
        match unit.trim_end_matches(',') {
            "microsecond" | "microseconds" | "us" | "usec" | "usecs" => micros += number,
            "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => micros += number * 1e3,
            "second" | "seconds" | "s" | "sec" | "secs" => micros += number * 1e6,
            "minute" | "minutes" | "m" | "min" | "mins" => micros += number * 6e7,
            "hour" | "hours" | "h" | "hr" | "hrs" => micros += number * 3.6e9,
            "day" | "days" | "d" => days += number,
            "week" | "weeks" | "w" => days += number * 7.0,
            "month" | "months" | "mon" | "mons" => months += number,
            "year" | "years" | "y" | "yr" | "yrs" => months += number * 12.0,
            "decade" | "decades" => months += number * 120.0,
            "century" | "centuries" => months += number * 1200.0,
            "millennium" | "millennia" => months += number * 12000.0,
            _ => return Err(bad()),
        }
    }
    // Fractions cascade down: months to days (30 per month), days to time.
    let whole_months = months.trunc();
    days += (months - whole_months) * 30.0;
    let whole_days = days.trunc();
    micros += (days - whole_days) * MICROS_PER_DAY as f64;
    let sign = if ago { -1.0 } else { 1.0 };
    let fits = |v: f64| v.abs() < f64::from(i32::MAX);
    if !fits(whole_months) || !fits(whole_days) || micros.abs() >= 9.2e18 {
        return Err(Error::DatetimeFieldOverflow("interval out of range".into()));
    }
    Ok(Interval {
        months: (sign * whole_months) as i32,
        days: (sign * whole_days) as i32,
        micros: (sign * micros).round() as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &Value, ty: &DataType) -> String {
        v.to_pg_text(ty).unwrap()
    }

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(format_float(1.5, false), "1.5");
        assert_eq!(format_float(3.0, false), "3");
        assert_eq!(format_float(1e15, false), "1e+15");
        assert_eq!(format_float(1e14, false), "100000000000000");
        assert_eq!(format_float(0.0001, false), "0.0001");
        assert_eq!(format_float(0.00001, false), "1e-05");
        assert_eq!(format_float(1024.125, false), "1024.125");
        assert_eq!(format_float(0.1 + 0.2, false), "0.30000000000000004");
        assert_eq!(format_float(1e6, true), "1e+06");
        assert_eq!(format_float(100000.0, true), "100000");
        assert_eq!(format_float(f64::from(0.1f32), true), "0.1");
        assert_eq!(format_float(-2.25, false), "-2.25");
        assert_eq!(format_float(f64::NAN, false), "NaN");
        assert_eq!(format_float(f64::NEG_INFINITY, false), "-Infinity");
    }

    #[test]
    fn integers_parse_with_range_checks() {
        assert_eq!(
            Value::from_pg_text(" 45 ", &DataType::Int4).unwrap(),
            Value::Int(45)
        );
        let err = Value::from_pg_text("12x", &DataType::Int4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid input syntax for type integer: \"12x\""
        );
        let err = Value::from_pg_text("99999", &DataType::Int2).unwrap_err();
        assert!(matches!(err, Error::NumericOutOfRange(_)));
        assert_eq!(
            err.to_string(),
            "value \"99999\" is out of range for type smallint"
        );
    }

    #[test]
    fn booleans_accept_postgres_spellings() {
        for t in ["t", "TRUE", "yes", "on", "1", "tr"] {
            assert!(parse_bool(t).unwrap(), "{t}");
        }
        for f in ["f", "false", "no", "off", "0", "of"] {
            assert!(!parse_bool(f).unwrap(), "{f}");
        }
        assert!(parse_bool("maybe").is_err());
        assert!(parse_bool("o").is_err());
    }

    #[test]
    fn numerics_keep_their_scale() {
        assert_eq!(parse_numeric("-2.50 ").unwrap().to_string(), "-2.50");
        assert_eq!(parse_numeric(".5").unwrap().to_string(), "0.5");
        assert_eq!(parse_numeric("1e3").unwrap().to_string(), "1000");
        assert_eq!(parse_numeric("1.5e-2").unwrap().to_string(), "0.015");
        assert!(parse_numeric("one").is_err());
        assert!(parse_numeric("1.2.3").is_err());
        let ty = DataType::Numeric {
            precision: Some(8),
            scale: Some(2),
        };
        assert_eq!(
            text(&Value::from_pg_text("2.345", &ty).unwrap(), &ty),
            "2.35"
        );
    }

    #[test]
    fn bytea_hex_and_escape() {
        assert_eq!(parse_bytea("\\x0001ff").unwrap(), vec![0, 1, 255]);
        assert_eq!(parse_bytea("abc").unwrap(), b"abc".to_vec());
        assert_eq!(
            parse_bytea("a\\\\b\\001").unwrap(),
            vec![b'a', b'\\', b'b', 1]
        );
        assert!(parse_bytea("\\xzz").is_err());
        assert_eq!(format_bytea(&[0xde, 0xad]), "\\xdead");
    }

    #[test]
    fn datetimes_parse_and_print_iso() {
        let d = Value::from_pg_text("2024-02-29", &DataType::Date).unwrap();
        assert_eq!(text(&d, &DataType::Date), "2024-02-29");
        assert!(matches!(
            Value::from_pg_text("2023-02-29", &DataType::Date),
            Err(Error::DatetimeFieldOverflow(_))
        ));
        assert!(matches!(
            Value::from_pg_text("not a date", &DataType::Date),
            Err(Error::InvalidDatetimeFormat(_))
        ));
        let ts = Value::from_pg_text("1999-07-04 06:07:08.123456", &DataType::Timestamp).unwrap();
        assert_eq!(
            text(&ts, &DataType::Timestamp),
            "1999-07-04 06:07:08.123456"
        );
        let ts = Value::from_pg_text("2024-01-15 10:30", &DataType::Timestamp).unwrap();
        assert_eq!(text(&ts, &DataType::Timestamp), "2024-01-15 10:30:00");
        let tz = Value::from_pg_text("2024-02-29 12:00:00-05:30", &DataType::TimestampTz).unwrap();
        assert_eq!(text(&tz, &DataType::TimestampTz), "2024-02-29 17:30:00+00");
        let tz = Value::from_pg_text("2024-01-01 01:59:59+02", &DataType::TimestampTz).unwrap();
        assert_eq!(text(&tz, &DataType::TimestampTz), "2023-12-31 23:59:59+00");
        assert!(matches!(
            Value::from_pg_text("2024-01-15 25:00:00", &DataType::Timestamp),
            Err(Error::DatetimeFieldOverflow(_))
        ));
    }

    #[test]
    fn intervals_parse_and_print_postgres_style() {
        let p = |s| format_interval(&parse_interval(s).unwrap());
        assert_eq!(p("1 day"), "1 day");
        assert_eq!(p("90 minutes"), "01:30:00");
        assert_eq!(p("-5s"), "-00:00:05");
        assert_eq!(
            p("1 year 2 months 3 days 04:05:06"),
            "1 year 2 mons 3 days 04:05:06"
        );
        assert_eq!(p("1.5 days"), "1 day 12:00:00");
        assert_eq!(p("-1 day"), "-1 days");
        assert_eq!(p("2 days ago"), "-2 days");
        assert_eq!(p("36 hours"), "36:00:00");
        assert_eq!(p("0 seconds"), "00:00:00");
        assert_eq!(p("1.5 months"), "1 mon 15 days");
        assert!(parse_interval("soon").is_err());
    }
}
