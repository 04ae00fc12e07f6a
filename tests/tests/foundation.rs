//! End to end: the real server, real guests, real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::time::{Duration, Instant};
use verge::runtime::{DEFAULT_WALL_CLOCK, FUEL_PER_CPU_MS, Limits};
use verge::server::limits::{
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_REQUEST_BODY_BYTES, DEFAULT_MAX_RESPONSE_BODY_BYTES,
    DEFAULT_MAX_URI_BYTES,
};
use verge_tests::{Setup, TEST_GUESTS, TestServer, repo_root};

#[tokio::test(flavor = "multi_thread")]
async fn hello_answers_with_status_body_and_headers() {
    let server = TestServer::start(&["hello"]).await;
    let reply = server.get("/hello/x").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "hello from verge /hello/x\n");
    assert_eq!(reply.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(reply.header("verge-request-id").len(), 16);
    assert_eq!(reply.header("verge-error"), "");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_route_is_404_no_route() {
    let server = TestServer::start(&["hello"]).await;
    let reply = server.get("/nothing-here").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("verge-error"), "no-route");
    assert!(reply.text().contains(reply.header("verge-request-id")));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_sees_method_uri_headers_body_and_config() {
    let setup = Setup {
        vars: vec![("greeting".into(), "hej".into())],
        ..Setup::default()
    };
    let server = TestServer::start_with(&["echo"], setup).await;
    let req = Request::post(server.url("/echo/p?q=1"))
        .header("x-custom", "v1")
        .header("x-request-id", "incoming-id-1")
        .body(Full::new(Bytes::from_static(b"12345")))
        .unwrap();
    let reply = server.send(req).await;
    let text = reply.text();
    assert_eq!(reply.status, 200, "{text}");
    assert!(text.contains("method=POST\n"), "{text}");
    assert!(
        text.contains(&format!("uri=http://{}/echo/p?q=1\n", server.addr)),
        "{text}"
    );
    assert!(text.contains("body=5\n"), "{text}");
    assert!(text.contains("greeting=hej\n"), "{text}");
    assert!(text.contains("x-custom=v1"), "{text}");
    assert_eq!(reply.header("x-echo"), "1");
    // A client's own id is not taken (only a trusted proxy's is): the
    // logs' ids stay unique.
    let id = reply.header("verge-request-id");
    assert_ne!(id, "incoming-id-1");
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    server.shutdown().await;
}

/// After a misbehaving guest, the server and a healthy app keep serving.
async fn assert_fails_then_hello_serves(server: &TestServer, path: &str, status: u16, code: &str) {
    let reply = server.get(path).await;
    assert_eq!(reply.status, status, "{path}: {}", reply.text());
    assert_eq!(reply.header("verge-error"), code, "{path}");
    assert!(
        !reply.text().contains("panicked"),
        "details must not reach the client"
    );
    let hello = server.get("/hello/after").await;
    assert_eq!(hello.status, 200, "hello after {path}");
    assert_eq!(hello.text(), "hello from verge /hello/after\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_guest_gets_500_and_the_next_request_succeeds() {
    let server = TestServer::start(&["hello", "panics"]).await;
    assert_fails_then_hello_serves(&server, "/panics", 500, "guest-error").await;
    assert_fails_then_hello_serves(&server, "/panics/again", 500, "guest-error").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_loops_forever_gets_503_cpu_limit_quickly() {
    let server = TestServer::start(&["hello", "cpu-spin"]).await;
    let started = Instant::now();
    assert_fails_then_hello_serves(&server, "/cpu-spin", 503, "cpu-limit").await;
    // 50 ms of fuel; even a slow CI machine is far inside the 30 s deadline.
    assert!(
        started.elapsed() < DEFAULT_WALL_CLOCK / 3,
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_looping_guest_without_fuel_limit_hits_the_wall_clock_as_504() {
    // Fuel high enough that the wall clock (300 ms) fires first.
    let setup = Setup {
        limits: Limits {
            fuel: 1_000_000 * FUEL_PER_CPU_MS,
            wall_clock: Duration::from_millis(300),
            ..Limits::default()
        },
        ..Setup::default()
    };
    let server = TestServer::start_with(&["hello", "cpu-spin"], setup).await;
    let started = Instant::now();
    assert_fails_then_hello_serves(&server, "/cpu-spin", 504, "timeout").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_sleeping_in_a_host_call_past_the_deadline_gets_504() {
    let setup = Setup {
        limits: Limits {
            wall_clock: Duration::from_millis(300),
            ..Limits::default()
        },
        ..Setup::default()
    };
    let server = TestServer::start_with(&["hello", "sleeps-past-deadline"], setup).await;
    let ok = server.get("/sleeps-past-deadline?ms=50").await;
    assert_eq!(
        (ok.status.as_u16(), ok.text()),
        (200, "slept 50 ms".to_owned())
    );
    let started = Instant::now();
    assert_fails_then_hello_serves(&server, "/sleeps-past-deadline?ms=60000", 504, "timeout").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bomb_gets_503_memory_limit() {
    let server = TestServer::start(&["hello", "memory-bomb"]).await;
    assert_fails_then_hello_serves(&server, "/memory-bomb", 503, "memory-limit").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_at_the_limit_succeeds_and_one_page_past_it_fails() {
    let limit_pages = Limits::default().memory_bytes / 65536;
    let server = TestServer::start(&["hello", "memory-grow"]).await;
    let at = server
        .get(&format!("/memory-grow?pages={limit_pages}"))
        .await;
    assert_eq!(at.status, 200, "{}", at.text());
    assert_eq!(at.text(), format!("pages={limit_pages}"));
    let path = format!("/memory-grow?pages={}", limit_pages + 1);
    assert_fails_then_hello_serves(&server, &path, 503, "memory-limit").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stack_overflow_gets_500_guest_error() {
    let server = TestServer::start(&["hello", "stack-overflow"]).await;
    assert_fails_then_hello_serves(&server, "/stack-overflow", 500, "guest-error").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_status_and_header_get_502() {
    let server = TestServer::start(&["hello", "invalid-status", "invalid-header"]).await;
    assert_fails_then_hello_serves(&server, "/invalid-status", 502, "bad-guest-response").await;
    assert_fails_then_hello_serves(&server, "/invalid-header", 502, "bad-guest-response").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn response_body_at_the_cap_passes_and_past_it_gets_502() {
    let cap_mib = DEFAULT_MAX_RESPONSE_BODY_BYTES >> 20;
    let server = TestServer::start(&["hello", "huge-response"]).await;
    let at = server.get(&format!("/huge-response?mib={cap_mib}")).await;
    assert_eq!(at.status, 200);
    assert_eq!(at.body.len(), DEFAULT_MAX_RESPONSE_BODY_BYTES);
    let path = format!("/huge-response?mib={}", cap_mib + 1);
    assert_fails_then_hello_serves(&server, &path, 502, "bad-guest-response").await;
    server.shutdown().await;
}

fn post(server: &TestServer, path: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::post(server.url(path))
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn request_body_at_the_cap_passes_and_past_it_gets_413() {
    let server = TestServer::start(&["echo"]).await;
    let at = server
        .send(post(
            &server,
            "/echo",
            vec![7; DEFAULT_MAX_REQUEST_BODY_BYTES],
        ))
        .await;
    assert_eq!(at.status, 200);
    assert!(
        at.text()
            .contains(&format!("body={DEFAULT_MAX_REQUEST_BODY_BYTES}\n"))
    );
    // A declared length past the cap is refused before the body is read.
    // (A client still writing a large body may see the connection close
    // before it reads the 413, so this sends the head only.)
    let head = format!(
        "POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n",
        DEFAULT_MAX_REQUEST_BODY_BYTES + 1
    );
    let past = server.raw(head.as_bytes()).await;
    assert!(past.starts_with("HTTP/1.1 413"), "{past}");
    assert!(past.contains("verge-error: body-too-large"), "{past}");
    // A chunked body with no declared length is cut as soon as it passes the cap.
    let mut chunked =
        String::from("POST /echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n");
    chunked.push_str(&format!("{:x}\r\n{}\r\n", 1024, "z".repeat(1024)));
    let small = server.raw(format!("{chunked}0\r\n\r\n").as_bytes()).await;
    assert!(small.starts_with("HTTP/1.1 200"), "{small}");
    assert!(small.contains("body=1024\n"), "{small}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_get_431_and_a_long_uri_gets_414() {
    let server = TestServer::start(&["echo"]).await;
    let big = "a".repeat(DEFAULT_MAX_HEADER_BYTES + 1);
    let req = Request::get(server.url("/echo"))
        .header("x-big", big)
        .body(Full::default())
        .unwrap();
    let reply = server.send(req).await;
    assert_eq!(reply.status, 431);
    assert_eq!(reply.header("verge-error"), "headers-too-large");
    let long = format!("/echo?{}", "q".repeat(DEFAULT_MAX_URI_BYTES));
    let reply = server.get(&long).await;
    assert_eq!(reply.status, 414);
    assert_eq!(reply.header("verge-error"), "uri-too-long");
    let ok = server.get("/echo").await;
    assert_eq!(ok.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_drains_in_flight_requests_then_refuses_new_ones() {
    let server = TestServer::start(&["sleeps-past-deadline"]).await;
    let url = server.url("/sleeps-past-deadline?ms=400");
    let addr = server.addr;
    let in_flight = tokio::spawn(async move {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let res = client.get(url.parse().unwrap()).await.unwrap();
        res.status()
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.shutdown().await;
    assert_eq!(
        in_flight.await.unwrap(),
        200,
        "the in-flight request finished"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[test]
fn every_test_guest_is_listed_and_tested() {
    let dir = repo_root().join("tests/guests");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, TEST_GUESTS, "tests/guests and TEST_GUESTS differ");
    let sources: String = std::fs::read_dir(repo_root().join("tests/tests"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect();
    for guest in TEST_GUESTS {
        let used = sources.contains(&format!("\"/{guest}"))
            || sources.contains(&format!("guest(\"{guest}\")"));
        assert!(used, "guest {guest} has no end-to-end test");
    }
}
