//! Running one statement: transaction control, session settings, and
//! planned statements inside a transaction.
//!
//! Planned statements (queries, DML, `EXPLAIN`) are bound against the
//! transaction's descriptor cache, loading descriptors the binder asks for
//! (each read takes a shared lock on the descriptor, see `catalog.rs`).
//! A prepared statement keeps its bound plan; before reusing it, each table
//! it was bound against is looked up in the current transaction (which
//! also locks it) and the plan is rebound if any version changed. DDL runs
//! in the transaction too and drops the changed tables from the cache.

use std::sync::Arc;

use meridian_error::{Error, Result};
use meridian_txn::{LockStrength, Transaction, TxnEngine, TxnMode};
use sqlparser::ast;

use crate::bind::{Binder, SessionInfo};
use crate::catalog::load_table;
use crate::exec::ddl::execute_ddl;
use crate::exec::{Executor, Row};
use crate::explain::explain;
use crate::parse::Parsed;
use crate::plan::Statement;
use crate::ranges::{self, ShowRanges};
use crate::session::{
    block_mode, Block, Column, Prepared, QueryResult, Session, State, TxnContext, AUTO_RETRIES,
};
use crate::types::{DataType, Value};

/// A command tag result.
fn tag(t: &str) -> QueryResult {
    QueryResult::Command { tag: t.to_string() }
}

impl<E: TxnEngine> Session<E> {
    /// Runs one parsed statement.
    pub(crate) async fn run(
        &mut self,
        p: &Parsed,
        params: &[Value],
        prepared: Option<&Prepared>,
    ) -> Result<QueryResult> {
        use ast::Statement as S;
        match &p.stmt {
            S::Commit { chain: false, .. } => return self.commit().await,
            S::Rollback {
                savepoint: None,
                chain: false,
            } => return self.rollback().await,
            _ => {}
        }
        if let State::Failed = self.state {
            return Err(Error::InFailedTransaction);
        }
        let result = match &p.stmt {
            S::StartTransaction { modes, .. } => self.begin(modes, p, params),
            S::Set(ast::Set::SetTransaction { modes, session, .. }) => {
                self.set_transaction(modes, *session, p, params)
            }
            S::Set(set) => Ok(self.set_variable(set)),
            S::ShowVariable { variable } => match ShowRanges::parse(variable) {
                Some(what) => ranges::show(&self.engine, what?).await,
                None => self.show(variable),
            },
            S::AlterTable(_) => match &p.alter_ranges {
                Some(alter) => self.alter_ranges(alter).await,
                None => self.run_in_txn(p, params, prepared).await,
            },
            S::Reset(_) => {
                self.settings.clear();
                Ok(tag("RESET"))
            }
            S::Discard { .. } => {
                self.settings.clear();
                Ok(tag("DISCARD ALL"))
            }
            S::Savepoint { .. }
            | S::ReleaseSavepoint { .. }
            | S::Rollback { .. }
            | S::Commit { .. } => Err(Error::FeatureNotSupported(
                "savepoints and chained transactions are not supported".into(),
            )),
            _ => self.run_in_txn(p, params, prepared).await,
        };
        if result.is_err() {
            self.abort_block().await;
        }
        result
    }

    /// Rolls back an open block after an error and marks it failed.
    pub(crate) async fn abort_block(&mut self) {
        if !matches!(self.state, State::Block(_)) {
            return;
        }
        if let State::Block(block) = std::mem::replace(&mut self.state, State::Failed) {
            if let Some(txn) = block.txn {
                let _ = txn.rollback().await;
            }
        }
    }

    /// `BEGIN` / `START TRANSACTION`.
    fn begin(
        &mut self,
        modes: &[ast::TransactionMode],
        p: &Parsed,
        params: &[Value],
    ) -> Result<QueryResult> {
        if let State::Block(_) = self.state {
            // PostgreSQL warns "there is already a transaction in progress".
            return Ok(tag("BEGIN"));
        }
        let as_of = p
            .as_of
            .as_ref()
            .map(|a| self.resolve_as_of(a, params))
            .transpose()?;
        let mut block = Block {
            txn: None,
            read_only: as_of.is_some(),
            as_of,
            ctx: TxnContext::default(),
        };
        apply_modes(&mut block, modes)?;
        self.state = State::Block(block);
        Ok(tag("BEGIN"))
    }

