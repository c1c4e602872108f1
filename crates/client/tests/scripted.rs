//! The retry loop against a scripted server: a minimal PostgreSQL endpoint
//! that answers each simple query as a test says, so that the outcomes a
//! real Meridian produces only under faults (SQLSTATE 40003, 57P03, a
//! connection lost before or after `COMMIT`) can be produced on demand.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meridian_client::{Client, Config, Error, SqlState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the scripted server answers one query.
#[derive(Clone, Debug)]
enum Reply {
    /// `CommandComplete` with this tag.
    Ok(&'static str),
    /// An `ErrorResponse` with this SQLSTATE.
    Fail(&'static str),
    /// Close the connection without answering.
    Hang,
}

/// Decides the reply to `query` on connection number `conn` (from 1).
type Script = dyn Fn(usize, &str) -> Reply + Send + Sync;

/// A scripted server and what it was sent.
struct Scripted {
    url: String,
    /// `(connection, query)` in arrival order.
    log: Arc<Mutex<Vec<(usize, String)>>>,
}

impl Scripted {
    async fn start(script: impl Fn(usize, &str) -> Reply + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let served = log.clone();
        tokio::spawn(async move {
            let mut conn = 0;
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                conn += 1;
                tokio::spawn(serve(stream, conn, script.clone(), served.clone()));
            }
        });
        Scripted {
            url: format!("postgres://meridian@{addr}/meridian"),
            log,
        }
    }

    fn queries(&self) -> Vec<(usize, String)> {
        self.log.lock().unwrap().clone()
    }

    fn count(&self, query: &str) -> usize {
        self.queries().iter().filter(|(_, q)| q == query).count()
    }

    async fn client(&self, attempts: u32) -> Client {
        let config = Config::new(&self.url)
            .unwrap()
            .max_attempts(attempts)
            .base_backoff(Duration::from_millis(1))
            .max_backoff(Duration::from_millis(5));
        Client::connect_with(config).await.unwrap()
    }
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(s: &str) -> Vec<u8> {
    let mut out = s.as_bytes().to_vec();
    out.push(0);
    out
}

async fn serve(
    mut stream: TcpStream,
    conn: usize,
    script: Arc<Script>,
    log: Arc<Mutex<Vec<(usize, String)>>>,
) {
    // Startup: length, protocol version, parameters.
    let len = stream.read_i32().await.unwrap();
    let mut startup = vec![0; len as usize - 4];
    stream.read_exact(&mut startup).await.unwrap();
    let mut out = message(b'R', &0i32.to_be_bytes());
    let mut key = 1i32.to_be_bytes().to_vec();
    key.extend_from_slice(&2i32.to_be_bytes());
    out.extend(message(b'K', &key));
    out.extend(message(b'Z', b"I"));
    stream.write_all(&out).await.unwrap();
    let mut status = b'I';
    loop {
        let Ok(tag) = stream.read_u8().await else {
            return;
        };
        let len = stream.read_i32().await.unwrap();
        let mut body = vec![0; len as usize - 4];
        stream.read_exact(&mut body).await.unwrap();
        match tag {
            b'Q' => {
                let query = String::from_utf8_lossy(&body[..body.len() - 1]).into_owned();
                log.lock().unwrap().push((conn, query.clone()));
                let mut out = match script(conn, &query) {
                    Reply::Hang => return,
                    Reply::Ok(command) => {
                        status = match command {
                            "START TRANSACTION" => b'T',
                            "COMMIT" | "ROLLBACK" => b'I',
                            _ => status,
                        };
                        message(b'C', &cstr(command))
                    }
                    Reply::Fail(code) => {
                        status = if status == b'I' || query == "COMMIT" {
                            b'I'
                        } else {
                            b'E'
                        };
                        let mut fields = Vec::new();
                        for (field, value) in [
                            (b'S', "ERROR"),
                            (b'V', "ERROR"),
                            (b'C', code),
                            (b'M', "scripted failure"),
                        ] {
                            fields.push(field);
                            fields.extend(cstr(value));
                        }
                        fields.push(0);
                        message(b'E', &fields)
                    }
                };
                out.extend(message(b'Z', &[status]));
                stream.write_all(&out).await.unwrap();
            }
            b'X' => return,
            other => panic!(
                "the scripted server only speaks simple queries, got {:?}",
                other as char
            ),
        }
    }
}

/// What tokio-postgres sends to begin a transaction.
const BEGIN: &str = "START TRANSACTION";

/// Answers as a healthy server would.
fn normal(query: &str) -> Reply {
    match query {
        BEGIN => Reply::Ok("START TRANSACTION"),
        "COMMIT" => Reply::Ok("COMMIT"),
        "ROLLBACK" => Reply::Ok("ROLLBACK"),
        _ => Reply::Ok("UPDATE 1"),
    }
}

/// Runs a transaction of one statement, counting the closure's calls.
async fn run(client: &mut Client, calls: &AtomicU32) -> Result<u32, Error> {
    client
        .transaction(|tx| {
            let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                tx.batch_execute("UPDATE t SET x = x + 1").await?;
                Ok(call)
            })
        })
        .await
}

