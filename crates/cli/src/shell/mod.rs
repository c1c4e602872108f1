//! `meridian sql`: the interactive SQL shell, and its script mode.
//!
//! The shell speaks the PostgreSQL wire protocol ([`conn`]) with the simple
//! query protocol, so it works against Meridian and PostgreSQL alike, a line
//! may hold several statements, and every value arrives as text. Input is
//! cut into statements at `;` ([`input`]); a line starting with `\` is a
//! meta command ([`meta`], [`catalog`]); results print as `psql`-style
//! aligned tables ([`table`]), command tags as the server sent them, and
//! errors as `ERROR:  message (SQLSTATE xxxxx)` with the position, detail and
//! hint the server gave. The prompt shows the transaction status from the
//! server's `ReadyForQuery`: `meridian=>` idle, `meridian=*>` in a
//! transaction block, `meridian=!>` in a failed one (as `psql` does).
//!
//! Interactive when no `-e`/`-f` is given and standard input is a terminal:
//! line editing and history (rustyline, `~/.meridian_history` or
//! `$MERIDIAN_HISTORY`), Ctrl-C clears the input or cancels the running
//! statement, Ctrl-D or `\q` quits. Otherwise the statements of each `-e`
//! (one simple query each, like `psql -c`), then of each `-f` file, then of
//! standard input run in order, and the first error stops the run, like
//! `psql -v ON_ERROR_STOP=1`.
//!
//! Exit status (as `psql`'s): 0 success, 1 a fatal problem (unreadable
//! file, bad connection string), 2 the connection failed or was lost, 3 a
//! statement or meta command failed.

pub mod catalog;
pub mod conn;
pub mod input;
pub mod meta;
pub mod table;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use rustyline::error::ReadlineError;

use conn::{ConnectOptions, Connection, Output, ServerMessage, TxnStatus};
use input::Splitter;
use meta::MetaCommand;
use table::Table;

/// Where `meridian sql` connects unless told otherwise: the demo's server.
pub const DEFAULT_URL: &str = "postgres://meridian@127.0.0.1:5433/meridian";

/// Options of `meridian sql`.
#[derive(Args, Debug, Clone, Default)]
pub struct SqlArgs {
    /// The server to connect to: a URL or libpq-style `key=value` pairs.
    #[arg(long, default_value = DEFAULT_URL)]
    pub url: String,
    /// Run this statement (or meta command) and exit; may be repeated.
    #[arg(short = 'e', long = "execute", value_name = "STMT")]
    pub execute: Vec<String>,
    /// Run the statements in this file and exit; may be repeated.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Vec<PathBuf>,
}

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: a fatal problem before or outside any statement.
pub const EXIT_FATAL: u8 = 1;
/// Exit status: the connection failed or was lost.
pub const EXIT_CONNECTION: u8 = 2;
/// Exit status: a statement or meta command failed.
pub const EXIT_STATEMENT: u8 = 3;

/// What to do after a line or statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// Go on.
    Continue,
    /// The user asked to quit.
    Quit,
    /// A statement or command failed (scripts stop here).
    Failed,
}

/// A problem that ends the session, with its exit status.
#[derive(Debug)]
struct Fatal {
    /// What went wrong.
    message: String,
    /// The exit status.
    code: u8,
}

impl Fatal {
    fn connection(message: String) -> Self {
        Self {
            message,
            code: EXIT_CONNECTION,
        }
    }
}

/// Runs `meridian sql` and returns the exit status.
pub async fn run(args: SqlArgs) -> u8 {
    let options = match ConnectOptions::parse(&args.url) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("meridian sql: {err}");
            return EXIT_FATAL;
        }
    };
    let conn = match Connection::connect(&options).await {
        Ok(conn) => conn,
        Err(err) => {
            eprintln!("meridian sql: {err}");
            return EXIT_CONNECTION;
        }
    };
    let scripted = !args.execute.is_empty() || !args.file.is_empty();
    let interactive = !scripted && std::io::stdin().is_terminal();
    let mut shell = Shell::new(conn, interactive);
    let result = if interactive {
        shell.interactive().await
    } else {
        shell.scripted(&args).await
    };
    let code = match result {
        Ok(Flow::Failed) => EXIT_STATEMENT,
        Ok(_) => EXIT_OK,
        Err(fatal) => {
            eprintln!("meridian sql: {}", fatal.message);
            fatal.code
        }
    };
    shell.conn.close().await;
    code
}

