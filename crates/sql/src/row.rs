//! Rows and index entries as keys and values.
//!
//! # Rows
//!
//! A row is stored at `/<table>/1/<primary key values>` (the key columns in
//! keycode's order-preserving encoding, so a primary-key range is a key
//! range). Its value holds the other columns:
//!
//! ```text
//! value  := 0x01 { column_id:varint tag:u8 payload }*   (ascending column id)
//! ```
//!
//! NULL columns are simply absent, so adding a nullable column needs no
//! rewrite, and a dropped column's bytes are skipped by id. Payloads, by tag:
//!
//! | tag | type                      | payload                                   |
//! |-----|---------------------------|-------------------------------------------|
//! | 1/2 | bool false/true           | none                                      |
//! | 3   | integer                   | zigzag varint                             |
//! | 4   | float                     | 8 bytes, IEEE 754 little-endian           |
//! | 5   | numeric                   | 16 bytes, `rust_decimal`'s serialization (keeps the scale) |
//! | 6   | text                      | varint length, UTF-8                      |
//! | 7   | bytea                     | varint length, bytes                      |
//! | 8   | date                      | zigzag varint days since 1970-01-01       |
//! | 9   | timestamp / timestamptz   | zigzag varint microseconds since epoch    |
//! | 10  | interval                  | zigzag varints months, days, microseconds |
//!
//! Primary key columns are normally only in the key. A key column of type
//! unconstrained `NUMERIC` is also written to the value, because the key
//! encoding normalizes decimals (`1.50` becomes `1.5`) and the value keeps
//! the display scale.
//!
//! # Index entries
//!
//! A secondary index entry is `/<table>/<index>/<index values>` with the
//! primary key appended when the index is not unique, or when some index
//! value is NULL (NULLs never conflict in a unique index). Its value is the
//! encoded primary key, so a lookup goes entry → row key → row.

use chrono::{DateTime, NaiveDate};
use meridian_error::{Error, Result};
use meridian_storage::keycode::{self, Direction, KeyValue};
use rust_decimal::Decimal;

use crate::catalog::{index_prefix, IndexDesc, Reader, TableDesc, Writer, PRIMARY_INDEX_ID};
use crate::types::{DataType, Interval, Value};

/// The days from 0001-01-01 (CE day 1) to 1970-01-01.
const UNIX_EPOCH_DAYS_CE: i32 = 719_163;

/// A value as a key column.
pub(crate) fn key_value(v: &Value) -> Result<KeyValue> {
    Ok(match v {
        Value::Null => KeyValue::Null,
        Value::Bool(b) => KeyValue::Bool(*b),
        Value::Int(i) => KeyValue::Int(*i),
        Value::Float(f) => KeyValue::Float(*f),
        Value::Numeric(d) => KeyValue::Decimal(*d),
        Value::Text(s) => KeyValue::String(s.clone()),
        Value::Bytes(b) => KeyValue::Bytes(b.clone()),
        Value::Date(d) => KeyValue::Date(date_to_days(d)),
        Value::Timestamp(t) => KeyValue::Timestamp(t.and_utc().timestamp_micros()),
        Value::TimestampTz(t) => KeyValue::Timestamp(t.timestamp_micros()),
        Value::Interval(_) => {
            return Err(Error::FeatureNotSupported(
                "interval values cannot be part of a key".into(),
            ))
        }
    })
}

/// A key column back as a value of type `ty`.
pub(crate) fn value_from_key(kv: KeyValue, ty: &DataType) -> Result<Value> {
    Ok(match (kv, ty) {
        (KeyValue::Null, _) => Value::Null,
        (KeyValue::Bool(b), _) => Value::Bool(b),
        (KeyValue::Int(i), _) => Value::Int(i),
        (KeyValue::Float(f), _) => Value::Float(f),
        (KeyValue::Decimal(d), DataType::Numeric { scale: Some(s), .. }) => {
            let mut d = d;
            d.rescale(*s);
            Value::Numeric(d)
        }
        (KeyValue::Decimal(d), _) => Value::Numeric(d),
        (KeyValue::String(s), _) => Value::Text(s),
        (KeyValue::Bytes(b), _) => Value::Bytes(b),
        (KeyValue::Date(d), _) => Value::Date(days_to_date(d)?),
        (KeyValue::Timestamp(t), DataType::TimestampTz) => Value::TimestampTz(micros_to_utc(t)?),
        (KeyValue::Timestamp(t), _) => Value::Timestamp(micros_to_utc(t)?.naive_utc()),
    })
}