#[tokio::test]
async fn ambiguous_commit_is_surfaced_and_not_retried() {
    let server = Scripted::start(|_, q| match q {
        "COMMIT" => Reply::Fail("40003"),
        q => normal(q),
    })
    .await;
    let mut client = server.client(5).await;
    let calls = AtomicU32::new(0);
    let err = run(&mut client, &calls).await.unwrap_err();
    assert!(matches!(err, Error::AmbiguousCommit(_)), "{err:?}");
    assert!(err.is_ambiguous() && !err.is_retryable());
    assert_eq!(
        err.code(),
        Some(&SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(server.count("COMMIT"), 1);
    assert_eq!(server.count(BEGIN), 1);
}

#[tokio::test]
async fn connection_lost_after_commit_is_ambiguous() {
    let server = Scripted::start(|_, q| match q {
        "COMMIT" => Reply::Hang,
        q => normal(q),
    })
    .await;
    let mut client = server.client(5).await;
    let calls = AtomicU32::new(0);
    let err = run(&mut client, &calls).await.unwrap_err();
    assert!(matches!(err, Error::AmbiguousCommit(_)), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(server.count("COMMIT"), 1);
}

#[tokio::test]
async fn connection_lost_before_commit_is_retried_on_a_new_connection() {
    let server = Scripted::start(|conn, q| match q {
        "UPDATE t SET x = x + 1" if conn == 1 => Reply::Hang,
        q => normal(q),
    })
    .await;
    let mut client = server.client(5).await;
    let calls = AtomicU32::new(0);
    assert_eq!(run(&mut client, &calls).await.unwrap(), 2);
    let commits: Vec<_> = server
        .queries()
        .into_iter()
        .filter(|(_, q)| q == "COMMIT")
        .collect();
    assert_eq!(commits, vec![(2, "COMMIT".to_owned())]);
    assert!(!client.is_closed());
}

#[tokio::test]
async fn serialization_failures_and_cannot_connect_now_are_retried() {
    // 40001 from a statement, then 57P03 from a statement, then 40001 from
    // COMMIT; the fourth attempt commits.
    let updates = Arc::new(AtomicU32::new(0));
    let commits = Arc::new(AtomicU32::new(0));
    let (u, c) = (updates.clone(), commits.clone());
    let server = Scripted::start(move |_, q| match q {
        "COMMIT" => {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::Fail("40001")
            } else {
                Reply::Ok("COMMIT")
            }
        }
        "UPDATE t SET x = x + 1" => match u.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::Fail("40001"),
            1 => Reply::Fail("57P03"),
            _ => Reply::Ok("UPDATE 1"),
        },
        q => normal(q),
    })
    .await;
    let mut client = server.client(10).await;
    let calls = AtomicU32::new(0);
    assert_eq!(run(&mut client, &calls).await.unwrap(), 4);
    assert_eq!(server.count(BEGIN), 4);
    assert_eq!(server.count("COMMIT"), 2);
    // Each failed attempt was rolled back.
    assert!(server.count("ROLLBACK") >= 3);
}

#[tokio::test]
async fn retry_limit_returns_the_last_retryable_error() {
    let server = Scripted::start(|_, q| match q {
        "UPDATE t SET x = x + 1" => Reply::Fail("40001"),
        q => normal(q),
    })
    .await;
    let mut client = server.client(3).await;
    let calls = AtomicU32::new(0);
    let err = run(&mut client, &calls).await.unwrap_err();
    assert!(matches!(err, Error::Retryable(_)), "{err:?}");
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(server.count(BEGIN), 3);
    assert_eq!(server.count("COMMIT"), 0);
}

#[tokio::test]
async fn other_errors_are_returned_at_once() {
    let server = Scripted::start(|_, q| match q {
        "UPDATE t SET x = x + 1" => Reply::Fail("23505"),
        q => normal(q),
    })
    .await;
    let mut client = server.client(5).await;
    let calls = AtomicU32::new(0);
    let err = run(&mut client, &calls).await.unwrap_err();
    assert!(matches!(err, Error::Postgres(_)), "{err:?}");
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(server.count("ROLLBACK"), 1);
    assert_eq!(server.count("COMMIT"), 0);
}

#[tokio::test]
async fn an_ignored_statement_failure_is_not_reported_as_a_commit() {
    let server = Scripted::start(|_, q| match q {
        "UPDATE t SET x = x + 1" => Reply::Fail("23505"),
        q => normal(q),
    })
    .await;
    let mut client = server.client(5).await;
    let err = client
        .transaction(|tx| {
            Box::pin(async move {
                // The error is dropped, but the server rolled back.
                let _ = tx.batch_execute("UPDATE t SET x = x + 1").await;
                assert!(tx.failed());
                Ok(())
            })
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::RolledBack { code, .. } if *code == SqlState::UNIQUE_VIOLATION),
        "{err:?}"
    );
    assert_eq!(server.count("COMMIT"), 0);
    assert_eq!(server.count("ROLLBACK"), 1);
}