/// A shell session.
struct Shell {
    /// The server connection.
    conn: Connection,
    /// The unfinished statement.
    splitter: Splitter,
    /// Whether `\timing` is on.
    timing: bool,
    /// Whether a person is typing (continue after errors, cancel on Ctrl-C).
    interactive: bool,
    /// The script being run, for error locations (`FILE:LINE: ERROR: ...`).
    source: Option<String>,
}

impl Shell {
    fn new(conn: Connection, interactive: bool) -> Self {
        Self {
            conn,
            splitter: Splitter::new(),
            timing: false,
            interactive,
            source: None,
        }
    }

    /// The prompt: database, what is open, transaction status.
    fn prompt(&self) -> String {
        let txn = match self.conn.status() {
            TxnStatus::Idle => "",
            TxnStatus::InTransaction => "*",
            TxnStatus::Failed => "!",
        };
        format!(
            "{}{}{}> ",
            self.conn.options().dbname,
            self.splitter.prompt_marker(),
            txn
        )
    }

    /// The read-eval-print loop.
    async fn interactive(&mut self) -> Result<Flow, Fatal> {
        let options = self.conn.options().clone();
        println!(
            "meridian sql: connected to {}:{}/{} as {}{}",
            options.host,
            options.port,
            options.dbname,
            options.user,
            self.conn
                .server_version()
                .map(|v| format!(" (server {v})"))
                .unwrap_or_default()
        );
        println!("Type \\? for help, \\q to quit.\n");
        let history = history_path();
        let config = rustyline::Config::builder()
            .auto_add_history(false)
            .max_history_size(5000)
            .map_err(|e| Fatal {
                message: e.to_string(),
                code: EXIT_FATAL,
            })?
            .build();
        let mut editor = rustyline::DefaultEditor::with_config(config).map_err(|e| Fatal {
            message: format!("cannot start the line editor: {e}"),
            code: EXIT_FATAL,
        })?;
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        loop {
            let prompt = self.prompt();
            let (back, line) = tokio::task::spawn_blocking(move || {
                let line = editor.readline(&prompt);
                (editor, line)
            })
            .await
            .map_err(|e| Fatal {
                message: format!("line editor failed: {e}"),
                code: EXIT_FATAL,
            })?;
            editor = back;
            match line {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    match self.feed_line(&line).await {
                        Ok(Flow::Quit) => break,
                        Ok(_) => {}
                        Err(fatal) if fatal.code == EXIT_CONNECTION => self.reconnect().await?,
                        Err(fatal) => return Err(fatal),
                    }
                }
                // Ctrl-C: drop the unfinished statement, as psql does.
                Err(ReadlineError::Interrupted) => self.splitter.reset(),
                Err(ReadlineError::Eof) => {
                    println!("\\q");
                    break;
                }
                Err(err) => {
                    return Err(Fatal {
                        message: format!("reading input: {err}"),
                        code: EXIT_FATAL,
                    })
                }
            }
        }
        if let Some(path) = &history {
            let _ = editor.save_history(path);
        }
        Ok(Flow::Continue)
    }

    /// After the connection broke: try once to connect again.
    async fn reconnect(&mut self) -> Result<(), Fatal> {
        eprint!("The connection to the server was lost. Attempting reset: ");
        match Connection::connect(self.conn.options()).await {
            Ok(conn) => {
                eprintln!("Succeeded.");
                self.conn = conn;
                self.splitter.reset();
                Ok(())
            }
            Err(err) => {
                eprintln!("Failed.");
                Err(Fatal::connection(err))
            }
        }
    }

    /// `-e`, `-f` and standard input, stopping at the first error.
    async fn scripted(&mut self, args: &SqlArgs) -> Result<Flow, Fatal> {
        for command in &args.execute {
            let flow = if let Some(meta) =
                meta::parse(command).filter(|_| command.trim_start().starts_with('\\'))
            {
                self.meta(meta).await?
            } else {
                self.execute(command, 1).await?
            };
            if flow != Flow::Continue {
                return Ok(flow);
            }
        }
        for file in &args.file {
            let flow = self.run_file(&file.display().to_string()).await?;
            if flow != Flow::Continue {
                return Ok(flow);
            }
        }
        if args.execute.is_empty() && args.file.is_empty() {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Fatal {
                    message: format!("reading standard input: {e}"),
                    code: EXIT_FATAL,
                })?;
            return self.run_script(&text, "<stdin>").await;
        }
        Ok(Flow::Continue)
    }

    /// Runs a file (`-f`, `\i`).
    async fn run_file(&mut self, path: &str) -> Result<Flow, Fatal> {
        let text = if path == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map(|_| text)
        } else {
            std::fs::read_to_string(path)
        }
        .map_err(|e| Fatal {
            message: format!("{path}: {e}"),
            code: EXIT_FATAL,
        })?;
        Box::pin(self.run_script(&text, path)).await
    }

    /// Runs the lines of a script; errors stop it unless interactive.
    async fn run_script(&mut self, text: &str, name: &str) -> Result<Flow, Fatal> {
        let saved_splitter = std::mem::take(&mut self.splitter);
        let saved_source = self.source.replace(name.to_string());
        let mut flow = Flow::Continue;
        for line in text.lines() {
            flow = self.feed_line(line).await?;
            if flow == Flow::Quit || (flow == Flow::Failed && !self.interactive) {
                break;
            }
        }
        if flow == Flow::Continue || (flow == Flow::Failed && self.interactive) {
            if let Some(statement) = self.splitter.finish() {
                flow = self.execute(&statement.text, statement.line).await?;
            }
        }
        self.splitter = saved_splitter;
        self.source = saved_source;
        Ok(flow)
    }

    /// One line of input: a meta command, or SQL that may complete
    /// statements (which then run).
    async fn feed_line(&mut self, line: &str) -> Result<Flow, Fatal> {
        if self.splitter.at_plain_sql() {
            let starts_meta = line.trim_start().starts_with('\\');
            let word = self.splitter.is_blank()
                && matches!(line.trim().trim_end_matches(';'), "help" | "quit" | "exit");
            if starts_meta || word {
                self.splitter.skip_line();
                if let Some(command) = meta::parse(line) {
                    return self.meta(command).await;
                }
            }
        }
        let mut flow = Flow::Continue;
        for statement in self.splitter.push_line(line) {
            match self.execute(&statement.text, statement.line).await? {
                Flow::Continue => {}
                Flow::Failed if self.interactive => flow = Flow::Failed,
                other => return Ok(other),
            }
        }
        Ok(flow)
    }

    /// `FILE:LINE: ` in scripts, nothing interactively.
    fn location(&self, line: usize) -> String {
        match &self.source {
            Some(source) if !self.interactive || source != "<stdin>" => {
                format!("{source}:{line}: ")
            }
            _ => String::new(),
        }
    }

    /// Sends `sql` (one simple query) and prints what comes back.
    async fn execute(&mut self, sql: &str, line: usize) -> Result<Flow, Fatal> {
        let started = Instant::now();
        let cancel = self.conn.cancel_handle();
        let interactive = self.interactive;
        let outputs = {
            let query = self.conn.simple_query(sql);
            tokio::pin!(query);
            loop {
                tokio::select! {
                    result = &mut query => break result,
                    _ = tokio::signal::ctrl_c(), if interactive => {
                        if let Some(cancel) = &cancel {
                            cancel.cancel().await;
                        }
                    }
                }
            }
        }
        .map_err(Fatal::connection)?;
        let elapsed = started.elapsed();
        let mut flow = Flow::Continue;
        let mut stdout = std::io::stdout().lock();
        for output in outputs {
            match output {
                Output::Rows { columns, rows, tag } => {
                    let _ =
                        stdout.write_all(Table::from_result(&columns, rows).render().as_bytes());
                    if ["INSERT", "UPDATE", "DELETE", "MERGE"]
                        .iter()
                        .any(|t| tag.starts_with(t))
                    {
                        let _ = writeln!(stdout, "{tag}");
                    }
                }
                Output::Command(tag) => {
                    let _ = writeln!(stdout, "{tag}");
                }
                Output::Empty => {}
                Output::Notice(notice) => {
                    let _ = stdout.flush();
                    eprint!("{}", format_message(&notice, sql, &self.location(line)));
                }
                Output::Error(err) => {
                    let _ = stdout.flush();
                    eprint!("{}", format_message(&err, sql, &self.location(line)));
                    flow = Flow::Failed;
                }
            }
        }
        if self.timing {
            let _ = writeln!(stdout, "{}", format_timing(elapsed));
        }
        let _ = stdout.flush();
        Ok(flow)
    }

    /// Runs a meta command.
    async fn meta(&mut self, command: MetaCommand) -> Result<Flow, Fatal> {
        match command {
            MetaCommand::Quit => return Ok(Flow::Quit),
            MetaCommand::Help => print!("{}", meta::HELP),
            MetaCommand::Timing(setting) => {
                self.timing = setting.unwrap_or(!self.timing);
                println!("Timing is {}.", if self.timing { "on" } else { "off" });
            }
            MetaCommand::List {
                tables_only,
                pattern,
            } => {
                let shown = catalog::list(&mut self.conn, tables_only, pattern.as_deref()).await;
                return self.show(shown);
            }
            MetaCommand::Describe(name) => {
                let shown = catalog::describe(&mut self.conn, &name).await;
                return self.show(shown);
            }
            MetaCommand::Reset => {
                self.splitter.reset();
                println!("Query buffer reset (cleared).");
            }
            MetaCommand::Print => {
                let pending = self.splitter.pending_text().trim_end();
                if pending.is_empty() {
                    println!("Query buffer is empty.");
                } else {
                    println!("{pending}");
                }
            }
            MetaCommand::ConnInfo => {
                let o = self.conn.options();
                println!(
                    "You are connected to database \"{}\" as user \"{}\" on host \"{}\" at port \"{}\".",
                    o.dbname, o.user, o.host, o.port
                );
            }
            MetaCommand::Include(file) => return self.run_file(&file).await,
            MetaCommand::Invalid(message) => {
                eprintln!("{message}");
                return Ok(Flow::Failed);
            }
        }
        Ok(Flow::Continue)
    }

    /// Prints what a catalog command found.
    fn show(&self, shown: Result<catalog::Shown, catalog::Failure>) -> Result<Flow, Fatal> {
        match shown {
            Ok(catalog::Shown::Tables(tables)) => {
                for table in tables {
                    print!("{}", table.render());
                }
                Ok(Flow::Continue)
            }
            Ok(catalog::Shown::NotFound(message)) => {
                eprintln!("{message}");
                Ok(Flow::Continue)
            }
            Err(catalog::Failure::Server(err)) => {
                eprint!("{}", format_message(&err, "", ""));
                Ok(Flow::Failed)
            }
            Err(catalog::Failure::Connection(err)) => Err(Fatal::connection(err)),
        }
    }
}

