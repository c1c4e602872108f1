//! Values on the wire: PostgreSQL's text and binary formats.
//!
//! Every result column and every parameter has a [`WireType`]: a type OID and
//! the SQL type that gives it meaning. For the SQL layer's own types the OID
//! is [`DataType::pg_oid`]; the catalog emulation adds three internal types
//! clients meet in `pg_catalog` results (`oid`, `name`, `"char"`), which
//! drivers such as tokio-postgres check strictly.
//!
//! **Text format** is PostgreSQL's output syntax. It is produced by
//! [`Value::to_pg_text`] (the SQL layer owns the formatting rules — float
//! shortest round-trip, timestamp and interval styles), except for integers,
//! booleans and strings, which are written straight into the output buffer
//! without an intermediate `String`. Text parameters are parsed by
//! [`Value::from_pg_text`].
//!
//! **Binary format** is implemented here, for every type of the SQL API, as
//! PostgreSQL's `*send`/`*recv` functions define it: big-endian integers and
//! IEEE floats, `numeric` as base-10000 digit groups with weight, sign and
//! display scale, `date` as days and `timestamp[tz]` as microseconds since
//! 2000-01-01, `interval` as microseconds, days and months.
//!
//! An untyped parameter or column (`DataType::Unknown`) travels as `text`,
//! as PostgreSQL resolves unknown-typed outputs.
//!
//! Left out: `NaN` and infinite `numeric` (rust_decimal has no such values),
//! and infinite dates and timestamps.

use std::fmt::Write as _;
use std::str::FromStr;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, NaiveDate, TimeDelta};
use meridian_error::Error;
use meridian_sql::{Column, DataType, Interval, Value};
use rust_decimal::Decimal;

use crate::protocol::put_value_with;
use crate::sqlstate::WireError;

/// `oid`'s type OID.
pub(crate) const OID: u32 = 26;
/// `name`'s type OID.
pub(crate) const NAME: u32 = 19;
/// `"char"`'s type OID (the one-byte internal type, not `bpchar`).
pub(crate) const CHAR: u32 = 18;
/// `text`'s type OID.
pub(crate) const TEXT: u32 = 25;

/// Microseconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The wire identity of a column or parameter type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WireType {
    /// The type OID sent in `RowDescription` / `ParameterDescription`.
    pub oid: u32,
    /// The SQL type behind it (for the internal catalog types, the closest
    /// SQL type: `int8` for `oid`, `text` for `name` and `"char"`).
    pub sql: DataType,
}

impl WireType {
    /// The wire type of a SQL type.
    pub fn of(sql: &DataType) -> Self {
        match sql {
            DataType::Unknown => Self::text(),
            sql => Self {
                oid: sql.pg_oid(),
                sql: sql.clone(),
            },
        }
    }

    /// `text`.
    pub fn text() -> Self {
        Self {
            oid: TEXT,
            sql: DataType::Text,
        }
    }

    /// `oid`.
    pub fn oid() -> Self {
        Self {
            oid: OID,
            sql: DataType::Int8,
        }
    }

    /// `name`.
    pub fn name() -> Self {
        Self {
            oid: NAME,
            sql: DataType::Text,
        }
    }

    /// `"char"`.
    pub fn char() -> Self {
        Self {
            oid: CHAR,
            sql: DataType::Text,
        }
    }

    /// The `typlen` reported in `RowDescription` (-1: variable length).
    pub fn type_size(&self) -> i16 {
        match self.oid {
            OID => 4,
            NAME => 64,
            CHAR => 1,
            _ => match self.sql {
                DataType::Bool => 1,
                DataType::Int2 => 2,
                DataType::Int4 | DataType::Float4 | DataType::Date => 4,
                DataType::Int8 | DataType::Float8 => 8,
                DataType::Timestamp | DataType::TimestampTz => 8,
                DataType::Interval => 16,
                _ => -1,
            },
        }
    }

    /// The `atttypmod` reported in `RowDescription` (-1: none), which
    /// drivers turn into precision, scale and display size.
    pub fn typmod(&self) -> i32 {
        match self.sql {
            DataType::Varchar(Some(n)) | DataType::Char(n) if self.oid != TEXT => n as i32 + 4,
            DataType::Numeric {
                precision: Some(p),
                scale,
            } => ((p as i32) << 16 | scale.unwrap_or(0) as i32) + 4,
            _ => -1,
        }
    }
}