    /// `COMMIT` / `END`.
    async fn commit(&mut self) -> Result<QueryResult> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => Ok(tag("COMMIT")),
            State::Failed => Ok(tag("ROLLBACK")),
            State::Block(block) => {
                if let Some(txn) = block.txn {
                    txn.commit().await?;
                }
                Ok(tag("COMMIT"))
            }
        }
    }

    /// `ROLLBACK` / `ABORT`.
    async fn rollback(&mut self) -> Result<QueryResult> {
        if let State::Block(block) = std::mem::replace(&mut self.state, State::Idle) {
            if let Some(txn) = block.txn {
                txn.rollback().await?;
            }
        }
        Ok(tag("ROLLBACK"))
    }

    /// `SET TRANSACTION ...` (25001 once the block ran a query).
    fn set_transaction(
        &mut self,
        modes: &[ast::TransactionMode],
        session: bool,
        p: &Parsed,
        params: &[Value],
    ) -> Result<QueryResult> {
        if session {
            return Ok(tag("SET"));
        }
        let as_of = p
            .as_of
            .as_ref()
            .map(|a| self.resolve_as_of(a, params))
            .transpose()?;
        let State::Block(block) = &mut self.state else {
            // PostgreSQL warns that SET TRANSACTION only works in a block.
            return Ok(tag("SET"));
        };
        if block.txn.is_some() {
            return Err(Error::ActiveSqlTransaction(
                "SET TRANSACTION ISOLATION LEVEL must be called before any query".into(),
            ));
        }
        if let Some(ts) = as_of {
            block.as_of = Some(ts);
            block.read_only = true;
        }
        apply_modes(block, modes)?;
        Ok(tag("SET"))
    }

    /// `SET name = value`.
    fn set_variable(&mut self, set: &ast::Set) -> QueryResult {
        match set {
            ast::Set::SingleAssignment {
                variable, values, ..
            } => {
                let name = variable.to_string().to_lowercase();
                let value: Vec<String> = values.iter().map(setting_text).collect();
                if value.len() == 1 && value[0].eq_ignore_ascii_case("default") {
                    self.settings.remove(&name);
                } else {
                    self.settings.insert(name, value.join(", "));
                }
            }
            ast::Set::SetTimeZone { value, .. } => {
                self.settings.insert("timezone".into(), setting_text(value));
            }
            _ => {}
        }
        tag("SET")
    }

    /// `SHOW name`.
    fn show(&self, variable: &[ast::Ident]) -> Result<QueryResult> {
        let name = variable
            .iter()
            .map(|i| i.value.to_lowercase())
            .collect::<Vec<_>>()
            .join(" ");
        let (column, value) = match name.as_str() {
            "transaction isolation level" | "transaction_isolation" => (
                "transaction_isolation".to_string(),
                "serializable".to_string(),
            ),
            "transaction_read_only" => {
                let ro = matches!(&self.state, State::Block(b) if b.read_only);
                (name.clone(), if ro { "on" } else { "off" }.to_string())
            }
            "all" => {
                let mut rows: Vec<Vec<Value>> = DEFAULT_SETTINGS
                    .iter()
                    .filter(|(k, _)| !self.settings.contains_key(*k))
                    .map(|(k, v)| vec![Value::Text(k.to_string()), Value::Text(v.to_string())])
                    .collect();
                rows.extend(
                    self.settings
                        .iter()
                        .map(|(k, v)| vec![Value::Text(k.clone()), Value::Text(v.clone())]),
                );
                rows.sort_by(|a, b| a[0].compare(&b[0]));
                return Ok(QueryResult::Rows {
                    columns: vec![text_column("name"), text_column("setting")],
                    rows,
                });
            }
            _ => {
                let value = self
                    .settings
                    .get(&name)
                    .cloned()
                    .or_else(|| {
                        DEFAULT_SETTINGS
                            .iter()
                            .find(|(k, _)| *k == name)
                            .map(|(_, v)| v.to_string())
                    })
                    .ok_or_else(|| {
                        Error::InvalidStatement(format!(
                            "unrecognized configuration parameter \"{name}\""
                        ))
                    })?;
                (name.clone(), value)
            }
        };
        Ok(QueryResult::Rows {
            columns: vec![text_column(&column)],
            rows: vec![vec![Value::Text(value)]],
        })
    }

    /// Runs a statement that needs a transaction.
    async fn run_in_txn(
        &mut self,
        p: &Parsed,
        params: &[Value],
        prepared: Option<&Prepared>,
    ) -> Result<QueryResult> {
        let info = self.info();
        let as_of = p
            .as_of
            .as_ref()
            .map(|a| self.resolve_as_of(a, params))
            .transpose()?;
        match &mut self.state {
            State::Block(block) => {
                if let Some(ts) = as_of {
                    if block.txn.is_some() {
                        return Err(Error::ActiveSqlTransaction(
                            "AS OF SYSTEM TIME must be set before the first statement of a transaction".into(),
                        ));
                    }
                    block.as_of = Some(ts);
                    block.read_only = true;
                }
                if block.txn.is_none() {
                    block.txn = Some(
                        self.engine
                            .begin(block_mode(block.read_only, block.as_of))
                            .await?,
                    );
                }
                let txn = block.txn.as_mut().expect("begun above");
                execute_in(txn, &mut block.ctx, &p.stmt, params, prepared, &info).await
            }
            State::Failed => Err(Error::InFailedTransaction),
            State::Idle => {
                let read_only = is_read_only(&p.stmt);
                let mode = match as_of {
                    Some(_) if !read_only => {
                        return Err(Error::FeatureNotSupported(
                            "AS OF SYSTEM TIME is only allowed on read-only statements".into(),
                        ))
                    }
                    Some(ts) => block_mode(true, Some(ts)),
                    None => block_mode(read_only, None),
                };
                let mut attempt = 0;
                loop {
                    let mut txn = self.engine.begin(mode).await?;
                    let mut ctx = TxnContext::default();
                    let result = match execute_in(
                        &mut txn, &mut ctx, &p.stmt, params, prepared, &info,
                    )
                    .await
                    {
                        Ok(r) => txn.commit().await.map(|_| r),
                        Err(e) => {
                            let _ = txn.rollback().await;
                            Err(e)
                        }
                    };
                    match result {
                        Err(e)
                            if e.is_retryable()
                                && !matches!(e, Error::Unavailable(_))
                                && attempt < AUTO_RETRIES =>
                        {
                            attempt += 1
                        }
                        other => return other,
                    }
                }
            }
        }
    }

    /// Binds a statement for `prepare`: its parameter types, result
    /// columns and plan (for plannable statements).
    pub(crate) async fn describe(
        &mut self,
        p: &Parsed,
        client: &[Option<DataType>],
    ) -> Result<(Vec<DataType>, Vec<Column>, Option<Arc<Statement>>)> {
        use ast::Statement as S;
        let target = match &p.stmt {
            S::Query(_) | S::Insert(_) | S::Update(_) | S::Delete(_) => &p.stmt,
            S::Explain { statement, .. } => statement.as_ref(),
            S::ShowVariable { variable } if ShowRanges::parse(variable).is_some() => {
                return Ok((vec![], ranges::columns(), None));
            }
            S::ShowVariable { variable } => {
                let name = variable
                    .iter()
                    .map(|i| i.value.to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" ");
                let name = if name == "transaction isolation level" {
                    "transaction_isolation".into()
                } else {
                    name
                };
                return Ok((vec![], vec![text_column(&name)], None));
            }
            _ => {
                let params = client
                    .iter()
                    .map(|t| t.clone().unwrap_or(DataType::Text))
                    .collect();
                return Ok((params, vec![], None));
            }
        };
        let info = self.info();
        let (stmt, params) = match &mut self.state {
            State::Failed => return Err(Error::InFailedTransaction),
            State::Block(block) => {
                if block.txn.is_none() {
                    block.txn = Some(
                        self.engine
                            .begin(block_mode(block.read_only, block.as_of))
                            .await?,
                    );
                }
                let txn = block.txn.as_mut().expect("begun above");
                bind(txn, &mut block.ctx, target, client, &info).await?
            }
            State::Idle => {
                let mut txn = self.engine.begin(block_mode(true, None)).await?;
                let mut ctx = TxnContext::default();
                let r = bind(&mut txn, &mut ctx, target, client, &info).await;
                txn.commit().await?;
                r?
            }
        };
        if let S::Explain { .. } = p.stmt {
            return Ok((params, vec![text_column("QUERY PLAN")], None));
        }
        let columns = columns_of(&stmt);
        Ok((params, columns, Some(Arc::new(stmt))))
    }
}

