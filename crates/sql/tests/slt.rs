//! Runs every `sql-tests/common/*.slt` (engine-agnostic, validated against
//! PostgreSQL 15) and `sql-tests/meridian/*.slt` (Meridian-specific) file
//! in-process, through sqllogictest, twice: once with the simple query
//! protocol (`Session::execute`) and once with the extended one
//! (`prepare` + `execute_prepared`, label `postgres-extended`). Each file
//! gets a fresh engine. Errors carry their SQLSTATE, so both
//! `statement error (23505)` and message regexes work; `sleep` advances the
//! engine's manual clock (for `AS OF SYSTEM TIME` tests).
//!
//! Set `SLT_FILTER=substring` to run only matching files.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meridian_sql::{DataType, QueryResult, Session, Value};
use meridian_truetime::ManualClock;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};

/// The clock of the file being run (for `sleep`).
static CLOCK: Mutex<Option<Arc<ManualClock>>> = Mutex::new(None);

/// A failed statement: its SQLSTATE and message.
#[derive(Debug)]
struct SqlError {
    code: &'static str,
    message: String,
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SqlError {}

impl From<meridian_error::Error> for SqlError {
    fn from(e: meridian_error::Error) -> Self {
        let mut message = e.to_string();
        if let meridian_error::Error::UniqueViolation { detail, .. } = &e {
            message = format!("{message}\nDETAIL: {detail}");
        }
        SqlError {
            code: e.sqlstate(),
            message,
        }
    }
}

/// One connection.
struct Db {
    session: Session<common::Engine>,
    extended: bool,
}

/// The text sqllogictest compares: PostgreSQL's text output, `NULL`, and
/// `(empty)` for an empty string.
fn cell(v: &Value, ty: &DataType) -> String {
    match v.to_pg_text(ty) {
        None => "NULL".into(),
        Some(s) if s.is_empty() => "(empty)".into(),
        Some(s) => s,
    }
}

/// The row count of a command tag (`INSERT 0 3` is 3).
fn tag_count(tag: &str) -> u64 {
    tag.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn output(result: QueryResult) -> DBOutput<DefaultColumnType> {
    match result {
        QueryResult::Rows { columns, rows } => {
            if rows.is_empty() {
                return DBOutput::StatementComplete(0);
            }
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    r.iter()
                        .zip(&columns)
                        .map(|(v, c)| cell(v, &c.data_type))
                        .collect()
                })
                .collect();
            DBOutput::Rows {
                types: vec![DefaultColumnType::Any; columns.len()],
                rows,
            }
        }
        QueryResult::Command { tag } => DBOutput::StatementComplete(tag_count(&tag)),
    }
}

#[async_trait::async_trait]
impl AsyncDB for Db {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        if self.extended {
            let stmt = self.session.prepare(sql, &[]).await?;
            let result = self.session.execute_prepared(&stmt, vec![]).await?;
            return Ok(output(result));
        }
        let mut results = self.session.execute(sql).await;
        if let Some(Err(_)) = results.last() {
            return Err(results
                .pop()
                .expect("last exists")
                .expect_err("checked")
                .into());
        }
        match results.into_iter().next() {
            Some(r) => Ok(output(r.expect("errors handled above"))),
            None => Ok(DBOutput::StatementComplete(0)),
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        if self.extended {
            "meridian-extended"
        } else {
            "meridian"
        }
    }

    async fn sleep(dur: Duration) {
        if let Some(clock) = CLOCK.lock().unwrap().as_ref() {
            clock.advance(dur);
        }
    }

    fn error_sql_state(err: &SqlError) -> Option<String> {
        Some(err.code.to_string())
    }
}

/// The `.slt` files of a directory, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "slt"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Runs one file in one mode; returns the failures.
async fn run_file(path: &Path, extended: bool) -> Vec<String> {
    let (engine, clock) = common::engine();
    *CLOCK.lock().unwrap() = Some(clock);
    let mut engine = Some(engine);
    let mut runner = Runner::new(move || {
        let session = Session::new(engine.take().expect("one connection per file"));
        async move { Ok::<_, SqlError>(Db { session, extended }) }
    });
    if extended {
        runner.add_label("postgres-extended");
    }
    let records = match sqllogictest::parse_file::<DefaultColumnType>(path) {
        Ok(r) => r,
        Err(e) => return vec![format!("{}: parse error: {e}", path.display())],
    };
    let mut failures = Vec::new();
    for record in records {
        if let Err(e) = runner.run_async(record).await {
            failures.push(format!(
                "[{}] {}",
                if extended { "extended" } else { "simple" },
                e.display(false)
            ));
        }
    }
    failures
}

#[tokio::test(flavor = "current_thread")]
async fn sqllogictest_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sql-tests");
    let filter = std::env::var("SLT_FILTER").unwrap_or_default();
    let mut all = files(&root.join("common"));
    all.extend(files(&root.join("meridian")));
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in all.iter().filter(|p| p.to_string_lossy().contains(&filter)) {
        ran += 1;
        for extended in [false, true] {
            failures.extend(run_file(path, extended).await);
        }
    }
    assert!(ran > 0, "no .slt files found under {}", root.display());
    if !failures.is_empty() {
        panic!(
            "{} sqllogictest failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}