/// A result column as it goes into `RowDescription`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WireColumn {
    /// The column label.
    pub name: String,
    /// Its type.
    pub ty: WireType,
}

impl WireColumn {
    /// A column of the SQL layer.
    pub fn of(column: &Column) -> Self {
        Self {
            name: column.name.clone(),
            ty: WireType::of(&column.data_type),
        }
    }

    /// A column called `name` of type `ty`.
    pub fn new(name: &str, ty: WireType) -> Self {
        Self {
            name: name.to_owned(),
            ty,
        }
    }
}

/// The error of a value that does not fit the column type it is sent as (a
/// bug in whoever produced it).
fn mismatch(value: &Value, ty: &WireType) -> Error {
    Error::Internal(format!(
        "cannot send {value:?} as a value of type {}",
        ty.sql.pg_name()
    ))
}

/// Appends `value` as a length-prefixed field in `format` (0 text, 1 binary).
pub(crate) fn encode(
    out: &mut BytesMut,
    value: &Value,
    ty: &WireType,
    format: i16,
) -> Result<(), Error> {
    if matches!(value, Value::Null) {
        out.put_i32(-1);
        return Ok(());
    }
    if format == 1 {
        encode_binary(out, value, ty)
    } else {
        encode_text(out, value, ty);
        Ok(())
    }
}

/// Appends `value` (not NULL) in text format.
fn encode_text(out: &mut BytesMut, value: &Value, ty: &WireType) {
    match (value, &ty.sql) {
        (Value::Bool(b), _) => {
            out.put_i32(1);
            out.put_u8(if *b { b't' } else { b'f' });
        }
        (Value::Int(i), DataType::Int2 | DataType::Int4 | DataType::Int8) => {
            put_value_with(out, |o| {
                // Writing into a BytesMut cannot fail.
                let _ = write!(o, "{i}");
            });
        }
        (Value::Text(s), DataType::Text | DataType::Varchar(_) | DataType::Unknown) => {
            out.put_i32(s.len() as i32);
            out.put_slice(s.as_bytes());
        }
        (value, sql) => match value.to_pg_text(sql) {
            Some(text) => {
                out.put_i32(text.len() as i32);
                out.put_slice(text.as_bytes());
            }
            None => out.put_i32(-1),
        },
    }
}

/// Appends `value` (not NULL) in binary format.
fn encode_binary(out: &mut BytesMut, value: &Value, ty: &WireType) -> Result<(), Error> {
    match ty.oid {
        OID => {
            let Value::Int(i) = value else {
                return Err(mismatch(value, ty));
            };
            out.put_i32(4);
            out.put_u32(*i as u32);
            return Ok(());
        }
        CHAR => {
            let Value::Text(s) = value else {
                return Err(mismatch(value, ty));
            };
            out.put_i32(1);
            out.put_u8(s.bytes().next().unwrap_or(0));
            return Ok(());
        }
        _ => {}
    }
    match (&ty.sql, value) {
        (DataType::Bool, Value::Bool(b)) => {
            out.put_i32(1);
            out.put_u8(*b as u8);
        }
        (DataType::Int2, Value::Int(i)) => {
            out.put_i32(2);
            out.put_i16(*i as i16);
        }
        (DataType::Int4, Value::Int(i)) => {
            out.put_i32(4);
            out.put_i32(*i as i32);
        }
        (DataType::Int8, Value::Int(i)) => {
            out.put_i32(8);
            out.put_i64(*i);
        }
        (DataType::Float4, Value::Float(f)) => {
            out.put_i32(4);
            out.put_f32(*f as f32);
        }
        (DataType::Float8, Value::Float(f)) => {
            out.put_i32(8);
            out.put_f64(*f);
        }
        (DataType::Numeric { .. }, Value::Numeric(d)) => {
            put_value_with(out, |o| numeric_send(o, d));
        }
        (DataType::Numeric { .. }, Value::Int(i)) => {
            put_value_with(out, |o| numeric_send(o, &Decimal::from(*i)));
        }
        (DataType::Text | DataType::Varchar(_) | DataType::Unknown, Value::Text(s)) => {
            out.put_i32(s.len() as i32);
            out.put_slice(s.as_bytes());
        }
        // bpchar goes out blank-padded, in either format.
        (DataType::Char(_), Value::Text(_)) => {
            let text = value
                .to_pg_text(&ty.sql)
                .ok_or_else(|| mismatch(value, ty))?;
            out.put_i32(text.len() as i32);
            out.put_slice(text.as_bytes());
        }
        (DataType::Bytea, Value::Bytes(b)) => {
            out.put_i32(b.len() as i32);
            out.put_slice(b);
        }
        (DataType::Date, Value::Date(d)) => {
            out.put_i32(4);
            out.put_i32((*d - pg_epoch_date()).num_days() as i32);
        }
        (DataType::Timestamp, Value::Timestamp(ts)) => {
            out.put_i32(8);
            out.put_i64(ts.and_utc().timestamp_micros() - PG_EPOCH_MICROS);
        }
        (DataType::TimestampTz, Value::TimestampTz(ts)) => {
            out.put_i32(8);
            out.put_i64(ts.timestamp_micros() - PG_EPOCH_MICROS);
        }
        (DataType::Interval, Value::Interval(iv)) => {
            out.put_i32(16);
            out.put_i64(iv.micros);
            out.put_i32(iv.days);
            out.put_i32(iv.months);
        }
        // A string-typed result column holding a non-string value (e.g. an
        // expression the planner typed as text): its text form is its bytes.
        (DataType::Text | DataType::Varchar(_) | DataType::Unknown, value) => {
            let text = value
                .to_pg_text(&ty.sql)
                .ok_or_else(|| mismatch(value, ty))?;
            out.put_i32(text.len() as i32);
            out.put_slice(text.as_bytes());
        }
        (_, value) => return Err(mismatch(value, ty)),
    }
    Ok(())
}

