//! The protocol, end to end, over the scripted backend.

use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::NoTls;

use super::raw::{error_codes, field, frame, kinds, rows, status, tags, Raw};
use super::server::TestServer;
use crate::PgConfig;

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

#[tokio::test]
async fn simple_queries_return_text_rows_and_tags() {
    let server = TestServer::trust().await;
    let client = server.client().await;
    let messages = client
        .simple_query("SELECT 1, 'two'; ROWS 3")
        .await
        .unwrap();
    let mut rows = Vec::new();
    let mut tags = Vec::new();
    for m in messages {
        match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => rows.push(
                (0..r.len())
                    .map(|i| r.get(i).unwrap().to_owned())
                    .collect::<Vec<_>>(),
            ),
            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => tags.push(n),
            _ => {}
        }
    }
    assert_eq!(
        rows,
        vec![vec!["1", "two"], vec!["1"], vec!["2"], vec!["3"]]
    );
    assert_eq!(tags, vec![1, 3]);
}

#[tokio::test]
async fn every_type_roundtrips_in_binary() {
    let server = TestServer::trust().await;
    let client = server.client().await;
    let ts =
        NaiveDateTime::parse_from_str("2024-02-29 12:30:01.5", "%Y-%m-%d %H:%M:%S%.f").unwrap();
    let tstz: DateTime<Utc> = ts.and_utc();
    let date = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap();
    let numeric = Decimal::from_str("-12345.678").unwrap();
    let interval = PgInterval {
        micros: 3_600_000_001,
        days: 2,
        months: 14,
    };
    let row = client
        .query_one(
            "SELECT $1::bool, $2::int2, $3::int4, $4::int8, $5::float4, $6::float8, $7::numeric, \
             $8::text, $9::varchar, $10::bpchar, $11::bytea, $12::date, $13::timestamp, \
             $14::timestamptz, $15::interval",
            &[
                &true,
                &-7i16,
                &123_456i32,
                &-9_000_000_000i64,
                &1.5f32,
                &-0.1f64,
                &numeric,
                &"héllo",
                &"var",
                &"c",
                &vec![0u8, 1, 255],
                &date,
                &ts,
                &tstz,
                &interval,
            ],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i16>(1), -7);
    assert_eq!(row.get::<_, i32>(2), 123_456);
    assert_eq!(row.get::<_, i64>(3), -9_000_000_000);
    assert_eq!(row.get::<_, f32>(4), 1.5);
    assert_eq!(row.get::<_, f64>(5), -0.1);
    assert_eq!(row.get::<_, Decimal>(6), numeric);
    assert_eq!(row.get::<_, String>(7), "héllo");
    assert_eq!(row.get::<_, String>(8), "var");
    assert_eq!(row.get::<_, String>(9), "c");
    assert_eq!(row.get::<_, Vec<u8>>(10), vec![0, 1, 255]);
    assert_eq!(row.get::<_, NaiveDate>(11), date);
    assert_eq!(row.get::<_, NaiveDateTime>(12), ts);
    assert_eq!(row.get::<_, DateTime<Utc>>(13), tstz);
    assert_eq!(row.get::<_, PgInterval>(14), interval);
    // NULLs of every kind.
    let row = client
        .query_one(
            "SELECT $1::int4, $2::text",
            &[&None::<i32>, &None::<String>],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i32>>(0), None);
    assert_eq!(row.get::<_, Option<String>>(1), None);
}

