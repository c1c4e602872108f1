//! Real clients against an in-process server over the real SQL engine:
//! psql 15 (`-c`, `\dt`, `\d`, `\d TABLE`), psycopg 3 (tests/clients/
//! psycopg_client.py) and the PostgreSQL JDBC driver (tests/clients/
//! JdbcClient.java, compiled here with javac). Each tool runs as a child
//! process on loopback, killed if it outlives its time limit.
//!
//! psycopg is installed with pip if it is missing; the test is skipped, with
//! a loud message, only if that fails. The JDBC test needs
//! `/usr/share/java/postgresql.jar` (Debian's `libpostgresql-jdbc-java`)
//! and a JDK; without them it is skipped, loudly.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use meridian_pg::PgConfig;

/// Runs `cmd` to completion, killing it after `limit`.
fn run(mut cmd: Command, limit: Duration) -> Output {
    let program = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{program} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` off the async runtime.
async fn run_async(cmd: Command, limit: Duration) -> Output {
    tokio::task::spawn_blocking(move || run(cmd, limit))
        .await
        .unwrap()
}

/// stdout and stderr of `out`, together.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Reports a client test that cannot run. Under `scripts/test`, which
/// installs every client (MERIDIAN_REQUIRE_CLIENTS=1), that is a failure.
fn skip(message: &str) {
    if std::env::var_os("MERIDIAN_REQUIRE_CLIENTS").is_some() {
        panic!("{message}");
    }
    eprintln!("{message}");
}

/// Whether psql is installed; says so loudly if not.
fn have_psql() -> bool {
    let ok = Command::new("psql")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(
            "\n\n!!!!! SKIPPING a psql test: psql is not installed \
             (apt-get install -y postgresql-client)\n",
        );
    }
    ok
}

/// A psql command against `server`.
fn psql(server: &Server, args: &[&str]) -> Command {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args([
            "-p",
            &server.addr.port().to_string(),
            "-U",
            "meridian",
            "-d",
            "meridian",
        ])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_runs_statements_and_describes_tables() {
    if !have_psql() {
        return;
    }
    let server = Server::trust().await;
    let limit = Duration::from_secs(60);
    let out = run_async(
        psql(
            &server,
            &[
                "-c",
                "CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, email TEXT UNIQUE, score NUMERIC(10,2) DEFAULT 0)",
                "-c",
                "INSERT INTO users (id, name, email) VALUES (1, 'ann', 'ann@example.com'), (2, 'bob', NULL)",
                "-c",
                "SELECT id, name, score FROM users ORDER BY id",
            ],
        ),
        limit,
    )
    .await;
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert!(output.contains("INSERT 0 2"), "{output}");
    assert!(output.contains("  1 | ann  |  0"), "{output}");
    assert!(output.contains("(2 rows)"), "{output}");

    let out = run_async(psql(&server, &["-c", "\\dt"]), limit).await;
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert!(
        output.contains("public | users | table | meridian"),
        "{output}"
    );

    let out = run_async(psql(&server, &["-c", "\\d"]), limit).await;
    assert!(
        text(&out).contains("public | users | table | meridian"),
        "{}",
        text(&out)
    );

    let out = run_async(psql(&server, &["-c", "\\d users"]), limit).await;
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert!(output.contains("Table \"public.users\""), "{output}");
    for expected in [
        "id     | integer               |           | not null |",
        "name   | character varying(20) |           | not null |",
        "email  | text                  |           |          |",
        "score  | numeric(10,2)         |           |          |",
        "\"users_pkey\" PRIMARY KEY, btree (id)",
    ] {
        assert!(
            output.contains(expected),
            "missing {expected:?} in\n{output}"
        );
    }

    // Errors: psql exits non-zero and shows the message.
    let out = run_async(psql(&server, &["-c", "SELECT * FROM nosuch"]), limit).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("relation \"nosuch\" does not exist"),
        "{}",
        text(&out)
    );
    let out = run_async(psql(&server, &["-c", "\\d nosuch"]), limit).await;
    assert!(
        text(&out).contains("Did not find any relation named \"nosuch\""),
        "{}",
        text(&out)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_with_scram_password() {
    if !have_psql() {
        return;
    }
    let server = Server::start(PgConfig {
        password: Some("hunter2".into()),
        ..PgConfig::default()
    })
    .await;
    let mut ok = psql(&server, &["-c", "SELECT 42"]);
    ok.env("PGPASSWORD", "hunter2");
    let out = run_async(ok, Duration::from_secs(60)).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("42"));
    let mut wrong = psql(&server, &["-w", "-c", "SELECT 42"]);
    wrong.env("PGPASSWORD", "hunter3");
    let out = run_async(wrong, Duration::from_secs(60)).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("password authentication failed"),
        "{}",
        text(&out)
    );
    server.shutdown().await;
}

/// Whether `python3` can import psycopg, installing it with pip if needed.
fn psycopg_available() -> bool {
    let importable = || {
        Command::new("python3")
            .args(["-c", "import psycopg"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if importable() {
        return true;
    }
    let mut pip = Command::new("python3");
    pip.args(["-m", "pip", "install", "--quiet", "psycopg[binary]"]);
    let out = run(pip, Duration::from_secs(300));
    if !out.status.success() {
        skip(&format!(
            "\n\n!!!!! SKIPPING the psycopg test: `pip install psycopg[binary]` failed:\n{}\n",
            text(&out)
        ));
        return false;
    }
    importable()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg3_client() {
    if !tokio::task::spawn_blocking(psycopg_available)
        .await
        .unwrap()
    {
        return;
    }
    let server = Server::trust().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/psycopg_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args([
        "127.0.0.1",
        &server.addr.port().to_string(),
        "meridian",
        "",
        "meridian",
    ]);
    let out = run_async(cmd, Duration::from_secs(120)).await;
    assert!(
        out.status.success() && text(&out).contains("OK"),
        "{}",
        text(&out)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jdbc_client() {
    let jar = Path::new("/usr/share/java/postgresql.jar");
    let have_javac = Command::new("javac")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !jar.exists() || !have_javac {
        skip(&format!(
            "\n\n!!!!! SKIPPING the JDBC test: it needs javac and {} \
             (apt-get install -y libpostgresql-jdbc-java default-jdk-headless)\n",
            jar.display()
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/JdbcClient.java");
    let mut javac = Command::new("javac");
    javac
        .args(["-cp", &jar.display().to_string(), "-d"])
        .arg(dir.path())
        .arg(source);
    let out = run_async(javac, Duration::from_secs(180)).await;
    assert!(out.status.success(), "{}", text(&out));

    let server = Server::trust().await;
    let classpath = format!("{}:{}", jar.display(), dir.path().display());
    let mut java = Command::new("java");
    java.args(["-cp", &classpath, "JdbcClient", "127.0.0.1"])
        .arg(server.addr.port().to_string())
        .args(["meridian", "", "meridian"]);
    let out = run_async(java, Duration::from_secs(120)).await;
    assert!(
        out.status.success() && text(&out).contains("OK"),
        "{}",
        text(&out)
    );
    server.shutdown().await;
}