/// 2000-01-01, where PostgreSQL counts dates from.
fn pg_epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date")
}

/// PostgreSQL's `numeric_send`: `ndigits`, `weight`, `sign`, `dscale`, then
/// `ndigits` base-10000 digits, most significant first, where the value is
/// `sum(digit[i] * 10000^(weight - i))`. Leading and trailing zero groups
/// are stripped, as PostgreSQL does.
pub(crate) fn numeric_send(out: &mut BytesMut, d: &Decimal) {
    let scale = d.scale() as usize;
    let mantissa = d.mantissa();
    let digits = mantissa.unsigned_abs().to_string();
    // The integer and fraction digit strings.
    let (int_part, frac_part): (&str, String) = if digits.len() > scale {
        let (i, f) = digits.split_at(digits.len() - scale);
        (i, f.to_owned())
    } else {
        (
            "",
            format!("{}{}", "0".repeat(scale - digits.len()), digits),
        )
    };
    let mut groups: Vec<i16> = Vec::with_capacity(digits.len() / 4 + 2);
    // Integer groups: pad on the left to a multiple of four digits.
    let pad = (4 - int_part.len() % 4) % 4;
    let padded_int = format!("{}{}", "0".repeat(pad), int_part);
    for chunk in padded_int.as_bytes().chunks(4) {
        groups.push(group_value(chunk));
    }
    let int_groups = groups.len() as i16;
    // Fraction groups: pad on the right.
    let pad = (4 - frac_part.len() % 4) % 4;
    let padded_frac = format!("{}{}", frac_part, "0".repeat(pad));
    for chunk in padded_frac.as_bytes().chunks(4) {
        groups.push(group_value(chunk));
    }
    let mut weight = int_groups - 1;
    // Strip leading zero groups (each lowers the weight) and trailing ones.
    let leading = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading);
    weight -= leading as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let negative = mantissa < 0 && !groups.is_empty();
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(groups.len() as i16);
    out.put_i16(weight);
    out.put_u16(if negative { 0x4000 } else { 0x0000 });
    out.put_u16(scale as u16);
    for g in groups {
        out.put_i16(g);
    }
}

/// The value of up to four ASCII digits.
fn group_value(chunk: &[u8]) -> i16 {
    chunk
        .iter()
        .fold(0i16, |acc, &c| acc * 10 + (c - b'0') as i16)
}

