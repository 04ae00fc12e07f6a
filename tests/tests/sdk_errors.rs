//! A handler returning `Result<Response, verge_sdk::Error>` uses `?` on the
//! SDK's errors and on std errors: 500, or 502 when a fetch failed, a short
//! body pointing at the request id, and the full message in the log.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use verge_tests::TestServer;

#[tokio::test(flavor = "multi_thread")]
async fn question_mark_errors_answer_their_documented_status() {
    let server = TestServer::start(&["fallible"]).await;
    assert_eq!(server.get("/fallible/ok").await.status, 200);
    for (path, status) in [
        ("/fallible/kv", 500),
        ("/fallible/parse", 500),
        ("/fallible/fetch", 502),
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        let id = reply.header("verge-request-id");
        assert_eq!(id.len(), 16, "{path}: a request id to look up");
        assert!(
            reply.text().contains("verge-request-id"),
            "{path}: {}",
            reply.text()
        );
        assert!(
            !reply.text().contains("denied") && !reply.text().contains("invalid digit"),
            "{path}: internals stay in the log: {}",
            reply.text()
        );
        assert_eq!(
            reply.header("verge-error"),
            "",
            "{path}: the guest answered"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_functions_own_status_and_message_go_out() {
    let server = TestServer::start(&["fallible"]).await;
    let reply = server.get("/fallible/custom").await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert_eq!(reply.text(), "no such thing\n");
    assert_eq!(reply.header("verge-error"), "", "the guest answered");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn query_values_are_decoded_and_repeated_ones_all_given() {
    let server = TestServer::start(&["fallible"]).await;
    let reply = server
        .get("/fallible/query?q=a%20b+c%26d&t=1&t=two&t=%E2%9C%93")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "q=a b c&d|raw=a%20b+c%26d|t=1,two,\u{2713}\n");
    server.shutdown().await;
}

/// One component with a streaming route and JSON routes: the host streams
/// every body of it, and the JSON route still reads its whole body.
#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_route_and_a_json_route_serve_side_by_side() {
    let server = TestServer::start(&["fallible"]).await;
    let post = |path: &str, body: &'static [u8]| {
        Request::post(server.url(path))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body)))
            .unwrap()
    };
    let reply = server
        .send(post("/fallible/json", br#"{"name":"widget"}"#))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "name=widget\n");
    let reply = server
        .send(post("/fallible/stream", &[b'x'; 100_000]))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "streamed=100000\n");
    // Malformed JSON is the client's error, with the parser's reason.
    let reply = server.send(post("/fallible/json", br#"{"name":"#)).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.text().contains("not valid JSON"), "{}", reply.text());
    assert!(reply.text().contains("EOF"), "{}", reply.text());
    let reply = server.send(post("/fallible/json", br#"{"nom":"x"}"#)).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.text().contains("missing field `name`"),
        "{}",
        reply.text()
    );
    server.shutdown().await;
}
