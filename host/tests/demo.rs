//! `verge demo` on a fresh data dir: every printed `curl` works, the image
//! example's included (it resizes a sample from the demo's own origin).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The raw response to `GET path` with `Host: host`: status and body bytes.
fn get(addr: SocketAddr, host: &str, path: &str) -> (u16, Vec<u8>, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    (status, out[split + 4..].to_vec(), head)
}

#[test]
fn every_printed_curl_of_the_demo_answers_and_the_image_is_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut child = Command::new(env!("CARGO_BIN_EXE_verge"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("demo"))
        .env("CARGO_TARGET_DIR", root.join("target/guests"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let started = Instant::now();
    for line in stdout.lines() {
        let line = line.unwrap();
        let done = line.contains("ready; stop with Ctrl-C");
        lines.push(line);
        if done || started.elapsed() > Duration::from_secs(600) {
            break;
        }
    }
    let curls: Vec<&String> = lines
        .iter()
        .filter(|l| {
            l.trim_start().starts_with(|c: char| c.is_ascii_lowercase())
                && l.contains("curl -i http://")
        })
        .collect();
    assert!(curls.len() >= 6, "{lines:#?}");
    assert!(
        curls.iter().any(|l| l.contains("aggregate.localhost")),
        "{lines:#?}"
    );
    for line in curls {
        let url = line.split("curl -i ").nth(1).unwrap().trim();
        let rest = url.strip_prefix("http://").unwrap();
        let (authority, path) = rest.split_at(rest.find('/').unwrap());
        let (host, port) = authority.rsplit_once(':').unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let (status, body, head) = get(addr, host, path);
        match host {
            // Without a token the auth example refuses: that is its point.
            "auth.localhost" => assert_eq!(status, 401, "{line}"),
            "redirect.localhost" => assert_eq!(status, 404, "{line}: no link yet"),
            "aggregate.localhost" => {
                assert_eq!(status, 200, "{line}: {head}");
                let doc = String::from_utf8_lossy(&body);
                assert!(doc.contains(r#""partial":false"#), "{doc}");
                assert!(doc.contains("Ada Lovelace"), "{doc}");
            }
            "image.localhost" => {
                assert_eq!(status, 200, "{line}: {head}");
                assert!(
                    head.to_ascii_lowercase()
                        .contains("content-type: image/webp"),
                    "{head}"
                );
                assert_eq!(&body[..4], b"RIFF", "a WebP image");
                assert_eq!(&body[8..12], b"WEBP");
            }
            _ => assert_eq!(status, 200, "{line}: {head}"),
        }
    }
    // The printed token gets through the auth example.
    let auth = lines
        .iter()
        .find(|l| l.contains("Bearer ") && l.contains("auth.localhost"))
        .unwrap();
    let token = auth
        .split("Bearer ")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let port = auth.rsplit(':').next().unwrap().trim_end_matches('/');
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let header = format!("authorization: Bearer {token}\r\n");
    let (status, _) = common::request(addr, "GET", "/", "auth.localhost", &header, b"").unwrap();
    assert_eq!(status, 200, "{auth}");
    let _ = child.kill();
    let _ = child.wait();
}