/// PostgreSQL's `numeric_recv`, into a [`Decimal`].
pub(crate) fn numeric_recv(buf: &[u8]) -> Result<Decimal, Error> {
    let bad = || Error::InvalidInput("invalid binary numeric".into());
    if buf.len() < 8 {
        return Err(bad());
    }
    let ndigits = i16::from_be_bytes([buf[0], buf[1]]);
    let weight = i16::from_be_bytes([buf[2], buf[3]]) as i32;
    let sign = u16::from_be_bytes([buf[4], buf[5]]);
    let dscale = u16::from_be_bytes([buf[6], buf[7]]) as u32;
    if ndigits < 0 || buf.len() != 8 + 2 * ndigits as usize {
        return Err(bad());
    }
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 | 0xD000 | 0xF000 => {
            return Err(Error::FeatureNotSupported(
                "NaN and infinite numeric values are not supported".into(),
            ))
        }
        _ => return Err(bad()),
    }
    let mut text = String::with_capacity(8 + 4 * ndigits as usize);
    if sign == 0x4000 {
        text.push('-');
    }
    let ndigits = ndigits as i32;
    let int_groups = weight + 1;
    if int_groups <= 0 {
        text.push('0');
    }
    for i in 0..ndigits.max(int_groups) {
        if i == int_groups.max(0) {
            text.push('.');
            if int_groups < 0 {
                for _ in 0..-int_groups {
                    text.push_str("0000");
                }
            }
        }
        let group = if i < ndigits {
            let at = 8 + 2 * i as usize;
            i16::from_be_bytes([buf[at], buf[at + 1]])
        } else {
            0
        };
        if !(0..10_000).contains(&group) {
            return Err(bad());
        }
        let _ = write!(text, "{group:04}");
    }
    let mut d = Decimal::from_str(&text)
        .map_err(|_| Error::NumericOutOfRange(format!("numeric value {text} is out of range")))?;
    if dscale <= 28 {
        d.rescale(dscale);
    }
    Ok(d)
}

/// Decodes parameter `index` (for messages: 1-based) of type `ty` from the
/// client's bytes in `format`.
pub(crate) fn decode_param(
    bytes: &[u8],
    ty: &WireType,
    format: i16,
    index: usize,
) -> Result<Value, WireError> {
    if format == 1 {
        decode_binary(bytes, ty).map_err(|err| match err {
            Some(err) => WireError::from(err),
            None => WireError::new(
                "22P03",
                format!("incorrect binary data format in bind parameter {index}"),
            ),
        })
    } else {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| WireError::new("22021", "invalid byte sequence for encoding \"UTF8\""))?;
        match ty.oid {
            OID => text
                .trim()
                .parse::<u32>()
                .map(|v| Value::Int(v as i64))
                .map_err(|_| {
                    WireError::new(
                        "22P02",
                        format!("invalid input syntax for type oid: \"{text}\""),
                    )
                }),
            NAME | CHAR | TEXT => Ok(Value::Text(text.to_owned())),
            _ => match &ty.sql {
                DataType::Unknown | DataType::Text => Ok(Value::Text(text.to_owned())),
                sql => Value::from_pg_text(text, sql).or_else(|err| {
                    // PostgreSQL ignores a time zone on a date or a timestamp
                    // without time zone; JDBC sends one ("2024-02-03 +00").
                    match (sql, strip_zone(text)) {
                        (DataType::Date | DataType::Timestamp, Some(bare)) => {
                            Value::from_pg_text(bare, sql).map_err(|_| WireError::from(err))
                        }
                        _ => Err(WireError::from(err)),
                    }
                }),
            },
        }
    }
}

/// `text` without a trailing time zone (` +00`, `-05:30`, `Z`, ` UTC`),
/// if it has one.
fn strip_zone(text: &str) -> Option<&str> {
    let t = text.trim_end();
    for suffix in [" UTC", " GMT", "Z"] {
        if let Some(bare) = t.strip_suffix(suffix) {
            return Some(bare.trim_end());
        }
    }
    let at = t.rfind(['+', '-'])?;
    let zone = &t[at + 1..];
    let numeric =
        !zone.is_empty() && zone.len() <= 8 && zone.chars().all(|c| c.is_ascii_digit() || c == ':');
    // A '-' inside the date part is not a zone.
    (numeric && (t[..at].contains(':') || t[..at].ends_with(' '))).then(|| t[..at].trim_end())
}

