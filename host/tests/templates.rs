//! Every `verge new --template` builds and serves as generated: the http
//! and kv-counter handlers, the caching proxy in front of a real origin,
//! and the plain wasi:http component.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn verge() -> Command {
    common::verge_building()
}

struct Served(Child, SocketAddr);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `verge new NAME --template T` in `dir`, then `verge serve --app` on it.
fn new_and_serve(dir: &Path, template: &str, extra: &[&str]) -> Served {
    let name = format!("tpl-{template}");
    let crate_dir = dir.join(&name);
    let out = verge()
        .args(["new", &name, "--template", template, "--dir"])
        .arg(&crate_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = verge()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join(format!("{name}-data")))
        .arg("--app")
        .arg(&crate_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{template}: {line}"))
        .parse()
        .unwrap();
    Served(child, addr)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    common::request(addr, "GET", path, "x", "", b"").unwrap()
}

#[test]
fn the_template_list_names_every_template() {
    let out = verge().args(["new", "--list"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["http", "kv-counter", "proxy", "wasi-http"] {
        assert!(text.contains(name), "{text}");
    }
    let out = verge()
        .args(["new", "x", "--template", "nope"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("there are: http, kv-counter"));
}

#[test]
fn each_template_builds_and_serves_as_generated() {
    let dir = tempfile::tempdir().unwrap();
    let http = new_and_serve(dir.path(), "http", &[]);
    assert_eq!(get(http.1, "/"), (200, "hello from tpl-http\n".into()));

    let counter = new_and_serve(dir.path(), "kv-counter", &[]);
    assert_eq!(get(counter.1, "/a").1, "/a has been visited 1 times\n");
    assert_eq!(get(counter.1, "/a").1, "/a has been visited 2 times\n");

    let wasi = new_and_serve(dir.path(), "wasi-http", &[]);
    let (status, body) = get(wasi.1, "/p?q=1");
    assert_eq!(status, 200);
    // Streamed: chunked framing around the text.
    assert!(
        body.contains("hello from tpl-wasi-http at /p?q=1\n"),
        "{body}"
    );

    // A real origin on loopback, counting what reaches it.
    let origin = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin_addr = origin.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    std::thread::spawn(move || {
        for stream in origin.incoming().take(10) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let path = head.split_whitespace().nth(1).unwrap_or("?").to_owned();
            seen.fetch_add(1, Ordering::SeqCst);
            let body = format!("origin saw {path}");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncache-control: max-age=60\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let origin_url = format!("http://{origin_addr}");
    let var = format!("origin={origin_url}");
    let proxy = new_and_serve(
        dir.path(),
        "proxy",
        &[
            "--var",
            &var,
            "--allow-host",
            &origin_url,
            "--allow-outbound-cidr",
            "127.0.0.1/32",
        ],
    );
    assert_eq!(
        get(proxy.1, "/item?id=7"),
        (200, "origin saw /item?id=7".into())
    );
    assert_eq!(get(proxy.1, "/item?id=7").1, "origin saw /item?id=7");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the second GET came from the edge cache"
    );
}

#[test]
fn a_new_project_carries_its_own_sdk_and_no_path_back_to_verges_sources() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("anywhere");
    let out = verge()
        .args(["new", "anywhere", "--dir"])
        .arg(&crate_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let sdk = format!(".verge/sdk-{}", env!("CARGO_PKG_VERSION"));
    assert!(
        manifest.contains(&format!(r#"verge-sdk = {{ path = "{sdk}/sdk" }}"#)),
        "{manifest}"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert!(
        !manifest.contains(&*root.to_string_lossy()),
        "a path into verge's sources: {manifest}"
    );
    let packed = crate_dir.join(&sdk);
    for file in ["sdk/src/lib.rs", "sdk/macros/src/lib.rs", "wit/world.wit"] {
        assert!(packed.join(file).is_file(), "{file} is not packed");
    }
    for file in ["sdk/Cargo.toml", "sdk/macros/Cargo.toml"] {
        let text = std::fs::read_to_string(packed.join(file)).unwrap();
        assert!(!text.contains("workspace"), "{file} inherits: {text}");
        assert!(text.contains("version = "), "{file}: {text}");
    }
}
