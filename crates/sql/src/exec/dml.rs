//! `INSERT`, `UPDATE` and `DELETE`: rows and their index entries.
//!
//! Every write goes through the transaction, which buffers it and takes an
//! exclusive lock on the key. Constraints are checked against what the
//! transaction sees (its own earlier writes included):
//!
//! - **NOT NULL**: 23502 before anything is written;
//! - **primary key and unique indexes**: before a row is written, its
//!   primary key and each unique index entry (with no NULL column) are read
//!   with an exclusive lock; an existing key is a conflict, 23505 with
//!   PostgreSQL's detail `Key (a, b)=(1, x) already exists.`, unless
//!   `ON CONFLICT` handles it.
//!
//! `UPDATE` works in two phases over all its rows: first it deletes every
//! index entry (and row key, when the primary key changes) that the update
//! invalidates, then it writes the new rows and entries, checking
//! uniqueness. Uniqueness is therefore checked against the statement's end
//! state, so `UPDATE t SET id = id + 1` cannot fail on a transient
//! duplicate.

use std::collections::{HashMap, HashSet};

use meridian_error::{Error, Result};
use meridian_txn::{LockStrength, Transaction};

use super::{Executor, Row};
use crate::catalog::{TableDesc, PRIMARY_INDEX_ID};
use crate::expr::Expr;
use crate::plan::{ConflictAction, Delete, Insert, OnConflict, Update};
use crate::row::{
    decode_row, encode_row_value, index_entry, row_key, row_key_from_entry, unique_entry_applies,
};
use crate::types::{DataType, Value};

/// A unique key an insert would collide with.
struct Conflict {
    /// The index (`PRIMARY_INDEX_ID` for the primary key).
    index_id: u32,
    /// The row key of the existing row.
    existing: Vec<u8>,
}