/// Where the history lives: `$MERIDIAN_HISTORY`, else `~/.meridian_history`.
fn history_path() -> Option<PathBuf> {
    match std::env::var_os("MERIDIAN_HISTORY") {
        Some(path) if path.is_empty() => None,
        Some(path) => Some(PathBuf::from(path)),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".meridian_history")),
    }
}

/// `Time: 1.234 ms`, with minutes and seconds past a second, as psql.
pub fn format_timing(elapsed: Duration) -> String {
    let ms = elapsed.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        return format!("Time: {ms:.3} ms");
    }
    let total_secs = elapsed.as_secs_f64();
    let minutes = (total_secs / 60.0).floor() as u64;
    let seconds = total_secs - (minutes * 60) as f64;
    format!("Time: {ms:.3} ms ({minutes:02}:{seconds:06.3})")
}

/// An error or notice as psql lays it out, plus the SQLSTATE:
///
/// ```text
/// ERROR:  relation "nosuch" does not exist (SQLSTATE 42P01)
/// LINE 1: select * from nosuch
///                       ^
/// DETAIL:  ...
/// HINT:  ...
/// ```
pub fn format_message(msg: &ServerMessage, query: &str, location: &str) -> String {
    let severity = if msg.severity.is_empty() {
        "ERROR"
    } else {
        msg.severity.as_str()
    };
    let mut out = format!("{location}{severity}:  {}", msg.message);
    let is_notice = matches!(severity, "NOTICE" | "WARNING" | "INFO" | "LOG" | "DEBUG");
    if !msg.code.is_empty() && !is_notice {
        out.push_str(&format!(" (SQLSTATE {})", msg.code));
    }
    out.push('\n');
    if let Some(position) = msg.position.filter(|&p| p > 0 && !query.is_empty()) {
        out.push_str(&error_position(query, position));
    }
    if let Some(detail) = &msg.detail {
        out.push_str(&format!("DETAIL:  {detail}\n"));
    }
    if let Some(hint) = &msg.hint {
        out.push_str(&format!("HINT:  {hint}\n"));
    }
    out
}

