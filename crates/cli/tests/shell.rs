//! The shell's output, end to end, against golden files: each
//! `tests/shell/NAME.sql` runs with `meridian sql -f NAME.sql` against a
//! fresh `meridian demo`, and its standard output and error (interleaved)
//! plus exit status must equal `tests/shell/NAME.out`. Scripts run in name
//! order on one server, so later ones see earlier ones' tables.
//!
//! After a deliberate change, regenerate with `UPDATE_GOLDEN=1 cargo test
//! -p meridian --test shell` and review the diff.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{meridian, Demo};

/// Runs `meridian sql -f FILE` in `dir`, stdout and stderr into one stream.
fn run_script(url: &str, dir: &Path, file: &str) -> String {
    let log = tempfile::NamedTempFile::new().unwrap();
    let status = meridian()
        .current_dir(dir)
        .args(["sql", "--url", url, "-f", file])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.reopen().unwrap()))
        .stderr(Stdio::from(log.reopen().unwrap()))
        .status()
        .unwrap();
    let output = std::fs::read_to_string(log.path()).unwrap();
    format!("{output}-- exit status {}\n", status.code().unwrap_or(-1))
}

#[test]
fn shell_output_matches_the_golden_files() {
    let scripts_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/shell");
    let mut scripts: Vec<String> = std::fs::read_dir(&scripts_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty());

    let data = tempfile::tempdir().unwrap();
    let demo = Demo::start(data.path());
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatched = Vec::new();
    for script in &scripts {
        let actual = run_script(&demo.url, &scripts_dir, script);
        let golden = scripts_dir.join(script.replace(".sql", ".out"));
        if update {
            std::fs::write(&golden, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_default();
        if actual != expected {
            eprintln!("--- {script}: expected\n{expected}--- actual\n{actual}");
            mismatched.push(script.clone());
        }
    }
    assert!(
        mismatched.is_empty(),
        "output differs from the golden files for {mismatched:?} (UPDATE_GOLDEN=1 regenerates)"
    );
    assert!(demo.stop().success());
}

#[test]
fn a_script_stops_at_its_first_error_with_a_non_zero_exit() {
    let data = tempfile::tempdir().unwrap();
    let demo = Demo::start(data.path());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("script.sql"),
        "CREATE TABLE t (id INT PRIMARY KEY);\nINSERT INTO t VALUES (1);\n\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);\n",
    )
    .unwrap();
    let out = meridian()
        .current_dir(dir.path())
        .args(["sql", "--url", &demo.url, "-f", "script.sql"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("script.sql:4: ERROR:  "), "{stderr}");
    assert!(stderr.contains("(SQLSTATE 23505)"), "{stderr}");
    // The statement after the error did not run.
    let rows = demo.sql_ok(&["SELECT id FROM t ORDER BY id"]);
    assert!(rows.ends_with("(1 row)\n\n"), "{rows}");
    // -e works the same way: the first failing statement stops the run.
    let out = demo.sql(&[
        "-e",
        "SELECT 1 AS a",
        "-e",
        "SELECT * FROM nosuch",
        "-e",
        "SELECT 2 AS b",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        " a \n---\n 1\n(1 row)\n\n"
    );
    // A server that is not there: exit status 2.
    let out = meridian()
        .args([
            "sql",
            "--url",
            "postgres://meridian@127.0.0.1:1/meridian",
            "-e",
            "SELECT 1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("connection to server at 127.0.0.1:1 failed")
    );
}
