//! `ALTER TABLE ... SPLIT AT` and `ALTER TABLE ... RELOCATE`: placing a
//! table's rows in ranges and ranges in groups (CockroachDB's syntax, with
//! a Paxos group where CockroachDB names replicas).
//!
//! ```text
//! ALTER TABLE t SPLIT AT VALUES (v1, ...) [, (w1, ...) ...]
//! ALTER TABLE t RELOCATE [VALUES (v1, ...) [, ...]] TO GROUP n
//! ```
//!
//! Each `VALUES` row is a prefix (one or more leading columns) of the
//! table's primary key; rows may have different lengths. Its values are
//! coerced to the key columns' types as `INSERT` coerces them (bad text is
//! 22P02, a wrong type 42804, out of range 22003, NULL 23502; more values
//! than key columns is 42601), and the row stands for the storage key where
//! rows with that key prefix begin (`/<table>/1/<prefix>`, encoded by
//! `row::primary_key_prefix`, the encoder of row keys). So `SPLIT AT VALUES
//! (5)` on a key `(a, b)` starts a range at the first row with `a = 5`.
//!
//! - `SPLIT AT` asks the engine to split the range holding each key at that
//!   key ([`TxnEngine::split_at`]); the new range stays in its group.
//! - `RELOCATE VALUES ... TO GROUP n` moves the range holding each key to
//!   group `n` ([`TxnEngine::relocate`]), the whole range, whatever else it
//!   holds: split first to choose what moves.
//! - `RELOCATE TO GROUP n` moves the whole table: it splits at the table's
//!   first key and at the end of its keyspace (so no range holds this table
//!   and another), then relocates every range between the two, as
//!   [`TxnEngine::ranges`] lists them afterwards.
//!
//! The statements change placement, not data, and are not transactional:
//! each split or move commits by itself in the engine and a rollback cannot
//! undo it. So they are refused inside a transaction block (25001, as
//! PostgreSQL refuses `VACUUM`), also the implicit one of a multi-statement
//! query. The keys are computed from the table's descriptor, read in a
//! short read-only transaction that commits before the engine is asked (a
//! table dropped meanwhile leaves at most a split in unused keys). The
//! embedded engine has one range and refuses both (0A000); on a cluster,
//! `SHOW RANGES FROM TABLE t` shows the result.
//!
//! sqlparser does not know the statements, so [`parse`] recognizes them
//! from the tokens before sqlparser sees them, and parses the `VALUES` list
//! with sqlparser's own `VALUES` parser (any constant expression works:
//! negative numbers, strings, casts, `now()`).
//!
//! Left out: splitting secondary indexes (`ALTER INDEX ... SPLIT AT`),
//! `UNSPLIT`, `WITH EXPIRATION`, `$n` parameters and subqueries in the
//! values, key columns in descending order (all keys are ascending), and
//! atomicity across ranges: a `RELOCATE` that fails part way leaves the
//! ranges it already moved where they went.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use meridian_error::{Error, Result};
use meridian_storage::prefix_successor as prefix_end;
use meridian_txn::{LockStrength, RangeInfo, ReadTime, Transaction, TxnEngine, TxnMode};
use sqlparser::ast;
use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::bind::{object_name, Binder, SessionInfo, TableSnapshot};
use crate::catalog::{load_table, table_prefix, TableDesc};
use crate::expr::Env;
use crate::parse::syntax_error;
use crate::row::primary_key_prefix;
use crate::session::{QueryResult, Session, State};
use crate::types::Value;

/// A parsed `ALTER TABLE ... SPLIT AT` or `ALTER TABLE ... RELOCATE`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AlterRanges {
    /// The table, as the catalog names it.
    pub table: String,
    /// What to do with its ranges.
    pub action: Action,
}

/// What an [`AlterRanges`] does.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Action {
    /// `SPLIT AT VALUES ...`: split at each row (a primary-key prefix).
    Split(Vec<Vec<ast::Expr>>),
    /// `RELOCATE [VALUES ...] TO GROUP n`.
    Relocate {
        /// The rows whose ranges move; `None`: every range of the table.
        rows: Option<Vec<Vec<ast::Expr>>>,
        /// The group they move to.
        group: u64,
    },
}

