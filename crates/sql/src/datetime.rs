//! Date and time functions: `date_trunc`, `extract` / `date_part` and
//! `age`, on dates, timestamps, timestamps with time zone (in UTC, the
//! session time zone) and intervals.
//!
//! `extract` returns a numeric (PostgreSQL 14+): whole fields are integers,
//! `second` carries microseconds (`8.123456`), `epoch` is seconds since
//! 1970. `date_trunc` truncates to the start of the unit (`week` starts on
//! Monday). `age(a, b)` is the symbolic difference in years, months, days
//! and time, borrowing days from the earlier timestamp's month as
//! PostgreSQL does.
//!
//! Left out: time zones other than UTC, `julian`, `timezone_*` fields.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use meridian_error::{Error, Result};
use rust_decimal::Decimal;

use crate::ops::day_of_week;
use crate::types::{Interval, Value, MICROS_PER_DAY};

/// The field name of `date_trunc`/`extract`, normalized.
fn field_name(field: &str) -> String {
    field.trim().to_ascii_lowercase()
}

/// `date_trunc(field, ts)`.
pub(crate) fn date_trunc(field: &str, v: &Value) -> Result<Value> {
    let (t, tz) = match v {
        Value::Timestamp(t) => (*t, false),
        Value::TimestampTz(t) => (t.naive_utc(), true),
        _ => return Ok(Value::Null),
    };
    let d = t.date();
    let midnight = |date: NaiveDate| date.and_time(NaiveTime::MIN);
    let ymd = |y: i32, m: u32| NaiveDate::from_ymd_opt(y, m, 1).map(midnight);
    let truncated = match field_name(field).as_str() {
        "microseconds" => Some(t),
        "milliseconds" => t.with_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000),
        "second" => t.with_nanosecond(0),
        "minute" => t.with_nanosecond(0).and_then(|t| t.with_second(0)),
        "hour" => t
            .with_nanosecond(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_minute(0)),
        "day" => Some(midnight(d)),
        "week" => Some(midnight(
            d - chrono::Duration::days(i64::from(d.weekday().num_days_from_monday())),
        )),
        "month" => ymd(d.year(), d.month()),
        "quarter" => ymd(d.year(), (d.month() - 1) / 3 * 3 + 1),
        "year" => ymd(d.year(), 1),
        "decade" => ymd(d.year().div_euclid(10) * 10, 1),
        "century" => ymd((d.year() - 1).div_euclid(100) * 100 + 1, 1),
        "millennium" => ymd((d.year() - 1).div_euclid(1000) * 1000 + 1, 1),
        other => {
            return Err(Error::InvalidInput(format!(
                "unit \"{other}\" not recognized for type timestamp"
            )))
        }
    }
    .ok_or_else(|| Error::DatetimeFieldOverflow("timestamp out of range".into()))?;
    Ok(if tz {
        Value::TimestampTz(truncated.and_utc())
    } else {
        Value::Timestamp(truncated)
    })
}

/// `extract(field FROM v)` as a numeric.
pub(crate) fn date_part(field: &str, v: &Value) -> Result<Decimal> {
    let field = field_name(field);
    if let Value::Interval(i) = v {
        return interval_part(&field, i);
    }
    let (t, is_date) = match v {
        Value::Date(d) => (d.and_time(NaiveTime::MIN), true),
        Value::Timestamp(t) => (*t, false),
        Value::TimestampTz(t) => (t.naive_utc(), false),
        _ => return Ok(Decimal::ZERO),
    };
    let d = t.date();
    let int = |x: i64| Decimal::from(x);
    let micros_of_minute = i64::from(t.second()) * 1_000_000 + i64::from(t.nanosecond() / 1000);
    let unsupported = || {
        Error::InvalidInput(format!(
            "unit \"{field}\" not supported for type {}",
            if is_date { "date" } else { "timestamp" }
        ))
    };
    Ok(match field.as_str() {
        "year" | "years" => int(i64::from(d.year())),
        "month" | "months" => int(i64::from(d.month())),
        "day" | "days" => int(i64::from(d.day())),
        "hour" | "hours" if !is_date => int(i64::from(t.hour())),
        "minute" | "minutes" if !is_date => int(i64::from(t.minute())),
        "second" | "seconds" if !is_date => Decimal::new(micros_of_minute, 6),
        "millisecond" | "milliseconds" if !is_date => Decimal::new(micros_of_minute, 3),
        "microsecond" | "microseconds" if !is_date => int(micros_of_minute),
        "dow" => int(i64::from(day_of_week(d))),
        "isodow" => int(i64::from(d.weekday().number_from_monday())),
        "doy" => int(i64::from(d.ordinal())),
        "week" => int(i64::from(d.iso_week().week())),
        "isoyear" => int(i64::from(d.iso_week().year())),
        "quarter" => int(i64::from((d.month() - 1) / 3 + 1)),
        "decade" => int(i64::from(d.year().div_euclid(10))),
        "century" => int(i64::from((d.year() - 1).div_euclid(100) + 1)),
        "millennium" => int(i64::from((d.year() - 1).div_euclid(1000) + 1)),
        "epoch" => {
            let micros = t.and_utc().timestamp_micros();
            if is_date {
                int(micros / 1_000_000)
            } else {
                Decimal::new(micros, 6)
            }
        }
        _ => return Err(unsupported()),
    })
}