#[tokio::test]
async fn every_type_roundtrips_in_text() {
    let server = TestServer::trust().await;
    let mut raw = Raw::connect(server.addr).await;
    // (type, text in, text out)
    let cases = [
        ("bool", "true", "t"),
        ("int2", "-7", "-7"),
        ("int4", "42", "42"),
        ("int8", "9000000000", "9000000000"),
        ("float4", "1.5", "1.5"),
        ("float8", "-0.25", "-0.25"),
        ("numeric", "12.50", "12.50"),
        ("text", "héllo", "héllo"),
        ("varchar", "v", "v"),
        ("bytea", "\\x00ff", "\\x00ff"),
        ("date", "2024-02-29", "2024-02-29"),
        (
            "timestamp",
            "2024-02-29 12:30:01.5",
            "2024-02-29 12:30:01.5",
        ),
        (
            "timestamptz",
            "2024-03-01 08:00:00+00",
            "2024-03-01 08:00:00+00",
        ),
    ];
    let sql = (1..=cases.len())
        .map(|i| format!("${i}::{}", cases[i - 1].0))
        .collect::<Vec<_>>()
        .join(", ");
    let params: Vec<Option<&[u8]>> = cases.iter().map(|c| Some(c.1.as_bytes())).collect();
    let msgs = raw
        .parse("", &format!("SELECT {sql}"), &[])
        .bind("", "", &[0], &params, &[0])
        .execute("", 0)
        .sync()
        .run()
        .await;
    assert_eq!(error_codes(&msgs), Vec::<String>::new(), "{msgs:?}");
    let got: Vec<String> = rows(&msgs)[0]
        .iter()
        .map(|v| String::from_utf8(v.clone().unwrap()).unwrap())
        .collect();
    let want: Vec<&str> = cases.iter().map(|c| c.2).collect();
    assert_eq!(got, want);
    assert_eq!(tags(&msgs), vec!["SELECT 1"]);
}

#[tokio::test]
async fn mixed_formats_per_column_and_parameter() {
    let server = TestServer::trust().await;
    let mut raw = Raw::connect(server.addr).await;
    let msgs = raw
        .parse("s", "SELECT $1::int4, $2::text", &[])
        .bind(
            "",
            "s",
            &[1, 0],
            &[Some(&7i32.to_be_bytes()), Some(b"x")],
            &[0, 1],
        )
        .describe(b'P', "")
        .execute("", 0)
        .sync()
        .run()
        .await;
    assert_eq!(kinds(&msgs), "12TDCZ");
    assert_eq!(
        rows(&msgs),
        vec![vec![Some(b"7".to_vec()), Some(b"x".to_vec())]]
    );
}