impl Action {
    /// The statement's name, for messages.
    fn name(&self) -> &'static str {
        match self {
            Action::Split(_) => "ALTER TABLE ... SPLIT AT",
            Action::Relocate { .. } => "ALTER TABLE ... RELOCATE",
        }
    }
}

/// Recognizes `ALTER TABLE <name> SPLIT ...` and `ALTER TABLE <name>
/// RELOCATE ...` in one statement's tokens; `None` for any other statement
/// (left to sqlparser). Along with the statement comes the bare `ALTER
/// TABLE <name>` that stands for it in the AST.
pub(crate) fn parse(tokens: &[TokenWithSpan]) -> Option<Result<(ast::Statement, AlterRanges)>> {
    // A look at the first two words, so other statements' tokens are not
    // copied for a parser of their own.
    let mut words = tokens
        .iter()
        .map(|t| &t.token)
        .filter(|t| !matches!(t, Token::Whitespace(_)));
    let alter_table = matches!(
        (words.next(), words.next()),
        (Some(Token::Word(a)), Some(Token::Word(t)))
            if a.keyword == Keyword::ALTER && t.keyword == Keyword::TABLE
    );
    if !alter_table {
        return None;
    }
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens.to_vec());
    parser
        .expect_keywords(&[Keyword::ALTER, Keyword::TABLE])
        .ok()?;
    let name = parser.parse_object_name(false).ok()?;
    let verb = match parser.next_token().token {
        Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_lowercase(),
        _ => return None,
    };
    let action = match verb.as_str() {
        "split" => parse_split(&mut parser),
        "relocate" => parse_relocate(&mut parser),
        _ => return None,
    };
    Some(action.and_then(|action| {
        let next = parser.peek_token().token;
        if next != Token::EOF {
            return Err(Error::SyntaxError(format!(
                "syntax error at or near \"{next}\""
            )));
        }
        let alter = AlterRanges {
            table: object_name(&name)?,
            action,
        };
        Ok((bare_alter_table(name), alter))
    }))
}

/// `AT VALUES (...), ...`, after `SPLIT`.
fn parse_split(parser: &mut Parser) -> Result<Action> {
    parser
        .expect_keywords(&[Keyword::AT, Keyword::VALUES])
        .map_err(syntax_error)?;
    Ok(Action::Split(parse_rows(parser)?))
}

/// `[VALUES (...), ...] TO GROUP n`, after `RELOCATE`.
fn parse_relocate(parser: &mut Parser) -> Result<Action> {
    let rows = if parser.parse_keyword(Keyword::VALUES) {
        Some(parse_rows(parser)?)
    } else {
        None
    };
    parser
        .expect_keywords(&[Keyword::TO, Keyword::GROUP])
        .map_err(syntax_error)?;
    let group = group_id(parser.next_token().token)?;
    Ok(Action::Relocate { rows, group })
}

/// The rows of a `VALUES` list (none empty).
fn parse_rows(parser: &mut Parser) -> Result<Vec<Vec<ast::Expr>>> {
    let values = parser.parse_values(false, false).map_err(syntax_error)?;
    Ok(values.rows.into_iter().map(|row| row.content).collect())
}

/// The group of `TO GROUP n`: a positive integer literal.
fn group_id(token: Token) -> Result<u64> {
    let n = match token {
        Token::Number(n, _) => n,
        Token::EOF => return Err(Error::SyntaxError("syntax error at end of input".into())),
        other => {
            return Err(Error::SyntaxError(format!(
                "syntax error at or near \"{other}\""
            )))
        }
    };
    if !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::SyntaxError(format!(
            "TO GROUP takes a positive integer, not {n}"
        )));
    }
    match n.parse::<u64>() {
        Ok(group) if group > 0 => Ok(group),
        _ => Err(Error::NumericOutOfRange(format!(
            "group {n} is out of range: groups are numbered from 1"
        ))),
    }
}