/// The `LINE n: ...` and caret lines pointing at a 1-based character
/// position in `query`.
fn error_position(query: &str, position: usize) -> String {
    use unicode_width::UnicodeWidthStr;
    let mut offset = 0; // characters before the current line
    for (i, line) in query.split('\n').enumerate() {
        let chars = line.chars().count();
        if position <= offset + chars + 1 {
            let before: String = line.chars().take(position - 1 - offset).collect();
            let prefix = format!("LINE {}: ", i + 1);
            let line = line.trim_end_matches('\r').replace('\t', " ");
            let before = before.replace('\t', " ");
            return format!(
                "{prefix}{line}\n{}^\n",
                " ".repeat(prefix.len() + before.width())
            );
        }
        offset += chars + 1;
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(message: &str, code: &str) -> ServerMessage {
        ServerMessage {
            severity: "ERROR".into(),
            code: code.into(),
            message: message.into(),
            ..ServerMessage::default()
        }
    }

    #[test]
    fn errors_show_sqlstate_position_detail_and_hint() {
        let msg = ServerMessage {
            position: Some(27),
            ..error("relation \"nosuch\" does not exist", "42P01")
        };
        assert_eq!(
            format_message(
                &msg,
                "select 1;\nselect * from\n  nosuch where a = 1",
                "f.sql:2: "
            ),
            concat!(
                "f.sql:2: ERROR:  relation \"nosuch\" does not exist (SQLSTATE 42P01)\n",
                "LINE 3:   nosuch where a = 1\n",
                "          ^\n",
            )
        );
        let msg = ServerMessage {
            detail: Some("Key (id)=(1) already exists.".into()),
            hint: Some("Use another key.".into()),
            ..error(
                "duplicate key value violates unique constraint \"t_pkey\"",
                "23505",
            )
        };
        assert_eq!(
            format_message(&msg, "insert into t values (1)", ""),
            concat!(
                "ERROR:  duplicate key value violates unique constraint \"t_pkey\" (SQLSTATE 23505)\n",
                "DETAIL:  Key (id)=(1) already exists.\n",
                "HINT:  Use another key.\n",
            )
        );
        let msg = ServerMessage {
            position: Some(1),
            ..error("syntax error at or near \"selec\"", "42601")
        };
        assert_eq!(
            format_message(&msg, "selec 1", ""),
            "ERROR:  syntax error at or near \"selec\" (SQLSTATE 42601)\nLINE 1: selec 1\n        ^\n"
        );
        let notice = ServerMessage {
            severity: "NOTICE".into(),
            code: "00000".into(),
            message: "table \"nosuch\" does not exist, skipping".into(),
            ..ServerMessage::default()
        };
        assert_eq!(
            format_message(&notice, "drop table if exists nosuch", ""),
            "NOTICE:  table \"nosuch\" does not exist, skipping\n"
        );
    }

    #[test]
    fn timing_reads_like_psql() {
        assert_eq!(format_timing(Duration::from_micros(1234)), "Time: 1.234 ms");
        assert_eq!(
            format_timing(Duration::from_millis(61_500)),
            "Time: 61500.000 ms (01:01.500)"
        );
    }
}
