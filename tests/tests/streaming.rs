//! Responses that start before the handler returns, end to end: a real
//! guest (`stream-probe`) passing fetched bodies through and writing its
//! body in chunks, read by a real client frame by frame.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};
use verge::server::HttpLimits;
use verge_tests::origin::{ChannelBody, Origin};
use verge_tests::{Setup, TestServer, query_value};

const MIB: usize = 1 << 20;

async fn server(max_response_body_bytes: usize) -> TestServer {
    let setup = Setup {
        http: HttpLimits {
            max_response_body_bytes,
            ..HttpLimits::default()
        },
        ..Setup::loopback()
    };
    TestServer::start_with(&["stream-probe"], setup).await
}

/// What a client read of one response, frame by frame.
struct Streamed {
    status: u16,
    bytes: usize,
    /// When the first body byte arrived, from the request.
    first_byte: Option<Duration>,
    /// Whether the body ended with an error (cut short) instead of its end.
    failed: bool,
    /// Each chunk's text while it is small, for the SSR test.
    text: String,
    /// `on_chunk` results, one per frame.
    seen: Vec<u64>,
}

/// GETs `path` and reads the body as it arrives, calling `on_chunk` after
/// every frame.
async fn stream(s: &TestServer, path: &str, mut on_chunk: impl FnMut() -> u64) -> Streamed {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let started = Instant::now();
    let res = client
        .get(s.url(path).parse().unwrap())
        .await
        .expect("response head");
    let status = res.status().as_u16();
    let mut body = res.into_body();
    let mut out = Streamed {
        status,
        bytes: 0,
        first_byte: None,
        failed: false,
        text: String::new(),
        seen: Vec::new(),
    };
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            out.failed = true;
            break;
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        out.first_byte.get_or_insert_with(|| started.elapsed());
        out.bytes += data.len();
        if out.text.len() < 4096 {
            out.text.push_str(&String::from_utf8_lossy(&data));
        }
        out.seen.push(on_chunk());
    }
    out
}

#[tokio::test]
async fn a_64_mib_body_passes_through_as_it_arrives() {
    let origin = Origin::start().await;
    let s = server(128 * MIB).await;
    // 64 chunks of 1 MiB, 5 ms apart: the origin takes 300 ms or more.
    let url = origin.url("/stream?chunks=64&size=1048576&ms=5");
    let r = stream(
        &s,
        &format!("/stream-probe?mode=pass&url={}", query_value(&url)),
        || origin.streams_sent(),
    )
    .await;
    assert_eq!((r.status, r.bytes, r.failed), (200, 64 * MIB, false));
    // The client had its first byte before the origin had sent its last.
    assert_eq!(
        r.seen[0], 0,
        "the first chunk came before the origin was done"
    );
    assert_eq!(origin.streams_sent(), 1);
}

#[tokio::test]
async fn a_passed_through_body_is_cut_exactly_at_the_cap() {
    let origin = Origin::start().await;
    let s = server(MIB).await;
    let url = origin.url("/stream?chunks=3&size=700000");
    let r = stream(
        &s,
        &format!("/stream-probe?mode=pass&url={}", query_value(&url)),
        || 0,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.bytes, MIB, "exactly the cap");
    assert!(r.failed, "the client sees the body cut short, not complete");
    // At the cap exactly, nothing is cut.
    let url = origin.url("/stream?chunks=2&size=524288");
    let r = stream(
        &s,
        &format!("/stream-probe?mode=pass&url={}", query_value(&url)),
        || 0,
    )
    .await;
    assert_eq!((r.bytes, r.failed), (MIB, false));
}

#[tokio::test]
async fn a_written_body_is_cut_exactly_at_the_cap() {
    let s = server(MIB).await;
    let r = stream(&s, "/stream-probe?mode=big&kb=1024", || 0).await;
    assert_eq!((r.status, r.bytes, r.failed), (200, MIB, false));
    let r = stream(&s, "/stream-probe?mode=big&kb=1100", || 0).await;
    assert_eq!((r.bytes, r.failed), (MIB, true));
}

#[tokio::test]
async fn streamed_html_reaches_the_client_while_the_handler_runs() {
    let s = server(MIB).await;
    let started = Instant::now();
    let r = stream(&s, "/stream-probe?mode=ssr&n=5&ms=200", || {
        u64::try_from(started.elapsed().as_millis()).unwrap()
    })
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    assert!(
        r.first_byte.unwrap() < Duration::from_millis(100),
        "first chunk after {:?}",
        r.first_byte
    );
    // Chunks arrive as written, not all at the end.
    assert_eq!(r.seen.len(), 5, "{:?}", r.seen);
    assert!(r.seen[4] - r.seen[0] >= 700, "{:?}", r.seen);
}

