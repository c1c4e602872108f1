//! Sessions: the transaction state machine of one client connection.
//!
//! A [`Session`] is in one of three states, which are PostgreSQL's
//! ReadyForQuery states ([`TxnStatus`]):
//!
//! - **Idle**: each statement runs in its own *implicit* transaction
//!   (several statements sent in one simple query share one, all or
//!   nothing, as in PostgreSQL). A
//!   `SELECT` without `FOR UPDATE` (and `EXPLAIN`, `SHOW`) runs as a strong
//!   read-only transaction, which takes no locks; anything else as a
//!   read-write one. An implicit transaction that loses a conflict
//!   (wounded, lock timeout) is retried automatically a few times: nothing
//!   of it was visible, so the client cannot tell.
//! - **In a block** (`BEGIN` / `START TRANSACTION`): statements share one
//!   transaction, begun lazily at the first statement so that `SET
//!   TRANSACTION` (read only, `AS OF SYSTEM TIME`) can still shape it; after
//!   that `SET TRANSACTION` is 25001. `COMMIT`/`END` commits, `ROLLBACK`/
//!   `ABORT` rolls back. Every isolation level is accepted and is
//!   serializable.
//! - **Failed**: a statement in the block failed. The transaction was rolled
//!   back at once (its locks released), and until `ROLLBACK` or `COMMIT`
//!   (which then reports `ROLLBACK`) every statement fails with 25P02.
//!
//! `AS OF SYSTEM TIME` on a statement outside a block runs it as a
//! read-only transaction at that timestamp; on `BEGIN` or `SET TRANSACTION`
//! it makes the whole block such a snapshot.
//!
//! Harmless session statements are accepted: `SET x = v` / `SET x TO v`
//! store a setting that `SHOW x` returns, `SHOW transaction_isolation` is
//! `serializable`, `SHOW server_version` is 15.0; `RESET` and `DISCARD`
//! do what they say to the settings.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use meridian_error::{Error, Result};
use meridian_truetime::Timestamp;
use meridian_txn::{ReadTime, Transaction, TxnEngine, TxnMode};

use crate::bind::{SessionInfo, TableSnapshot};
use crate::exec::RowIds;
use crate::parse::{parse_sql, AsOf, Parsed};
use crate::plan::Statement;
use crate::types::{DataType, Value};

/// How many times an implicit transaction is retried after a conflict.
/// (Not after [`Error::Unavailable`]: the engine already waited for a
/// leader before giving up, and the client decides what comes next.)
pub(crate) const AUTO_RETRIES: usize = 5;

/// A result column.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// Its type.
    pub data_type: DataType,
}

/// What a statement returned.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryResult {
    /// A statement that returns rows (SELECT, VALUES, ... RETURNING,
    /// EXPLAIN, SHOW).
    Rows {
        /// The columns.
        columns: Vec<Column>,
        /// The rows, one value per column.
        rows: Vec<Vec<Value>>,
    },
    /// Any other statement: the PostgreSQL command tag, e.g. `INSERT 0 3`,
    /// `UPDATE 2`, `DELETE 1`, `CREATE TABLE`, `BEGIN`, `COMMIT`, `SET`.
    Command {
        /// The command tag.
        tag: String,
    },
}

/// The transaction status, as ReadyForQuery reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnStatus {
    /// Not in a transaction block (`I`).
    Idle,
    /// In a transaction block (`T`).
    InBlock,
    /// In a failed transaction block (`E`).
    Failed,
}

/// A statement parsed once, with its parameter and result types, and a
/// cache of its plan (valid while the tables it uses keep their versions).
#[derive(Clone, Debug)]
pub struct PreparedStatement {
    /// Shared state.
    inner: Arc<Prepared>,
}

/// The shared part of a [`PreparedStatement`].
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The SQL text.
    sql: String,
    /// The parsed statement (`None` for an empty statement).
    pub(crate) parsed: Option<Parsed>,
    /// The resolved parameter types.
    pub(crate) params: Vec<DataType>,
    /// The result columns.
    columns: Vec<Column>,
    /// The plan, once bound.
    pub(crate) plan: Mutex<Option<Arc<Statement>>>,
}

impl PreparedStatement {
    /// The resolved types of `$1..$n`.
    pub fn param_types(&self) -> &[DataType] {
        &self.inner.params
    }