#[tokio::test]
async fn prepared_statements_are_planned_once() {
    let server = TestServer::trust().await;
    let client = server.client().await;
    let stmt = client.prepare("SELECT $1::int8").await.unwrap();
    assert_eq!(stmt.params(), &[Type::INT8]);
    assert_eq!(stmt.columns()[0].type_(), &Type::INT8);
    for i in 0..5i64 {
        let row = client.query_one(&stmt, &[&i]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), i);
    }
    assert_eq!(server.counters.prepares.load(Ordering::SeqCst), 1);

    // Unnamed statements with the same text hit the connection's cache.
    let mut raw = Raw::connect(server.addr).await;
    for i in 0..3i32 {
        let msgs = raw
            .parse("", "SELECT $1::int4", &[23])
            .bind("", "", &[1], &[Some(&i.to_be_bytes())], &[1])
            .execute("", 0)
            .sync()
            .run()
            .await;
        assert_eq!(rows(&msgs), vec![vec![Some(i.to_be_bytes().to_vec())]]);
    }
    assert_eq!(server.counters.prepares.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn transaction_status_follows_the_session() {
    let server = TestServer::trust().await;
    let mut raw = Raw::connect(server.addr).await;
    assert_eq!(status(&raw.query("BEGIN").run().await), b'T');
    let msgs = raw.query("FAIL UNIQUE").run().await;
    assert_eq!(error_codes(&msgs), vec!["23505"]);
    assert_eq!(status(&msgs), b'E');
    let msgs = raw.query("SELECT 1").run().await;
    assert_eq!(error_codes(&msgs), vec!["25P02"]);
    assert_eq!(status(&msgs), b'E');
    let msgs = raw.query("ROLLBACK").run().await;
    assert_eq!(tags(&msgs), vec!["ROLLBACK"]);
    assert_eq!(status(&msgs), b'I');
    assert_eq!(status(&raw.query("BEGIN; SELECT 1").run().await), b'T');
    assert_eq!(tags(&raw.query("COMMIT").run().await), vec!["COMMIT"]);
}

#[tokio::test]
async fn wire_level_errors_fail_the_block_too() {
    let server = TestServer::trust().await;
    let mut raw = Raw::connect(server.addr).await;
    raw.query("BEGIN").run().await;
    let msgs = raw.bind("", "nosuch", &[], &[], &[]).sync().run().await;
    assert_eq!(error_codes(&msgs), vec!["26000"]);
    assert_eq!(status(&msgs), b'E');
    assert_eq!(
        error_codes(&raw.query("SELECT 1").run().await),
        vec!["25P02"]
    );
    let msgs = raw.query("COMMIT").run().await;
    assert_eq!(tags(&msgs), vec!["ROLLBACK"]);
    assert_eq!(status(&msgs), b'I');
    assert_eq!(status(&raw.query("SELECT 1").run().await), b'I');
}

#[tokio::test]
async fn errors_carry_sqlstate_message_and_detail() {
    let server = TestServer::trust().await;
    let client = server.client().await;
    let err = client.simple_query("FAIL UNIQUE").await.unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "23505");
    assert_eq!(
        db.message(),
        "duplicate key value violates unique constraint \"t_pkey\""
    );
    assert_eq!(db.detail(), Some("Key (id)=(1) already exists."));
    let err = client.query("FAIL SYNTAX", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42601");
    let err = client.query("FAIL TABLE", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "relation \"nosuch\" does not exist"
    );
    // Still usable.
    assert_eq!(
        client
            .query_one("SELECT 5", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        5
    );
}

#[tokio::test]
async fn bad_input_leaves_the_connection_usable() {
    let server = TestServer::trust().await;
    let mut raw = Raw::connect(server.addr).await;

    // Unknown statement and portal names.
    let msgs = raw
        .bind("", "nosuch", &[], &[], &[])
        .execute("", 0)
        .sync()
        .run()
        .await;
    assert_eq!(error_codes(&msgs), vec!["26000"]);
    assert_eq!(kinds(&msgs), "EZ");
    assert_eq!(
        error_codes(&raw.execute("nosuch", 0).sync().run().await),
        vec!["34000"]
    );
    assert_eq!(
        error_codes(&raw.describe(b'S', "nosuch").sync().run().await),
        vec!["26000"]
    );

    // Wrong parameter count; wrong binary length; malformed text.
    raw.parse("p", "SELECT $1::int4", &[]).sync().run().await;
    let msgs = raw.bind("", "p", &[], &[], &[]).sync().run().await;
    assert_eq!(error_codes(&msgs), vec!["08P01"]);
    assert!(field(&msgs[0].1, b'M').contains("supplies 0 parameters"));
    let msgs = raw
        .bind("", "p", &[1], &[Some(&[1, 2, 3])], &[])
        .sync()
        .run()
        .await;
    assert_eq!(error_codes(&msgs), vec!["22P03"]);
    let msgs = raw
        .bind("", "p", &[0], &[Some(b"abc")], &[])
        .sync()
        .run()
        .await;
    assert_eq!(error_codes(&msgs), vec!["22P02"]);
    let msgs = raw
        .bind("", "p", &[0, 0], &[Some(b"1")], &[])
        .sync()
        .run()
        .await;
    assert_eq!(error_codes(&msgs), vec!["08P01"]);
    // A duplicate statement name; multiple statements in one Parse.
    assert_eq!(
        error_codes(&raw.parse("p", "SELECT 1", &[]).sync().run().await),
        vec!["42P05"]
    );
    assert_eq!(
        error_codes(&raw.parse("", "SELECT 1; SELECT 2", &[]).sync().run().await),
        vec!["42601"]
    );

    // Malformed frames: a Bind whose counts lie, an unknown message type.
    let mut lying = vec![0, 0];
    lying.extend_from_slice(&0i16.to_be_bytes());
    lying.extend_from_slice(&50i16.to_be_bytes());
    let msgs = raw.raw(&frame(b'B', &lying)).sync().run().await;
    assert_eq!(error_codes(&msgs), vec!["08P01"]);
    let msgs = raw.raw(&frame(b'?', b"junk")).run().await;
    assert_eq!(error_codes(&msgs), vec!["08P01"]);
    assert_eq!(status(&msgs), b'I');
    let msgs = raw.raw(&frame(b'S', b"junk")).run().await;
    assert_eq!(kinds(&msgs), "EZ");

    // Messages after an error are skipped up to Sync.
    let msgs = raw
        .bind("", "nosuch", &[], &[], &[])
        .parse("q", "SELECT 1", &[])
        .sync()
        .run()
        .await;
    assert_eq!(kinds(&msgs), "EZ");

    // Still fine.
    let msgs = raw
        .bind("", "p", &[1], &[Some(&9i32.to_be_bytes())], &[0])
        .execute("", 0)
        .sync()
        .run()
        .await;
    assert_eq!(rows(&msgs), vec![vec![Some(b"9".to_vec())]]);
    let msgs = raw.query("").run().await;
    assert_eq!(kinds(&msgs), "IZ");
}

#[tokio::test]
async fn portals_suspend_at_max_rows() {
    let server = TestServer::trust().await;
    let mut client = server.client().await;
    let tx = client.transaction().await.unwrap();
    let stmt = tx.prepare("ROWS 5").await.unwrap();
    let portal = tx.bind(&stmt, &[]).await.unwrap();
    let mut sizes = Vec::new();
    loop {
        let batch = tx.query_portal(&portal, 2).await.unwrap();
        if batch.is_empty() {
            break;
        }
        sizes.push(batch.len());
        assert!(sizes.len() < 10);
    }
    assert_eq!(sizes, vec![2, 2, 1]);
    tx.commit().await.unwrap();

    // On the wire: PortalSuspended between batches, the tag counts the last.
    let mut raw = Raw::connect(server.addr).await;
    let msgs = raw
        .parse("", "ROWS 3", &[])
        .bind("", "", &[], &[], &[])
        .execute("", 2)
        .execute("", 2)
        .sync()
        .run()
        .await;
    assert_eq!(kinds(&msgs), "12DDsDCZ");
    assert_eq!(tags(&msgs), vec!["SELECT 1"]);
}

#[tokio::test]
async fn describe_statement_and_portal() {
    let server = TestServer::trust().await;
    let mut raw = Raw::connect(server.addr).await;
    let msgs = raw
        .parse("d", "SELECT $1::numeric, $2", &[0, 25])
        .describe(b'S', "d")
        .parse("c", "INSERT INTO t VALUES (1)", &[])
        .describe(b'S', "c")
        .sync()
        .run()
        .await;
    assert_eq!(kinds(&msgs), "1tT1tnZ");
    let params = &msgs[1].1;
    assert_eq!(params[..2], [0, 2]);
    assert_eq!(u32::from_be_bytes(params[2..6].try_into().unwrap()), 1700);
    assert_eq!(u32::from_be_bytes(params[6..10].try_into().unwrap()), 25);
}

#[tokio::test]
async fn cancel_interrupts_a_running_statement() {
    let server = TestServer::trust().await;
    let client = server.client().await;
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move {
        let err = client.simple_query("SLEEP").await.unwrap_err();
        (client, err)
    });
    // Cancel until it lands (the statement may not have started yet).
    let (client, err) = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        token.cancel_query(NoTls).await.unwrap();
        if sleeper.is_finished() {
            break sleeper.await.unwrap();
        }
    };
    assert_eq!(err.code().unwrap().code(), "57014");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "canceling statement due to user request"
    );
    assert_eq!(
        client
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
}

