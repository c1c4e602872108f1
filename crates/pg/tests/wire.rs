//! The PostgreSQL protocol over the real SQL engine, with tokio-postgres:
//! simple and extended queries, every type in binary and text, prepared
//! statement reuse, transactions, SQLSTATEs, cancellation of a lock wait,
//! portals with `max_rows`, SCRAM, and the catalog queries drivers send.

mod common;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use common::Server;
use meridian_pg::PgConfig;
use rust_decimal::Decimal;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{NoTls, SimpleQueryMessage};

/// PostgreSQL's `interval`, for tokio-postgres (which has no type for it).
#[derive(Debug, PartialEq)]
struct PgInterval {
    /// Microseconds.
    micros: i64,
    /// Days.
    days: i32,
    /// Months.
    months: i32,
}

impl ToSql for PgInterval {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut;
        out.put_i64(self.micros);
        out.put_i32(self.days);
        out.put_i32(self.months);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for PgInterval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgInterval {
            micros: i64::from_be_bytes(raw[0..8].try_into()?),
            days: i32::from_be_bytes(raw[8..12].try_into()?),
            months: i32::from_be_bytes(raw[12..16].try_into()?),
        })
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

/// The rows (as text) and command tags of a simple query.
async fn simple(
    client: &tokio_postgres::Client,
    sql: &str,
) -> (Vec<Vec<Option<String>>>, Vec<u64>) {
    let mut rows = Vec::new();
    let mut tags = Vec::new();
    for m in client.simple_query(sql).await.unwrap() {
        match m {
            SimpleQueryMessage::Row(r) => {
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            SimpleQueryMessage::CommandComplete(n) => tags.push(n),
            _ => {}
        }
    }
    (rows, tags)
}

#[tokio::test]
async fn simple_query_protocol() {
    let server = Server::trust().await;
    let client = server.client().await;
    client
        .batch_execute("CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    let (_, tags) = simple(&client, "INSERT INTO kv VALUES (1, 'a'), (2, 'b')").await;
    assert_eq!(tags, vec![2]);
    let (rows, tags) = simple(
        &client,
        "SELECT k, v FROM kv ORDER BY k; UPDATE kv SET v = 'c' WHERE k = 2",
    )
    .await;
    assert_eq!(
        rows,
        vec![
            vec![Some("1".into()), Some("a".into())],
            vec![Some("2".into()), Some("b".into())]
        ]
    );
    assert_eq!(tags, vec![2, 1]);
    assert_eq!(
        client
            .execute("DELETE FROM kv WHERE k = 1", &[])
            .await
            .unwrap(),
        1
    );
    // An empty query is answered (EmptyQueryResponse), not an error.
    client.simple_query("").await.unwrap();
    // The login is current_user inside queries too, not only in the
    // statements the wire layer answers itself.
    let row = client
        .query_one("SELECT current_user, current_database() FROM kv", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("meridian".to_string(), "meridian".to_string())
    );
    server.shutdown().await;
}

#[tokio::test]
async fn every_type_in_binary_and_text() {
    let server = Server::trust().await;
    let client = server.client().await;
    client
        .batch_execute(
            "CREATE TABLE all_types (id INT PRIMARY KEY, b BOOLEAN, i2 SMALLINT, i4 INTEGER, \
             i8 BIGINT, f4 REAL, f8 DOUBLE PRECISION, n NUMERIC(12,3), t TEXT, v VARCHAR(10), \
             c CHAR(3), by BYTEA, d DATE, ts TIMESTAMP, tstz TIMESTAMPTZ, iv INTERVAL)",
        )
        .await
        .unwrap();
    let ts =
        NaiveDateTime::parse_from_str("2024-02-29 12:30:01.5", "%Y-%m-%d %H:%M:%S%.f").unwrap();
    let tstz: DateTime<Utc> = ts.and_utc();
    let date = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap();
    let numeric = Decimal::from_str("-12345.678").unwrap();
    let interval = PgInterval {
        micros: 3_723_000_000,
        days: 2,
        months: 14,
    };
    let insert = client
        .prepare("INSERT INTO all_types VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)")
        .await
        .unwrap();
    let types: Vec<Type> = insert.params().to_vec();
    assert_eq!(
        types,
        vec![
            Type::INT4,
            Type::BOOL,
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::NUMERIC,
            Type::TEXT,
            Type::VARCHAR,
            Type::BPCHAR,
            Type::BYTEA,
            Type::DATE,
            Type::TIMESTAMP,
            Type::TIMESTAMPTZ,
            Type::INTERVAL
        ]
    );
    client
        .execute(
            &insert,
            &[
                &1i32,
                &true,
                &-7i16,
                &123_456i32,
                &-9_000_000_000i64,
                &1.5f32,
                &-0.25f64,
                &numeric,
                &"héllo",
                &"var",
                &"ab",
                &vec![0u8, 1, 255],
                &date,
                &ts,
                &tstz,
                &interval,
            ],
        )
        .await
        .unwrap();

    // Binary results.
    let row = client
        .query_one("SELECT * FROM all_types WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, i16>(2), -7);
    assert_eq!(row.get::<_, i32>(3), 123_456);
    assert_eq!(row.get::<_, i64>(4), -9_000_000_000);
    assert_eq!(row.get::<_, f32>(5), 1.5);
    assert_eq!(row.get::<_, f64>(6), -0.25);
    assert_eq!(row.get::<_, Decimal>(7), numeric);
    assert_eq!(row.get::<_, String>(8), "héllo");
    assert_eq!(row.get::<_, String>(9), "var");
    assert_eq!(row.get::<_, String>(10), "ab ");
    assert_eq!(row.get::<_, Vec<u8>>(11), vec![0, 1, 255]);
    assert_eq!(row.get::<_, NaiveDate>(12), date);
    assert_eq!(row.get::<_, NaiveDateTime>(13), ts);
    assert_eq!(row.get::<_, DateTime<Utc>>(14), tstz);
    assert_eq!(row.get::<_, PgInterval>(15), interval);

    // Text results, as PostgreSQL prints them.
    let (rows, _) = simple(&client, "SELECT * FROM all_types").await;
    let text: Vec<&str> = rows[0].iter().map(|v| v.as_deref().unwrap()).collect();
    assert_eq!(
        text,
        vec![
            "1",
            "t",
            "-7",
            "123456",
            "-9000000000",
            "1.5",
            "-0.25",
            "-12345.678",
            "héllo",
            "var",
            "ab ",
            "\\x0001ff",
            "1999-12-31",
            "2024-02-29 12:30:01.5",
            "2024-02-29 12:30:01.5+00",
            "1 year 2 mons 2 days 01:02:03",
        ]
    );

    // NULLs, in both directions.
    client
        .execute(
            "INSERT INTO all_types (id, t) VALUES ($1, $2)",
            &[&2i32, &None::<String>],
        )
        .await
        .unwrap();
    let row = client
        .query_one("SELECT t, n FROM all_types WHERE id = 2", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert_eq!(row.get::<_, Option<Decimal>>(1), None);
    server.shutdown().await;
}

#[tokio::test]
async fn prepared_statements_are_reused() {
    let server = Server::trust().await;
    let client = server.client().await;
    client
        .batch_execute("CREATE TABLE p (id BIGINT PRIMARY KEY, name TEXT)")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO p VALUES ($1, $2)")
        .await
        .unwrap();
    let select = client
        .prepare("SELECT name FROM p WHERE id = $1")
        .await
        .unwrap();
    for i in 0..20i64 {
        assert_eq!(
            client
                .execute(&insert, &[&i, &format!("n{i}")])
                .await
                .unwrap(),
            1
        );
    }
    for i in 0..20i64 {
        let name: String = client.query_one(&select, &[&i]).await.unwrap().get(0);
        assert_eq!(name, format!("n{i}"));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn transactions_and_errors() {
    let server = Server::trust().await;
    let mut client = server.client().await;
    client
        .batch_execute("CREATE TABLE acct (id INT PRIMARY KEY, balance INT NOT NULL)")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO acct VALUES (1, 100)")
        .await
        .unwrap();

    // ROLLBACK undoes, COMMIT keeps.
    client
        .batch_execute("BEGIN; UPDATE acct SET balance = 0 WHERE id = 1; ROLLBACK")
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    tx.execute("UPDATE acct SET balance = balance + 1 WHERE id = 1", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let balance: i32 = client
        .query_one("SELECT balance FROM acct WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(balance, 101);

    // A unique violation with its detail.
    let err = client
        .execute("INSERT INTO acct VALUES (1, 5)", &[])
        .await
        .unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "23505");
    assert!(db.detail().unwrap().contains("(id)=(1)"), "{db:?}");

    // Syntax error, undefined table, NOT NULL.
    let err = client.simple_query("SELEC 1").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42601");
    let err = client.query("SELECT * FROM nosuch", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    let err = client
        .execute("INSERT INTO acct (id) VALUES (2)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "23502");

    // A failed block refuses everything until ROLLBACK.
    client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        client
            .batch_execute("INSERT INTO acct VALUES (1, 5)")
            .await
            .unwrap_err()
            .code()
            .unwrap()
            .code(),
        "23505"
    );
    let err = client.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "25P02");
    client.batch_execute("ROLLBACK").await.unwrap();

    // The connection is fine afterwards.
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn cancel_a_statement_waiting_for_a_lock() {
    let server = Server::trust().await;
    let holder = server.client().await;
    let waiter = server.client().await;
    holder
        .batch_execute("CREATE TABLE lk (id INT PRIMARY KEY, v INT); INSERT INTO lk VALUES (1, 1)")
        .await
        .unwrap();
    holder
        .batch_execute("BEGIN; UPDATE lk SET v = 2 WHERE id = 1")
        .await
        .unwrap();
    let token = waiter.cancel_token();
    let blocked = tokio::spawn(async move {
        let result = waiter
            .execute("UPDATE lk SET v = 3 WHERE id = 1", &[])
            .await;
        (waiter, result)
    });
    let (waiter, result) = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        token.cancel_query(NoTls).await.unwrap();
        if blocked.is_finished() {
            break blocked.await.unwrap();
        }
    };
    let err = result.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014", "{err}");
    holder.batch_execute("COMMIT").await.unwrap();
    let v: i32 = waiter
        .query_one("SELECT v FROM lk WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 2);
    server.shutdown().await;
}

#[tokio::test]
async fn portals_with_max_rows() {
    let server = Server::trust().await;
    let mut client = server.client().await;
    client
        .batch_execute(
            "CREATE TABLE seq (n INT PRIMARY KEY); INSERT INTO seq VALUES (1), (2), (3), (4), (5)",
        )
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    let stmt = tx.prepare("SELECT n FROM seq ORDER BY n").await.unwrap();
    let portal = tx.bind(&stmt, &[]).await.unwrap();
    let mut batches = Vec::new();
    loop {
        let rows = tx.query_portal(&portal, 2).await.unwrap();
        if rows.is_empty() {
            break;
        }
        batches.push(rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>());
        assert!(batches.len() < 10);
    }
    assert_eq!(batches, vec![vec![1, 2], vec![3, 4], vec![5]]);
    tx.commit().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn scram_sha_256_authentication() {
    let server = Server::start(PgConfig {
        password: Some("p@ss word".into()),
        ..PgConfig::default()
    })
    .await;
    let (client, connection) =
        tokio_postgres::connect(&server.conn_str("meridian", Some("'p@ss word'")), NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let Err(err) =
        tokio_postgres::connect(&server.conn_str("meridian", Some("wrong")), NoTls).await
    else {
        panic!("a wrong password was accepted");
    };
    assert_eq!(err.code().unwrap().code(), "28P01");
    server.shutdown().await;
}

#[tokio::test]
async fn driver_catalog_queries() {
    let server = Server::trust().await;
    let client = server.client().await;
    client
        .batch_execute("CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)")
        .await
        .unwrap();
    // tokio-postgres' lookup of a type OID it does not know.
    let row = client
        .query_one(
            "SELECT t.typname, t.typtype, t.typelem, r.rngsubtype, t.typbasetype, n.nspname, t.typrelid
FROM pg_catalog.pg_type t
LEFT OUTER JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid
INNER JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid
WHERE t.oid = $1
",
            &[&1184u32],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "timestamptz");
    assert_eq!(row.get::<_, String>(5), "pg_catalog");
    // psql's \dt, over the simple protocol.
    let (rows, _) = simple(
        &client,
        "SELECT n.nspname as \"Schema\", c.relname as \"Name\", CASE c.relkind WHEN 'r' THEN 'table' END as \"Type\", \
         pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\" FROM pg_catalog.pg_class c \
         LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r','p','') AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1,2;",
    )
    .await;
    assert_eq!(
        rows,
        vec![vec![
            Some("public".into()),
            Some("users".into()),
            Some("table".into()),
            Some("meridian".into())
        ]]
    );
    let version: String = client
        .query_one("SELECT version()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(version.starts_with("PostgreSQL 15.0"));
    server.shutdown().await;
}