    /// The result columns (empty if the statement returns no rows).
    pub fn columns(&self) -> &[Column] {
        &self.inner.columns
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.inner.sql
    }
}

/// A table, for the wire layer's catalog emulation.
#[derive(Clone, Debug, PartialEq)]
pub struct TableInfo {
    /// The table name.
    pub name: String,
    /// Its visible columns, in order.
    pub columns: Vec<ColumnInfo>,
    /// The primary key columns (empty when the key is the hidden row id).
    pub primary_key: Vec<String>,
    /// Its indexes, the primary one included.
    pub indexes: Vec<IndexInfo>,
}

/// A column of a [`TableInfo`].
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnInfo {
    /// The column name.
    pub name: String,
    /// Its type.
    pub data_type: DataType,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// The `DEFAULT` as SQL text.
    pub default: Option<String>,
}

/// An index of a [`TableInfo`].
#[derive(Clone, Debug, PartialEq)]
pub struct IndexInfo {
    /// The index name.
    pub name: String,
    /// Its key columns.
    pub columns: Vec<String>,
    /// Whether it is unique.
    pub unique: bool,
    /// Whether it is the primary key.
    pub primary: bool,
}

/// Per-transaction state: cached descriptors and the row id counter.
#[derive(Debug, Default)]
pub(crate) struct TxnContext {
    /// Table descriptors read in this transaction (`None`: no such table).
    pub tables: TableSnapshot,
    /// Hidden row ids handed out.
    pub rowids: RowIds,
}

/// An explicit transaction block.
pub(crate) struct Block<T> {
    /// The transaction, once the first statement begins it.
    pub txn: Option<T>,
    /// `READ ONLY`.
    pub read_only: bool,
    /// `AS OF SYSTEM TIME`.
    pub as_of: Option<ReadTime>,
    /// Per-transaction caches.
    pub ctx: TxnContext,
}

/// The session's transaction state.
pub(crate) enum State<T> {
    /// No block: implicit transactions.
    Idle,
    /// In a block.
    Block(Block<T>),
    /// A block whose statement failed.
    Failed,
}

/// One client session: its transaction state and settings. Not shared
/// between connections.
pub struct Session<E: TxnEngine> {
    /// The transaction engine.
    pub(crate) engine: E,
    /// The transaction state.
    pub(crate) state: State<E::Txn>,
    /// `SET` variables, by lower-case name.
    pub(crate) settings: BTreeMap<String, String>,
    /// Who is connected, to which database (`current_user`,
    /// `current_database()`): the login, or `root` and `meridian`.
    identity: (String, String),
}

impl<E: TxnEngine> Session<E> {
    /// A new session over `engine`.
    pub fn new(engine: E) -> Self {
        Session {
            engine,
            state: State::Idle,
            settings: BTreeMap::new(),
            identity: ("root".into(), "meridian".into()),
        }
    }

    /// Sets who is connected (the wire protocol's login) and to which
    /// database: what `current_user` and `current_database()` return.
    pub fn set_identity(&mut self, user: &str, database: &str) {
        self.identity = (user.to_owned(), database.to_owned());
    }

    /// Simple query protocol: runs every statement in `sql` in order and
    /// stops after the first error. One entry per statement run; the last
    /// is the error, if any. An empty query gives an empty vector.
    pub async fn execute(&mut self, sql: &str) -> Vec<Result<QueryResult>> {
        let parsed = match parse_sql(sql) {
            Ok(p) => p,
            Err(e) => {
                // A syntax error in a block fails the block, as in PostgreSQL.
                self.abort_block().await;
                return vec![Err(e)];
            }
        };
        if parsed.len() > 1
            && matches!(self.state, State::Idle)
            && !parsed.iter().any(|p| controls_transaction(&p.stmt))
        {
            return self.execute_batch(&parsed).await;
        }
        let mut out = Vec::with_capacity(parsed.len());
        for p in &parsed {
            let result = self.run(p, &[], None).await;
            let failed = result.is_err();
            out.push(result);
            if failed {
                break;
            }
        }
        out
    }

