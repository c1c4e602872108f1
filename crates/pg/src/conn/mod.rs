//! One client connection: the simple and extended query protocols over a
//! SQL session.
//!
//! A connection owns its socket, its session (a [`meridian_sql::Session`]
//! behind the [`Backend`] seam: transaction state and settings of the SQL
//! layer), its prepared statements and portals, and its
//! [`CancelSlot`]. It handles one message at a time, in order, as PostgreSQL
//! does: the next message is not read until the previous one is answered
//! (pipelined messages wait in the receive buffer).
//!
//! **Simple query** (`Query`): the text may hold several statements. When
//! none of them is answered by the wire layer ([`crate::compat`]), the whole
//! text goes to [`Backend::execute`] in one call (so it runs as PostgreSQL
//! runs it, in one implicit transaction); otherwise statement by statement.
//! Each result becomes `RowDescription` + `DataRow`s + `CommandComplete`, or
//! `CommandComplete`, or `ErrorResponse` (which ends the query); then
//! `ReadyForQuery` with the transaction status.
//!
//! **Extended query**: `Parse` prepares through [`Backend::prepare`] once;
//! the prepared statement is kept and every `Bind`/`Execute` reuses it, so
//! nothing is re-planned per execution. Unnamed statements (what JDBC and
//! tokio-postgres' one-shot queries use) are also cached by text and
//! parameter types, until a DDL statement on this connection clears the
//! cache. `Bind` decodes the parameters (text or binary, per parameter)
//! into [`Value`]s of the statement's parameter types, so a portal holds
//! ready values; `Execute` runs it once and keeps the rows, handing them out
//! `max_rows` at a time (`PortalSuspended` between batches). `Describe`
//! answers from what `Parse` learned. After an error every message up to
//! `Sync` is skipped, then `ReadyForQuery` is sent — the protocol's error
//! recovery, which keeps the connection usable.
//!
//! **Transaction status** in `ReadyForQuery` (`I`, `T`, `E`) is the
//! session's ([`Backend::transaction_status`]), with one addition: an error
//! raised by the wire layer itself inside a transaction block (a bad
//! `Bind`, a cancelled statement) fails the block as in PostgreSQL, though
//! the session never saw it. The connection remembers that; until the block
//! ends it answers everything but `ROLLBACK` with `25P02`, and turns
//! `COMMIT` into `ROLLBACK`.
//!
//! **Cancellation** races each call into the session against the
//! connection's cancel signal ([`crate::cancel`]); a cancelled call's future
//! is dropped and the statement fails with `57014`. This relies on the
//! session's futures being cancel-safe: dropped at an await point, they leave
//! the session consistent (the SQL layer's contract).
//!
//! Output is buffered and written when `ReadyForQuery` is sent, on `Flush`,
//! or whenever a large result has filled the buffer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use bytes::BytesMut;
use meridian_error::Error;
use meridian_sql::{QueryResult, TxnStatus, Value};
use pgwire::messages::data::{FieldDescription, RowDescription};
use pgwire::messages::extendedquery::CloseComplete;
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, ReadyForQuery, TransactionStatus,
};
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus, SecretKey};
use pgwire::messages::PgWireBackendMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::Backend;
use crate::cancel::{CancelGuard, CancelRegistry, CancelSlot};
use crate::catalog::CatalogInfo;
use crate::compat::{function_value, intercept, Intercept, Settings, REPORTED};
use crate::protocol::{begin_data_row, end_data_row, format_at, next_frame, put, Frame, Frontend};
use crate::sqlstate::WireError;
use crate::sqltext::{first_keyword, split_statements};
use crate::startup::{startup, Credentials, Login};
use crate::values::{encode, WireColumn, WireType};
use crate::PgConfig;

mod extended;

/// Output is written to the socket once this much is buffered.
const FLUSH_AT: usize = 64 * 1024;

