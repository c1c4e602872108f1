//! `meridian demo` as a user runs it: twice on one data directory.

use std::process::Command;

fn demo(dir: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("demo")
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn demo_data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = demo(dir.path());
    assert!(first.contains("visit #1 written"), "{first}");
    assert!(first.contains("t2 is wounded"), "{first}");
    let second = demo(dir.path());
    assert!(second.contains("visit #2 written"), "{second}");
    assert!(second.contains(": 0 -> 1"), "{second}");
    assert!(second.contains(": 1 -> 2"), "{second}");
}

#[test]
fn demo_refuses_a_damaged_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    demo(dir.path());
    // Damage the RocksDB MANIFEST: the node must refuse to start.
    let manifest = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("MANIFEST")
        })
        .unwrap();
    let mut bytes = std::fs::read(&manifest).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 8] {
        *b ^= 0xff;
    }
    std::fs::write(&manifest, bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["demo", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("corruption"), "{stderr}");
}
