//! The HTTP conformance cases against the `verge` binary (child process):
//! malformed and hostile request heads and bodies get their status, on the
//! data plane and the admin API, and never reach a guest
//! (docs/security.md). Traffic stays on 127.0.0.1.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

mod common;

use common::{Options, read_until_closed, start_with, status_of};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Raw bytes in, status out.
fn raw(addr: SocketAddr, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    // A refusal may come (and the socket close) before all is written.
    let _ = s.write_all(request);
    let (response, _) = read_until_closed(&mut s, Duration::from_secs(10));
    status_of(&response)
}

#[test]
fn conformance_cases_get_their_status_and_never_reach_a_guest() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(
        dir.path(),
        &Options {
            config: Some("[connections]\nbody_idle_timeout_ms = 1000\n"),
            ..Options::default()
        },
    );
    common::deploy(&d, "t", "echo", "echo", "echo.test");
    let close = "connection: close\r\n\r\n";
    let cases: Vec<(String, Vec<u8>, u16)> = vec![
        (
            "two Host headers".into(),
            format!("GET / HTTP/1.1\r\nhost: echo.test\r\nhost: other.test\r\n{close}").into(),
            400,
        ),
        (
            "Host with user info".into(),
            format!("GET / HTTP/1.1\r\nhost: a@echo.test\r\n{close}").into(),
            400,
        ),
        (
            "HTTP/1.1 without Host (RFC 9112 §3.2)".into(),
            format!("GET / HTTP/1.1\r\n{close}").into(),
            400,
        ),
        (
            "HTTP/1.0 without Host: the address it came to, which no tenant holds".into(),
            format!("GET / HTTP/1.0\r\n{close}").into(),
            404,
        ),
        (
            "Host with a port past 65535".into(),
            format!("GET / HTTP/1.1\r\nhost: ECHO.TEST:99999\r\n{close}").into(),
            400,
        ),
        (
            "TRACE".into(),
            format!("TRACE / HTTP/1.1\r\nhost: echo.test\r\n{close}").into(),
            405,
        ),
        (
            "chunked twice".into(),
            format!(
                "POST / HTTP/1.1\r\nhost: echo.test\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n{close}0\r\n\r\n"
            )
            .into(),
            400,
        ),
        (
            "a coding other than chunked".into(),
            format!(
                "POST / HTTP/1.1\r\nhost: echo.test\r\ntransfer-encoding: gzip, chunked\r\n{close}0\r\n\r\n"
            )
            .into(),
            400,
        ),
        (
            "bare-LF line endings: accepted, as RFC 9112 §2.2 lets a recipient".into(),
            b"GET / HTTP/1.1\nhost: echo.test\nconnection: close\n\n".to_vec(),
            200,
        ),
        (
            "CONNECT".into(),
            format!("CONNECT echo.test:443 HTTP/1.1\r\nhost: echo.test:443\r\n{close}").into(),
            405,
        ),
        (
            "OPTIONS *".into(),
            format!("OPTIONS * HTTP/1.1\r\nhost: echo.test\r\n{close}").into(),
            204,
        ),
        (
            "70 KiB URI".into(),
            format!(
                "GET /{} HTTP/1.1\r\nhost: echo.test\r\n{close}",
                "a".repeat(70 << 10)
            )
            .into(),
            414,
        ),
        (
            "9 KiB URI".into(),
            format!(
                "GET /{} HTTP/1.1\r\nhost: echo.test\r\n{close}",
                "a".repeat(9 << 10)
            )
            .into(),
            414,
        ),
        (
            "a well-formed request".into(),
            format!("GET / HTTP/1.1\r\nhost: echo.test\r\n{close}").into(),
            200,
        ),
    ];
    for (name, request, want) in &cases {
        assert_eq!(raw(d.data, request), *want, "{name}");
    }
    // OPTIONS * is the host's answer: an Allow header, no guest body.
    let mut s = TcpStream::connect(d.data).unwrap();
    s.write_all(format!("OPTIONS * HTTP/1.1\r\nhost: echo.test\r\n{close}").as_bytes())
        .unwrap();
    let (response, _) = read_until_closed(&mut s, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(text.contains("allow: get"), "{text}");

    // The admin API: a body over its cap is 413; a huge declared length is
    // refused before any byte; a declared body that never comes is cut.
    let auth = format!("authorization: Bearer {}\r\n", common::TOKEN);
    let mut big = format!(
        "PUT /v1/tenants/t/apps/x HTTP/1.1\r\nhost: a\r\n{auth}content-length: {}\r\n\r\n",
        (1 << 20) + 1
    )
    .into_bytes();
    big.resize(big.len() + (1 << 20) + 1, b' ');
    assert_eq!(raw(d.admin, &big), 413);
    let chunked = format!(
        "PUT /v1/tenants/t/apps/x HTTP/1.1\r\nhost: a\r\n{auth}transfer-encoding: chunked\r\n\r\n100001\r\n{}\r\n0\r\n\r\n",
        " ".repeat((1 << 20) + 1)
    );
    assert_eq!(raw(d.admin, chunked.as_bytes()), 413, "no declared length");
    let huge = format!(
        "PUT /v1/tenants/t/apps/x HTTP/1.1\r\nhost: a\r\n{auth}content-length: 99999999999\r\n\r\n"
    );
    assert_eq!(raw(d.admin, huge.as_bytes()), 413);
    let started = Instant::now();
    let silent = format!(
        "PUT /v1/tenants/t/apps/x HTTP/1.1\r\nhost: a\r\n{auth}content-length: 100\r\n\r\n"
    );
    assert_eq!(raw(d.admin, silent.as_bytes()), 408);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The data plane too: a declared body that never comes is 408.
    let started = Instant::now();
    let silent = "POST / HTTP/1.1\r\nhost: echo.test\r\ncontent-length: 100\r\n\r\nabc";
    assert_eq!(raw(d.data, silent.as_bytes()), 408);
    assert!(started.elapsed() < Duration::from_secs(5));
}
