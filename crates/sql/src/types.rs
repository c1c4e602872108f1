//! SQL data types and values.
//!
//! [`DataType`] is the static type of a column or an expression, as the
//! planner resolves it; [`Value`] is a datum at run time. The two are kept
//! apart on purpose: one `Value::Int` serves `SMALLINT`, `INTEGER` and
//! `BIGINT` alike, and the static type says which range applies (so `int4 +
//! int4` that leaves the 32-bit range fails with 22003 like PostgreSQL, while
//! the same numbers as `int8` do not). Likewise `Value::Text` holds `TEXT`,
//! `VARCHAR(n)` and `CHAR(n)`; `CHAR(n)` values are kept *without* their
//! trailing blanks, which is exactly PostgreSQL's comparison semantics for
//! `bpchar`, and are padded to `n` only when printed.
//!
//! Comparison ([`Value::compare`]) is the SQL comparison of two non-null
//! values of the same type family; it is total, like PostgreSQL's B-tree
//! order: `NaN` equals `NaN` and sorts above every other float, `1.50 =
//! 1.5`, and intervals compare by their length with 30-day months. Equality
//! and hashing ([`PartialEq`], [`Hash`]) agree with it, so `GROUP BY`,
//! `DISTINCT` and hash joins can put values in hash tables.
//!
//! The text forms (PostgreSQL's input and output functions) live in
//! `text.rs`, casts in `cast.rs`.
//!
//! Left out: arrays, `TIME`, `UUID`, `JSON`, time zones other than UTC (the
//! session time zone is always UTC, so `TIMESTAMPTZ` prints with `+00`).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;

/// The static type of a column, a parameter or an expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `BOOLEAN`.
    Bool,
    /// `SMALLINT`: 16-bit integer.
    Int2,
    /// `INTEGER`: 32-bit integer.
    Int4,
    /// `BIGINT`: 64-bit integer.
    Int8,
    /// `REAL`: single-precision float.
    Float4,
    /// `DOUBLE PRECISION`: double-precision float.
    Float8,
    /// `NUMERIC(p, s)` / `DECIMAL`: an exact decimal.
    Numeric {
        /// Total significant digits allowed, if constrained.
        precision: Option<u32>,
        /// Digits after the decimal point, if constrained.
        scale: Option<u32>,
    },
    /// `TEXT`: a string of any length.
    Text,
    /// `VARCHAR(n)`: a string of at most `n` characters (any length when `None`).
    Varchar(Option<u32>),
    /// `CHAR(n)`: a blank-padded string of exactly `n` characters; `Char(0)`
    /// is `bpchar` without a length (any length, no padding).
    Char(u32),
    /// `BYTEA`: a byte string.
    Bytea,
    /// `DATE`.
    Date,
    /// `TIMESTAMP` (without time zone), microsecond resolution.
    Timestamp,
    /// `TIMESTAMPTZ`: an instant, printed in the session time zone (UTC).
    TimestampTz,
    /// `INTERVAL`: months, days and microseconds.
    Interval,
    /// An untyped `NULL` or string literal whose type is not resolved yet.
    Unknown,
}

impl DataType {
    /// Unconstrained `NUMERIC`.
    pub(crate) const NUMERIC: DataType = DataType::Numeric {
        precision: None,
        scale: None,
    };

    /// The PostgreSQL type OID, as the wire protocol reports it.
    pub fn pg_oid(&self) -> u32 {
        match self {
            DataType::Bool => 16,
            DataType::Int2 => 21,
            DataType::Int4 => 23,
            DataType::Int8 => 20,
            DataType::Float4 => 700,
            DataType::Float8 => 701,
            DataType::Numeric { .. } => 1700,
            DataType::Text => 25,
            DataType::Varchar(_) => 1043,
            DataType::Char(_) => 1042,
            DataType::Bytea => 17,
            DataType::Date => 1082,
            DataType::Timestamp => 1114,
            DataType::TimestampTz => 1184,
            DataType::Interval => 1186,
            DataType::Unknown => 705,
        }
    }

    /// The type with a PostgreSQL type OID; `None` for types Meridian lacks.
    /// Length and precision modifiers are not part of an OID, so `bpchar`
    /// comes back as `Char(0)` (no length) and `varchar` unconstrained.
    pub fn from_pg_oid(oid: u32) -> Option<DataType> {
        Some(match oid {
            16 => DataType::Bool,
            21 => DataType::Int2,
            23 => DataType::Int4,
            20 => DataType::Int8,
            700 => DataType::Float4,
            701 => DataType::Float8,
            1700 => DataType::NUMERIC,
            25 => DataType::Text,
            1043 => DataType::Varchar(None),
            1042 => DataType::Char(0),
            17 => DataType::Bytea,
            1082 => DataType::Date,
            1114 => DataType::Timestamp,
            1184 => DataType::TimestampTz,
            1186 => DataType::Interval,
            705 => DataType::Unknown,
            _ => return None,
        })
    }

