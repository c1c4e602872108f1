//! DDL: `CREATE TABLE`, `CREATE [UNIQUE] INDEX`, `DROP TABLE`, `DROP
//! INDEX`, `TRUNCATE`, run inside the session's transaction.
//!
//! A DDL statement reads the descriptors it changes with an exclusive lock
//! (see `catalog.rs`), so it waits for the transactions using the table and
//! they wait for it; and since it is an ordinary transactional write, a
//! `CREATE TABLE` inside `BEGIN ... ROLLBACK` leaves nothing behind.
//!
//! Tables and indexes share one namespace, as in PostgreSQL: the primary
//! key's index (`<table>_pkey`) and unique constraints' indexes
//! (`<table>_<cols>_key`) are registered under their names too. A table
//! without a primary key gets a hidden `rowid` column as its key.
//!
//! `CREATE INDEX` backfills: it reads every row of the table and writes its
//! entry, failing with 23505 when a unique index finds a duplicate (the
//! whole statement, and so the index, is then rolled back). `DROP` deletes
//! the rows or entries key by key.
//!
//! Left out: `ALTER TABLE`, `CHECK` and `FOREIGN KEY` constraints,
//! sequences (`serial`), expression and partial indexes, descending index
//! columns.

use meridian_error::{Error, Result};
use meridian_storage::{KeyRange, ScanDirection};
use meridian_txn::{LockStrength, Transaction};
use sqlparser::ast;

use crate::bind::{data_type_from_ast, ident, object_name, Binder, SessionInfo, TableSnapshot};
use crate::catalog::{
    self, allocate_table_id, index_name_key, index_owner, index_prefix, load_table, store_table,
    table_key, table_prefix, ColumnDesc, IndexDesc, TableDesc, PRIMARY_INDEX_ID, ROWID,
};
use crate::row::{decode_row, index_entry, unique_entry_applies};
use crate::types::DataType;

use super::dml::unique_violation;

/// The outcome of a DDL statement: its command tag and the table names
/// whose cached descriptors are now stale.
pub(crate) struct DdlOutcome {
    /// The command tag.
    pub tag: &'static str,
    /// Names to drop from the descriptor cache.
    pub invalidated: Vec<String>,
}

/// Runs a DDL statement in `txn`.
pub(crate) async fn execute_ddl<T: Transaction>(
    txn: &mut T,
    stmt: &ast::Statement,
    session: &SessionInfo,
) -> Result<DdlOutcome> {
    match stmt {
        ast::Statement::CreateTable(ct) => create_table(txn, ct, session).await,
        ast::Statement::CreateIndex(ci) => create_index(txn, ci).await,
        ast::Statement::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            ..
        } => {
            if *cascade {
                return Err(Error::FeatureNotSupported("DROP ... CASCADE".into()));
            }
            match object_type {
                ast::ObjectType::Table => drop_tables(txn, names, *if_exists).await,
                ast::ObjectType::Index => drop_indexes(txn, names, *if_exists).await,
                other => Err(Error::FeatureNotSupported(format!("DROP {other}"))),
            }
        }
        ast::Statement::Truncate(t) => {
            let mut invalidated = Vec::new();
            for target in &t.table_names {
                let name = object_name(&target.name)?;
                let table = load_table(txn, &name, LockStrength::Exclusive)
                    .await?
                    .ok_or_else(|| Error::UndefinedTable(name.clone()))?;
                delete_prefix(txn, &table_prefix(table.id)).await?;
                invalidated.push(name);
            }
            Ok(DdlOutcome {
                tag: "TRUNCATE TABLE",
                invalidated,
            })
        }
        other => Err(Error::FeatureNotSupported(format!(
            "statement {}",
            other
                .to_string()
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        ))),
    }
}

/// Fails with 42P07 if a table or index named `name` exists.
async fn check_name_free<T: Transaction>(txn: &mut T, name: &str) -> Result<bool> {
    if txn
        .get(&table_key(name), LockStrength::Exclusive)
        .await?
        .is_some()
    {
        return Ok(false);
    }
    Ok(index_owner(txn, name, LockStrength::Exclusive)
        .await?
        .is_none())
}

