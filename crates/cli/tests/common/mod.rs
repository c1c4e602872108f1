//! Helpers shared by the end-to-end tests: a `meridian demo --no-shell`
//! server on a free loopback port, and `meridian sql` runs against it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `meridian` binary under test.
pub fn meridian() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meridian"));
    // Keep tests away from the user's shell history.
    cmd.env("MERIDIAN_HISTORY", "");
    cmd
}

/// A running `meridian demo --no-shell`.
pub struct Demo {
    /// The server process.
    child: Child,
    /// Its connection URL, as it printed it.
    pub url: String,
    /// Its later stdout lines.
    pub lines: mpsc::Receiver<String>,
}

impl Demo {
    /// Starts the demo on `dir` with a free port (port 0) and waits until it
    /// prints its URL.
    pub fn start(dir: &Path) -> Demo {
        let mut child = meridian()
            .args([
                "demo",
                "--no-shell",
                "--sql-addr",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting meridian demo");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(at) = line.find("postgres://") {
                        let url = line[at..].split_whitespace().next().unwrap().to_string();
                        return Demo { child, url, lines };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("meridian demo did not print its URL: {:?}", child.wait());
                }
            }
        }
    }

    /// Runs `meridian sql --url URL` with `args`.
    pub fn sql(&self, args: &[&str]) -> Output {
        meridian()
            .args(["sql", "--url", &self.url])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs `meridian sql -e` for each statement; panics unless all succeed.
    pub fn sql_ok(&self, statements: &[&str]) -> String {
        let mut args = Vec::new();
        for s in statements {
            args.push("-e");
            args.push(*s);
        }
        let out = self.sql(&args);
        assert!(
            out.status.success(),
            "meridian sql {statements:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Sends SIGTERM and waits (at most 30 s) for the server to exit.
    pub fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "meridian demo ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
