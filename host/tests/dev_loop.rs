//! `verge new` then `verge dev` as a user runs them: the scaffold builds
//! and serves, an edit is live on the next request, a syntax error keeps
//! the last good version serving.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;

fn verge() -> Command {
    common::verge_building()
}

struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    /// The next stdout line containing `needle` (panics after 3 minutes).
    fn wait_for(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(180))
                .unwrap_or_else(|_| panic!("no line with {needle:?} in time"));
            if line.contains(needle) {
                return line;
            }
        }
    }
}

fn get(addr: SocketAddr, path: &str) -> String {
    common::request(addr, "GET", path, "x", "", b"").unwrap().1
}

#[test]
fn new_then_dev_serves_reloads_on_edit_and_survives_a_broken_build() {
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("devprobe");
    let out = verge()
        .args(["new", "devprobe", "--dir"])
        .arg(&krate)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "verge.toml",
        "README.md",
        ".cargo/config.toml",
    ] {
        assert!(krate.join(file).exists(), "{file} missing");
    }
    let again = verge()
        .args(["new", "devprobe", "--dir"])
        .arg(&krate)
        .output()
        .unwrap();
    assert!(!again.status.success(), "refuses to overwrite");
    let bad = verge().args(["new", "Bad_Name"]).output().unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid function name"));

    let mut child = verge()
        .arg("dev")
        .arg(&krate)
        .args(["--listen", "127.0.0.1:0", "--no-access-log"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let dev = Dev { child, lines };
    let ready = dev.wait_for("devprobe ready on http://");
    let addr: SocketAddr = ready
        .rsplit("http://")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(get(addr, "/"), "hello from devprobe\n");
    assert!(get(addr, "/json").contains("\"app\":\"devprobe\""));

    let lib = krate.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        source.replace("from devprobe", "from the edited devprobe"),
    )
    .unwrap();
    dev.wait_for("reload 1 ready on");
    assert_eq!(get(addr, "/"), "hello from the edited devprobe\n");

    let mut broken = std::fs::read_to_string(&lib).unwrap();
    broken.push_str("\nfn broken(\n");
    std::fs::write(&lib, broken).unwrap();
    dev.wait_for("build failed; still serving the last good version");
    assert_eq!(get(addr, "/"), "hello from the edited devprobe\n");
}