/// Decodes a binary value; `Err(None)` for bytes of the wrong shape.
fn decode_binary(b: &[u8], ty: &WireType) -> Result<Value, Option<Error>> {
    fn exact<const N: usize>(b: &[u8]) -> Result<[u8; N], Option<Error>> {
        b.try_into().map_err(|_| None)
    }
    if ty.oid == OID {
        return Ok(Value::Int(u32::from_be_bytes(exact(b)?) as i64));
    }
    if ty.oid == NAME || ty.oid == CHAR {
        return String::from_utf8(b.to_vec())
            .map(Value::Text)
            .map_err(|_| None);
    }
    Ok(match &ty.sql {
        DataType::Bool => Value::Bool(exact::<1>(b)?[0] != 0),
        DataType::Int2 => Value::Int(i16::from_be_bytes(exact(b)?) as i64),
        DataType::Int4 => Value::Int(i32::from_be_bytes(exact(b)?) as i64),
        DataType::Int8 => Value::Int(i64::from_be_bytes(exact(b)?)),
        DataType::Float4 => Value::Float(f32::from_be_bytes(exact(b)?) as f64),
        DataType::Float8 => Value::Float(f64::from_be_bytes(exact(b)?)),
        DataType::Numeric { .. } => Value::Numeric(numeric_recv(b).map_err(|e| match e {
            Error::InvalidInput(_) => None,
            other => Some(other),
        })?),
        DataType::Text | DataType::Varchar(_) | DataType::Char(_) | DataType::Unknown => {
            Value::Text(String::from_utf8(b.to_vec()).map_err(|_| None)?)
        }
        DataType::Bytea => Value::Bytes(b.to_vec()),
        DataType::Date => {
            let days = i32::from_be_bytes(exact(b)?);
            let date = TimeDelta::try_days(days as i64)
                .and_then(|delta| pg_epoch_date().checked_add_signed(delta))
                .ok_or_else(|| Some(date_overflow()))?;
            Value::Date(date)
        }
        DataType::Timestamp => {
            let micros = i64::from_be_bytes(exact(b)?);
            Value::Timestamp(timestamp(micros)?.naive_utc())
        }
        DataType::TimestampTz => Value::TimestampTz(timestamp(i64::from_be_bytes(exact(b)?))?),
        DataType::Interval => {
            let b: [u8; 16] = exact(b)?;
            Value::Interval(Interval {
                micros: i64::from_be_bytes(b[0..8].try_into().expect("8 bytes")),
                days: i32::from_be_bytes(b[8..12].try_into().expect("4 bytes")),
                months: i32::from_be_bytes(b[12..16].try_into().expect("4 bytes")),
            })
        }
    })
}

/// The UTC time `micros` after PostgreSQL's epoch.
fn timestamp(micros: i64) -> Result<DateTime<chrono::Utc>, Option<Error>> {
    micros
        .checked_add(PG_EPOCH_MICROS)
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| Some(date_overflow()))
}

