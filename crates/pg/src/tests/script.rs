//! A scripted backend: a handful of statement forms with fixed meanings.
//!
//! - `BEGIN`, `COMMIT`/`END`, `ROLLBACK`/`ABORT`: transaction blocks;
//! - `SELECT item, ...` where an item is `$n::type`, `$n`, an integer or a
//!   `'string'`: one row echoing the parameters and literals;
//! - `ROWS n`: `n` rows of one `int8` column `n`, values 1..=n;
//! - `SLEEP`: never finishes (until cancelled);
//! - `FAIL UNIQUE | SYNTAX | TABLE`: the matching error;
//! - `INSERT ...`, `CREATE ...`: a command tag.
//!
//! Anything else is a syntax error. An error inside a block fails it; a
//! failed block refuses everything but its end, like PostgreSQL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use meridian_error::{Error, Result};
use meridian_sql::{
    Column, ColumnInfo, DataType, IndexInfo, QueryResult, TableInfo, TxnStatus, Value,
};

use crate::backend::Backend;

/// Counters shared by all connections of a test server.
#[derive(Debug, Default)]
pub struct Counters {
    /// Calls of `prepare`.
    pub prepares: AtomicUsize,
}

/// The scripted session.
#[derive(Debug)]
pub struct Script {
    /// Transaction status.
    status: TxnStatus,
    /// Shared counters.
    counters: Arc<Counters>,
}

impl Script {
    /// A new session.
    pub fn new(counters: Arc<Counters>) -> Self {
        Self {
            status: TxnStatus::Idle,
            counters,
        }
    }
}

/// A prepared scripted statement.
#[derive(Debug)]
pub struct Prepared {
    /// The text.
    sql: String,
    /// Parameter types.
    params: Vec<DataType>,
    /// Result columns.
    columns: Vec<Column>,
}

/// The type called `name`.
fn type_named(name: &str) -> Option<DataType> {
    let oid = match name {
        "bool" => 16,
        "int2" => 21,
        "int4" => 23,
        "int8" => 20,
        "float4" => 700,
        "float8" => 701,
        "numeric" => 1700,
        "text" => 25,
        "varchar" => 1043,
        "bpchar" => 1042,
        "bytea" => 17,
        "date" => 1082,
        "timestamp" => 1114,
        "timestamptz" => 1184,
        "interval" => 1186,
        _ => return None,
    };
    DataType::from_pg_oid(oid)
}

/// One item of a scripted `SELECT`.
enum Item {
    /// `$n`, 0-based.
    Param(usize),
    /// A literal value.
    Literal(Value),
}

/// Parses the items of `SELECT a, b, ...`, filling parameter types.
fn select_items(
    sql: &str,
    params: &mut Vec<DataType>,
    declared: &[Option<DataType>],
) -> Result<Vec<(Item, DataType)>> {
    let body = sql["SELECT".len()..].trim();
    let mut items = Vec::new();
    for raw in body.split(',') {
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix('$') {
            let (num, cast) = match rest.split_once("::") {
                Some((n, t)) => (n, Some(t)),
                None => (rest, None),
            };
            let n: usize = num
                .parse()
                .map_err(|_| Error::SyntaxError(format!("bad parameter {raw}")))?;
            // A type the client declared wins over the cast (PostgreSQL
            // then casts the parameter).
            let ty = match (declared.get(n - 1).cloned().flatten(), cast) {
                (Some(ty), _) => ty,
                (None, Some(t)) => {
                    type_named(t).ok_or_else(|| Error::SyntaxError(format!("type {t}")))?
                }
                (None, None) => DataType::Text,
            };
            if params.len() < n {
                params.resize(n, DataType::Text);
            }
            params[n - 1] = ty.clone();
            items.push((Item::Param(n - 1), ty));
        } else if let Ok(i) = raw.parse::<i64>() {
            items.push((Item::Literal(Value::Int(i)), DataType::Int4));
        } else if raw.starts_with('\'') && raw.ends_with('\'') && raw.len() >= 2 {
            let s = raw[1..raw.len() - 1].to_owned();
            items.push((Item::Literal(Value::Text(s)), DataType::Text));
        } else {
            return Err(Error::SyntaxError(format!(
                "syntax error at or near \"{raw}\""
            )));
        }
    }
    Ok(items)
}

impl Script {
    /// Plans a statement.
    fn plan(&self, sql: &str, declared: &[Option<DataType>]) -> Result<Prepared> {
        let sql = sql.trim().trim_end_matches(';').trim().to_owned();
        let upper = sql.to_ascii_uppercase();
        let mut params = Vec::new();
        let columns = if upper.starts_with("SELECT") {
            select_items(&sql, &mut params, declared)?
                .into_iter()
                .map(|(_, ty)| Column {
                    name: "?column?".into(),
                    data_type: ty,
                })
                .collect()
        } else if upper.starts_with("ROWS") {
            vec![Column {
                name: "n".into(),
                data_type: DataType::Int8,
            }]
        } else {
            Vec::new()
        };
        Ok(Prepared {
            sql,
            params,
            columns,
        })
    }

