//! `meridian demo` as a user runs it: serve, connect with `meridian sql`,
//! stop with SIGTERM, restart on the same data directory; and the ways it
//! refuses to start.

mod common;

use common::{meridian, Demo};

#[test]
fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path());
    assert!(
        demo.url.starts_with("postgres://meridian@127.0.0.1:"),
        "{}",
        demo.url
    );
    assert!(demo.url.ends_with("/meridian"), "{}", demo.url);
    let created = demo.sql_ok(&[
        "CREATE TABLE visits (id INT PRIMARY KEY, who TEXT NOT NULL)",
        "INSERT INTO visits VALUES (1, 'alice'), (2, 'bob')",
    ]);
    assert_eq!(created, "CREATE TABLE\nINSERT 0 2\n");
    let before = demo.sql_ok(&["SELECT id, who FROM visits ORDER BY id"]);
    assert_eq!(
        before,
        " id |  who  \n----+-------\n  1 | alice\n  2 | bob\n(2 rows)\n\n"
    );
    let status = demo.stop();
    assert!(status.success(), "{status:?}");

    let demo = Demo::start(dir.path());
    assert_eq!(
        demo.sql_ok(&["SELECT id, who FROM visits ORDER BY id"]),
        before
    );
    demo.sql_ok(&["INSERT INTO visits VALUES (3, 'carol')"]);
    assert!(demo.stop().success());
}

#[test]
fn a_damaged_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path());
    demo.sql_ok(&[
        "CREATE TABLE t (id INT PRIMARY KEY)",
        "INSERT INTO t VALUES (1)",
    ]);
    assert!(demo.stop().success());
    // Damage node 1's RocksDB MANIFEST: the demo must refuse to start.
    let manifest = std::fs::read_dir(dir.path().join("node-1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("MANIFEST")
        })
        .unwrap();
    let mut bytes = std::fs::read(&manifest).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 8] {
        *b ^= 0xff;
    }
    std::fs::write(&manifest, bytes).unwrap();
    let out = meridian()
        .args([
            "demo",
            "--no-shell",
            "--sql-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("corruption"), "{stderr}");
    assert!(stderr.contains("is damaged; refusing to start"), "{stderr}");
}

#[test]
fn a_taken_port_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = meridian()
        .args(["demo", "--no-shell", "--sql-addr", &addr, "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(stderr.contains("--sql-addr"), "{stderr}");
}

#[test]
fn the_demo_opens_the_shell_on_its_own_server() {
    // Without --no-shell the demo opens the shell; with standard input not
    // a terminal, the shell runs it as a script and the demo then stops.
    let dir = tempfile::tempdir().unwrap();
    let mut child = meridian()
        .args(["demo", "--sql-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"CREATE TABLE t (id INT PRIMARY KEY);\nINSERT INTO t VALUES (7);\nSELECT id FROM t;\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "CREATE TABLE\nINSERT 0 1\n id \n----\n  7\n(1 row)\n\n"
    );
}
