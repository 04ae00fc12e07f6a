//! A handler returning `Result<Response, verge_sdk::Error>` uses `?` on the
//! SDK's errors and on std errors: 500, or 502 when a fetch failed, a short
//! body pointing at the request id, and the full message in the log.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use verge_tests::TestServer;

#[tokio::test(flavor = "multi_thread")]
async fn question_mark_errors_answer_their_documented_status() {
    let server = TestServer::start(&["fallible"]).await;
    assert_eq!(server.get("/fallible/ok").await.status, 200);
    for (path, status) in [
        ("/fallible/kv", 500),
        ("/fallible/parse", 500),
        ("/fallible/fetch", 502),
        ("/fallible/custom", 404),
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
