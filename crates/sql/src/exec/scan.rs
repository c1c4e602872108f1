//! Table access: turning a [`Scan`]'s spans into storage reads.
//!
//! The span expressions are evaluated first (over the outer row of a lookup
//! join, or over nothing: constants, parameters, outer references,
//! uncorrelated subqueries). Each
//! combination of the equality values is one key prefix `/<table>/<index>/
//! <values>`; a NULL value matches nothing and drops its combinations. Then:
//!
//! - a **point lookup** (every column of a unique index pinned) is one
//!   `get` per point; through a secondary index, the entry's value is the
//!   primary key and a second `get` fetches the row;
//! - otherwise each prefix becomes a key range, with the bound on the next
//!   column: `> v` starts after every key extending `v`, `<= v` ends after
//!   them, and a range with only a lower bound stops before the NULLs
//!   (which sort last). The range is read with one `scan`, forward or
//!   reverse; through a secondary index each entry is followed by a `get`
//!   of its row.
//!
//! A pushed-down limit stops the reads early: without a residual filter it
//! is passed to storage directly; with one, the range is read in batches
//! (doubling from the limit) until enough rows passed the filter. Points and
//! ranges are visited in key order (reversed for a reverse scan), so a scan
//! that replaced a sort returns rows in the sorted order.
//!
//! Every read takes the scan's lock strength in a read-write transaction:
//! shared for queries, exclusive for `FOR UPDATE` and the rows of `UPDATE`
//! and `DELETE`. Read-only transactions take none.

use std::collections::HashMap;
use std::ops::Bound;

use meridian_error::Result;
use meridian_storage::keycode::{self, Direction, KeyValue};
use meridian_storage::{prefix_successor, KeyRange, ScanDirection};
use meridian_txn::Transaction;

use super::{count, Executor, Row};
use crate::catalog::index_prefix;
use crate::expr::{Expr, SubqueryKind, SubqueryValue};
use crate::plan::Scan;
use crate::row::{decode_row, key_value, row_key_from_entry};
use crate::types::Value;

/// The smallest batch of a filtered, limited scan.
const MIN_BATCH: usize = 16;