/// The error of a date or time outside chrono's range.
fn date_overflow() -> Error {
    Error::DatetimeFieldOverflow("date/time value out of range".into())
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDateTime, TimeZone, Utc};

    use super::*;

    fn roundtrip(value: Value, ty: DataType) {
        let wire = WireType::of(&ty);
        let mut out = BytesMut::new();
        encode(&mut out, &value, &wire, 1).unwrap();
        let len = i32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(len, out.len() - 4, "{value:?}");
        let back = decode_param(&out[4..], &wire, 1, 1).unwrap();
        assert_eq!(back, value, "{ty:?}");
    }

    #[test]
    fn binary_roundtrips_for_every_type() {
        roundtrip(Value::Bool(true), DataType::Bool);
        roundtrip(Value::Int(-12), DataType::Int2);
        roundtrip(Value::Int(1 << 30), DataType::Int4);
        roundtrip(Value::Int(-(1 << 60)), DataType::Int8);
        roundtrip(Value::Float(1.5), DataType::Float4);
        roundtrip(Value::Float(-0.1), DataType::Float8);
        roundtrip(Value::Text("héllo".into()), DataType::Text);
        roundtrip(Value::Text("v".into()), DataType::Varchar(Some(3)));
        roundtrip(Value::Bytes(vec![0, 1, 255]), DataType::Bytea);
        roundtrip(
            Value::Date(NaiveDate::from_ymd_opt(1999, 12, 31).unwrap()),
            DataType::Date,
        );
        let ts =
            NaiveDateTime::parse_from_str("2024-02-29 12:30:01.5", "%Y-%m-%d %H:%M:%S%.f").unwrap();
        roundtrip(Value::Timestamp(ts), DataType::Timestamp);
        roundtrip(
            Value::TimestampTz(Utc.from_utc_datetime(&ts)),
            DataType::TimestampTz,
        );
        roundtrip(
            Value::Interval(Interval {
                months: 14,
                days: -3,
                micros: 5_000_001,
            }),
            DataType::Interval,
        );
        for n in [
            "0",
            "12.50",
            "-0.0001",
            "123456789.123",
            "10000",
            "-99999999.99",
            "0.00",
        ] {
            roundtrip(
                Value::Numeric(Decimal::from_str(n).unwrap()),
                DataType::Numeric {
                    precision: None,
                    scale: None,
                },
            );
        }
    }

    /// Byte-exact against what PostgreSQL's `numeric_send` produces.
    #[test]
    fn numeric_matches_postgres_bytes() {
        let mut out = BytesMut::new();
        numeric_send(&mut out, &Decimal::from_str("12345.678").unwrap());
        // ndigits 3, weight 1, sign +, dscale 3, digits 1 2345 6780
        assert_eq!(
            &out[..],
            &[0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        out.clear();
        numeric_send(&mut out, &Decimal::from_str("-0.05").unwrap());
        // ndigits 1, weight -1, sign -, dscale 2, digits 500
        assert_eq!(&out[..], &[0, 1, 0xff, 0xff, 0x40, 0, 0, 2, 0x01, 0xf4]);
        out.clear();
        numeric_send(&mut out, &Decimal::from_str("0.00").unwrap());
        assert_eq!(&out[..], &[0, 0, 0, 0, 0, 0, 0, 2]);
        out.clear();
        numeric_send(&mut out, &Decimal::from(20000));
        // ndigits 1, weight 1, digits 2 (trailing zero group stripped)
        assert_eq!(&out[..], &[0, 1, 0, 1, 0, 0, 0, 0, 0, 2]);
    }

    #[test]
    fn bad_binary_parameters_are_22p03() {
        let err = decode_param(&[0, 1, 2], &WireType::of(&DataType::Int4), 1, 2).unwrap_err();
        assert_eq!(err.code, "22P03");
        assert!(err.message.contains("parameter 2"));
        let nan = [0, 0, 0, 0, 0xC0, 0, 0, 0];
        let numeric = WireType::of(&DataType::Numeric {
            precision: None,
            scale: None,
        });
        assert_eq!(
            decode_param(&nan, &numeric, 1, 1).unwrap_err().code,
            "0A000"
        );
        let err = decode_param(&[0xff], &WireType::text(), 0, 1).unwrap_err();
        assert_eq!(err.code, "22021");
    }

    #[test]
    fn text_fast_paths_and_catalog_types() {
        let mut out = BytesMut::new();
        encode(
            &mut out,
            &Value::Int(-42),
            &WireType::of(&DataType::Int8),
            0,
        )
        .unwrap();
        encode(
            &mut out,
            &Value::Bool(false),
            &WireType::of(&DataType::Bool),
            0,
        )
        .unwrap();
        encode(&mut out, &Value::Null, &WireType::text(), 0).unwrap();
        encode(&mut out, &Value::Int(16384), &WireType::oid(), 1).unwrap();
        encode(&mut out, &Value::Text("r".into()), &WireType::char(), 1).unwrap();
        assert_eq!(
            &out[..],
            &[
                0, 0, 0, 3, b'-', b'4', b'2', 0, 0, 0, 1, b'f', 255, 255, 255, 255, 0, 0, 0, 4, 0,
                0, 0x40, 0, 0, 0, 0, 1, b'r'
            ]
        );
        assert_eq!(
            decode_param(b"26", &WireType::oid(), 0, 1).unwrap(),
            Value::Int(26)
        );
    }

    #[test]
    fn dates_and_timestamps_ignore_a_time_zone() {
        assert_eq!(strip_zone("2024-02-03 +00"), Some("2024-02-03"));
        assert_eq!(
            strip_zone("2024-02-03 10:00:00.5+00"),
            Some("2024-02-03 10:00:00.5")
        );
        assert_eq!(
            strip_zone("2024-02-03 10:00:00-05:30"),
            Some("2024-02-03 10:00:00")
        );
        assert_eq!(strip_zone("2024-02-03"), None);
        let date = WireType::of(&DataType::Date);
        assert_eq!(
            decode_param(b"2024-02-03 +00", &date, 0, 1).unwrap(),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 3).unwrap())
        );
    }

    #[test]
    fn type_modifiers_follow_postgres() {
        let numeric = WireType::of(&DataType::Numeric {
            precision: Some(10),
            scale: Some(2),
        });
        assert_eq!(numeric.typmod(), (10 << 16 | 2) + 4);
        assert_eq!(WireType::of(&DataType::Varchar(Some(20))).typmod(), 24);
        assert_eq!(WireType::of(&DataType::Text).typmod(), -1);
        assert_eq!(WireType::of(&DataType::Unknown).oid, TEXT);
        assert_eq!(WireType::of(&DataType::Interval).type_size(), 16);
    }
}