/// `CREATE TABLE`.
async fn create_table<T: Transaction>(
    txn: &mut T,
    ct: &ast::CreateTable,
    session: &SessionInfo,
) -> Result<DdlOutcome> {
    if ct.query.is_some() || ct.like.is_some() {
        return Err(Error::FeatureNotSupported("CREATE TABLE AS / LIKE".into()));
    }
    let name = object_name(&ct.name)?;
    let done = DdlOutcome {
        tag: "CREATE TABLE",
        invalidated: vec![name.clone()],
    };
    if !check_name_free(txn, &name).await? {
        if ct.if_not_exists {
            return Ok(done);
        }
        return Err(Error::DuplicateTable(name));
    }
    let mut columns: Vec<ColumnDesc> = Vec::new();
    let mut primary: Option<Vec<usize>> = None;
    let mut uniques: Vec<Vec<usize>> = Vec::new();
    for (i, def) in ct.columns.iter().enumerate() {
        let col_name = ident(&def.name);
        if columns.iter().any(|c| c.name == col_name) {
            return Err(Error::DuplicateColumn(format!(
                "column \"{col_name}\" specified more than once"
            )));
        }
        if let ast::DataType::Custom(n, _) = &def.data_type {
            if let Ok(t) = object_name(n) {
                if t.contains("serial") {
                    return Err(Error::FeatureNotSupported(
                        "serial columns (sequences) are not supported".into(),
                    ));
                }
            }
        }
        let ty = data_type_from_ast(&def.data_type)?;
        let mut col = ColumnDesc {
            id: i as u32 + 1,
            name: col_name,
            ty,
            nullable: true,
            default: None,
            hidden: false,
        };
        for opt in &def.options {
            match &opt.option {
                ast::ColumnOption::Null => col.nullable = true,
                ast::ColumnOption::NotNull => col.nullable = false,
                ast::ColumnOption::Default(e) => {
                    // Bind once to reject bad defaults now.
                    let snapshot = TableSnapshot::new();
                    Binder::new(&snapshot, session, &[]).bind_default(e, &col.ty)?;
                    col.default = Some(e.to_string());
                }
                ast::ColumnOption::PrimaryKey(_) => {
                    if primary.is_some() {
                        return Err(multiple_primary_keys(&name));
                    }
                    primary = Some(vec![i]);
                }
                ast::ColumnOption::Unique(_) => uniques.push(vec![i]),
                other => {
                    return Err(Error::FeatureNotSupported(format!("column option {other}")));
                }
            }
        }
        columns.push(col);
    }
    let position = |cols: &[ast::IndexColumn]| -> Result<Vec<usize>> {
        cols.iter()
            .map(|c| {
                let n = match &c.column.expr {
                    ast::Expr::Identifier(id) => ident(id),
                    other => {
                        return Err(Error::FeatureNotSupported(format!(
                            "constraint on expression {other}"
                        )))
                    }
                };
                columns.iter().position(|col| col.name == n).ok_or_else(|| {
                    Error::UndefinedColumn(format!("column \"{n}\" named in key does not exist"))
                })
            })
            .collect()
    };
    for constraint in &ct.constraints {
        match constraint {
            ast::TableConstraint::PrimaryKey(pk) => {
                if primary.is_some() {
                    return Err(multiple_primary_keys(&name));
                }
                primary = Some(position(&pk.columns)?);
            }
            ast::TableConstraint::Unique(u) => uniques.push(position(&u.columns)?),
            other => {
                return Err(Error::FeatureNotSupported(format!(
                    "table constraint {other}"
                )))
            }
        }
    }
    let primary = match primary {
        Some(cols) => {
            for &c in &cols {
                columns[c].nullable = false;
            }
            cols
        }
        None => {
            columns.push(ColumnDesc {
                id: columns.len() as u32 + 1,
                name: ROWID.into(),
                ty: DataType::Int8,
                nullable: false,
                default: None,
                hidden: true,
            });
            vec![columns.len() - 1]
        }
    };
    let id = allocate_table_id(txn).await?;
    let mut table = TableDesc {
        id,
        name: name.clone(),
        version: 1,
        next_column_id: columns.len() as u32 + 1,
        columns,
        primary: IndexDesc {
            id: PRIMARY_INDEX_ID,
            name: format!("{name}_pkey"),
            columns: primary,
            unique: true,
        },
        indexes: vec![],
        next_index_id: PRIMARY_INDEX_ID + 1,
    };
    let mut names = vec![table.primary.name.clone()];
    for cols in uniques {
        let col_names: Vec<&str> = cols
            .iter()
            .map(|&c| table.columns[c].name.as_str())
            .collect();
        let index_name = format!("{name}_{}_key", col_names.join("_"));
        names.push(index_name.clone());
        table.indexes.push(IndexDesc {
            id: table.next_index_id,
            name: index_name,
            columns: cols,
            unique: true,
        });
        table.next_index_id += 1;
    }
    for n in &names {
        if !check_name_free(txn, n).await? {
            return Err(Error::DuplicateTable(n.clone()));
        }
        txn.put(index_name_key(n), name.as_bytes().to_vec()).await?;
    }
    store_table(txn, &table).await?;
    Ok(done)
}