#[tokio::test]
async fn scram_authentication() {
    let config = PgConfig {
        password: Some("s3cret".into()),
        ..PgConfig::default()
    };
    let server = TestServer::start(config).await;
    let (client, connection) =
        tokio_postgres::connect(&server.conn_str("meridian", Some("s3cret")), NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    assert_eq!(
        client
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    for (user, password) in [("meridian", "wrong"), ("someone", "s3cret")] {
        let Err(err) = tokio_postgres::connect(&server.conn_str(user, Some(password)), NoTls).await
        else {
            panic!("{user}/{password} logged in");
        };
        assert_eq!(err.code().map(|c| c.code()), Some("28P01"), "{err}");
    }
    // No password at all: the client cannot answer the SCRAM challenge.
    assert!(
        tokio_postgres::connect(&server.conn_str("meridian", None), NoTls)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn startup_reports_what_clients_need() {
    let server = TestServer::trust().await;
    let client = server.client().await;
    let show = |name: &'static str| {
        let client = &client;
        async move {
            let messages = client.simple_query(&format!("SHOW {name}")).await.unwrap();
            messages
                .iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some(r.get(0).unwrap().to_owned())
                    }
                    _ => None,
                })
                .unwrap()
        }
    };
    assert_eq!(show("server_version").await, "15.0");
    assert_eq!(show("DateStyle").await, "ISO, MDY");
    assert_eq!(show("TimeZone").await, "UTC");
    client
        .simple_query("SET application_name = 'tests'")
        .await
        .unwrap();
    assert_eq!(show("application_name").await, "tests");
    client
        .simple_query("SET extra_float_digits = 3")
        .await
        .unwrap();
    let version: String = client
        .query_one("SELECT version()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(version.starts_with("PostgreSQL 15.0 (Meridian"));
    client.simple_query("DEALLOCATE ALL").await.unwrap();
}

#[tokio::test]
async fn tokio_postgres_type_lookup_is_answered() {
    let server = TestServer::trust().await;
    let client = server.client().await;
    let row = client
        .query_one(
            include_str!("../catalog/testdata/tokio_postgres_typeinfo.sql"),
            &[&1700u32],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "numeric");
    assert_eq!(row.get::<_, i8>(1), b'b' as i8);
    assert_eq!(row.get::<_, u32>(2), 0);
    assert_eq!(row.get::<_, Option<u32>>(3), None);
    assert_eq!(row.get::<_, String>(5), "pg_catalog");
}

/// psql itself, against the scripted catalog (one `users` table).
#[tokio::test]
async fn psql_describes_tables() {
    if std::process::Command::new("psql")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("\n\n!!!!! SKIPPING psql_describes_tables: psql is not installed (apt-get install -y postgresql-client)\n");
        return;
    }
    let server = TestServer::trust().await;
    let psql = |args: &[&str]| {
        let port = server.addr.port().to_string();
        let mut cmd = std::process::Command::new("psql");
        cmd.args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "meridian",
            "-d",
            "meridian",
        ])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10");
        async move {
            let out = tokio::task::spawn_blocking(move || cmd.output())
                .await
                .unwrap()
                .expect("psql is installed");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
            )
        }
    };
    let (ok, out) = psql(&["-c", "\\dt"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("public | users | table | meridian"), "{out}");
    let (ok, out) = psql(&["-c", "\\d users"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("Table \"public.users\""), "{out}");
    assert!(out.contains("not null"), "{out}");
    assert!(
        out.contains("\"users_pkey\" PRIMARY KEY, btree (id)"),
        "{out}"
    );
    assert!(
        out.contains("\"users_email_key\" UNIQUE, btree (email)"),
        "{out}"
    );
    let (ok, out) = psql(&["-c", "\\d nosuch"]).await;
    assert!(!ok);
    assert!(
        out.contains("Did not find any relation named \"nosuch\""),
        "{out}"
    );
}