/// `ALTER TABLE <name>` with no operations: how the statement appears in
/// the AST (anything that does not know of [`AlterRanges`] sees an `ALTER
/// TABLE`, which is not read-only and is not supported).
fn bare_alter_table(name: ast::ObjectName) -> ast::Statement {
    ast::Statement::AlterTable(ast::AlterTable {
        name,
        if_exists: false,
        only: false,
        operations: vec![],
        location: None,
        on_cluster: None,
        table_type: None,
        end_token: AttachedToken::empty(),
    })
}

impl<E: TxnEngine> Session<E> {
    /// Runs `ALTER TABLE ... SPLIT AT / RELOCATE`, which only runs outside
    /// a transaction block (25001 inside one). (`&mut self`: a shared
    /// borrow held across an await would need the session to be `Sync`.)
    pub(crate) async fn alter_ranges(&mut self, alter: &AlterRanges) -> Result<QueryResult> {
        if !matches!(self.state, State::Idle) {
            return Err(Error::ActiveSqlTransaction(format!(
                "{} cannot run inside a transaction block",
                alter.action.name()
            )));
        }
        execute(&self.engine, alter, &self.info()).await
    }
}

/// Runs the statement: reads the descriptor and computes the keys in a
/// read-only transaction, commits it, then asks the engine.
async fn execute<E: TxnEngine>(
    engine: &E,
    alter: &AlterRanges,
    session: &SessionInfo,
) -> Result<QueryResult> {
    let mut txn = engine.begin(TxnMode::ReadOnly(ReadTime::Strong)).await?;
    let table = load_table(&mut txn, &alter.table, LockStrength::Shared)
        .await?
        .ok_or_else(|| Error::UndefinedTable(alter.table.clone()))?;
    let now = txn.start_ts().to_datetime();
    let keys = match &alter.action {
        Action::Split(rows)
        | Action::Relocate {
            rows: Some(rows), ..
        } => row_keys(&table, rows, session, now)?,
        Action::Relocate { rows: None, .. } => vec![],
    };
    txn.commit().await?;
    match alter.action {
        Action::Split(_) => {
            for key in keys {
                engine.split_at(key).await?;
            }
        }
        Action::Relocate {
            rows: Some(_),
            group,
        } => {
            for key in keys {
                engine.relocate(key, group).await?;
            }
        }
        Action::Relocate { rows: None, group } => relocate_table(engine, &table, group).await?,
    }
    Ok(QueryResult::Command {
        tag: "ALTER TABLE".into(),
    })
}

/// The storage key of each `VALUES` row: where the rows with that
/// primary-key prefix begin.
fn row_keys(
    table: &TableDesc,
    rows: &[Vec<ast::Expr>],
    session: &SessionInfo,
    now: DateTime<Utc>,
) -> Result<Vec<Vec<u8>>> {
    if table.has_hidden_rowid() {
        return Err(Error::InvalidStatement(format!(
            "table \"{}\" has no primary key, so there are no key values to split or relocate at \
             (RELOCATE TO GROUP without VALUES moves the whole table)",
            table.name
        )));
    }
    let key_columns = &table.primary.columns;
    rows.iter()
        .map(|row| {
            if row.len() > key_columns.len() {
                let names: Vec<&str> = key_columns
                    .iter()
                    .map(|&pos| table.columns[pos].name.as_str())
                    .collect();
                return Err(Error::SyntaxError(format!(
                    "too many values: the primary key of \"{}\" has {} column(s) ({})",
                    table.name,
                    names.len(),
                    names.join(", ")
                )));
            }
            let values = row
                .iter()
                .zip(key_columns)
                .map(|(e, &pos)| key_column_value(table, pos, e, session, now))
                .collect::<Result<Vec<_>>>()?;
            primary_key_prefix(table, &values)
        })
        .collect()
}