    /// The name PostgreSQL's `format_type()` prints, e.g. `integer`,
    /// `character varying(10)`, `numeric(10,2)`.
    pub fn pg_name(&self) -> String {
        match self {
            DataType::Bool => "boolean".into(),
            DataType::Int2 => "smallint".into(),
            DataType::Int4 => "integer".into(),
            DataType::Int8 => "bigint".into(),
            DataType::Float4 => "real".into(),
            DataType::Float8 => "double precision".into(),
            DataType::Numeric {
                precision: Some(p),
                scale,
            } => format!("numeric({},{})", p, scale.unwrap_or(0)),
            DataType::Numeric { .. } => "numeric".into(),
            DataType::Text => "text".into(),
            DataType::Varchar(Some(n)) => format!("character varying({n})"),
            DataType::Varchar(None) => "character varying".into(),
            DataType::Char(0) => "bpchar".into(),
            DataType::Char(n) => format!("character({n})"),
            DataType::Bytea => "bytea".into(),
            DataType::Date => "date".into(),
            DataType::Timestamp => "timestamp without time zone".into(),
            DataType::TimestampTz => "timestamp with time zone".into(),
            DataType::Interval => "interval".into(),
            DataType::Unknown => "unknown".into(),
        }
    }

    /// The name without length or precision modifiers, as PostgreSQL uses
    /// it in input errors (`invalid input syntax for type integer`).
    pub(crate) fn base_name(&self) -> &'static str {
        match self {
            DataType::Bool => "boolean",
            DataType::Int2 => "smallint",
            DataType::Int4 => "integer",
            DataType::Int8 => "bigint",
            DataType::Float4 => "real",
            DataType::Float8 => "double precision",
            DataType::Numeric { .. } => "numeric",
            DataType::Text => "text",
            DataType::Varchar(_) => "character varying",
            DataType::Char(_) => "character",
            DataType::Bytea => "bytea",
            DataType::Date => "date",
            DataType::Timestamp => "timestamp without time zone",
            DataType::TimestampTz => "timestamp with time zone",
            DataType::Interval => "interval",
            DataType::Unknown => "unknown",
        }
    }

    /// Whether the type is one of the integer types.
    pub(crate) fn is_integer(&self) -> bool {
        matches!(self, DataType::Int2 | DataType::Int4 | DataType::Int8)
    }

    /// Whether the type is a number (integer, numeric or float).
    pub(crate) fn is_numeric(&self) -> bool {
        matches!(
            self,
            DataType::Int2
                | DataType::Int4
                | DataType::Int8
                | DataType::Float4
                | DataType::Float8
                | DataType::Numeric { .. }
        )
    }

    /// Whether the type is a float.
    pub(crate) fn is_float(&self) -> bool {
        matches!(self, DataType::Float4 | DataType::Float8)
    }

    /// Whether the type is a character string.
    pub(crate) fn is_string(&self) -> bool {
        matches!(
            self,
            DataType::Text | DataType::Varchar(_) | DataType::Char(_)
        )
    }

    /// Whether the type is a date or timestamp.
    pub(crate) fn is_datetime(&self) -> bool {
        matches!(
            self,
            DataType::Date | DataType::Timestamp | DataType::TimestampTz
        )
    }

    /// The type with its length or precision modifiers dropped: what an
    /// expression over a value of this type has (`varchar(5) || 'x'` is text,
    /// a `numeric(8,2)` column in arithmetic is plain numeric).
    pub(crate) fn without_modifiers(&self) -> DataType {
        match self {
            DataType::Numeric { .. } => DataType::NUMERIC,
            DataType::Varchar(_) => DataType::Varchar(None),
            other => other.clone(),
        }
    }

    /// The type family: types in one family share a [`Value`] variant and
    /// compare without casts.
    pub(crate) fn family(&self) -> Family {
        match self {
            DataType::Bool => Family::Bool,
            DataType::Int2 | DataType::Int4 | DataType::Int8 => Family::Int,
            DataType::Float4 | DataType::Float8 => Family::Float,
            DataType::Numeric { .. } => Family::Numeric,
            DataType::Text | DataType::Varchar(_) | DataType::Char(_) => Family::Text,
            DataType::Bytea => Family::Bytea,
            DataType::Date => Family::Date,
            DataType::Timestamp => Family::Timestamp,
            DataType::TimestampTz => Family::TimestampTz,
            DataType::Interval => Family::Interval,
            DataType::Unknown => Family::Unknown,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pg_name())
    }
}