/// Days since 1970-01-01.
fn date_to_days(d: &NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce() - UNIX_EPOCH_DAYS_CE
}

/// The date `days` after 1970-01-01.
fn days_to_date(days: i32) -> Result<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.saturating_add(UNIX_EPOCH_DAYS_CE))
        .ok_or_else(|| Error::Corruption(format!("date {days} out of range")))
}

/// The instant `micros` after the epoch.
fn micros_to_utc(micros: i64) -> Result<DateTime<chrono::Utc>> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| Error::Corruption(format!("timestamp {micros} out of range")))
}

/// Appends one key column: `v` in keycode's order-preserving encoding (key
/// columns are ascending).
fn encode_key_column(out: &mut Vec<u8>, v: &Value) -> Result<()> {
    keycode::encode_value_into(out, &key_value(v)?, Direction::Asc);
    Ok(())
}

/// The encoded primary key values of `row` (the suffix of its row key).
pub(crate) fn encode_pk(table: &TableDesc, row: &[Value]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(16);
    for &pos in &table.primary.columns {
        encode_key_column(&mut out, &row[pos])?;
    }
    Ok(out)
}

/// Where the rows whose primary key starts with `prefix` (values of the
/// first key columns, in key order) begin: `/<table>/1/<prefix>`. Every row
/// with that prefix has a key at or after it, every row with a smaller
/// prefix a key before it; given every key column, it is the row key.
pub(crate) fn primary_key_prefix(table: &TableDesc, prefix: &[Value]) -> Result<Vec<u8>> {
    let mut key = index_prefix(table.id, PRIMARY_INDEX_ID);
    for v in prefix {
        encode_key_column(&mut key, v)?;
    }
    Ok(key)
}

/// The row key of `row`: `/<table>/1/<pk>`.
pub(crate) fn row_key(table: &TableDesc, row: &[Value]) -> Result<Vec<u8>> {
    let mut key = index_prefix(table.id, PRIMARY_INDEX_ID);
    key.extend_from_slice(&encode_pk(table, row)?);
    Ok(key)
}

/// Whether a key column's value must also be stored in the row value.
fn value_keeps_key_column(ty: &DataType) -> bool {
    matches!(ty, DataType::Numeric { scale: None, .. })
}

/// Encodes the row value (format in the module docs).
pub(crate) fn encode_row_value(table: &TableDesc, row: &[Value]) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64));
    w.u8(1);
    let mut order: Vec<usize> = (0..table.columns.len()).collect();
    order.sort_by_key(|&i| table.columns[i].id);
    for pos in order {
        let col = &table.columns[pos];
        if table.is_key_column(pos) && !value_keeps_key_column(&col.ty) {
            continue;
        }
        let v = &row[pos];
        if v.is_null() {
            continue;
        }
        w.varint(u64::from(col.id));
        encode_datum(&mut w, v);
    }
    w.0
}

/// One tagged payload.
fn encode_datum(w: &mut Writer, v: &Value) {
    match v {
        Value::Null => {}
        Value::Bool(b) => w.u8(if *b { 2 } else { 1 }),
        Value::Int(i) => {
            w.u8(3);
            w.zigzag(*i);
        }
        Value::Float(f) => {
            w.u8(4);
            w.0.extend_from_slice(&f.to_le_bytes());
        }
        Value::Numeric(d) => {
            w.u8(5);
            w.0.extend_from_slice(&d.serialize());
        }
        Value::Text(s) => {
            w.u8(6);
            w.string(s);
        }
        Value::Bytes(b) => {
            w.u8(7);
            w.bytes(b);
        }
        Value::Date(d) => {
            w.u8(8);
            w.zigzag(i64::from(date_to_days(d)));
        }
        Value::Timestamp(t) => {
            w.u8(9);
            w.zigzag(t.and_utc().timestamp_micros());
        }
        Value::TimestampTz(t) => {
            w.u8(9);
            w.zigzag(t.timestamp_micros());
        }
        Value::Interval(i) => {
            w.u8(10);
            w.zigzag(i64::from(i.months));
            w.zigzag(i64::from(i.days));
            w.zigzag(i.micros);
        }
    }
}

