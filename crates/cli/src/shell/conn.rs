//! A minimal PostgreSQL wire-protocol client for the shell: startup,
//! authentication, and the simple query protocol.
//!
//! Why not `tokio-postgres` for this part: a shell must show what the server
//! said, and `tokio-postgres`'s simple query API keeps the interesting parts
//! to itself: the command tag (`INSERT 0 3`, `CREATE TABLE`) arrives as a bare
//! row count, the column type OIDs (which decide right-alignment of numbers)
//! are dropped, and the transaction status of `ReadyForQuery` (the prompt's
//! `*` and `!`) is not exposed. The messages themselves come from
//! `postgres-protocol`, the codec `tokio-postgres` is built on, and connection
//! strings are parsed by `tokio_postgres::Config`, so both URL
//! (`postgres://user:pw@host:port/db`) and `key=value` forms work.
//!
//! What it does: protocol 3.0 over TCP without TLS; trust, cleartext, MD5 and
//! SCRAM-SHA-256 authentication; one simple `Query` at a time, collecting
//! every statement's rows, command tag, notices and error in order; cancel
//! requests. Left out: TLS, Unix sockets, the extended protocol, and
//! `COPY ... FROM STDIN` (refused with `CopyFail`).

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::{backend, frontend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where and as whom to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// The server's host name or address.
    pub host: String,
    /// The server's TCP port.
    pub port: u16,
    /// The user to log in as.
    pub user: String,
    /// The password, if the server asks for one.
    pub password: Option<String>,
    /// The database.
    pub dbname: String,
    /// How long to wait for the TCP connection.
    pub connect_timeout: Duration,
}

impl ConnectOptions {
    /// Parses a connection string: a URL (`postgres://user@host:port/db`) or
    /// `key=value` pairs, as libpq and `tokio-postgres` accept them. Missing
    /// parts default to `meridian@127.0.0.1:5433/meridian`, and the password
    /// to the `PGPASSWORD` environment variable.
    pub fn parse(url: &str) -> Result<Self, String> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("invalid connection string {url:?}: {e}"))?;
        let host = match config.get_hosts().first() {
            None => "127.0.0.1".to_string(),
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            #[allow(unreachable_patterns)]
            Some(_) => {
                return Err(format!(
                "invalid connection string {url:?}: only TCP hosts are supported, not Unix sockets"
            ))
            }
        };
        let port = config.get_ports().first().copied().unwrap_or(5433);
        let user = config.get_user().unwrap_or("meridian").to_string();
        let password = match config.get_password() {
            Some(pw) => Some(String::from_utf8_lossy(pw).into_owned()),
            None => std::env::var("PGPASSWORD").ok(),
        };
        let dbname = config.get_dbname().unwrap_or(&user).to_string();
        let dbname = if config.get_dbname().is_none() && config.get_user().is_none() {
            "meridian".to_string()
        } else {
            dbname
        };
        Ok(Self {
            host,
            port,
            user,
            password,
            dbname,
            connect_timeout: config
                .get_connect_timeout()
                .copied()
                .unwrap_or(Duration::from_secs(10)),
        })
    }
}

/// An error or notice as the server reported it (ErrorResponse and
/// NoticeResponse fields).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerMessage {
    /// `ERROR`, `FATAL`, `NOTICE`, `WARNING`, ... (localized severity).
    pub severity: String,
    /// The five-character SQLSTATE.
    pub code: String,
    /// The primary message.
    pub message: String,
    /// An optional secondary message.
    pub detail: Option<String>,
    /// An optional suggestion.
    pub hint: Option<String>,
    /// The 1-based character position in the query the error refers to.
    pub position: Option<usize>,
}

impl ServerMessage {
    fn from_fields(mut fields: backend::ErrorFields<'_>) -> io::Result<Self> {
        let mut msg = ServerMessage::default();
        while let Some(field) = fields.next()? {
            let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
            match field.type_() {
                b'V' => msg.severity = value,
                b'S' if msg.severity.is_empty() => msg.severity = value,
                b'C' => msg.code = value,
                b'M' => msg.message = value,
                b'D' => msg.detail = Some(value),
                b'H' => msg.hint = Some(value),
                b'P' => msg.position = value.parse().ok(),
                _ => {}
            }
        }
        Ok(msg)
    }
}