/// `e` as a value of key column `pos`, coerced as `INSERT` would.
fn key_column_value(
    table: &TableDesc,
    pos: usize,
    e: &ast::Expr,
    session: &SessionInfo,
    now: DateTime<Utc>,
) -> Result<Value> {
    let col = &table.columns[pos];
    let no_tables = TableSnapshot::new();
    let expr = Binder::new(&no_tables, session, &[]).bind_column_value(e, col)?;
    let env = Env {
        params: &[],
        outer: &[],
        subqueries: &HashMap::new(),
        now,
    };
    let value = expr.eval(&[], &env)?;
    if value.is_null() {
        return Err(Error::NotNullViolation {
            table: table.name.clone(),
            column: col.name.clone(),
        });
    }
    Ok(value)
}

/// Moves every range of `table` to `group`: splits at the table's first
/// key and at the end of its keyspace, then relocates each range between.
async fn relocate_table<E: TxnEngine>(engine: &E, table: &TableDesc, group: u64) -> Result<()> {
    let start = table_prefix(table.id);
    let end = prefix_end(&start);
    engine.split_at(start.clone()).await?;
    if let Some(end) = &end {
        engine.split_at(end.clone()).await?;
    }
    let ranges = engine.ranges().await?;
    let within: Vec<&RangeInfo> = ranges
        .iter()
        .filter(|range| lies_within(range, &start, end.as_deref()))
        .collect();
    if within.is_empty() {
        return Err(Error::Internal(format!(
            "no range lies within table \"{}\" after splitting at its bounds",
            table.name
        )));
    }
    for range in within {
        engine.relocate(range.start.clone(), group).await?;
    }
    Ok(())
}