/// Decodes one tagged payload as a value of type `ty`.
fn decode_datum(r: &mut Reader, ty: &DataType) -> Result<Value> {
    Ok(match r.u8()? {
        1 => Value::Bool(false),
        2 => Value::Bool(true),
        3 => Value::Int(r.zigzag()?),
        4 => Value::Float(f64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"))),
        5 => Value::Numeric(Decimal::deserialize(
            r.take(16)?.try_into().expect("16 bytes"),
        )),
        6 => Value::Text(r.string()?),
        7 => Value::Bytes(r.bytes()?.to_vec()),
        8 => Value::Date(days_to_date(r.zigzag()? as i32)?),
        9 => {
            let t = micros_to_utc(r.zigzag()?)?;
            if *ty == DataType::TimestampTz {
                Value::TimestampTz(t)
            } else {
                Value::Timestamp(t.naive_utc())
            }
        }
        10 => Value::Interval(Interval {
            months: r.zigzag()? as i32,
            days: r.zigzag()? as i32,
            micros: r.zigzag()?,
        }),
        t => return Err(Error::Corruption(format!("unknown row value tag {t}"))),
    })
}

/// Decodes a row from its key and value into the table's column order.
pub(crate) fn decode_row(table: &TableDesc, key: &[u8], value: &[u8]) -> Result<Vec<Value>> {
    let prefix_len = index_prefix(table.id, PRIMARY_INDEX_ID).len();
    let suffix = key
        .get(prefix_len..)
        .ok_or_else(|| Error::Corruption("row key shorter than its prefix".into()))?;
    let mut row = vec![Value::Null; table.columns.len()];
    let pk = keycode::decode_key(suffix)?;
    if pk.len() != table.primary.columns.len() {
        return Err(Error::Corruption(format!(
            "row key of {} has {} columns, expected {}",
            table.name,
            pk.len(),
            table.primary.columns.len()
        )));
    }
    for (kv, &pos) in pk.into_iter().zip(&table.primary.columns) {
        row[pos] = value_from_key(kv, &table.columns[pos].ty)?;
    }
    let mut r = Reader(value);
    if r.u8()? != 1 {
        return Err(Error::Corruption("unknown row format".into()));
    }
    while !r.is_empty() {
        let id = r.varint()? as u32;
        match table.position_of_id(id) {
            Some(pos) => row[pos] = decode_datum(&mut r, &table.columns[pos].ty)?,
            // A dropped column: decode and discard.
            None => {
                decode_datum(&mut r, &DataType::Unknown)?;
            }
        }
    }
    Ok(row)
}

/// The key and value of `row`'s entry in secondary index `index`.
pub(crate) fn index_entry(
    table: &TableDesc,
    index: &IndexDesc,
    row: &[Value],
) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut key = index_prefix(table.id, index.id);
    let mut has_null = false;
    for &pos in &index.columns {
        has_null |= row[pos].is_null();
        encode_key_column(&mut key, &row[pos])?;
    }
    let pk = encode_pk(table, row)?;
    if !index.unique || has_null {
        key.extend_from_slice(&pk);
    }
    Ok((key, pk))
}

/// The row key an index entry points at.
pub(crate) fn row_key_from_entry(table: &TableDesc, entry_value: &[u8]) -> Vec<u8> {
    let mut key = index_prefix(table.id, PRIMARY_INDEX_ID);
    key.extend_from_slice(entry_value);
    key
}