/// A result column: its name and type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnDesc {
    /// The column's name.
    pub name: String,
    /// The PostgreSQL type OID.
    pub type_oid: u32,
}

/// Rows in text format: `None` is NULL.
pub type TextRow = Vec<Option<String>>;

/// One thing the server sent in answer to a query, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// A statement that returned rows.
    Rows {
        /// The columns.
        columns: Vec<ColumnDesc>,
        /// The rows, as text.
        rows: Vec<TextRow>,
        /// The command tag (`SELECT 2`).
        tag: String,
    },
    /// A statement without rows, and its command tag (`INSERT 0 1`).
    Command(String),
    /// The query was empty.
    Empty,
    /// A notice or warning.
    Notice(ServerMessage),
    /// The statement failed; later statements of the query did not run.
    Error(ServerMessage),
}

/// The transaction status from `ReadyForQuery`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnStatus {
    /// Not in a transaction block.
    Idle,
    /// In a transaction block.
    InTransaction,
    /// In a failed transaction block (queries are refused until ROLLBACK).
    Failed,
}

/// A connection to a PostgreSQL-protocol server.
pub struct Connection {
    /// The socket.
    stream: TcpStream,
    /// Bytes read but not parsed yet.
    read_buf: BytesMut,
    /// The transaction status after the last query.
    status: TxnStatus,
    /// The server's process id and secret key, for cancel requests.
    cancel_key: Option<(i32, i32)>,
    /// Where we connected to.
    options: ConnectOptions,
    /// `server_version` as reported at startup.
    server_version: Option<String>,
}

/// Connection-level failure (the server is gone, or said something the
/// protocol does not allow): the session is over.
pub type ConnError = String;

impl Connection {
    /// Connects and logs in.
    pub async fn connect(options: &ConnectOptions) -> Result<Self, ConnError> {
        let addr = format!("{}:{}", options.host, options.port);
        let stream = tokio::time::timeout(options.connect_timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| format!("connection to server at {addr} timed out"))?
            .map_err(|e| format!("connection to server at {addr} failed: {e}"))?;
        stream.set_nodelay(true).ok();
        let mut conn = Self {
            stream,
            read_buf: BytesMut::with_capacity(8192),
            status: TxnStatus::Idle,
            cancel_key: None,
            options: options.clone(),
            server_version: None,
        };
        conn.startup()
            .await
            .map_err(|e| format!("connection to server at {addr} failed: {e}"))?;
        Ok(conn)
    }

    /// The transaction status after the last query.
    pub fn status(&self) -> TxnStatus {
        self.status
    }

    /// The options this connection was made with.
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// The server's `server_version`, if it reported one.
    pub fn server_version(&self) -> Option<&str> {
        self.server_version.as_deref()
    }