/// 42P16 in PostgreSQL; the nearest variant here.
fn multiple_primary_keys(table: &str) -> Error {
    Error::InvalidStatement(format!(
        "multiple primary keys for table \"{table}\" are not allowed"
    ))
}

/// `CREATE [UNIQUE] INDEX`.
async fn create_index<T: Transaction>(txn: &mut T, ci: &ast::CreateIndex) -> Result<DdlOutcome> {
    if ci.predicate.is_some() || !ci.include.is_empty() {
        return Err(Error::FeatureNotSupported(
            "partial indexes and INCLUDE".into(),
        ));
    }
    let table_name = object_name(&ci.table_name)?;
    let mut table = load_table(txn, &table_name, LockStrength::Exclusive)
        .await?
        .ok_or_else(|| Error::UndefinedTable(table_name.clone()))?;
    let mut cols = Vec::new();
    for c in &ci.columns {
        if matches!(c.column.options.sort, Some(ast::OrderBySort::Desc)) {
            return Err(Error::FeatureNotSupported(
                "descending index columns".into(),
            ));
        }
        let n = match &c.column.expr {
            ast::Expr::Identifier(id) => ident(id),
            other => {
                return Err(Error::FeatureNotSupported(format!(
                    "index on expression {other}"
                )))
            }
        };
        let pos = table
            .column_position(&n)
            .filter(|&p| !table.columns[p].hidden)
            .ok_or_else(|| Error::UndefinedColumn(format!("column \"{n}\" does not exist")))?;
        cols.push(pos);
    }
    let done = DdlOutcome {
        tag: "CREATE INDEX",
        invalidated: vec![table_name.clone()],
    };
    let index_name = match &ci.name {
        Some(n) => object_name(n)?,
        None => {
            let base: Vec<&str> = cols
                .iter()
                .map(|&c| table.columns[c].name.as_str())
                .collect();
            let base = format!("{table_name}_{}_idx", base.join("_"));
            let mut candidate = base.clone();
            let mut n = 1;
            while !check_name_free(txn, &candidate).await? {
                candidate = format!("{base}{n}");
                n += 1;
            }
            candidate
        }
    };
    if !check_name_free(txn, &index_name).await? {
        if ci.if_not_exists {
            return Ok(done);
        }
        return Err(Error::DuplicateTable(index_name));
    }
    let index = IndexDesc {
        id: table.next_index_id,
        name: index_name.clone(),
        columns: cols,
        unique: ci.unique,
    };
    // Backfill from the primary index.
    let prefix = index_prefix(table.id, PRIMARY_INDEX_ID);
    let rows = txn
        .scan(
            KeyRange::prefix(&prefix),
            ScanDirection::Forward,
            None,
            LockStrength::Shared,
        )
        .await?;
    for (key, value) in rows {
        let row = decode_row(&table, &key, &value)?;
        let (entry, pk) = index_entry(&table, &index, &row)?;
        if unique_entry_applies(&index, &row)
            && txn.get(&entry, LockStrength::Exclusive).await?.is_some()
        {
            let mut with_index = table.clone();
            with_index.indexes.push(index.clone());
            let err = unique_violation(&with_index, index.id, &row);
            // PostgreSQL reports the duplicate as `could not create unique index`.
            return Err(match err {
                Error::UniqueViolation { constraint, detail } => Error::UniqueViolation {
                    constraint,
                    detail: detail.replace("already exists.", "is duplicated."),
                },
                other => other,
            });
        }
        txn.put(entry, pk).await?;
    }
    table.indexes.push(index);
    table.next_index_id += 1;
    table.version += 1;
    txn.put(index_name_key(&index_name), table_name.as_bytes().to_vec())
        .await?;
    store_table(txn, &table).await?;
    Ok(done)
}