/// Whether the unique index `index` is violated only if an entry exists at
/// exactly this key: true when no index value is NULL.
pub(crate) fn unique_entry_applies(index: &IndexDesc, row: &[Value]) -> bool {
    index.unique && index.columns.iter().all(|&p| !row[p].is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnDesc, IndexDesc};

    fn table() -> TableDesc {
        let col = |id: u32, name: &str, ty: DataType| ColumnDesc {
            id,
            name: name.into(),
            ty,
            nullable: true,
            default: None,
            hidden: false,
        };
        TableDesc {
            id: 120,
            name: "t".into(),
            version: 1,
            columns: vec![
                col(1, "a", DataType::Int4),
                col(2, "b", DataType::Text),
                col(3, "c", DataType::NUMERIC),
                col(4, "d", DataType::TimestampTz),
                col(5, "e", DataType::Date),
                col(6, "f", DataType::Interval),
            ],
            primary: IndexDesc {
                id: 1,
                name: "t_pkey".into(),
                columns: vec![0, 1],
                unique: true,
            },
            indexes: vec![IndexDesc {
                id: 2,
                name: "t_c_idx".into(),
                columns: vec![2],
                unique: true,
            }],
            next_column_id: 7,
            next_index_id: 3,
        }
    }

    fn row() -> Vec<Value> {
        vec![
            Value::Int(-5),
            Value::Text("x\0y".into()),
            Value::Numeric("1.50".parse().unwrap()),
            Value::TimestampTz(DateTime::from_timestamp(1_700_000_000, 123_000).unwrap()),
            Value::Date(NaiveDate::from_ymd_opt(1969, 12, 31).unwrap()),
            Value::Interval(Interval {
                months: 1,
                days: -2,
                micros: 3,
            }),
        ]
    }

    #[test]
    fn rows_round_trip() {
        let t = table();
        let r = row();
        let key = row_key(&t, &r).unwrap();
        let value = encode_row_value(&t, &r);
        let back = decode_row(&t, &key, &value).unwrap();
        assert_eq!(back, r);
        // The scale of a numeric survives (it is not a key column here).
        assert_eq!(back[2].to_pg_text(&DataType::NUMERIC).unwrap(), "1.50");
    }

    #[test]
    fn nulls_are_absent_from_values() {
        let t = table();
        let mut r = row();
        for v in &mut r[2..] {
            *v = Value::Null;
        }
        assert_eq!(encode_row_value(&t, &r), vec![1]);
        let key = row_key(&t, &r).unwrap();
        assert_eq!(decode_row(&t, &key, &[1]).unwrap(), r);
    }

    #[test]
    fn row_keys_sort_by_primary_key() {
        let t = table();
        let mut a = row();
        let mut b = row();
        a[0] = Value::Int(-10);
        b[0] = Value::Int(3);
        assert!(row_key(&t, &a).unwrap() < row_key(&t, &b).unwrap());
    }

    #[test]
    fn key_prefixes_start_the_rows_with_that_prefix() {
        let t = table();
        let r = row();
        let full = row_key(&t, &r).unwrap();
        assert_eq!(primary_key_prefix(&t, &r[..2]).unwrap(), full);
        let a = primary_key_prefix(&t, &r[..1]).unwrap();
        assert!(full.starts_with(&a) && a.len() < full.len());
        let mut smaller = row();
        smaller[0] = Value::Int(-6);
        assert!(row_key(&t, &smaller).unwrap() < a);
        assert_eq!(
            primary_key_prefix(&t, &[]).unwrap(),
            index_prefix(t.id, PRIMARY_INDEX_ID)
        );
    }

    #[test]
    fn unique_index_entries_carry_the_pk_only_with_nulls() {
        let t = table();
        let r = row();
        let (key, value) = index_entry(&t, &t.indexes[0], &r).unwrap();
        assert_eq!(value, encode_pk(&t, &r).unwrap());
        assert!(!key.ends_with(&value));
        let mut n = row();
        n[2] = Value::Null;
        let (key, value) = index_entry(&t, &t.indexes[0], &n).unwrap();
        assert!(key.ends_with(&value));
        assert_eq!(row_key_from_entry(&t, &value), row_key(&t, &n).unwrap());
    }
}