#[tokio::test]
async fn reading_the_start_of_a_body_leaves_the_rest_undownloaded() {
    let origin = Origin::start().await;
    let s = server(MIB).await;
    let url = origin.url("/stream?chunks=64&size=1048576&ms=5");
    let r = s
        .get(&format!(
            "/stream-probe?mode=head&n=100&url={}",
            query_value(&url)
        ))
        .await;
    assert_eq!(r.text(), "status 200 first 100 bytes");
    // The body was dropped: the origin never sent it to the end.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(origin.streams_sent(), 0);
}

#[tokio::test]
async fn a_guest_failing_mid_body_cuts_it_and_others_still_serve() {
    let s = server(MIB).await;
    let r = stream(&s, "/stream-probe?mode=trap", || 0).await;
    assert_eq!((r.status, r.text.as_str(), r.failed), (200, "part", true));
    let r = s.get("/stream-probe?mode=plain").await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "plain"));
    // A fetch that fails before the head is a plain 502.
    let r = s
        .get("/stream-probe?mode=pass&url=http://127.0.0.1:1/nothing")
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
}

/// POSTs `total` bytes to `path` with a declared length; returns the
/// response body as text.
async fn upload(s: &TestServer, path: &str, total: usize) -> String {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::post(s.url(path))
        .body(Full::new(Bytes::from(vec![b'u'; total])))
        .unwrap();
    let res = client.request(req).await.expect("response");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn a_request_body_read_as_a_stream_is_never_buffered() {
    let s = TestServer::start_with(
        &["upload-probe"],
        Setup {
            http: HttpLimits {
                max_request_body_bytes: 128 * MIB,
                ..HttpLimits::default()
            },
            ..Setup::default()
        },
    )
    .await;
    // 64 MiB: four times the default buffered-body cap of 16 MiB.
    let text = upload(&s, "/upload-probe?mode=count", 64 * MIB).await;
    assert_eq!(text, format!("{} bytes buffered 0", 64 * MIB));
}

#[tokio::test]
async fn the_request_body_cap_applies_as_bytes_arrive() {
    let s = TestServer::start_with(
        &["upload-probe"],
        Setup {
            http: HttpLimits {
                max_request_body_bytes: MIB,
                ..HttpLimits::default()
            },
            ..Setup::default()
        },
    )
    .await;
    // Without a declared length the guest reads up to the cap, then fails.
    let client = Client::builder(TokioExecutor::new()).build_http::<ChannelBody>();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let req = http::Request::post(s.url("/upload-probe?mode=count"))
        .body(ChannelBody(rx))
        .unwrap();
    let sender = tokio::spawn(async move {
        for _ in 0..32 {
            if tx.send(Bytes::from(vec![b'u'; 64 << 10])).await.is_err() {
                return;
            }
        }
    });
    let res = client.request(req).await.expect("response");
    let text = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(text.starts_with("error too-large after "), "{text}");
    let read: usize = text
        .trim_start_matches("error too-large after ")
        .trim_end_matches(" bytes")
        .parse()
        .unwrap();
    assert!(read <= MIB, "{text}");
    sender.abort();
    // A declared length past the cap is refused before the guest runs.
    let text = upload(&s, "/upload-probe?mode=count", 2 * MIB).await;
    assert!(!text.contains("bytes buffered"), "{text}");
}

#[tokio::test]
async fn a_function_reads_the_first_chunk_before_the_client_sends_the_rest() {
    let s = TestServer::start(&["upload-probe"]).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<ChannelBody>();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let req = http::Request::post(s.url("/upload-probe?mode=first"))
        .body(ChannelBody(rx))
        .unwrap();
    tx.send(Bytes::from_static(b"hello")).await.unwrap();
    // The rest is only sent after the answer: a host that buffered the
    // body first would never answer.
    let res = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .expect("answered before the body ended")
        .unwrap();
    drop(tx);
    let text = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&text[..], b"first 5 bytes");
}

#[tokio::test]
async fn a_client_that_stops_reading_holds_a_writing_guest_only_until_its_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let setup = Setup {
        http: HttpLimits {
            max_response_body_bytes: 128 * MIB,
            ..HttpLimits::default()
        },
        limits: verge::runtime::Limits {
            wall_clock: Duration::from_millis(800),
            ..verge::runtime::Limits::default()
        },
        ..Setup::default()
    };
    let s = TestServer::start_with(&["stream-probe"], setup).await;
    // Asks for 64 MiB, then reads nothing: the guest's writes back up.
    let mut stalled = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    stalled
        .write_all(b"GET /stream-probe?mode=big&kb=65536 HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Others are served meanwhile.
    let r = s.get("/stream-probe?mode=plain").await;
    assert_eq!(r.text(), "plain");
    // Past the deadline the guest is stopped and the body ends short: the
    // stalled client reads what was queued, then the connection closes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the stalled connection was never closed");
    assert!(
        got.len() < 64 * MIB,
        "the body was cut short ({} bytes)",
        got.len()
    );
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got[..64.min(got.len())])
    );
}