    async fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        self.stream.write_all(buf).await
    }

    async fn recv(&mut self) -> io::Result<backend::Message> {
        loop {
            if let Some(message) = backend::Message::parse(&mut self.read_buf)? {
                return Ok(message);
            }
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection unexpectedly",
                ));
            }
        }
    }

    async fn startup(&mut self) -> Result<(), String> {
        let mut buf = BytesMut::new();
        let params = [
            ("user", self.options.user.as_str()),
            ("database", self.options.dbname.as_str()),
            ("application_name", "meridian sql"),
            ("client_encoding", "UTF8"),
        ];
        frontend::startup_message(params, &mut buf).map_err(|e| e.to_string())?;
        self.send(&buf).await.map_err(|e| e.to_string())?;
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let message = self.recv().await.map_err(|e| e.to_string())?;
            let mut out = BytesMut::new();
            match message {
                backend::Message::AuthenticationOk => {}
                backend::Message::AuthenticationCleartextPassword => {
                    let password = self.password()?;
                    frontend::password_message(password.as_bytes(), &mut out)
                        .map_err(|e| e.to_string())?;
                }
                backend::Message::AuthenticationMd5Password(body) => {
                    let password = self.password()?;
                    let hash = md5_hash(
                        self.options.user.as_bytes(),
                        password.as_bytes(),
                        body.salt(),
                    );
                    frontend::password_message(hash.as_bytes(), &mut out)
                        .map_err(|e| e.to_string())?;
                }
                backend::Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut supported = false;
                    while let Some(mechanism) = mechanisms.next().map_err(|e| e.to_string())? {
                        supported |= mechanism == sasl::SCRAM_SHA_256;
                    }
                    if !supported {
                        return Err("the server offers no supported SASL mechanism".into());
                    }
                    let password = self.password()?;
                    let state = sasl::ScramSha256::new(
                        password.as_bytes(),
                        sasl::ChannelBinding::unrequested(),
                    );
                    frontend::sasl_initial_response(sasl::SCRAM_SHA_256, state.message(), &mut out)
                        .map_err(|e| e.to_string())?;
                    scram = Some(state);
                }
                backend::Message::AuthenticationSaslContinue(body) => {
                    let state = scram.as_mut().ok_or("unexpected SASL message")?;
                    state.update(body.data()).map_err(|e| e.to_string())?;
                    frontend::sasl_response(state.message(), &mut out)
                        .map_err(|e| e.to_string())?;
                }
                backend::Message::AuthenticationSaslFinal(body) => {
                    let state = scram.as_mut().ok_or("unexpected SASL message")?;
                    state.finish(body.data()).map_err(|e| e.to_string())?;
                }
                backend::Message::BackendKeyData(body) => {
                    self.cancel_key = Some((body.process_id(), body.secret_key()));
                }
                backend::Message::ParameterStatus(body) => {
                    if body.name().map_err(|e| e.to_string())? == "server_version" {
                        self.server_version =
                            Some(body.value().map_err(|e| e.to_string())?.to_string());
                    }
                }
                backend::Message::NoticeResponse(_) => {}
                backend::Message::ErrorResponse(body) => {
                    let err =
                        ServerMessage::from_fields(body.fields()).map_err(|e| e.to_string())?;
                    return Err(format!("{}:  {}", err.severity, err.message));
                }
                backend::Message::ReadyForQuery(body) => {
                    self.status = status_of(body.status());
                    return Ok(());
                }
                _ => return Err("unexpected message during startup".into()),
            }
            if !out.is_empty() {
                self.send(&out).await.map_err(|e| e.to_string())?;
            }
        }
    }

    fn password(&self) -> Result<String, String> {
        self.options.password.clone().ok_or_else(|| {
            "the server asks for a password: put it in the URL or in PGPASSWORD".to_string()
        })
    }

    /// Runs `sql` with the simple query protocol (it may hold several
    /// statements) and returns everything the server answered, in order.
    /// An `Err` means the connection is broken.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Output>, ConnError> {
        self.simple_query_inner(sql)
            .await
            .map_err(|e| e.to_string())
    }

    async fn simple_query_inner(&mut self, sql: &str) -> io::Result<Vec<Output>> {
        let mut buf = BytesMut::new();
        frontend::query(sql, &mut buf)?;
        self.send(&buf).await?;
        let mut outputs = Vec::new();
        let mut columns: Option<Vec<ColumnDesc>> = None;
        let mut rows: Vec<TextRow> = Vec::new();
        loop {
            match self.recv().await? {
                backend::Message::RowDescription(body) => {
                    let mut fields = body.fields();
                    let mut cols = Vec::new();
                    while let Some(field) = fields.next()? {
                        cols.push(ColumnDesc {
                            name: field.name().to_string(),
                            type_oid: field.type_oid(),
                        });
                    }
                    columns = Some(cols);
                    rows.clear();
                }
                backend::Message::DataRow(body) => {
                    let buffer = body.buffer();
                    let mut ranges = body.ranges();
                    let mut row = Vec::new();
                    while let Some(range) = ranges.next()? {
                        row.push(range.map(|r| String::from_utf8_lossy(&buffer[r]).into_owned()));
                    }
                    rows.push(row);
                }
                backend::Message::CommandComplete(body) => {
                    let tag = body.tag()?.to_string();
                    match columns.take() {
                        Some(columns) => outputs.push(Output::Rows {
                            columns,
                            rows: std::mem::take(&mut rows),
                            tag,
                        }),
                        None => outputs.push(Output::Command(tag)),
                    }
                }
                backend::Message::EmptyQueryResponse => outputs.push(Output::Empty),
                backend::Message::ErrorResponse(body) => {
                    columns = None;
                    rows.clear();
                    outputs.push(Output::Error(ServerMessage::from_fields(body.fields())?));
                }
                backend::Message::NoticeResponse(body) => {
                    outputs.push(Output::Notice(ServerMessage::from_fields(body.fields())?));
                }
                backend::Message::CopyInResponse(_) => {
                    let mut out = BytesMut::new();
                    frontend::copy_fail(
                        "COPY FROM STDIN is not supported by meridian sql",
                        &mut out,
                    )?;
                    self.send(&out).await?;
                }
                backend::Message::ReadyForQuery(body) => {
                    self.status = status_of(body.status());
                    return Ok(outputs);
                }
                // Asynchronous messages, and COPY TO STDOUT data, which the
                // shell does not display.
                _ => {}
            }
        }
    }

    /// Asks the server to cancel the query running on this connection (a
    /// separate connection, as the protocol wants). Best effort.
    pub fn cancel_handle(&self) -> Option<CancelHandle> {
        self.cancel_key
            .map(|(process_id, secret_key)| CancelHandle {
                addr: format!("{}:{}", self.options.host, self.options.port),
                process_id,
                secret_key,
            })
    }

    /// Says goodbye (Terminate) and closes the socket.
    pub async fn close(mut self) {
        let mut buf = BytesMut::new();
        frontend::terminate(&mut buf);
        let _ = self.send(&buf).await;
        let _ = self.stream.shutdown().await;
    }
}

