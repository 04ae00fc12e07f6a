//! `verge serve --app` keeps the compiled artifact in its data dir: a
//! second start of an unchanged component loads it instead of compiling,
//! and a first start serves the artifact mapped from that file (its code is
//! page cache, not the daemon's private memory), as a restart does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

/// Serves `wasm` from `data`, answers one request, stops; returns the status.
fn serve_once(wasm: &Path, data: &Path) -> u16 {
    serve_once_and(wasm, data, |_| ())
}

/// As [`serve_once`], calling `look` with the server's pid after the answer.
fn serve_once_and(wasm: &Path, data: &Path, look: impl FnOnce(u32)) -> u16 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_verge"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-access-log",
            "--app",
        ])
        .arg(wasm)
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // "verge: serving NAME on http://ADDR..."
    let line = common::first_line(&mut child);
    let addr = line[line.find("http://").unwrap_or_else(|| panic!("{line}")) + 7..]
        .split(|c: char| c.is_whitespace() || c == '/')
        .next()
        .unwrap()
        .to_owned();
    let (status, _) = common::request(addr.as_str(), "GET", "/", "x.test", "", b"").unwrap();
    look(child.id());
    let _ = child.kill();
    let _ = child.wait();
    status
}

fn artifacts(data: &Path) -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
    std::fs::read_dir(data.join("compiled"))
        .unwrap()
        .flatten()
        .map(|e| (e.path(), e.metadata().unwrap().modified().unwrap()))
        .collect()
}

#[test]
fn a_second_start_of_an_unchanged_component_loads_its_artifact() {
    let wasm = common::guests()["hello"].clone();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(serve_once(&wasm, dir.path()), 200);
    let first = artifacts(dir.path());
    assert_eq!(first.len(), 1, "{first:?}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(serve_once(&wasm, dir.path()), 200);
    assert_eq!(
        artifacts(dir.path()),
        first,
        "loaded, not compiled and written again"
    );
}

#[test]
fn a_first_start_serves_its_artifact_mapped_from_the_file() {
    let wasm = common::guests()["hello"].clone();
    let dir = tempfile::tempdir().unwrap();
    let mut maps = String::new();
    let status = serve_once_and(&wasm, dir.path(), |pid| {
        maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    });
    assert_eq!(status, 200);
    let artifact = artifacts(dir.path()).remove(0).0;
    let artifact = artifact.canonicalize().unwrap();
    assert!(
        maps.lines()
            .any(|l| l.ends_with(artifact.to_str().unwrap())),
        "{} is not mapped by the server that compiled it",
        artifact.display()
    );
}

#[test]
fn a_deploy_serves_its_artifact_mapped_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = common::start(dir.path());
    common::deploy(&d, "acme", "hello", "h", "h.test");
    let (status, _) = common::request(d.data, "GET", "/", "h.test", "", b"").unwrap();
    assert_eq!(status, 200);
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", d.child.id())).unwrap();
    let compiled = artifacts(dir.path());
    assert_eq!(compiled.len(), 1, "{compiled:?}");
    let artifact = compiled[0].0.canonicalize().unwrap();
    assert!(
        maps.lines()
            .any(|l| l.ends_with(artifact.to_str().unwrap())),
        "{} is not mapped by the daemon it was deployed to",
        artifact.display()
    );
}