/// Settings `SHOW` knows without a `SET`.
const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("default_transaction_isolation", "serializable"),
    ("default_transaction_read_only", "off"),
    ("extra_float_digits", "1"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("is_superuser", "on"),
    ("max_identifier_length", "63"),
    ("search_path", "\"$user\", public"),
    ("server_encoding", "UTF8"),
    ("server_version", "15.0"),
    ("server_version_num", "150000"),
    ("standard_conforming_strings", "on"),
    ("timezone", "UTC"),
];

/// The text of a `SET` value.
fn setting_text(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        ast::Expr::Identifier(id) => crate::bind::ident(id),
        other => other.to_string(),
    }
}

/// A text result column.
fn text_column(name: &str) -> Column {
    Column {
        name: name.to_string(),
        data_type: DataType::Text,
    }
}

/// Applies `READ ONLY` / `READ WRITE` / isolation levels to a block.
fn apply_modes<T>(block: &mut Block<T>, modes: &[ast::TransactionMode]) -> Result<()> {
    for mode in modes {
        match mode {
            ast::TransactionMode::AccessMode(ast::TransactionAccessMode::ReadOnly) => {
                block.read_only = true
            }
            ast::TransactionMode::AccessMode(ast::TransactionAccessMode::ReadWrite) => {
                if block.as_of.is_some() {
                    return Err(Error::FeatureNotSupported(
                        "AS OF SYSTEM TIME transactions are read-only".into(),
                    ));
                }
                block.read_only = false;
            }
            // Every level is served as serializable, the strongest.
            ast::TransactionMode::IsolationLevel(_) => {}
        }
    }
    Ok(())
}

