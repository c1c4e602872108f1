//! `SHOW RANGES [FROM TABLE name]`: the ranges of the keyspace, which
//! group serves each, its replicas, leader, lease expiry and size, from
//! [`TxnEngine::ranges`]. Bounds print as their leading ids (`/100` is the
//! start of table 100's keys, `/Min` and `/Max` the ends of the keyspace);
//! a range within one table also names it.
//!
//! The parser reads `SHOW RANGES ...` as a `SHOW` of the variable
//! `ranges ...` (its words, dots dropped), so the statement is recognized
//! from those words.

use meridian_error::{Error, Result};
use meridian_storage::{keycode, prefix_successor as prefix_end};
use meridian_txn::{RangeInfo, ReadTime, Transaction, TxnEngine, TxnMode};
use sqlparser::ast;

use crate::bind::names::ident;
use crate::catalog::{list_tables, load_table, table_prefix, TableDesc};
use crate::session::{Column, QueryResult};
use crate::types::{DataType, Value};

/// What a `SHOW RANGES` asks for, if the variable words are one.
pub(crate) enum ShowRanges {
    /// Every range.
    All,
    /// The ranges holding this table's keys.
    Table(String),
}

impl ShowRanges {
    /// Recognizes `ranges` and `ranges from table <name>` (a qualified
    /// name's last part names the table).
    pub(crate) fn parse(words: &[ast::Ident]) -> Option<Result<ShowRanges>> {
        let lower: Vec<String> = words.iter().map(|w| w.value.to_lowercase()).collect();
        match lower.as_slice() {
            [r] if r == "ranges" => Some(Ok(ShowRanges::All)),
            [r, ..] if r == "ranges" => Some(match lower.get(1..3) {
                Some([from, table]) if from == "from" && table == "table" && words.len() > 3 => {
                    Ok(ShowRanges::Table(ident(&words[words.len() - 1])))
                }
                _ => Err(Error::SyntaxError(
                    "expected SHOW RANGES or SHOW RANGES FROM TABLE <name>".into(),
                )),
            }),
            _ => None,
        }
    }
}

/// The columns of `SHOW RANGES`.
pub(crate) fn columns() -> Vec<Column> {
    let column = |name: &str, data_type| Column {
        name: name.into(),
        data_type,
    };
    vec![
        column("start_key", DataType::Text),
        column("end_key", DataType::Text),
        column("table_name", DataType::Text),
        column("group_id", DataType::Int8),
        column("replicas", DataType::Text),
        column("leader", DataType::Int8),
        column("lease_expiry", DataType::TimestampTz),
        column("size_bytes", DataType::Int8),
    ]
}

/// Runs `SHOW RANGES` against `engine`.
pub(crate) async fn show<E: TxnEngine>(engine: &E, what: ShowRanges) -> Result<QueryResult> {
    let mut txn = engine.begin(TxnMode::ReadOnly(ReadTime::Strong)).await?;
    let tables = list_tables(&mut txn).await?;
    let wanted = match &what {
        ShowRanges::All => None,
        ShowRanges::Table(name) => Some(
            load_table(&mut txn, name, meridian_txn::LockStrength::Shared)
                .await?
                .ok_or_else(|| Error::UndefinedTable(name.clone()))?,
        ),
    };
    txn.commit().await?;
    let ranges = engine.ranges().await?;
    let rows = ranges
        .iter()
        .filter(|range| wanted.as_ref().is_none_or(|t| overlaps(range, t.id)))
        .map(|range| row(range, &tables))
        .collect();
    Ok(QueryResult::Rows {
        columns: columns(),
        rows,
    })
}

/// Whether `range` holds keys of table `id`.
fn overlaps(range: &RangeInfo, id: u64) -> bool {
    let start = table_prefix(id);
    let end = prefix_end(&start);
    let starts_before_end = end.as_ref().is_none_or(|end| range.start < *end);
    let ends_after_start = range.end.as_ref().is_none_or(|e| *e > start);
    starts_before_end && ends_after_start
}

/// One row of `SHOW RANGES`.
fn row(range: &RangeInfo, tables: &[TableDesc]) -> Vec<Value> {
    let table = tables
        .iter()
        .find(|t| {
            let prefix = table_prefix(t.id);
            range.start.starts_with(&prefix)
                && match (&range.end, prefix_end(&prefix)) {
                    (Some(end), Some(table_end)) => *end <= table_end,
                    _ => false,
                }
        })
        .map(|t| Value::Text(t.name.clone()));
    let int = |v: Option<u64>| v.map_or(Value::Null, |v| Value::Int(v as i64));
    vec![
        Value::Text(pretty_key(&range.start, "/Min")),
        Value::Text(
            range
                .end
                .as_ref()
                .map_or("/Max".into(), |e| pretty_key(e, "/Min")),
        ),
        table.unwrap_or(Value::Null),
        Value::Int(range.group as i64),
        Value::Text(
            range
                .replicas
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        int(range.leader),
        range
            .lease_expiry
            .map_or(Value::Null, |ts| Value::TimestampTz(ts.to_datetime())),
        int(range.size_bytes),
    ]
}

/// A key as the ids it starts with (`/100/1`), then any rest in hex.
fn pretty_key(key: &[u8], empty: &str) -> String {
    if key.is_empty() {
        return empty.to_string();
    }
    let mut out = String::new();
    let mut rest = key;
    while !rest.is_empty() {
        let mut attempt = rest;
        match keycode::decode_u64(&mut attempt) {
            Ok(id) => {
                out.push_str(&format!("/{id}"));
                rest = attempt;
            }
            Err(_) => {
                out.push_str("/0x");
                for b in rest {
                    out.push_str(&format!("{b:02x}"));
                }
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<ast::Ident> {
        s.split_whitespace().map(ast::Ident::new).collect()
    }

    #[test]
    fn recognizes_the_statement_and_only_it() {
        assert!(matches!(
            ShowRanges::parse(&words("RANGES")),
            Some(Ok(ShowRanges::All))
        ));
        assert!(matches!(
            ShowRanges::parse(&words("ranges FROM TABLE Accounts")),
            Some(Ok(ShowRanges::Table(t))) if t == "accounts"
        ));
        assert!(matches!(
            ShowRanges::parse(&words("ranges of accounts")),
            Some(Err(Error::SyntaxError(_)))
        ));
        assert!(ShowRanges::parse(&words("search_path")).is_none());
    }

    #[test]
    fn keys_print_as_their_leading_ids() {
        let mut key = table_prefix(100);
        assert_eq!(pretty_key(&key, "/Min"), "/100");
        keycode::encode_u64(&mut key, 1);
        assert_eq!(pretty_key(&key, "/Min"), "/100/1");
        assert_eq!(pretty_key(&[], "/Min"), "/Min");
    }

    #[test]
    fn a_range_names_the_table_it_lies_in() {
        let range = |start: u64, end: u64| RangeInfo {
            start: table_prefix(start),
            end: Some(table_prefix(end)),
            group: 2,
            ..RangeInfo::default()
        };
        assert!(overlaps(&range(100, 101), 100));
        assert!(!overlaps(&range(101, 102), 100));
        assert!(overlaps(&RangeInfo::whole_keyspace(1), 100));
    }
}