/// Whether `range` lies within `[start, end)` (`end` `None`: unbounded).
fn lies_within(range: &RangeInfo, start: &[u8], end: Option<&[u8]>) -> bool {
    let ends_in = match (end, &range.end) {
        (None, _) => true,
        (Some(end), Some(range_end)) => range_end.as_slice() <= end,
        (Some(_), None) => false,
    };
    range.start.as_slice() >= start && ends_in
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::future::Future;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use meridian_storage::{KeyRange, MemoryEngine, ScanDirection};
    use meridian_truetime::{ManualClock, Timestamp, TrueTime, TtInterval};
    use meridian_txn::{LocalConfig, LocalEngine, LocalTxn, ManualSleeper};

    use super::*;
    use crate::catalog::{index_prefix, PRIMARY_INDEX_ID};
    use crate::parse::parse_sql;
    use crate::row::decode_row;
    use crate::session::TxnStatus;

    /// The embedded engine over memory and a manual clock.
    fn local_engine() -> LocalEngine<MemoryEngine> {
        let clock = Arc::new(ManualClock::new(
            Timestamp::from_nanos(1_700_000_000_000_000_000),
            Duration::from_millis(1),
        ));
        LocalEngine::new(
            MemoryEngine::new(),
            TrueTime::new(clock.clone()),
            Arc::new(ManualSleeper::new(clock)),
            LocalConfig::default(),
        )
        .expect("engine starts")
    }

    /// What a statement asked of the engine.
    #[derive(Clone, Debug, PartialEq)]
    enum Call {
        /// `split_at(key)`.
        Split(Vec<u8>),
        /// `relocate(key, group)`.
        Relocate(Vec<u8>, u64),
    }

    /// The calls made, and the split points so far.
    #[derive(Debug, Default)]
    struct Log {
        /// Every call, in order.
        calls: Vec<Call>,
        /// Where ranges start (besides the empty key).
        splits: BTreeSet<Vec<u8>>,
    }

    /// The embedded engine for transactions, plus a keyspace that splits
    /// (one group; moves are only recorded) and records what it is asked.
    #[derive(Clone)]
    struct Recorder {
        /// Runs the transactions.
        local: LocalEngine<MemoryEngine>,
        /// Shared with the test.
        log: Arc<Mutex<Log>>,
    }

    impl TxnEngine for Recorder {
        type Txn = LocalTxn<MemoryEngine>;

        fn begin(&self, mode: TxnMode) -> impl Future<Output = Result<Self::Txn>> + Send {
            self.local.begin(mode)
        }

        fn now(&self) -> TtInterval {
            self.local.now()
        }

        fn ranges(&self) -> impl Future<Output = Result<Vec<RangeInfo>>> + Send {
            let log = self.log.lock().unwrap();
            let starts: Vec<Vec<u8>> = std::iter::once(vec![])
                .chain(log.splits.iter().cloned())
                .collect();
            let ranges = starts
                .iter()
                .enumerate()
                .map(|(i, start)| RangeInfo {
                    start: start.clone(),
                    end: starts.get(i + 1).cloned(),
                    group: 1,
                    ..RangeInfo::default()
                })
                .collect();
            std::future::ready(Ok(ranges))
        }

        fn split_at(&self, key: Vec<u8>) -> impl Future<Output = Result<()>> + Send {
            let mut log = self.log.lock().unwrap();
            log.calls.push(Call::Split(key.clone()));
            log.splits.insert(key);
            std::future::ready(Ok(()))
        }

        fn relocate(&self, key: Vec<u8>, group: u64) -> impl Future<Output = Result<()>> + Send {
            self.log
                .lock()
                .unwrap()
                .calls
                .push(Call::Relocate(key, group));
            std::future::ready(Ok(()))
        }
    }

    /// A session over a [`Recorder`], and its log.
    fn recorded_session() -> (Session<Recorder>, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        let engine = Recorder {
            local: local_engine(),
            log: log.clone(),
        };
        (Session::new(engine), log)
    }

    /// The outcome of the last statement of `sql`.
    async fn run<E: TxnEngine>(s: &mut Session<E>, sql: &str) -> Result<QueryResult> {
        s.execute(sql).await.pop().expect("a statement ran")
    }

    /// Runs `sql`, which must succeed.
    async fn ok<E: TxnEngine>(s: &mut Session<E>, sql: &str) -> QueryResult {
        run(s, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The SQLSTATE `sql` fails with.
    async fn sqlstate<E: TxnEngine>(s: &mut Session<E>, sql: &str) -> &'static str {
        match run(s, sql).await {
            Ok(r) => panic!("{sql}: expected an error, got {r:?}"),
            Err(e) => e.sqlstate(),
        }
    }

    /// The calls recorded since the last look.
    fn calls(log: &Mutex<Log>) -> Vec<Call> {
        std::mem::take(&mut log.lock().unwrap().calls)
    }

    /// Table `name`'s descriptor.
    async fn table<E: TxnEngine>(engine: &E, name: &str) -> TableDesc {
        let mut txn = engine
            .begin(TxnMode::ReadOnly(ReadTime::Strong))
            .await
            .unwrap();
        let table = load_table(&mut txn, name, LockStrength::Shared)
            .await
            .unwrap()
            .unwrap();
        txn.commit().await.unwrap();
        table
    }

    /// Every row of table `name` with the key it is stored at, read from
    /// the primary index.
    async fn stored_rows<E: TxnEngine>(engine: &E, name: &str) -> Vec<(Vec<Value>, Vec<u8>)> {
        let table = table(engine, name).await;
        let mut txn = engine
            .begin(TxnMode::ReadOnly(ReadTime::Strong))
            .await
            .unwrap();
        let pairs = txn
            .scan(
                KeyRange::prefix(&index_prefix(table.id, PRIMARY_INDEX_ID)),
                ScanDirection::Forward,
                None,
                LockStrength::Shared,
            )
            .await
            .unwrap();
        txn.commit().await.unwrap();
        pairs
            .into_iter()
            .map(|(key, value)| (decode_row(&table, &key, &value).unwrap(), key))
            .collect()
    }

    /// The statement `sql` parses to.
    fn alter(sql: &str) -> AlterRanges {
        let mut parsed = parse_sql(sql).unwrap();
        assert!(matches!(parsed[0].stmt, ast::Statement::AlterTable(_)));
        parsed.remove(0).alter_ranges.expect("recognized")
    }

    /// Rows of expressions as SQL text.
    fn texts(rows: &[Vec<ast::Expr>]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|row| row.iter().map(|e| e.to_string()).collect())
            .collect()
    }

    #[test]
    fn recognizes_the_statements() {
        let a = alter("ALTER TABLE Accounts SPLIT AT VALUES (1), (-2, 'x'), ('7'::INT)");
        assert_eq!(a.table, "accounts");
        let Action::Split(rows) = &a.action else {
            panic!("{a:?}")
        };
        assert_eq!(
            texts(rows),
            vec![vec!["1"], vec!["-2", "'x'"], vec!["'7'::INT"]]
        );
        assert_eq!(
            alter("alter table public.t relocate to group 3;").action,
            Action::Relocate {
                rows: None,
                group: 3
            }
        );
        let a = alter("ALTER TABLE t RELOCATE VALUES (7, 'b') TO GROUP 2");
        let Action::Relocate {
            rows: Some(rows),
            group: 2,
        } = &a.action
        else {
            panic!("{a:?}")
        };
        assert_eq!(texts(rows), vec![vec!["7", "'b'"]]);
        // Other statements are sqlparser's.
        let parsed = parse_sql("ALTER TABLE t ADD COLUMN c INT; SELECT 1").unwrap();
        assert!(parsed.iter().all(|p| p.alter_ranges.is_none()));
    }

    #[test]
    fn malformed_statements_are_syntax_errors_and_bad_groups_out_of_range() {
        let code = |sql: &str| parse_sql(sql).map(|_| ()).unwrap_err().sqlstate();
        for sql in [
            "ALTER TABLE t SPLIT AT (1)",
            "ALTER TABLE t SPLIT AT VALUES",
            "ALTER TABLE t SPLIT AT VALUES ()",
            "ALTER TABLE t SPLIT VALUES (1)",
            "ALTER TABLE t SPLIT AT VALUES (1) TO GROUP 2",
            "ALTER TABLE t RELOCATE VALUES (1)",
            "ALTER TABLE t RELOCATE TO 2",
            "ALTER TABLE t RELOCATE TO GROUP",
            "ALTER TABLE t RELOCATE TO GROUP -1",
            "ALTER TABLE t RELOCATE TO GROUP 1.5",
            "ALTER TABLE t RELOCATE TO GROUP two",
            "ALTER TABLE t RELOCATE TO GROUP 2 3",
        ] {
            assert_eq!(code(sql), "42601", "{sql}");
        }
        assert_eq!(code("ALTER TABLE t RELOCATE TO GROUP 0"), "22003");
        assert_eq!(
            code("ALTER TABLE t RELOCATE TO GROUP 18446744073709551616"),
            "22003"
        );
        assert_eq!(
            code("ALTER TABLE t SPLIT AT VALUES (1) AS OF SYSTEM TIME '-1s'"),
            "0A000"
        );
    }

    #[tokio::test]
    async fn split_keys_are_where_rows_with_the_key_prefix_start() {
        let (mut s, log) = recorded_session();
        ok(
            &mut s,
            "CREATE TABLE pairs (a INT, b TEXT, v INT, PRIMARY KEY (a, b))",
        )
        .await;
        ok(
            &mut s,
            "INSERT INTO pairs VALUES (4, 'zz', 0), (5, 'x', 1), (5, 'y', 2), (6, 'a', 3)",
        )
        .await;
        let r = ok(
            &mut s,
            "ALTER TABLE pairs SPLIT AT VALUES (5, 'y'), (5), ('6'), (-1)",
        )
        .await;
        assert_eq!(
            r,
            QueryResult::Command {
                tag: "ALTER TABLE".into()
            }
        );
        let keys: Vec<Vec<u8>> = calls(&log)
            .into_iter()
            .map(|c| match c {
                Call::Split(key) => key,
                other => panic!("{other:?}"),
            })
            .collect();
        let rows = stored_rows(&s.engine, "pairs").await;
        let key_of = |a: i64, b: &str| {
            rows.iter()
                .find(|(row, _)| row[0] == Value::Int(a) && row[1] == Value::Text(b.into()))
                .map(|(_, key)| key.clone())
                .unwrap()
        };
        // The whole key: exactly the row's key.
        assert_eq!(keys[0], key_of(5, "y"));
        // A prefix: after every row with a smaller prefix, a prefix of the
        // keys of the rows with that one.
        assert!(key_of(4, "zz") < keys[1]);
        assert!(key_of(5, "x").starts_with(&keys[1]));
        assert!(key_of(5, "y").starts_with(&keys[1]));
        assert!(key_of(5, "y") < keys[2]);
        assert!(key_of(6, "a").starts_with(&keys[2]));
        let table_start = index_prefix(table(&s.engine, "pairs").await.id, PRIMARY_INDEX_ID);
        assert!(table_start < keys[3] && keys[3] < key_of(4, "zz"));
    }

    #[tokio::test]
    async fn values_are_coerced_as_insert_coerces_them() {
        let (mut s, log) = recorded_session();
        ok(
            &mut s,
            "CREATE TABLE prices (p NUMERIC(6,2), d DATE, PRIMARY KEY (p, d))",
        )
        .await;
        // Both round 1.005 to 1.01 and read the string as a date.
        ok(&mut s, "INSERT INTO prices VALUES (1.005, '2024-02-29')").await;
        ok(
            &mut s,
            "ALTER TABLE prices SPLIT AT VALUES (1.005, '2024-02-29')",
        )
        .await;
        let rows = stored_rows(&s.engine, "prices").await;
        assert_eq!(calls(&log), vec![Call::Split(rows[0].1.clone())]);

        ok(
            &mut s,
            "CREATE TABLE pairs (a INT, b TEXT, PRIMARY KEY (a, b))",
        )
        .await;
        ok(&mut s, "CREATE TABLE nopk (a INT)").await;
        for (sql, code) in [
            ("ALTER TABLE pairs SPLIT AT VALUES ('abc')", "22P02"),
            ("ALTER TABLE pairs SPLIT AT VALUES (true)", "42804"),
            ("ALTER TABLE pairs SPLIT AT VALUES (3000000000)", "22003"),
            ("ALTER TABLE pairs SPLIT AT VALUES (1, 'x', 2)", "42601"),
            ("ALTER TABLE pairs SPLIT AT VALUES (1), (NULL)", "23502"),
            ("ALTER TABLE pairs SPLIT AT VALUES ((SELECT 1))", "0A000"),
            (
                "ALTER TABLE pairs SPLIT AT VALUES ((SELECT a FROM pairs))",
                "0A000",
            ),
            ("ALTER TABLE pairs RELOCATE VALUES (a) TO GROUP 2", "42703"),
            ("ALTER TABLE missing SPLIT AT VALUES (1)", "42P01"),
            ("ALTER TABLE missing RELOCATE TO GROUP 2", "42P01"),
            ("ALTER TABLE nopk SPLIT AT VALUES (1)", "42000"),
            ("ALTER TABLE nopk RELOCATE VALUES (1) TO GROUP 2", "42000"),
        ] {
            assert_eq!(sqlstate(&mut s, sql).await, code, "{sql}");
        }
        // Nothing was asked of the engine.
        assert_eq!(calls(&log), vec![]);
    }

    #[tokio::test]
    async fn relocate_moves_the_ranges_holding_the_rows_or_the_whole_table() {
        let (mut s, log) = recorded_session();
        for sql in [
            "CREATE TABLE first (id INT PRIMARY KEY)",
            "CREATE TABLE second (id INT PRIMARY KEY)",
            "CREATE TABLE nopk (x INT)",
        ] {
            ok(&mut s, sql).await;
        }
        let first = table(&s.engine, "first").await;
        let second = table(&s.engine, "second").await;
        let nopk = table(&s.engine, "nopk").await;
        let key = |t: &TableDesc, id: i64| primary_key_prefix(t, &[Value::Int(id)]).unwrap();
        let end = |t: &TableDesc| prefix_end(&table_prefix(t.id)).unwrap();

        ok(
            &mut s,
            "ALTER TABLE first RELOCATE VALUES (10), (20) TO GROUP 7",
        )
        .await;
        assert_eq!(
            calls(&log),
            vec![
                Call::Relocate(key(&first, 10), 7),
                Call::Relocate(key(&first, 20), 7)
            ]
        );

        // The whole table: split at its bounds, then every range between
        // them moves (here two, after a split inside), nothing else.
        ok(&mut s, "ALTER TABLE second SPLIT AT VALUES (100)").await;
        ok(&mut s, "ALTER TABLE second RELOCATE TO GROUP 2").await;
        assert_eq!(
            calls(&log),
            vec![
                Call::Split(key(&second, 100)),
                Call::Split(table_prefix(second.id)),
                Call::Split(end(&second)),
                Call::Relocate(table_prefix(second.id), 2),
                Call::Relocate(key(&second, 100), 2),
            ]
        );
        ok(&mut s, "ALTER TABLE nopk RELOCATE TO GROUP 3").await;
        assert_eq!(
            calls(&log),
            vec![
                Call::Split(table_prefix(nopk.id)),
                Call::Split(end(&nopk)),
                Call::Relocate(table_prefix(nopk.id), 3),
            ]
        );
    }

    #[tokio::test]
    async fn refused_inside_a_transaction_block() {
        let (mut s, log) = recorded_session();
        ok(&mut s, "CREATE TABLE t (id INT PRIMARY KEY)").await;
        ok(&mut s, "BEGIN").await;
        assert_eq!(
            sqlstate(&mut s, "ALTER TABLE t SPLIT AT VALUES (1)").await,
            "25001"
        );
        assert_eq!(s.transaction_status(), TxnStatus::Failed);
        assert_eq!(
            sqlstate(&mut s, "ALTER TABLE t RELOCATE TO GROUP 2").await,
            "25P02"
        );
        ok(&mut s, "ROLLBACK").await;
        // Several statements in one query share an implicit block.
        assert_eq!(
            sqlstate(&mut s, "SELECT 1; ALTER TABLE t RELOCATE TO GROUP 2").await,
            "25001"
        );
        assert_eq!(calls(&log), vec![]);
    }

    #[tokio::test]
    async fn prepared_statements_run_too() {
        let (mut s, log) = recorded_session();
        ok(&mut s, "CREATE TABLE t (id INT PRIMARY KEY)").await;
        let t = table(&s.engine, "t").await;
        let stmt = s
            .prepare("ALTER TABLE t SPLIT AT VALUES (42)", &[])
            .await
            .unwrap();
        assert!(stmt.columns().is_empty() && stmt.param_types().is_empty());
        s.execute_prepared(&stmt, vec![]).await.unwrap();
        assert_eq!(
            calls(&log),
            vec![Call::Split(
                primary_key_prefix(&t, &[Value::Int(42)]).unwrap()
            )]
        );
    }

    #[tokio::test]
    async fn the_embedded_engine_has_one_range_and_refuses_both() {
        let mut s = Session::new(local_engine());
        ok(&mut s, "CREATE TABLE t (id INT PRIMARY KEY)").await;
        for sql in [
            "ALTER TABLE t SPLIT AT VALUES (1)",
            "ALTER TABLE t RELOCATE VALUES (1) TO GROUP 2",
            "ALTER TABLE t RELOCATE TO GROUP 2",
        ] {
            assert_eq!(sqlstate(&mut s, sql).await, "0A000", "{sql}");
        }
    }

    #[test]
    fn a_range_lies_within_bounds_it_does_not_cross() {
        let range = |start: &[u8], end: Option<&[u8]>| RangeInfo {
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            ..RangeInfo::default()
        };
        assert!(lies_within(&range(b"b", Some(b"c")), b"b", Some(b"c")));
        assert!(!lies_within(&range(b"a", Some(b"c")), b"b", Some(b"c")));
        assert!(!lies_within(&range(b"b", Some(b"d")), b"b", Some(b"c")));
        assert!(!lies_within(&range(b"b", None), b"b", Some(b"c")));
        assert!(lies_within(&range(b"b", None), b"b", None));
    }
}