/// `extract(field FROM interval)`.
fn interval_part(field: &str, i: &Interval) -> Result<Decimal> {
    let int = |x: i64| Decimal::from(x);
    Ok(match field {
        "year" | "years" => int(i64::from(i.months / 12)),
        "month" | "months" => int(i64::from(i.months % 12)),
        "day" | "days" => int(i64::from(i.days)),
        "hour" | "hours" => int(i.micros / 3_600_000_000),
        "minute" | "minutes" => int((i.micros / 60_000_000) % 60),
        "second" | "seconds" => Decimal::new(i.micros % 60_000_000, 6),
        "epoch" => {
            let days = i64::from(i.months) * 30 + i64::from(i.days);
            Decimal::new(days * MICROS_PER_DAY + i.micros, 6)
        }
        other => {
            return Err(Error::InvalidInput(format!(
                "unit \"{other}\" not supported for type interval"
            )))
        }
    })
}

/// `age(a, b)`: the symbolic difference in years, months, days and time.
pub(crate) fn age(a: NaiveDateTime, b: NaiveDateTime) -> Interval {
    let (late, early, sign) = if a >= b { (a, b, 1) } else { (b, a, -1) };
    let mut months = (late.year() - early.year()) * 12 + late.month() as i32 - early.month() as i32;
    let mut days = late.day() as i32 - early.day() as i32;
    let mut micros = (late.time() - early.time()).num_microseconds().unwrap_or(0);
    if micros < 0 {
        micros += MICROS_PER_DAY;
        days -= 1;
    }
    if days < 0 {
        // Borrow the length of the earlier timestamp's month, like PostgreSQL.
        let first = NaiveDate::from_ymd_opt(early.year(), early.month(), 1).unwrap_or(early.date());
        let next = first
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(first);
        days += (next - first).num_days() as i32;
        months -= 1;
    }
    Interval {
        months: sign * months,
        days: sign * days,
        micros: i64::from(sign) * micros,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::DataType;

    #[test]
    fn date_functions() {
        let ts = Value::Timestamp(
            NaiveDate::from_ymd_opt(2024, 1, 15)
                .unwrap()
                .and_hms_opt(10, 30, 0)
                .unwrap(),
        );
        let r = date_trunc("month", &ts).unwrap();
        assert_eq!(
            r.to_pg_text(&DataType::Timestamp),
            Some("2024-01-01 00:00:00".into())
        );
        let dow = date_part(
            "dow",
            &Value::Date(NaiveDate::from_ymd_opt(2024, 5, 17).unwrap()),
        )
        .unwrap();
        assert_eq!(dow, Decimal::from(5));
        let doy = date_part(
            "doy",
            &Value::Date(NaiveDate::from_ymd_opt(2024, 5, 17).unwrap()),
        )
        .unwrap();
        assert_eq!(doy, Decimal::from(138));
        let a = age(
            NaiveDate::from_ymd_opt(2024, 3, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
            NaiveDate::from_ymd_opt(2023, 1, 15)
                .unwrap()
                .and_hms_opt(12, 0, 0)
                .unwrap(),
        );
        assert_eq!(
            crate::text::format_interval(&a),
            "1 year 1 mon 16 days 12:00:00"
        );
    }
}