/// Unnamed statements cached per connection before the cache starts over.
const CACHE_SIZE: usize = 256;

/// What every connection of a server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The configuration.
    pub config: PgConfig,
    /// Cancellable connections.
    pub cancels: Arc<CancelRegistry>,
    /// The SCRAM verifier, when a password is configured.
    pub credentials: Option<Credentials>,
    /// Facts for the catalog emulation.
    pub catalog: CatalogInfo,
}

impl Shared {
    /// The shared state of a server with `config`.
    pub fn new(config: PgConfig) -> Self {
        let credentials = config
            .password
            .as_deref()
            .map(|password| Credentials::new(&config.user, password));
        let catalog = CatalogInfo {
            owner: config.user.clone(),
            database: config.database.clone(),
        };
        Self {
            config,
            cancels: Arc::new(CancelRegistry::default()),
            credentials,
            catalog,
        }
    }
}

/// The socket with its input and output buffers.
pub(crate) struct Io {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes received and not yet decoded.
    pub inbuf: BytesMut,
    /// Encoded messages not yet written.
    pub out: BytesMut,
}

impl Io {
    /// Reads more bytes; `false` at end of stream.
    pub async fn read_more(&mut self) -> std::io::Result<bool> {
        if self.inbuf.capacity() - self.inbuf.len() < 4096 {
            self.inbuf.reserve(8192);
        }
        Ok(self.stream.read_buf(&mut self.inbuf).await? > 0)
    }

    /// The next message; `None` when the client has gone. A fatal framing
    /// error comes back as a message error marked fatal.
    pub async fn next_message(&mut self) -> std::io::Result<Option<Frame>> {
        loop {
            match next_frame(&mut self.inbuf) {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => {
                    if !self.read_more().await? {
                        return Ok(None);
                    }
                }
                Err(fatal) => return Ok(Some((0, Err(fatal)))),
            }
        }
    }

    /// Buffers a message.
    pub fn send(&mut self, msg: PgWireBackendMessage) {
        put(&mut self.out, msg);
    }

    /// Writes everything buffered.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Writes the buffer if it has grown large.
    async fn flush_if_full(&mut self) -> std::io::Result<()> {
        if self.out.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }
}

/// Serves one connection, with `backend` as its session, until the client
/// leaves.
pub(crate) async fn run<B: Backend>(stream: TcpStream, backend: B, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut io = Io {
        stream,
        inbuf: BytesMut::with_capacity(8192),
        out: BytesMut::with_capacity(8192),
    };
    let login = match startup(&mut io, &shared.cancels, shared.credentials.as_ref()).await {
        Ok(Some(login)) => login,
        Ok(None) => return,
        Err(err) => {
            io.send(PgWireBackendMessage::ErrorResponse(err.to_response()));
            let _ = io.flush().await;
            return;
        }
    };
    let mut conn = Conn::new(io, backend, shared, login);
    if let Err(err) = conn.serve().await {
        tracing::debug!(%err, "pg connection ended with an IO error");
    }
}