    /// Runs a planned statement.
    async fn run(&mut self, stmt: &Prepared, params: Vec<Value>) -> Result<QueryResult> {
        let result = self.run_inner(stmt, params).await;
        if result.is_err() && self.status == TxnStatus::InBlock {
            self.status = TxnStatus::Failed;
        }
        result
    }

    /// Runs a planned statement; errors do not touch the status.
    async fn run_inner(&mut self, stmt: &Prepared, params: Vec<Value>) -> Result<QueryResult> {
        let upper = stmt.sql.to_ascii_uppercase();
        let command = |tag: &str| Ok(QueryResult::Command { tag: tag.into() });
        match upper.as_str() {
            "BEGIN" | "START TRANSACTION" => {
                if self.status == TxnStatus::Failed {
                    return Err(Error::InFailedTransaction);
                }
                self.status = TxnStatus::InBlock;
                return command("BEGIN");
            }
            "COMMIT" | "END" => {
                let failed = self.status == TxnStatus::Failed;
                self.status = TxnStatus::Idle;
                return command(if failed { "ROLLBACK" } else { "COMMIT" });
            }
            "ROLLBACK" | "ABORT" => {
                self.status = TxnStatus::Idle;
                return command("ROLLBACK");
            }
            _ => {}
        }
        if self.status == TxnStatus::Failed {
            return Err(Error::InFailedTransaction);
        }
        if upper == "SLEEP" {
            std::future::pending::<()>().await;
        }
        if upper == "FAIL UNIQUE" {
            return Err(Error::UniqueViolation {
                constraint: "t_pkey".into(),
                detail: "Key (id)=(1) already exists.".into(),
            });
        }
        if upper == "FAIL SYNTAX" {
            return Err(Error::SyntaxError(
                "syntax error at or near \"FAIL\"".into(),
            ));
        }
        if upper == "FAIL TABLE" {
            return Err(Error::UndefinedTable("nosuch".into()));
        }
        if let Some(n) = upper.strip_prefix("ROWS ") {
            let n: i64 = n
                .trim()
                .parse()
                .map_err(|_| Error::SyntaxError("ROWS n".into()))?;
            return Ok(QueryResult::Rows {
                columns: stmt.columns.clone(),
                rows: (1..=n).map(|i| vec![Value::Int(i)]).collect(),
            });
        }
        if upper.starts_with("SELECT") {
            let mut ignored = Vec::new();
            let items = select_items(&stmt.sql, &mut ignored, &[])?;
            let row = items
                .into_iter()
                .map(|(item, _)| match item {
                    Item::Param(i) => params.get(i).cloned().unwrap_or(Value::Null),
                    Item::Literal(v) => v,
                })
                .collect();
            return Ok(QueryResult::Rows {
                columns: stmt.columns.clone(),
                rows: vec![row],
            });
        }
        if upper.starts_with("INSERT") {
            return command("INSERT 0 1");
        }
        if upper.starts_with("CREATE") {
            return command("CREATE TABLE");
        }
        Err(Error::SyntaxError(format!(
            "syntax error at or near \"{}\"",
            stmt.sql.split_whitespace().next().unwrap_or("")
        )))
    }
}

impl Backend for Script {
    type Prepared = Prepared;

    async fn execute(&mut self, sql: &str) -> Vec<Result<QueryResult>> {
        let mut results = Vec::new();
        for part in sql.split(';').filter(|p| !p.trim().is_empty()) {
            let result = match self.plan(part, &[]) {
                Ok(stmt) => self.run(&stmt, Vec::new()).await,
                Err(e) => Err(e),
            };
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        results
    }

    async fn prepare(&mut self, sql: &str, param_types: &[Option<DataType>]) -> Result<Prepared> {
        self.counters.prepares.fetch_add(1, Ordering::SeqCst);
        let planned = self.plan(sql, param_types);
        if planned.is_err() && self.status == TxnStatus::InBlock {
            self.status = TxnStatus::Failed;
        }
        planned
    }

    async fn execute_prepared(
        &mut self,
        stmt: &Prepared,
        params: Vec<Value>,
    ) -> Result<QueryResult> {
        self.run(stmt, params).await
    }

    fn param_types(stmt: &Prepared) -> &[DataType] {
        &stmt.params
    }

    fn columns(stmt: &Prepared) -> &[Column] {
        &stmt.columns
    }

    fn transaction_status(&self) -> TxnStatus {
        self.status
    }

    async fn list_tables(&mut self) -> Result<Vec<TableInfo>> {
        let column = |name: &str, data_type, nullable| ColumnInfo {
            name: name.into(),
            data_type,
            nullable,
            default: None,
        };
        Ok(vec![TableInfo {
            name: "users".into(),
            columns: vec![
                column("id", DataType::Int4, false),
                column("name", DataType::Varchar(Some(20)), false),
                column("email", DataType::Text, true),
            ],
            primary_key: vec!["id".into()],
            indexes: vec![IndexInfo {
                name: "users_email_key".into(),
                columns: vec!["email".into()],
                unique: true,
                primary: false,
            }],
        }])
    }
}