/// Whether an implicit transaction for `stmt` can be read-only.
pub(crate) fn is_read_only(stmt: &ast::Statement) -> bool {
    match stmt {
        ast::Statement::Query(q) => {
            q.locks.is_empty()
                && !matches!(
                    q.body.as_ref(),
                    ast::SetExpr::Insert(_) | ast::SetExpr::Update(_) | ast::SetExpr::Delete(_)
                )
        }
        ast::Statement::Explain { analyze, .. } => !analyze,
        _ => false,
    }
}

/// The result columns of a bound statement.
fn columns_of(stmt: &Statement) -> Vec<Column> {
    stmt.columns
        .iter()
        .map(|c| Column {
            name: c.name.clone(),
            data_type: c.ty.clone(),
        })
        .collect()
}

/// Binds `stmt`, loading the descriptors the binder asks for.
async fn bind<T: Transaction>(
    txn: &mut T,
    ctx: &mut TxnContext,
    stmt: &ast::Statement,
    client: &[Option<DataType>],
    info: &SessionInfo,
) -> Result<(Statement, Vec<DataType>)> {
    loop {
        let missing = {
            let mut binder = Binder::new(&ctx.tables, info, client);
            match binder.bind_statement(stmt) {
                Ok(bound) => return Ok(bound),
                Err(e) => match binder.missing.take() {
                    Some(name) => name,
                    None => return Err(e),
                },
            }
        };
        let desc = load_table(txn, &missing, LockStrength::Shared).await?;
        ctx.tables.insert(missing, desc.map(Arc::new));
    }
}

