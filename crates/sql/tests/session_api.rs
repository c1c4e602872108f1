//! The session API the wire front end uses: the simple protocol's
//! statement list, the extended protocol's prepare (types inferred without
//! executing) and execute (plans cached and revalidated), the catalog
//! accessors, and the transaction status.

mod common;

use meridian_error::Error;
use meridian_sql::{Column, DataType, QueryResult, Session, TxnStatus, Value};

type S = Session<common::Engine>;

/// Unconstrained `NUMERIC`.
const NUMERIC: DataType = DataType::Numeric {
    precision: None,
    scale: None,
};

fn session() -> S {
    Session::new(common::engine().0)
}

async fn ok(s: &mut S, sql: &str) -> QueryResult {
    let mut r = s.execute(sql).await;
    r.pop().unwrap().unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn rows(r: QueryResult) -> Vec<Vec<Value>> {
    match r {
        QueryResult::Rows { rows, .. } => rows,
        other => panic!("expected rows, got {other:?}"),
    }
}

#[tokio::test]
async fn simple_protocol_runs_statements_until_the_first_error() {
    let mut s = session();
    assert!(s.execute("").await.is_empty());
    assert!(s.execute(" ; ").await.is_empty());
    let r = s
        .execute("CREATE TABLE t (a INT PRIMARY KEY); INSERT INTO t VALUES (1), (2); SELECT * FROM nope; SELECT 1")
        .await;
    assert_eq!(r.len(), 3);
    assert_eq!(
        r[0],
        Ok(QueryResult::Command {
            tag: "CREATE TABLE".into()
        })
    );
    assert_eq!(
        r[1],
        Ok(QueryResult::Command {
            tag: "INSERT 0 2".into()
        })
    );
    assert_eq!(r[2], Err(Error::UndefinedTable("nope".into())));
    // The statements of one simple query are one implicit transaction: the
    // failure rolled back the table and the insert.
    assert_eq!(s.transaction_status(), TxnStatus::Idle);
    assert!(s.execute("SELECT * FROM t").await.pop().unwrap().is_err());
    let r = s
        .execute("CREATE TABLE t (a INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await;
    assert!(r.iter().all(Result::is_ok));
    // A syntax error anywhere runs nothing.
    let r = s.execute("INSERT INTO t VALUES (3); SELEC 1").await;
    assert!(matches!(r.as_slice(), [Err(Error::SyntaxError(_))]));
    assert_eq!(
        rows(ok(&mut s, "SELECT count(*) FROM t").await),
        vec![vec![Value::Int(2)]]
    );
    assert_eq!(
        ok(&mut s, "UPDATE t SET a = a + 10").await,
        QueryResult::Command {
            tag: "UPDATE 2".into()
        }
    );
    assert_eq!(
        ok(&mut s, "DELETE FROM t WHERE a = 11").await,
        QueryResult::Command {
            tag: "DELETE 1".into()
        }
    );
}

#[tokio::test]
async fn prepare_infers_types_without_executing() {
    let mut s = session();
    ok(
        &mut s,
        "CREATE TABLE item (id INT PRIMARY KEY, name VARCHAR(10), price NUMERIC(8,2), big BIGINT)",
    )
    .await;
    let p = s
        .prepare(
            "SELECT name, price * 2 AS double FROM item WHERE id = $1 AND big > $2",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(p.param_types(), &[DataType::Int4, DataType::Int8]);
    assert_eq!(
        p.columns(),
        &[
            Column {
                name: "name".into(),
                data_type: DataType::Varchar(Some(10))
            },
            Column {
                name: "double".into(),
                data_type: NUMERIC
            },
        ]
    );
    // Client-given types win.
    let p = s
        .prepare("SELECT $1 = id FROM item", &[Some(DataType::Int8)])
        .await
        .unwrap();
    assert_eq!(p.param_types(), &[DataType::Int8]);
    // INSERT parameters take the column types; no result columns.
    let ins = s
        .prepare(
            "INSERT INTO item VALUES ($1, $2, $3, $4)",
            &[None, None, None, None],
        )
        .await
        .unwrap();
    assert_eq!(
        ins.param_types(),
        &[
            DataType::Int4,
            DataType::Varchar(None),
            NUMERIC,
            DataType::Int8
        ]
    );
    assert!(ins.columns().is_empty());
    assert_eq!(
        rows(ok(&mut s, "SELECT count(*) FROM item").await),
        vec![vec![Value::Int(0)]]
    );
    // Parameters are substituted as typed values, many times over.
    for i in 0..3 {
        let r = s
            .execute_prepared(
                &ins,
                vec![
                    Value::Int(i),
                    Value::Text(format!("n{i}")),
                    Value::Numeric("1.005".parse().unwrap()),
                    Value::Int(i * 100),
                ],
            )
            .await
            .unwrap();
        assert_eq!(
            r,
            QueryResult::Command {
                tag: "INSERT 0 1".into()
            }
        );
    }
    let q = s
        .prepare("SELECT price FROM item WHERE id = $1", &[])
        .await
        .unwrap();
    let r = s.execute_prepared(&q, vec![Value::Int(2)]).await.unwrap();
    assert_eq!(rows(r)[0][0].to_pg_text(&NUMERIC).unwrap(), "1.01");
    // Wrong parameter count.
    assert!(s.execute_prepared(&q, vec![]).await.is_err());
    // Too long for varchar(10): 22001 at execution.
    let err = s
        .execute_prepared(
            &ins,
            vec![
                Value::Int(9),
                Value::Text("x".repeat(11)),
                Value::Null,
                Value::Null,
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StringDataRightTruncation(_)), "{err}");
    // Empty statements prepare and execute to nothing.
    let empty = s.prepare("", &[]).await.unwrap();
    assert!(empty.columns().is_empty());
}

#[tokio::test]
async fn prepared_plans_follow_schema_changes() {
    let mut s = session();
    ok(&mut s, "CREATE TABLE t (k INT PRIMARY KEY, v INT)").await;
    ok(&mut s, "INSERT INTO t VALUES (1, 10), (2, 20), (3, 10)").await;
    let q = s
        .prepare("SELECT k FROM t WHERE v = $1 ORDER BY k", &[])
        .await
        .unwrap();
    async fn run(s: &mut S, q: &meridian_sql::PreparedStatement) -> Vec<Vec<Value>> {
        rows(s.execute_prepared(q, vec![Value::Int(10)]).await.unwrap())
    }
    assert_eq!(
        run(&mut s, &q).await,
        vec![vec![Value::Int(1)], vec![Value::Int(3)]]
    );
    // A new index changes the table's version; the plan is rebuilt and the
    // answer is the same.
    ok(&mut s, "CREATE INDEX t_v ON t (v)").await;
    assert_eq!(
        run(&mut s, &q).await,
        vec![vec![Value::Int(1)], vec![Value::Int(3)]]
    );
    // Dropped and recreated with another shape: rebound against the new one.
    ok(&mut s, "DROP TABLE t").await;
    let err = s
        .execute_prepared(&q, vec![Value::Int(10)])
        .await
        .unwrap_err();
    assert_eq!(err, Error::UndefinedTable("t".into()));
    ok(&mut s, "CREATE TABLE t (v INT, k INT PRIMARY KEY)").await;
    ok(&mut s, "INSERT INTO t VALUES (10, 7)").await;
    assert_eq!(run(&mut s, &q).await, vec![vec![Value::Int(7)]]);
}

#[tokio::test]
async fn transaction_status_tracks_blocks() {
    let mut s = session();
    assert_eq!(s.transaction_status(), TxnStatus::Idle);
    ok(&mut s, "BEGIN").await;
    assert_eq!(s.transaction_status(), TxnStatus::InBlock);
    assert!(s.execute("SELECT 1/0").await.pop().unwrap().is_err());
    assert_eq!(s.transaction_status(), TxnStatus::Failed);
    // Parse errors and failed prepares also fail the block (and are refused in it).
    assert_eq!(
        s.prepare("SELECT 1", &[]).await.unwrap_err(),
        Error::InFailedTransaction
    );
    assert_eq!(
        ok(&mut s, "ROLLBACK").await,
        QueryResult::Command {
            tag: "ROLLBACK".into()
        }
    );
    assert_eq!(s.transaction_status(), TxnStatus::Idle);
    ok(&mut s, "BEGIN").await;
    assert!(s.prepare("SELECT * FROM missing", &[]).await.is_err());
    assert_eq!(s.transaction_status(), TxnStatus::Failed);
    ok(&mut s, "END").await;
    assert_eq!(s.transaction_status(), TxnStatus::Idle);
}

#[tokio::test]
async fn catalog_accessors_describe_tables() {
    let mut s = session();
    ok(
        &mut s,
        "CREATE TABLE b (x INT PRIMARY KEY, y TEXT NOT NULL DEFAULT 'd', z INT UNIQUE)",
    )
    .await;
    ok(&mut s, "CREATE TABLE a (p INT, q INT)").await;
    ok(&mut s, "CREATE INDEX a_q ON a (q)").await;
    let tables = s.list_tables().await.unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let b = s.describe_table("b").await.unwrap().unwrap();
    assert_eq!(b.primary_key, ["x"]);
    assert_eq!(b.columns[1].default.as_deref(), Some("'d'"));
    assert!(!b.columns[1].nullable);
    let idx: Vec<(&str, bool, bool)> = b
        .indexes
        .iter()
        .map(|i| (i.name.as_str(), i.unique, i.primary))
        .collect();
    assert_eq!(idx, [("b_pkey", true, true), ("b_z_key", true, false)]);
    // A table without a primary key shows no hidden row id.
    let a = s.describe_table("a").await.unwrap().unwrap();
    assert!(a.primary_key.is_empty());
    assert_eq!(a.columns.len(), 2);
    assert_eq!(a.indexes.len(), 1);
    assert_eq!(s.describe_table("nope").await.unwrap(), None);
}

/// The wire layer spawns each connection as a task: every session future
/// must be `Send`.
#[test]
fn session_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let mut s = session();
    let p = futures_prepared();
    {
        let f = s.execute("SELECT 1");
        assert_send(&f);
    }
    {
        let f = s.prepare("SELECT 1", &[]);
        assert_send(&f);
    }
    {
        let f = s.execute_prepared(&p, vec![]);
        assert_send(&f);
    }
    {
        let f = s.list_tables();
        assert_send(&f);
    }
    {
        let f = s.describe_table("t");
        assert_send(&f);
    }
    assert_send(&s);
}

/// A prepared statement to type-check `execute_prepared`'s future.
fn futures_prepared() -> meridian_sql::PreparedStatement {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async { session().prepare("SELECT 1", &[]).await.unwrap() })
}