impl<T: Transaction> Executor<'_, T> {
    /// Reads the rows of `scan`; span expressions read `key_row`.
    pub(crate) async fn scan(
        &mut self,
        scan: &Scan,
        key_row: &[Value],
        outer: &[Value],
    ) -> Result<Vec<Row>> {
        let limit = {
            let empty = HashMap::new();
            count(scan.limit.as_ref(), &self.env(outer, &empty), "LIMIT")?
        };
        if limit == Some(0) {
            return Ok(vec![]);
        }
        // Evaluate the equality values, per column, as encoded key parts.
        let mut prefixes: Vec<Vec<u8>> = vec![index_prefix(scan.table.id, scan.index_id)];
        for alternatives in &scan.spans.eq {
            let mut parts = Vec::with_capacity(alternatives.len());
            for e in alternatives {
                if let Expr::Subquery {
                    id,
                    kind: SubqueryKind::Quantified { .. },
                    ..
                } = e
                {
                    // `IN (SELECT ...)`: every value the subquery returns.
                    let subs = self.subquery_values(e, key_row, outer).await?;
                    if let Some(SubqueryValue::Column(values)) = subs.get(id) {
                        for v in values.iter().filter(|v| !v.is_null()) {
                            parts.push(encode(v)?);
                        }
                    }
                    continue;
                }
                let v = self.eval(e, key_row, outer, e.has_subquery()).await?;
                if v.is_null() {
                    continue;
                }
                parts.push(encode(&v)?);
            }
            parts.sort();
            parts.dedup();
            let mut next = Vec::with_capacity(prefixes.len() * parts.len());
            for p in &prefixes {
                for part in &parts {
                    let mut k = p.clone();
                    k.extend_from_slice(part);
                    next.push(k);
                }
            }
            prefixes = next;
            if prefixes.is_empty() {
                return Ok(vec![]);
            }
        }
        prefixes.sort();
        if scan.reverse {
            prefixes.reverse();
        }
        let lower = match &scan.spans.lower {
            Some((e, inclusive)) => match self.eval(e, key_row, outer, e.has_subquery()).await? {
                Value::Null => return Ok(vec![]),
                v => Some((encode(&v)?, *inclusive)),
            },
            None => None,
        };
        let upper = match &scan.spans.upper {
            Some((e, inclusive)) => match self.eval(e, key_row, outer, e.has_subquery()).await? {
                Value::Null => return Ok(vec![]),
                v => Some((encode(&v)?, *inclusive)),
            },
            None => None,
        };
        let mut out = Vec::new();
        if scan.is_point_lookup() {
            for key in prefixes {
                if let Some(row) = self.fetch(scan, &key).await? {
                    if self.passes(scan, &row, outer).await? {
                        out.push(row);
                        if limit.is_some_and(|l| out.len() >= l) {
                            break;
                        }
                    }
                }
            }
            return Ok(out);
        }
        for prefix in prefixes {
            let range = span_range(&prefix, lower.as_ref(), upper.as_ref());
            let want = limit.map(|l| l - out.len());
            let rows = self.read_range(scan, range, want, outer).await?;
            out.extend(rows);
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    /// Fetches the row at a point: a primary key, or a unique index entry.
    async fn fetch(&mut self, scan: &Scan, key: &[u8]) -> Result<Option<Row>> {
        let Some(value) = self.txn.get(key, scan.lock).await? else {
            return Ok(None);
        };
        if scan.is_primary() {
            return decode_row(&scan.table, key, &value).map(Some);
        }
        let row_key = row_key_from_entry(&scan.table, &value);
        match self.txn.get(&row_key, scan.lock).await? {
            Some(v) => decode_row(&scan.table, &row_key, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Whether a row passes the scan's residual filter (which may hold
    /// subqueries).
    async fn passes(&mut self, scan: &Scan, row: &[Value], outer: &[Value]) -> Result<bool> {
        match &scan.filter {
            None => Ok(true),
            Some(f) => Ok(matches!(
                self.eval(f, row, outer, f.has_subquery()).await?,
                Value::Bool(true)
            )),
        }
    }

    /// Reads a key range, at most `want` rows passing the filter.
    async fn read_range(
        &mut self,
        scan: &Scan,
        mut range: KeyRange,
        want: Option<usize>,
        outer: &[Value],
    ) -> Result<Vec<Row>> {
        let direction = if scan.reverse {
            ScanDirection::Reverse
        } else {
            ScanDirection::Forward
        };
        let mut out = Vec::new();
        let mut batch = match (want, &scan.filter) {
            (Some(w), None) => Some(w),
            (Some(w), Some(_)) => Some(w.max(MIN_BATCH)),
            (None, _) => None,
        };
        loop {
            let pairs = self
                .txn
                .scan(range.clone(), direction, batch, scan.lock)
                .await?;
            let exhausted = batch.is_none_or(|b| pairs.len() < b);
            let last = pairs.last().map(|(k, _)| k.clone());
            for (key, value) in pairs {
                let row = if scan.is_primary() {
                    decode_row(&scan.table, &key, &value)?
                } else {
                    let row_key = row_key_from_entry(&scan.table, &value);
                    match self.txn.get(&row_key, scan.lock).await? {
                        Some(v) => decode_row(&scan.table, &row_key, &v)?,
                        None => continue,
                    }
                };
                if self.passes(scan, &row, outer).await? {
                    out.push(row);
                    if want.is_some_and(|w| out.len() >= w) {
                        return Ok(out);
                    }
                }
            }
            match (exhausted, last) {
                (false, Some(last)) => {
                    if scan.reverse {
                        range.end = Bound::Excluded(last);
                    } else {
                        range.start = Bound::Excluded(last);
                    }
                    batch = batch.map(|b| b.saturating_mul(2));
                }
                _ => return Ok(out),
            }
        }
    }
}

/// The key encoding of one value.
fn encode(v: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    keycode::encode_value_into(&mut out, &key_value(v)?, Direction::Asc);
    Ok(out)
}

/// The key range under `prefix` bounded by the next column's `lower` and
/// `upper` encoded values (with inclusivity).
pub(crate) fn span_range(
    prefix: &[u8],
    lower: Option<&(Vec<u8>, bool)>,
    upper: Option<&(Vec<u8>, bool)>,
) -> KeyRange {
    let join = |v: &[u8]| {
        let mut k = prefix.to_vec();
        k.extend_from_slice(v);
        k
    };
    let after = |k: Vec<u8>| match prefix_successor(&k) {
        Some(s) => Bound::Excluded(s),
        None => Bound::Unbounded,
    };
    let start = match lower {
        Some((v, true)) => Bound::Included(join(v)),
        Some((v, false)) => match prefix_successor(&join(v)) {
            Some(s) => Bound::Included(s),
            None => Bound::Excluded(join(v)),
        },
        None => Bound::Included(prefix.to_vec()),
    };
    let end = match upper {
        Some((v, true)) => after(join(v)),
        Some((v, false)) => Bound::Excluded(join(v)),
        None if lower.is_some() => {
            // Stop before the NULLs, which sort after every value.
            let mut null = Vec::new();
            keycode::encode_value_into(&mut null, &KeyValue::Null, Direction::Asc);
            Bound::Excluded(join(&null))
        }
        None => after(prefix.to_vec()),
    };
    KeyRange { start, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(i: i64) -> Vec<u8> {
        encode(&Value::Int(i)).unwrap()
    }

    #[test]
    fn exclusive_lower_bound_skips_extensions() {
        let prefix = vec![0x90, 0x01];
        let r = span_range(&prefix, Some(&(enc(5), false)), None);
        let mut five_and_more = prefix.clone();
        five_and_more.extend(enc(5));
        five_and_more.extend(enc(1));
        assert!(!r.contains(&five_and_more));
        let mut six = prefix.clone();
        six.extend(enc(6));
        assert!(r.contains(&six));
        let mut null = prefix.clone();
        keycode::encode_value_into(&mut null, &KeyValue::Null, Direction::Asc);
        assert!(!r.contains(&null));
    }

    #[test]
    fn inclusive_upper_bound_keeps_extensions() {
        let prefix = vec![0x90, 0x01];
        let r = span_range(&prefix, None, Some(&(enc(5), true)));
        let mut five_ext = prefix.clone();
        five_ext.extend(enc(5));
        five_ext.extend(enc(9));
        assert!(r.contains(&five_ext));
        let mut six = prefix.clone();
        six.extend(enc(6));
        assert!(!r.contains(&six));
        assert!(r.contains(&prefix));
    }
}
