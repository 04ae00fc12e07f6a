//! Guest logs kept per app and read back through the admin API, as
//! `verge logs APP [--follow]` does.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use verge_tests::Platform;

async fn logs(p: &Platform, token: &str, app: &str, query: &str) -> (u16, Value) {
    let path = format!("/v1/tenants/acme/apps/{app}/logs{query}");
    let r = p.admin("GET", &path, Some(token), Vec::new()).await;
    let value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status.as_u16(), value)
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_logs_are_kept_per_app_and_can_be_followed() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path()).await;
    let token = p.tenant("acme").await;
    let other = p.tenant("other").await;
    let manifest = json!({ "routes": ["echo.test"] });
    let r = p
        .deploy_manifest(&token, "acme", "echo", manifest, "echo")
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let reply = p.get("echo.test", "/first").await;
    let request_id = reply.header("verge-request-id").to_owned();
    let (status, first) = logs(&p, &token, "echo", "").await;
    assert_eq!(status, 200);
    let lines = first["lines"].as_array().unwrap();
    let text: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["level"].as_str().unwrap(), l["message"].as_str().unwrap()))
        .collect();
    // The guest's lines, then the line the request ended with (what
    // `verge logs` shows like `wrangler tail`).
    assert_eq!(
        text[..3],
        [
            ("info", "echo /first"),
            ("info", "stdout line from echo"),
            ("warn", "stderr line from echo"),
        ]
    );
    assert_eq!(text.len(), 4, "{text:?}");
    assert_eq!(text[3].0, "request");
    assert!(text[3].1.starts_with("GET /first 200 "), "{text:?}");
    assert_eq!(lines[3]["request"]["status"], 200);
    assert!(lines.iter().all(|l| l["request_id"] == request_id.as_str()));
    let next = first["next"].as_u64().unwrap();
    assert_eq!(next, 4);

    // A follower waits for the next request's lines.
    let started = Instant::now();
    let follow = {
        let query = format!("?after={next}&wait=10");
        let p = &p;
        let token = token.clone();
        async move { logs(p, &token, "echo", &query).await }
    };
    let request = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        p.get("echo.test", "/second").await
    };
    let ((status, followed), _) = tokio::join!(follow, request);
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woke on the new line"
    );
    let lines = followed["lines"].as_array().unwrap();
    assert_eq!(lines[0]["message"], "echo /second");
    assert_eq!(lines[0]["seq"], 5);

    // Nothing new: an empty page after the wait.
    let (_, empty) = logs(&p, &token, "echo", "?after=8&wait=0").await;
    assert_eq!(empty["lines"], json!([]));
    assert_eq!(empty["next"], 8);
    // Another tenant cannot read them; unknown apps are 404.
    assert_eq!(logs(&p, &other, "echo", "").await.0, 403);
    assert_eq!(logs(&p, &token, "nope", "").await.0, 404);
}