/// How the command tag of a statement that returned rows is made.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RowsTag {
    /// `"<prefix> <row count>"`: `SELECT 3`, `INSERT 0 3`, `UPDATE 3`.
    Count(&'static str),
    /// A fixed tag: `SHOW`, `EXPLAIN`.
    Fixed(&'static str),
}

impl RowsTag {
    /// The tag for a statement starting with `keyword` (uppercase).
    fn for_keyword(keyword: &str) -> Self {
        match keyword {
            "INSERT" => RowsTag::Count("INSERT 0"),
            "UPDATE" => RowsTag::Count("UPDATE"),
            "DELETE" => RowsTag::Count("DELETE"),
            "FETCH" => RowsTag::Count("FETCH"),
            "SHOW" => RowsTag::Fixed("SHOW"),
            "EXPLAIN" => RowsTag::Fixed("EXPLAIN"),
            _ => RowsTag::Count("SELECT"),
        }
    }

    /// The tag after `rows` rows.
    fn render(self, rows: usize) -> String {
        match self {
            RowsTag::Count(prefix) => format!("{prefix} {rows}"),
            RowsTag::Fixed(tag) => tag.to_owned(),
        }
    }
}

/// What a prepared statement runs.
#[derive(Debug)]
enum Kind<P> {
    /// An empty query string.
    Empty,
    /// A statement of the SQL layer.
    Sql(P),
    /// A statement the wire layer answers.
    Intercept(Intercept),
}

/// A prepared statement of this connection.
#[derive(Debug)]
struct Statement<P> {
    /// What it runs.
    kind: Kind<P>,
    /// Its leading keyword, uppercased.
    keyword: String,
    /// Parameter types.
    params: Vec<WireType>,
    /// Result columns; `None` if it returns no rows.
    columns: Option<Vec<WireColumn>>,
    /// The parameter OIDs the client gave at `Parse` (for the cache).
    client_oids: Vec<u32>,
}

impl<P> Statement<P> {
    /// Whether it ends a transaction block (allowed in a failed one).
    fn is_exit(&self) -> bool {
        is_exit(&self.keyword)
    }
}

/// Whether a statement starting with `keyword` ends a transaction block.
fn is_exit(keyword: &str) -> bool {
    matches!(keyword, "COMMIT" | "END" | "ROLLBACK" | "ABORT")
}

/// Whether a command tag is of a statement that changes the schema.
fn is_ddl(tag: &str) -> bool {
    ["CREATE", "DROP", "ALTER", "TRUNCATE"]
        .iter()
        .any(|p| tag.starts_with(p))
}

/// A bound statement.
#[derive(Debug)]
struct Portal<P> {
    /// The statement.
    statement: Arc<Statement<P>>,
    /// Parameter values, until the first `Execute` takes them.
    params: Vec<Value>,
    /// Result formats as given in `Bind` (none, one, or one per column).
    formats: Vec<i16>,
    /// Execution progress.
    state: PortalState,
}

/// Where a portal's execution stands.
#[derive(Debug)]
enum PortalState {
    /// Not run yet.
    Ready,
    /// Run; rows from `next` on not sent yet.
    Rows {
        /// All the rows.
        rows: Vec<Vec<Value>>,
        /// The next row to send.
        next: usize,
        /// Column types, when the statement's own do not fit the result.
        types: Option<Vec<WireColumn>>,
        /// How to tag completion.
        tag: RowsTag,
    },
    /// Done; the tag to repeat if executed again.
    Done(Option<String>),
}

/// A statement's outcome when the wire layer answers it.
enum Answer {
    /// No rows: just a tag.
    Command(String),
    /// Rows.
    Rows {
        /// Columns.
        columns: Vec<WireColumn>,
        /// Rows.
        rows: Vec<Vec<Value>>,
        /// Tag.
        tag: RowsTag,
    },
}

/// Awaits `fut` unless the connection's statement is cancelled first
/// (`None`).
async fn cancellable<T>(slot: &CancelSlot, fut: impl Future<Output = T>) -> Option<T> {
    let cancelled = slot.arm();
    let out = tokio::select! {
        biased;
        value = fut => Some(value),
        Ok(()) = cancelled => None,
    };
    slot.disarm();
    out
}

/// A connection after startup.
struct Conn<B: Backend> {
    /// The socket.
    io: Io,
    /// The SQL session.
    session: B,
    /// Server-wide state.
    shared: Arc<Shared>,
    /// Cancellation registration (unregisters on drop).
    cancel: CancelGuard,
    /// Who is connected.
    login: Login,
    /// Settings the wire layer answers for.
    settings: Settings,
    /// Prepared statements by name ("" is the unnamed one).
    statements: HashMap<String, Arc<Statement<B::Prepared>>>,
    /// Portals by name ("" is the unnamed one).
    portals: HashMap<String, Portal<B::Prepared>>,
    /// Unnamed statements by SQL text.
    cache: HashMap<String, Arc<Statement<B::Prepared>>>,
    /// After an extended-protocol error: skip messages until `Sync`.
    skip_until_sync: bool,
    /// The transaction block failed on a wire-level error (see module docs).
    wire_failed: bool,
}

impl<B: Backend> Conn<B> {
    /// A connection for `login`, sending the end of startup.
    fn new(mut io: Io, mut session: B, shared: Arc<Shared>, login: Login) -> Self {
        session.set_identity(&login.user, &shared.config.database);
        let cancel = shared.cancels.register();
        let settings = Settings::new(
            &shared.config.server_version,
            &login.user,
            &login.application_name,
        );
        io.send(PgWireBackendMessage::Authentication(Authentication::Ok));
        for name in REPORTED {
            io.send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                (*name).to_owned(),
                settings.get(name).to_owned(),
            )));
        }
        io.send(PgWireBackendMessage::BackendKeyData(BackendKeyData::new(
            cancel.pid,
            SecretKey::I32(cancel.key),
        )));
        io.send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
            TransactionStatus::Idle,
        )));
        Self {
            io,
            session,
            shared,
            cancel,
            login,
            settings,
            statements: HashMap::new(),
            portals: HashMap::new(),
            cache: HashMap::new(),
            skip_until_sync: false,
            wire_failed: false,
        }
    }

    /// The message loop.
    async fn serve(&mut self) -> std::io::Result<()> {
        self.io.flush().await?;
        loop {
            let Some((kind, msg)) = self.io.next_message().await? else {
                return Ok(());
            };
            let msg = match msg {
                Ok(msg) => msg,
                Err(err) if err.fatal => {
                    self.io
                        .send(PgWireBackendMessage::ErrorResponse(err.to_response()));
                    return self.io.flush().await;
                }
                Err(err) => {
                    if kind == b'S' {
                        // A malformed Sync still ends the batch, or the
                        // client would wait for ReadyForQuery forever.
                        if !self.skip_until_sync {
                            self.error(err);
                        }
                        self.sync().await?;
                        continue;
                    }
                    if self.skip_until_sync {
                        continue;
                    }
                    // A malformed extended-protocol message starts error
                    // recovery (skip to Sync); anything else is answered
                    // like a failed simple query.
                    if matches!(kind, b'P' | b'B' | b'D' | b'E' | b'C' | b'H') {
                        self.extended_error(err);
                    } else {
                        self.error(err);
                        self.ready_for_query().await?;
                    }
                    continue;
                }
            };
            if self.skip_until_sync {
                match msg {
                    Frontend::Sync => self.sync().await?,
                    Frontend::Terminate => return Ok(()),
                    _ => {}
                }
                continue;
            }
            match msg {
                Frontend::Query(sql) => self.simple_query(&sql).await?,
                Frontend::Parse {
                    name,
                    sql,
                    param_oids,
                } => {
                    if let Err(err) = self.parse(name, &sql, param_oids).await {
                        self.extended_error(err);
                    }
                }
                Frontend::Bind {
                    portal,
                    statement,
                    param_formats,
                    params,
                    result_formats,
                } => {
                    if let Err(err) =
                        self.bind(portal, &statement, &param_formats, params, result_formats)
                    {
                        self.extended_error(err);
                    }
                }
                Frontend::Describe { kind, name } => {
                    if let Err(err) = self.describe(kind, &name) {
                        self.extended_error(err);
                    }
                }
                Frontend::Execute { portal, max_rows } => {
                    if let Err(err) = self.execute(portal, max_rows).await {
                        self.extended_error(err);
                    }
                    self.io.flush_if_full().await?;
                }
                Frontend::Close { kind, name } => {
                    if kind == b'S' {
                        self.statements.remove(&name);
                    } else {
                        self.portals.remove(&name);
                    }
                    self.io
                        .send(PgWireBackendMessage::CloseComplete(CloseComplete::new()));
                }
                Frontend::Sync => self.sync().await?,
                Frontend::Flush => self.io.flush().await?,
                Frontend::Terminate => return Ok(()),
                Frontend::Password(_) => {
                    self.error(WireError::protocol("unexpected password message"));
                    self.ready_for_query().await?;
                }
                Frontend::Copy => {}
            }
        }
    }

    // ---- transaction status ----

    /// The status for `ReadyForQuery`.
    fn status(&mut self) -> TransactionStatus {
        match self.session.transaction_status() {
            TxnStatus::Idle => {
                self.wire_failed = false;
                TransactionStatus::Idle
            }
            TxnStatus::InBlock if self.wire_failed => TransactionStatus::Error,
            TxnStatus::InBlock => TransactionStatus::Transaction,
            TxnStatus::Failed => TransactionStatus::Error,
        }
    }

    /// Whether the transaction block has failed (by the session's account or
    /// the wire layer's).
    fn block_failed(&mut self) -> bool {
        self.status() == TransactionStatus::Error
    }

    /// Notes that an error happened: inside a transaction block it fails the
    /// block, as every error does in PostgreSQL.
    fn note_error(&mut self) {
        if self.session.transaction_status() == TxnStatus::InBlock {
            self.wire_failed = true;
        }
    }

    /// Sends an error response.
    fn error(&mut self, err: WireError) {
        self.note_error();
        self.io
            .send(PgWireBackendMessage::ErrorResponse(err.to_response()));
    }

    /// Sends an error response and starts skipping to `Sync`.
    fn extended_error(&mut self, err: WireError) {
        self.error(err);
        self.skip_until_sync = true;
    }

    /// Sends `ReadyForQuery` and flushes.
    async fn ready_for_query(&mut self) -> std::io::Result<()> {
        let status = self.status();
        self.io
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )));
        self.io.flush().await
    }

    /// `Sync`: ends an extended-query batch.
    async fn sync(&mut self) -> std::io::Result<()> {
        self.skip_until_sync = false;
        if self.status() == TransactionStatus::Idle {
            // Portals live until the end of their transaction.
            self.portals.clear();
        }
        self.ready_for_query().await
    }

    // ---- simple query ----

    /// `Query`: runs every statement in `sql`, then `ReadyForQuery`.
    async fn simple_query(&mut self, sql: &str) -> std::io::Result<()> {
        self.portals.remove("");
        let statements = split_statements(sql);
        if statements.is_empty() {
            self.io.send(PgWireBackendMessage::EmptyQueryResponse(
                EmptyQueryResponse::new(),
            ));
            return self.ready_for_query().await;
        }
        let intercepts: Vec<Option<Intercept>> = statements.iter().map(|s| intercept(s)).collect();
        if intercepts.iter().all(Option::is_none) && !self.wire_failed {
            // The common case: the SQL layer runs the whole text.
            let results = match cancellable(&self.cancel.slot, self.session.execute(sql)).await {
                Some(results) => results,
                None => vec![Err(Error::QueryCanceled)],
            };
            for (i, result) in results.into_iter().enumerate() {
                let keyword = statements
                    .get(i)
                    .map(|s| first_keyword(s))
                    .unwrap_or_default();
                if let Err(err) = self.send_result(result, &keyword) {
                    self.error(err);
                    break;
                }
                self.io.flush_if_full().await?;
            }
        } else {
            for (statement, icpt) in statements.iter().zip(intercepts) {
                let ok = match icpt {
                    Some(icpt) => match self.answer(&icpt, &[]).await {
                        Ok(answer) => {
                            self.send_answer(answer);
                            true
                        }
                        Err(err) => {
                            self.error(err);
                            false
                        }
                    },
                    None => self.simple_statement(statement).await,
                };
                self.io.flush_if_full().await?;
                if !ok {
                    break;
                }
            }
        }
        self.ready_for_query().await
    }

    /// Runs one statement of a split simple query; `false` after an error.
    async fn simple_statement(&mut self, statement: &str) -> bool {
        let keyword = first_keyword(statement);
        if self.wire_failed {
            if let Some(result) = self.exit_failed_block(&keyword).await {
                return match result {
                    Ok(tag) => {
                        self.command_complete(tag);
                        true
                    }
                    Err(err) => {
                        self.error(err);
                        false
                    }
                };
            }
        }
        let results = match cancellable(&self.cancel.slot, self.session.execute(statement)).await {
            Some(results) => results,
            None => vec![Err(Error::QueryCanceled)],
        };
        for result in results {
            if let Err(err) = self.send_result(result, &keyword) {
                self.error(err);
                return false;
            }
        }
        true
    }

    /// In a block failed by the wire layer: `ROLLBACK` and `COMMIT` end it
    /// with a rollback (`Some`); anything else is refused (`Some(Err)`);
    /// `None` if the block has since ended anyway.
    async fn exit_failed_block(&mut self, keyword: &str) -> Option<Result<String, WireError>> {
        if !self.block_failed() || !self.wire_failed {
            return None;
        }
        if !is_exit(keyword) {
            return Some(Err(Error::InFailedTransaction.into()));
        }
        let results = self.session.execute("ROLLBACK").await;
        self.wire_failed = false;
        Some(match results.into_iter().next() {
            Some(Ok(_)) | None => Ok("ROLLBACK".to_owned()),
            Some(Err(err)) => Err(err.into()),
        })
    }

    /// Sends one statement result of a simple query (with `RowDescription`).
    fn send_result(
        &mut self,
        result: meridian_error::Result<QueryResult>,
        keyword: &str,
    ) -> Result<(), WireError> {
        match result? {
            QueryResult::Rows { columns, rows } => {
                let columns: Vec<WireColumn> = columns.iter().map(WireColumn::of).collect();
                self.io.send(row_description(&columns, &[]));
                for row in &rows {
                    send_row(&mut self.io.out, row, &columns, &[])?;
                }
                self.command_complete(RowsTag::for_keyword(keyword).render(rows.len()));
            }
            QueryResult::Command { tag } => self.command_complete(tag),
        }
        Ok(())
    }

    /// Sends a wire-layer answer in a simple query.
    fn send_answer(&mut self, answer: Answer) {
        match answer {
            Answer::Command(tag) => self.command_complete(tag),
            Answer::Rows { columns, rows, tag } => {
                self.io.send(row_description(&columns, &[]));
                for row in &rows {
                    if let Err(err) = send_row(&mut self.io.out, row, &columns, &[]) {
                        self.error(err);
                        return;
                    }
                }
                self.command_complete(tag.render(rows.len()));
            }
        }
    }

    /// Sends `CommandComplete`; a DDL tag invalidates the statement cache.
    fn command_complete(&mut self, tag: String) {
        if is_ddl(&tag) {
            self.cache.clear();
        }
        self.io
            .send(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                tag,
            )));
    }

    // ---- statements answered by the wire layer ----

    /// Runs an intercepted statement.
    async fn answer(&mut self, icpt: &Intercept, params: &[Value]) -> Result<Answer, WireError> {
        if self.block_failed() {
            return Err(Error::InFailedTransaction.into());
        }
        Ok(match icpt {
            Intercept::Set { name, value } => {
                let value = self.settings.set(name, value.clone());
                if REPORTED.contains(name) {
                    self.io
                        .send(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                            (*name).to_owned(),
                            value,
                        )));
                }
                Answer::Command("SET".into())
            }
            Intercept::Show { name } => Answer::Rows {
                columns: icpt.columns().unwrap_or_default(),
                rows: vec![vec![Value::Text(self.settings.get(name).to_owned())]],
                tag: RowsTag::Fixed("SHOW"),
            },
            Intercept::Deallocate(None) => {
                self.statements.retain(|name, _| name.is_empty());
                Answer::Command("DEALLOCATE ALL".into())
            }
            Intercept::Deallocate(Some(name)) => {
                if self.statements.remove(name).is_none() {
                    return Err(WireError::new(
                        "26000",
                        format!("prepared statement \"{name}\" does not exist"),
                    ));
                }
                Answer::Command("DEALLOCATE".into())
            }
            Intercept::DiscardAll => {
                if self.session.transaction_status() != TxnStatus::Idle {
                    return Err(Error::ActiveSqlTransaction(
                        "DISCARD ALL cannot run inside a transaction block".into(),
                    )
                    .into());
                }
                self.statements.clear();
                self.portals.clear();
                self.cache.clear();
                self.settings = Settings::new(
                    &self.shared.config.server_version,
                    &self.login.user,
                    &self.login.application_name,
                );
                Answer::Command("DISCARD ALL".into())
            }
            Intercept::Functions(functions) => {
                let row = functions
                    .iter()
                    .map(|(_, f)| {
                        function_value(
                            f,
                            &self.settings,
                            &self.shared.config.database,
                            &self.login.user,
                            self.cancel.pid,
                        )
                    })
                    .collect();
                Answer::Rows {
                    columns: icpt.columns().unwrap_or_default(),
                    rows: vec![row],
                    tag: RowsTag::Count("SELECT"),
                }
            }
            Intercept::Catalog(query) => {
                let run = query.run(&mut self.session, params, &self.shared.catalog);
                let rows = cancellable(&self.cancel.slot, run)
                    .await
                    .unwrap_or(Err(Error::QueryCanceled))?;
                Answer::Rows {
                    columns: query.columns(),
                    rows,
                    tag: RowsTag::Count("SELECT"),
                }
            }
        })
    }
}