/// What a cancel request needs.
#[derive(Clone, Debug)]
pub struct CancelHandle {
    /// The server's address.
    addr: String,
    /// The backend's process id.
    process_id: i32,
    /// The backend's secret key.
    secret_key: i32,
}

impl CancelHandle {
    /// Sends the cancel request; errors are ignored (the query may be done).
    pub async fn cancel(&self) {
        let mut buf = BytesMut::new();
        frontend::cancel_request(self.process_id, self.secret_key, &mut buf);
        if let Ok(mut stream) = TcpStream::connect(&self.addr).await {
            let _ = stream.write_all(&buf).await;
            let _ = stream.shutdown().await;
        }
    }
}

fn status_of(byte: u8) -> TxnStatus {
    match byte {
        b'T' => TxnStatus::InTransaction,
        b'E' => TxnStatus::Failed,
        _ => TxnStatus::Idle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_default_to_the_local_demo() {
        let opts = ConnectOptions::parse("postgres://127.0.0.1:5433").unwrap();
        assert_eq!(opts.host, "127.0.0.1");
        assert_eq!(opts.port, 5433);
        assert_eq!(opts.user, "meridian");
        assert_eq!(opts.dbname, "meridian");

        let opts = ConnectOptions::parse("postgres://alice:s3cret@db.example:6000/shop").unwrap();
        assert_eq!(opts.host, "db.example");
        assert_eq!(opts.port, 6000);
        assert_eq!(opts.user, "alice");
        assert_eq!(opts.password.as_deref(), Some("s3cret"));
        assert_eq!(opts.dbname, "shop");

        let opts = ConnectOptions::parse("host=10.0.0.1 port=7000 user=bob").unwrap();
        assert_eq!((opts.host.as_str(), opts.port), ("10.0.0.1", 7000));
        // Like libpq, the database defaults to the user's name.
        assert_eq!(opts.dbname, "bob");

        assert!(ConnectOptions::parse("postgres://[bad").is_err());
    }
}