    /// Several statements outside a block run as one implicit transaction,
    /// as PostgreSQL runs a multi-statement simple query: all or nothing.
    /// A lost conflict retries the whole batch (no result has been sent).
    async fn execute_batch(&mut self, parsed: &[Parsed]) -> Vec<Result<QueryResult>> {
        let read_only = parsed.iter().all(|p| crate::run::is_read_only(&p.stmt));
        let mut attempt = 0;
        loop {
            self.state = State::Block(Block {
                txn: None,
                read_only,
                as_of: None,
                ctx: TxnContext::default(),
            });
            let mut out = Vec::with_capacity(parsed.len());
            for p in parsed {
                let result = self.run(p, &[], None).await;
                let failed = result.is_err();
                out.push(result);
                if failed {
                    break;
                }
            }
            let failed = out.last().is_some_and(|r| r.is_err());
            let outcome = match std::mem::replace(&mut self.state, State::Idle) {
                State::Block(block) if !failed => match block.txn {
                    Some(txn) => txn.commit().await.map(|_| ()),
                    None => Ok(()),
                },
                State::Block(block) => {
                    if let Some(txn) = block.txn {
                        let _ = txn.rollback().await;
                    }
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(e) = outcome {
                if let Some(last) = out.last_mut() {
                    *last = Err(e);
                }
            }
            let retryable = matches!(
                out.last(),
                Some(Err(e)) if e.is_retryable() && !matches!(e, Error::Unavailable(_))
            );
            if retryable && attempt < AUTO_RETRIES {
                attempt += 1;
                continue;
            }
            return out;
        }
    }

    /// Extended protocol Parse: `param_types` as sent by the client (`None`
    /// or `Unknown` means infer). Returns the statement with its parameter
    /// and result types, without executing it.
    pub async fn prepare(
        &mut self,
        sql: &str,
        param_types: &[Option<DataType>],
    ) -> Result<PreparedStatement> {
        let parsed = match parse_sql(sql) {
            Ok(p) => p,
            Err(e) => {
                self.abort_block().await;
                return Err(e);
            }
        };
        if parsed.len() > 1 {
            return Err(Error::SyntaxError(
                "cannot insert multiple commands into a prepared statement".into(),
            ));
        }
        let client: Vec<Option<DataType>> = param_types
            .iter()
            .map(|t| t.clone().filter(|t| *t != DataType::Unknown))
            .collect();
        let parsed = parsed.into_iter().next();
        let described = match &parsed {
            None => Ok((vec![], vec![], None)),
            Some(p) => self.describe(p, &client).await,
        };
        let (params, columns, plan) = match described {
            Ok(d) => d,
            Err(e) => {
                // A failed Parse aborts the block, as in PostgreSQL.
                self.abort_block().await;
                return Err(e);
            }
        };
        Ok(PreparedStatement {
            inner: Arc::new(Prepared {
                sql: sql.to_string(),
                parsed,
                params,
                columns,
                plan: Mutex::new(plan),
            }),
        })
    }

    /// Extended protocol Bind + Execute: runs a prepared statement with
    /// parameter values (already converted to the parameter types).
    pub async fn execute_prepared(
        &mut self,
        stmt: &PreparedStatement,
        params: Vec<Value>,
    ) -> Result<QueryResult> {
        let inner = &stmt.inner;
        let Some(parsed) = &inner.parsed else {
            return Ok(QueryResult::Command { tag: String::new() });
        };
        if params.len() != inner.params.len() {
            return Err(Error::InvalidInput(format!(
                "bind message supplies {} parameters, but prepared statement requires {}",
                params.len(),
                inner.params.len()
            )));
        }
        let params = coerce_params(params, &inner.params)?;
        self.run(parsed, &params, Some(inner)).await
    }

    /// The transaction status for ReadyForQuery.
    pub fn transaction_status(&self) -> TxnStatus {
        match self.state {
            State::Idle => TxnStatus::Idle,
            State::Block(_) => TxnStatus::InBlock,
            State::Failed => TxnStatus::Failed,
        }
    }

    /// Every table, for catalog emulation (`\dt`, `information_schema`).
    pub async fn list_tables(&mut self) -> Result<Vec<TableInfo>> {
        let tables = self
            .with_catalog_txn(|txn| Box::pin(crate::exec::ddl::all_tables(txn)))
            .await?;
        Ok(tables.iter().map(table_info).collect())
    }

    /// One table by name (`\d t`); `None` if there is no such table.
    pub async fn describe_table(&mut self, name: &str) -> Result<Option<TableInfo>> {
        let name = name.to_string();
        let table = self
            .with_catalog_txn(move |txn| {
                Box::pin(async move {
                    crate::catalog::load_table(txn, &name, meridian_txn::LockStrength::Shared).await
                })
            })
            .await?;
        Ok(table.as_ref().map(table_info))
    }

    /// Session facts for binding.
    pub(crate) fn info(&self) -> SessionInfo {
        SessionInfo {
            user: self
                .settings
                .get("session_authorization")
                .cloned()
                .unwrap_or_else(|| self.identity.0.clone()),
            database: self
                .settings
                .get("database")
                .cloned()
                .unwrap_or_else(|| self.identity.1.clone()),
        }
    }

    /// Resolves an `AS OF SYSTEM TIME` value to a timestamp.
    pub(crate) fn resolve_as_of(&self, as_of: &AsOf, params: &[Value]) -> Result<ReadTime> {
        let text = match as_of {
            AsOf::MaxStaleness(s) => return max_staleness(s).map(ReadTime::MaxStaleness),
            AsOf::Literal(s) => s.clone(),
            AsOf::Param(i) => match params.get(*i) {
                Some(Value::Text(s)) => s.clone(),
                Some(Value::Int(n)) => n.to_string(),
                Some(Value::TimestampTz(t)) => {
                    return Timestamp::from_datetime(*t)
                        .map(ReadTime::At)
                        .ok_or_else(|| as_of_error("timestamp before 1970"))
                }
                _ => return Err(as_of_error("the parameter must be a string or a number")),
            },
        };
        resolve_as_of_text(&text, self.engine.now().latest).map(ReadTime::At)
    }
}

/// The bound of `with_max_staleness('<interval>')`: a positive interval.
fn max_staleness(text: &str) -> Result<std::time::Duration> {
    let interval = crate::text::parse_interval(text.trim())
        .map_err(|_| as_of_error(&format!("\"{text}\" is not an interval")))?;
    let micros = interval.span_micros();
    if micros <= 0 {
        return Err(as_of_error(
            "with_max_staleness: the interval must be positive",
        ));
    }
    Ok(std::time::Duration::from_micros(micros as u64))
}

/// Whether a statement controls the transaction (and so cannot be part of
/// an implicit multi-statement transaction).
fn controls_transaction(stmt: &sqlparser::ast::Statement) -> bool {
    use sqlparser::ast::Statement as S;
    matches!(
        stmt,
        S::StartTransaction { .. }
            | S::Commit { .. }
            | S::Rollback { .. }
            | S::Savepoint { .. }
            | S::ReleaseSavepoint { .. }
            | S::Set(sqlparser::ast::Set::SetTransaction { .. })
    )
}

/// The error for an unusable `AS OF SYSTEM TIME` value.
fn as_of_error(why: &str) -> Error {
    Error::InvalidInput(format!("AS OF SYSTEM TIME: {why}"))
}

/// Reads an `AS OF SYSTEM TIME` value relative to `now`: a negative
/// interval (`-5s`), nanoseconds since the epoch (optionally with a
/// CockroachDB-style logical fraction), or a timestamp.
pub(crate) fn resolve_as_of_text(text: &str, now: Timestamp) -> Result<Timestamp> {
    let t = text.trim();
    let integral = t.split('.').next().unwrap_or("");
    if !integral.is_empty()
        && integral.bytes().all(|b| b.is_ascii_digit())
        && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        let nanos: u64 = integral
            .parse()
            .map_err(|_| as_of_error("timestamp out of range"))?;
        return Ok(Timestamp::from_nanos(nanos));
    }
    if let Ok(interval) = crate::text::parse_interval(t) {
        let micros = interval.span_micros();
        if micros >= 0 {
            return Err(as_of_error("interval value must be negative"));
        }
        let back = u64::try_from(micros.unsigned_abs().saturating_mul(1000)).unwrap_or(u64::MAX);
        return Ok(now.saturating_sub(std::time::Duration::from_nanos(back)));
    }
    match Value::from_pg_text(t, &DataType::TimestampTz) {
        Ok(Value::TimestampTz(dt)) => {
            Timestamp::from_datetime(dt).ok_or_else(|| as_of_error("timestamp before 1970"))
        }
        _ => Err(as_of_error(&format!(
            "value \"{t}\" is not an interval, a timestamp or a number"
        ))),
    }
}

/// Casts parameter values to the declared parameter types where their
/// variants differ (e.g. an integer sent for a numeric parameter).
fn coerce_params(params: Vec<Value>, types: &[DataType]) -> Result<Vec<Value>> {
    params
        .into_iter()
        .zip(types)
        .map(|(v, ty)| {
            let natural = natural_type(&v);
            if v.is_null() || natural.family() == ty.family() {
                Ok(v)
            } else {
                crate::cast::cast(v, &natural, ty, crate::cast::CastContext::Explicit)
            }
        })
        .collect()
}

/// The type a value naturally has.
fn natural_type(v: &Value) -> DataType {
    match v {
        Value::Null => DataType::Unknown,
        Value::Bool(_) => DataType::Bool,
        Value::Int(_) => DataType::Int8,
        Value::Float(_) => DataType::Float8,
        Value::Numeric(_) => DataType::NUMERIC,
        Value::Text(_) => DataType::Text,
        Value::Bytes(_) => DataType::Bytea,
        Value::Date(_) => DataType::Date,
        Value::Timestamp(_) => DataType::Timestamp,
        Value::TimestampTz(_) => DataType::TimestampTz,
        Value::Interval(_) => DataType::Interval,
    }
}

/// A descriptor as the wire layer's [`TableInfo`].
fn table_info(t: &crate::catalog::TableDesc) -> TableInfo {
    let names = |cols: &[usize]| {
        cols.iter()
            .map(|&c| t.columns[c].name.clone())
            .collect::<Vec<_>>()
    };
    let hidden_pk = t.has_hidden_rowid();
    let mut indexes = Vec::new();
    if !hidden_pk {
        indexes.push(IndexInfo {
            name: t.primary.name.clone(),
            columns: names(&t.primary.columns),
            unique: true,
            primary: true,
        });
    }
    indexes.extend(t.indexes.iter().map(|i| IndexInfo {
        name: i.name.clone(),
        columns: names(&i.columns),
        unique: i.unique,
        primary: false,
    }));
    TableInfo {
        name: t.name.clone(),
        columns: t
            .columns
            .iter()
            .filter(|c| !c.hidden)
            .map(|c| ColumnInfo {
                name: c.name.clone(),
                data_type: c.ty.clone(),
                nullable: c.nullable,
                default: c.default.clone(),
            })
            .collect(),
        primary_key: if hidden_pk {
            vec![]
        } else {
            names(&t.primary.columns)
        },
        indexes,
    }
}

/// The mode of a transaction for a block's settings.
pub(crate) fn block_mode(read_only: bool, as_of: Option<ReadTime>) -> TxnMode {
    match (as_of, read_only) {
        (Some(at), _) => TxnMode::ReadOnly(at),
        (None, true) => TxnMode::ReadOnly(ReadTime::Strong),
        (None, false) => TxnMode::ReadWrite,
    }
}

/// Runs `f` with a transaction for catalog reads: the open block's, or a
/// short read-only one.
impl<E: TxnEngine> Session<E> {
    async fn with_catalog_txn<R, F>(&mut self, f: F) -> Result<R>
    where
        F: for<'t> FnOnce(&'t mut E::Txn) -> crate::exec::BoxFuture<'t, Result<R>>,
    {
        match &mut self.state {
            State::Failed => Err(Error::InFailedTransaction),
            State::Block(block) => {
                if block.txn.is_none() {
                    let mode = block_mode(block.read_only, block.as_of);
                    block.txn = Some(self.engine.begin(mode).await?);
                }
                let txn = block.txn.as_mut().expect("begun above");
                f(txn).await
            }
            State::Idle => {
                let mut txn = self
                    .engine
                    .begin(TxnMode::ReadOnly(ReadTime::Strong))
                    .await?;
                let r = f(&mut txn).await;
                txn.commit().await?;
                r
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_values() {
        let now = Timestamp::from_nanos(1_700_000_000_000_000_000);
        let t = resolve_as_of_text("-5s", now).unwrap();
        assert_eq!(now.duration_since(t), std::time::Duration::from_secs(5));
        let t = resolve_as_of_text("1600000000000000000.0000000001", now).unwrap();
        assert_eq!(t.as_nanos(), 1_600_000_000_000_000_000);
        let t = resolve_as_of_text("2023-11-14 22:13:20+00", now).unwrap();
        assert_eq!(t, now);
        assert!(resolve_as_of_text("5s", now).is_err());
        assert!(resolve_as_of_text("soon", now).is_err());
    }
}