/// `DROP TABLE`.
async fn drop_tables<T: Transaction>(
    txn: &mut T,
    names: &[ast::ObjectName],
    if_exists: bool,
) -> Result<DdlOutcome> {
    let mut invalidated = Vec::new();
    for n in names {
        let name = object_name(n)?;
        let Some(table) = load_table(txn, &name, LockStrength::Exclusive).await? else {
            if if_exists {
                continue;
            }
            return Err(Error::UndefinedTable(name));
        };
        for index in std::iter::once(&table.primary).chain(&table.indexes) {
            txn.delete(index_name_key(&index.name)).await?;
        }
        delete_prefix(txn, &table_prefix(table.id)).await?;
        txn.delete(table_key(&name)).await?;
        invalidated.push(name);
    }
    Ok(DdlOutcome {
        tag: "DROP TABLE",
        invalidated,
    })
}

/// `DROP INDEX`.
async fn drop_indexes<T: Transaction>(
    txn: &mut T,
    names: &[ast::ObjectName],
    if_exists: bool,
) -> Result<DdlOutcome> {
    let mut invalidated = Vec::new();
    for n in names {
        let name = object_name(n)?;
        let Some(table_name) = index_owner(txn, &name, LockStrength::Exclusive).await? else {
            if if_exists {
                continue;
            }
            return Err(Error::UndefinedObject(format!(
                "index \"{name}\" does not exist"
            )));
        };
        let mut table = load_table(txn, &table_name, LockStrength::Exclusive)
            .await?
            .ok_or_else(|| {
                Error::Corruption(format!("index {name} names missing table {table_name}"))
            })?;
        let Some(pos) = table.indexes.iter().position(|i| i.name == name) else {
            // PostgreSQL: 2BP01, the constraint's index cannot be dropped alone.
            return Err(Error::InvalidStatement(format!(
                "cannot drop index {name} because constraint {name} on table {table_name} requires it"
            )));
        };
        let index = table.indexes.remove(pos);
        delete_prefix(txn, &index_prefix(table.id, index.id)).await?;
        table.version += 1;
        store_table(txn, &table).await?;
        txn.delete(index_name_key(&name)).await?;
        invalidated.push(table_name);
    }
    Ok(DdlOutcome {
        tag: "DROP INDEX",
        invalidated,
    })
}

/// Deletes every key under `prefix`.
async fn delete_prefix<T: Transaction>(txn: &mut T, prefix: &[u8]) -> Result<()> {
    let pairs = txn
        .scan(
            KeyRange::prefix(prefix),
            ScanDirection::Forward,
            None,
            LockStrength::Exclusive,
        )
        .await?;
    for (key, _) in pairs {
        txn.delete(key).await?;
    }
    Ok(())
}

/// The descriptors of all tables (for `list_tables`).
pub(crate) async fn all_tables<T: Transaction>(txn: &mut T) -> Result<Vec<TableDesc>> {
    catalog::list_tables(txn).await
}