/// Groups of types whose values share one [`Value`] variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    /// Booleans.
    Bool,
    /// All integer widths.
    Int,
    /// Both float widths.
    Float,
    /// Exact decimals.
    Numeric,
    /// All character strings.
    Text,
    /// Byte strings.
    Bytea,
    /// Dates.
    Date,
    /// Timestamps without time zone.
    Timestamp,
    /// Timestamps with time zone.
    TimestampTz,
    /// Intervals.
    Interval,
    /// Not yet resolved.
    Unknown,
}

/// A time span as PostgreSQL stores it: months, days and microseconds are
/// kept apart, because a month has no fixed number of days and a day (across
/// a daylight-saving change) no fixed number of hours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Interval {
    /// Whole months (a year is 12).
    pub months: i32,
    /// Whole days.
    pub days: i32,
    /// Microseconds.
    pub micros: i64,
}

/// Microseconds in a day.
pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Interval {
    /// The interval's length in microseconds with PostgreSQL's conventions
    /// for comparing intervals: a month is 30 days, a day 24 hours.
    pub(crate) fn span_micros(&self) -> i128 {
        i128::from(self.months) * 30 * i128::from(MICROS_PER_DAY)
            + i128::from(self.days) * i128::from(MICROS_PER_DAY)
            + i128::from(self.micros)
    }
}

/// A datum: the value of a column or an expression at run time.
#[derive(Clone, Debug)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A `SMALLINT`, `INTEGER` or `BIGINT`.
    Int(i64),
    /// A `REAL` or `DOUBLE PRECISION` (a `REAL` holds an `f32`-exact value).
    Float(f64),
    /// A `NUMERIC`, with its display scale.
    Numeric(Decimal),
    /// A `TEXT`, `VARCHAR` or `CHAR` (without trailing blanks).
    Text(String),
    /// A `BYTEA`.
    Bytes(Vec<u8>),
    /// A `DATE`.
    Date(NaiveDate),
    /// A `TIMESTAMP` without time zone.
    Timestamp(NaiveDateTime),
    /// A `TIMESTAMPTZ`, an instant.
    TimestampTz(DateTime<Utc>),
    /// An `INTERVAL`.
    Interval(Interval),
}

impl Value {
    /// Whether the value is SQL `NULL`.
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A boolean value, or `NULL`.
    pub(crate) fn from_bool_opt(b: Option<bool>) -> Value {
        b.map_or(Value::Null, Value::Bool)
    }