/// Whether a cached plan's tables still have the versions it was bound
/// against (reading, and so locking, each in this transaction).
async fn plan_valid<T: Transaction>(
    txn: &mut T,
    ctx: &mut TxnContext,
    stmt: &Statement,
) -> Result<bool> {
    for used in &stmt.tables {
        if !ctx.tables.contains_key(&used.name) {
            let desc = load_table(txn, &used.name, LockStrength::Shared).await?;
            ctx.tables.insert(used.name.clone(), desc.map(Arc::new));
        }
        match ctx.tables.get(&used.name) {
            Some(Some(t)) if t.id == used.id && t.version == used.version => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// The bound statement to run: the prepared plan if still valid, else a
/// fresh binding (which refreshes the prepared plan).
async fn bound_statement<T: Transaction>(
    txn: &mut T,
    ctx: &mut TxnContext,
    stmt: &ast::Statement,
    prepared: Option<&Prepared>,
    info: &SessionInfo,
) -> Result<Arc<Statement>> {
    let Some(prep) = prepared else {
        return Ok(Arc::new(bind(txn, ctx, stmt, &[], info).await?.0));
    };
    let cached = prep.plan.lock().expect("plan cache lock poisoned").clone();
    if let Some(plan) = cached {
        if plan_valid(txn, ctx, &plan).await? {
            return Ok(plan);
        }
    }
    let types: Vec<Option<DataType>> = prep.params.iter().cloned().map(Some).collect();
    let plan = Arc::new(bind(txn, ctx, stmt, &types, info).await?.0);
    *prep.plan.lock().expect("plan cache lock poisoned") = Some(plan.clone());
    Ok(plan)
}

/// Runs `stmt` in `txn`.
pub(crate) async fn execute_in<T: Transaction>(
    txn: &mut T,
    ctx: &mut TxnContext,
    stmt: &ast::Statement,
    params: &[Value],
    prepared: Option<&Prepared>,
    info: &SessionInfo,
) -> Result<QueryResult> {
    use ast::Statement as S;
    let read_only = matches!(txn.mode(), TxnMode::ReadOnly(_));
    match stmt {
        S::Query(_) | S::Insert(_) | S::Update(_) | S::Delete(_) => {
            let bound = bound_statement(txn, ctx, stmt, prepared, info).await?;
            if read_only {
                if bound.verb != "SELECT" {
                    return Err(Error::ReadOnlyTransaction(bound.verb.into()));
                }
                if matches!(stmt, S::Query(q) if !q.locks.is_empty()) {
                    return Err(Error::ReadOnlyTransaction("SELECT FOR UPDATE".into()));
                }
            }
            let mut exec = Executor::new(txn, &bound, params, &mut ctx.rowids);
            let (rows, n) = exec.run_statement().await?;
            Ok(result(&bound, rows, n))
        }
        S::Explain {
            statement, analyze, ..
        } => {
            if *analyze {
                return Err(Error::FeatureNotSupported("EXPLAIN ANALYZE".into()));
            }
            if !matches!(
                statement.as_ref(),
                S::Query(_) | S::Insert(_) | S::Update(_) | S::Delete(_)
            ) {
                return Err(Error::FeatureNotSupported(
                    "EXPLAIN of this statement".into(),
                ));
            }
            let (bound, _) = bind(txn, ctx, statement, &[], info).await?;
            let rows = explain(&bound)
                .into_iter()
                .map(|l| vec![Value::Text(l)])
                .collect();
            Ok(QueryResult::Rows {
                columns: vec![text_column("QUERY PLAN")],
                rows,
            })
        }
        S::CreateTable(_) | S::CreateIndex(_) | S::Drop { .. } | S::Truncate(_) => {
            if read_only {
                let verb = stmt
                    .to_string()
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ");
                return Err(Error::ReadOnlyTransaction(verb.to_uppercase()));
            }
            let outcome = execute_ddl(txn, stmt, info).await?;
            for name in outcome.invalidated {
                ctx.tables.remove(&name);
            }
            Ok(tag(outcome.tag))
        }
        other => Err(Error::FeatureNotSupported(format!(
            "statement not supported: {}",
            other
                .to_string()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        ))),
    }
}

/// The client result of a planned statement.
fn result(stmt: &Statement, rows: Vec<Row>, n: u64) -> QueryResult {
    if stmt.verb == "SELECT" || !stmt.columns.is_empty() {
        return QueryResult::Rows {
            columns: columns_of(stmt),
            rows,
        };
    }
    QueryResult::Command {
        tag: match stmt.verb {
            "INSERT" => format!("INSERT 0 {n}"),
            verb => format!("{verb} {n}"),
        },
    }
}
