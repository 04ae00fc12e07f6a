//! Passing a 64 MiB body through holds only a few chunks of it: the
//! process's resident memory (server, origin and client are all in this
//! test process, alone in its binary) grows by less than 16 MiB while it
//! streams.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use verge::server::HttpLimits;
use verge_tests::origin::Origin;
use verge_tests::{Setup, TestServer, query_value};

const MIB: usize = 1 << 20;

/// Resident memory now, from `/proc/self/status`.
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn passing_64_mib_through_holds_less_than_16_mib() {
    let origin = Origin::start().await;
    let setup = Setup {
        http: HttpLimits {
            max_response_body_bytes: 128 * MIB,
            ..HttpLimits::default()
        },
        ..Setup::loopback()
    };
    let s = TestServer::start_with(&["stream-probe"], setup).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url = |chunks: usize| {
        let origin = origin.url(&format!("/stream?chunks={chunks}&size=262144"));
        s.url(&format!(
            "/stream-probe?mode=pass&url={}",
            query_value(&origin)
        ))
    };
    // Warm up every path once (allocator arenas, pooled connections).
    let warm = client.get(url(8).parse().unwrap()).await.unwrap();
    let warm = warm.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(warm.len(), 2 * MIB);
    let before = rss_bytes();
    let res = client.get(url(256).parse().unwrap()).await.unwrap();
    let mut body = res.into_body();
    let (mut bytes, mut peak) = (0, before);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            bytes += data.len();
        }
        peak = peak.max(rss_bytes());
    }
    assert_eq!(bytes, 64 * MIB);
    let grew = peak.saturating_sub(before);
    assert!(grew < 16 * MIB, "RSS grew by {} KiB", grew / 1024);
    eprintln!(
        "RSS grew by {} KiB while 64 MiB passed through",
        grew / 1024
    );
}