/// A `RowDescription` of `columns` with result `formats`.
fn row_description(columns: &[WireColumn], formats: &[i16]) -> PgWireBackendMessage {
    let fields = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            FieldDescription::new(
                c.name.clone(),
                0,
                0,
                c.ty.oid,
                c.ty.type_size(),
                c.ty.typmod(),
                format_at(formats, i),
            )
        })
        .collect();
    PgWireBackendMessage::RowDescription(RowDescription::new(fields))
}

/// Appends one `DataRow` of values of `columns`' types in `formats`.
fn send_row(
    out: &mut BytesMut,
    row: &[Value],
    columns: &[WireColumn],
    formats: &[i16],
) -> Result<(), WireError> {
    let start = begin_data_row(out, row.len());
    let text = WireType::text();
    for (i, value) in row.iter().enumerate() {
        let ty = columns.get(i).map_or(&text, |c| &c.ty);
        if let Err(err) = encode(out, value, ty, format_at(formats, i)) {
            out.truncate(start);
            return Err(err.into());
        }
    }
    end_data_row(out, start);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tags_of_statements_returning_rows() {
        assert_eq!(RowsTag::for_keyword("SELECT").render(3), "SELECT 3");
        assert_eq!(RowsTag::for_keyword("INSERT").render(2), "INSERT 0 2");
        assert_eq!(RowsTag::for_keyword("UPDATE").render(1), "UPDATE 1");
        assert_eq!(RowsTag::for_keyword("DELETE").render(0), "DELETE 0");
        assert_eq!(RowsTag::for_keyword("VALUES").render(1), "SELECT 1");
        assert_eq!(RowsTag::for_keyword("SHOW").render(1), "SHOW");
        assert!(is_exit("ROLLBACK") && is_exit("END") && !is_exit("SELECT"));
        assert!(is_ddl("CREATE TABLE") && is_ddl("DROP INDEX") && !is_ddl("INSERT 0 1"));
    }
}