    /// The SQL comparison of two non-null values of one type family. The
    /// order is total (floats order `NaN` last and equal to itself, numerics
    /// ignore scale) and matches the key encoding's order. Values of
    /// different numeric families are compared numerically; other mixes
    /// compare by family, which the planner never produces.
    pub(crate) fn compare(&self, other: &Value) -> Ordering {
        use Value::*;
        match (self, other) {
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Float(a), Float(b)) => float_cmp(*a, *b),
            (Numeric(a), Numeric(b)) => a.cmp(b),
            (Text(a), Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (TimestampTz(a), TimestampTz(b)) => a.cmp(b),
            (Interval(a), Interval(b)) => a.span_micros().cmp(&b.span_micros()),
            (Int(a), Numeric(b)) => Decimal::from(*a).cmp(b),
            (Numeric(a), Int(b)) => a.cmp(&Decimal::from(*b)),
            (Int(a), Float(b)) => float_cmp(*a as f64, *b),
            (Float(a), Int(b)) => float_cmp(*a, *b as f64),
            (Numeric(a), Float(b)) => float_cmp(decimal_to_f64(a), *b),
            (Float(a), Numeric(b)) => float_cmp(*a, decimal_to_f64(b)),
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Greater,
            (_, Null) => Ordering::Less,
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }

    /// The SQL `=`/`<`/... comparison: `None` when either side is `NULL`.
    pub(crate) fn sql_cmp(&self, other: &Value) -> Option<Ordering> {
        if self.is_null() || other.is_null() {
            None
        } else {
            Some(self.compare(other))
        }
    }

    /// A number to order values of different variants by (never equal
    /// across variants).
    fn rank(&self) -> u8 {
        match self {
            Value::Bool(_) => 0,
            Value::Int(_) => 1,
            Value::Float(_) => 2,
            Value::Numeric(_) => 3,
            Value::Text(_) => 4,
            Value::Bytes(_) => 5,
            Value::Date(_) => 6,
            Value::Timestamp(_) => 7,
            Value::TimestampTz(_) => 8,
            Value::Interval(_) => 9,
            Value::Null => 10,
        }
    }
}

/// `f64` comparison with `-0.0 == 0.0`, `NaN == NaN`, and `NaN` above all.
pub(crate) fn float_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// A decimal as the nearest `f64`.
pub(crate) fn decimal_to_f64(d: &Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    d.to_f64().unwrap_or(f64::NAN)
}

/// Equality consistent with `Value::compare` within a variant: floats are
/// equal when they compare equal (`NaN == NaN`, `-0.0 == 0.0`), numerics by
/// value, intervals by length. `NULL == NULL` here (this is grouping
/// equality, not SQL's `=`).
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank() && self.compare(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.rank());
        match self {
            Value::Null => {}
            Value::Bool(b) => b.hash(state),
            Value::Int(i) => i.hash(state),
            Value::Float(f) => {
                let canonical = if f.is_nan() {
                    f64::NAN.to_bits()
                } else if *f == 0.0 {
                    0
                } else {
                    f.to_bits()
                };
                canonical.hash(state)
            }
            Value::Numeric(d) => d.normalize().hash(state),
            Value::Text(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::Date(d) => d.hash(state),
            Value::Timestamp(t) => t.hash(state),
            Value::TimestampTz(t) => t.hash(state),
            Value::Interval(i) => i.span_micros().hash(state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn oids_round_trip() {
        for ty in [
            DataType::Bool,
            DataType::Int2,
            DataType::Int4,
            DataType::Int8,
            DataType::Float4,
            DataType::Float8,
            DataType::NUMERIC,
            DataType::Text,
            DataType::Varchar(None),
            DataType::Char(0),
            DataType::Bytea,
            DataType::Date,
            DataType::Timestamp,
            DataType::TimestampTz,
            DataType::Interval,
            DataType::Unknown,
        ] {
            assert_eq!(DataType::from_pg_oid(ty.pg_oid()), Some(ty));
        }
        assert_eq!(DataType::from_pg_oid(2950), None);
    }

    #[test]
    fn names_follow_format_type() {
        assert_eq!(DataType::Int4.pg_name(), "integer");
        assert_eq!(
            DataType::Varchar(Some(10)).pg_name(),
            "character varying(10)"
        );
        assert_eq!(
            DataType::Numeric {
                precision: Some(10),
                scale: Some(2)
            }
            .pg_name(),
            "numeric(10,2)"
        );
        assert_eq!(DataType::Char(4).pg_name(), "character(4)");
        assert_eq!(DataType::TimestampTz.pg_name(), "timestamp with time zone");
    }

    #[test]
    fn comparison_is_total_and_scale_blind() {
        assert_eq!(
            Value::Float(f64::NAN).compare(&Value::Float(f64::INFINITY)),
            Ordering::Greater
        );
        assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
        assert_eq!(Value::Float(-0.0), Value::Float(0.0));
        let a = Value::Numeric(Decimal::new(150, 2));
        let b = Value::Numeric(Decimal::new(15, 1));
        assert_eq!(a, b);
        let set: HashSet<Value> = [a, b].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_eq!(
            Value::Int(2).compare(&Value::Numeric(Decimal::new(15, 1))),
            Ordering::Greater
        );
        assert_eq!(Value::Null.sql_cmp(&Value::Int(1)), None);
    }

    #[test]
    fn intervals_compare_by_length() {
        let day = Value::Interval(Interval {
            months: 0,
            days: 1,
            micros: 0,
        });
        let hours = Value::Interval(Interval {
            months: 0,
            days: 0,
            micros: MICROS_PER_DAY,
        });
        assert_eq!(day, hours);
        let month = Interval {
            months: 1,
            days: 0,
            micros: 0,
        };
        assert_eq!(month.span_micros(), 30 * i128::from(MICROS_PER_DAY));
    }

    #[test]
    fn text_orders_by_bytes() {
        assert_eq!(
            Value::Text("b".into()).compare(&Value::Text("abc".into())),
            Ordering::Greater
        );
        assert_eq!(
            Value::Text("app".into()).compare(&Value::Text("apple".into())),
            Ordering::Less
        );
    }
}