impl<T: Transaction> Executor<'_, T> {
    /// Runs an `INSERT`.
    pub(crate) async fn insert(&mut self, insert: &Insert) -> Result<(Vec<Row>, u64)> {
        let table = &insert.table;
        let source = self.run(&insert.source, &[]).await?;
        let mut returned = Vec::new();
        let mut count = 0u64;
        let empty = HashMap::new();
        // Row keys this statement wrote: DO UPDATE may not touch one twice.
        let mut affected: HashSet<Vec<u8>> = HashSet::new();
        for src in source {
            let mut row = vec![Value::Null; table.columns.len()];
            for (v, &pos) in src.into_iter().zip(&insert.targets) {
                row[pos] = v;
            }
            let mut hidden_rowid = None;
            for (pos, default) in &insert.defaults {
                match default {
                    Some(e) => row[*pos] = e.eval(&[], &self.env(&[], &empty))?,
                    None => {
                        hidden_rowid = Some(*pos);
                        row[*pos] = Value::Int(self.next_rowid());
                    }
                }
            }
            check_not_null(table, &row)?;
            let written = match hidden_rowid {
                Some(pos) => {
                    // Skip ids another transaction of the same microsecond took.
                    while self
                        .txn
                        .get(&row_key(table, &row)?, LockStrength::Exclusive)
                        .await?
                        .is_some()
                    {
                        row[pos] = Value::Int(self.next_rowid());
                    }
                    self.check_unique_indexes(table, &row, None).await?;
                    self.write_row(table, &row).await?;
                    Some(row)
                }
                None => {
                    self.insert_row(table, row, insert.on_conflict.as_ref(), &mut affected)
                        .await?
                }
            };
            if let Some(row) = written {
                count += 1;
                if let Some(exprs) = &insert.returning {
                    returned.push(self.project(exprs, &row).await?);
                }
            }
        }
        Ok((returned, count))
    }

    /// The next hidden row id of this transaction.
    fn next_rowid(&mut self) -> i64 {
        let micros = (self.txn.start_ts().as_nanos() / 1000) as i64;
        let id = (micros << 12).wrapping_add(self.rowids.counter as i64);
        self.rowids.counter += 1;
        id
    }

    /// Evaluates `RETURNING` expressions over a row.
    async fn project(&mut self, exprs: &[Expr], row: &[Value]) -> Result<Row> {
        let mut out = Vec::with_capacity(exprs.len());
        for e in exprs {
            let sub = e.has_subquery();
            out.push(self.eval(e, row, &[], sub).await?);
        }
        Ok(out)
    }

    /// Inserts one row, handling conflicts; returns the row written (the
    /// new row, or the updated existing row), `None` if skipped.
    async fn insert_row(
        &mut self,
        table: &TableDesc,
        row: Row,
        on_conflict: Option<&OnConflict>,
        affected: &mut HashSet<Vec<u8>>,
    ) -> Result<Option<Row>> {
        let conflict = self.find_conflict(table, &row).await?;
        let Some(conflict) = conflict else {
            self.write_row(table, &row).await?;
            affected.insert(row_key(table, &row)?);
            return Ok(Some(row));
        };
        let handled = on_conflict.filter(|oc| oc.index_id.is_none_or(|id| id == conflict.index_id));
        let Some(oc) = handled else {
            return Err(unique_violation(table, conflict.index_id, &row));
        };
        match &oc.action {
            ConflictAction::Nothing => Ok(None),
            ConflictAction::Update {
                assignments,
                predicate,
            } => {
                if affected.contains(&conflict.existing) {
                    // PostgreSQL: "ON CONFLICT DO UPDATE command cannot
                    // affect row a second time" (21000).
                    return Err(Error::CardinalityViolation);
                }
                let existing = match self
                    .txn
                    .get(&conflict.existing, LockStrength::Exclusive)
                    .await?
                {
                    Some(v) => decode_row(table, &conflict.existing, &v)?,
                    None => return Err(Error::Internal("conflicting row vanished".into())),
                };
                let mut both = existing.clone();
                both.extend(row);
                if let Some(p) = predicate {
                    let sub = p.has_subquery();
                    if !matches!(self.eval(p, &both, &[], sub).await?, Value::Bool(true)) {
                        return Ok(None);
                    }
                }
                let mut new = existing.clone();
                for (pos, e) in assignments {
                    let sub = e.has_subquery();
                    new[*pos] = self.eval(e, &both, &[], sub).await?;
                }
                check_not_null(table, &new)?;
                self.apply_updates(table, vec![(existing, new.clone())])
                    .await?;
                affected.insert(row_key(table, &new)?);
                Ok(Some(new))
            }
        }
    }

    /// The first unique key of `row` that already exists.
    async fn find_conflict(
        &mut self,
        table: &TableDesc,
        row: &[Value],
    ) -> Result<Option<Conflict>> {
        let key = row_key(table, row)?;
        if self.txn.get(&key, LockStrength::Exclusive).await?.is_some() {
            return Ok(Some(Conflict {
                index_id: PRIMARY_INDEX_ID,
                existing: key,
            }));
        }
        for index in &table.indexes {
            if !unique_entry_applies(index, row) {
                continue;
            }
            let (entry, _) = index_entry(table, index, row)?;
            if let Some(pk) = self.txn.get(&entry, LockStrength::Exclusive).await? {
                return Ok(Some(Conflict {
                    index_id: index.id,
                    existing: row_key_from_entry(table, &pk),
                }));
            }
        }
        Ok(None)
    }

    /// Fails with 23505 if a unique index entry of `row` exists; `only`
    /// restricts the check to some indexes.
    async fn check_unique_indexes(
        &mut self,
        table: &TableDesc,
        row: &[Value],
        only: Option<&[u32]>,
    ) -> Result<()> {
        for index in &table.indexes {
            if only.is_some_and(|ids| !ids.contains(&index.id)) || !unique_entry_applies(index, row)
            {
                continue;
            }
            let (entry, _) = index_entry(table, index, row)?;
            if self
                .txn
                .get(&entry, LockStrength::Exclusive)
                .await?
                .is_some()
            {
                return Err(unique_violation(table, index.id, row));
            }
        }
        Ok(())
    }

    /// Writes a row and all its index entries (no checks).
    async fn write_row(&mut self, table: &TableDesc, row: &[Value]) -> Result<()> {
        self.txn
            .put(row_key(table, row)?, encode_row_value(table, row))
            .await?;
        for index in &table.indexes {
            let (key, value) = index_entry(table, index, row)?;
            self.txn.put(key, value).await?;
        }
        Ok(())
    }

    /// Runs an `UPDATE`.
    pub(crate) async fn update(&mut self, update: &Update) -> Result<(Vec<Row>, u64)> {
        let table = &update.table;
        let rows = self.run(&update.source, &[]).await?;
        let mut changes = Vec::with_capacity(rows.len());
        for old in rows {
            let mut new = old.clone();
            for (pos, e) in &update.assignments {
                let sub = e.has_subquery();
                new[*pos] = self.eval(e, &old, &[], sub).await?;
            }
            check_not_null(table, &new)?;
            changes.push((old, new));
        }
        let count = changes.len() as u64;
        let mut returned = Vec::new();
        if let Some(exprs) = &update.returning {
            for (_, new) in &changes {
                returned.push(self.project(exprs, new).await?);
            }
        }
        self.apply_updates(table, changes).await?;
        Ok((returned, count))
    }

    /// Replaces rows: first removes every key the changes invalidate, then
    /// writes the new rows and entries with uniqueness checks.
    async fn apply_updates(&mut self, table: &TableDesc, changes: Vec<(Row, Row)>) -> Result<()> {
        let mut plans = Vec::with_capacity(changes.len());
        for (old, new) in &changes {
            let old_key = row_key(table, old)?;
            let new_key = row_key(table, new)?;
            let pk_changed = old_key != new_key;
            let mut changed_indexes = Vec::new();
            for index in &table.indexes {
                let old_entry = index_entry(table, index, old)?;
                let new_entry = index_entry(table, index, new)?;
                if old_entry != new_entry {
                    self.txn.delete(old_entry.0).await?;
                    changed_indexes.push(index.id);
                }
            }
            if pk_changed {
                self.txn.delete(old_key).await?;
            }
            plans.push((pk_changed, new_key, changed_indexes));
        }
        for ((_, new), (pk_changed, new_key, changed)) in changes.iter().zip(plans) {
            if pk_changed
                && self
                    .txn
                    .get(&new_key, LockStrength::Exclusive)
                    .await?
                    .is_some()
            {
                return Err(unique_violation(table, PRIMARY_INDEX_ID, new));
            }
            self.check_unique_indexes(table, new, Some(&changed))
                .await?;
            self.txn.put(new_key, encode_row_value(table, new)).await?;
            for index in table.indexes.iter().filter(|i| changed.contains(&i.id)) {
                let (key, value) = index_entry(table, index, new)?;
                self.txn.put(key, value).await?;
            }
        }
        Ok(())
    }

    /// Runs a `DELETE`.
    pub(crate) async fn delete(&mut self, delete: &Delete) -> Result<(Vec<Row>, u64)> {
        let table = &delete.table;
        let rows = self.run(&delete.source, &[]).await?;
        let mut returned = Vec::new();
        for row in &rows {
            self.txn.delete(row_key(table, row)?).await?;
            for index in &table.indexes {
                let (key, _) = index_entry(table, index, row)?;
                self.txn.delete(key).await?;
            }
            if let Some(exprs) = &delete.returning {
                returned.push(self.project(exprs, row).await?);
            }
        }
        Ok((returned, rows.len() as u64))
    }
}

/// 23502 for a NULL in a NOT NULL column.
fn check_not_null(table: &TableDesc, row: &[Value]) -> Result<()> {
    for (c, v) in table.columns.iter().zip(row) {
        if !c.nullable && v.is_null() {
            return Err(Error::NotNullViolation {
                table: table.name.clone(),
                column: c.name.clone(),
            });
        }
    }
    Ok(())
}

/// 23505 for `row` colliding on index `index_id`, with PostgreSQL's detail.
pub(crate) fn unique_violation(table: &TableDesc, index_id: u32, row: &[Value]) -> Error {
    let index = table.index(index_id).unwrap_or(&table.primary);
    let names: Vec<&str> = index
        .columns
        .iter()
        .map(|&p| table.columns[p].name.as_str())
        .collect();
    let values: Vec<String> = index
        .columns
        .iter()
        .map(|&p| {
            let ty: &DataType = &table.columns[p].ty;
            row[p].to_pg_text(ty).unwrap_or_else(|| "null".into())
        })
        .collect();
    Error::UniqueViolation {
        constraint: index.name.clone(),
        detail: format!(
            "Key ({})=({}) already exists.",
            names.join(", "),
            values.join(", ")
        ),
    }
}
