//! The fetch capability end to end: a real guest calling a local origin on
//! 127.0.0.1 through the host's allow-list and address policy.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::{Duration, Instant};
use verge::capabilities::fetch::{DEFAULT_MAX_SUBREQUESTS, MAX_FETCH_RESPONSE_BYTES};
use verge::runtime::Limits;
use verge_tests::origin::Origin;
use verge_tests::{Platform, Setup, TestServer, loopback_capabilities};

/// A server whose apps may fetch `allowed`, with 127.0.0.1 reachable.
async fn server(allowed: &[&str], limits: Limits) -> TestServer {
    let setup = Setup {
        allowed_hosts: allowed.iter().map(|s| (*s).to_owned()).collect(),
        capabilities: loopback_capabilities(),
        limits,
        ..Setup::default()
    };
    TestServer::start_with(&["fetch-probe"], setup).await
}

fn probe(origin: &Origin, path: &str, extra: &str) -> String {
    format!("/fetch-probe?url={}{extra}", origin.url(path))
}

#[tokio::test]
async fn allowed_fetch_reaches_the_origin() {
    let origin = Origin::start().await;
    let s = server(&["http://127.0.0.1:*"], Limits::default()).await;
    let r = s.get(&probe(&origin, "/hello", "")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok 200 17\n\nhello from origin");
    assert_eq!(origin.hits(), 1);
    let r = s.get(&probe(&origin, "/missing", "")).await;
    assert!(r.text().starts_with("ok 404 "), "{}", r.text());
}

#[tokio::test]
async fn hosts_off_the_allow_list_are_denied_without_a_request() {
    let origin = Origin::start().await;
    let s = server(&["http://allowed.example"], Limits::default()).await;
    let r = s.get(&probe(&origin, "/hello", "")).await;
    assert!(r.text().starts_with("error denied: "), "{}", r.text());
    assert!(r.text().contains("allowed_hosts"), "{}", r.text());
    let s = server(&[], Limits::default()).await;
    let r = s.get(&probe(&origin, "/hello", "")).await;
    assert!(r.text().starts_with("error denied: "), "{}", r.text());
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn private_destinations_are_denied_after_resolution() {
    let origin = Origin::start().await;
    let setup = Setup {
        allowed_hosts: vec!["http://localhost:*".into(), "http://127.0.0.1:*".into()],
        ..Setup::default()
    };
    // No operator allowance: loopback is refused by name and by literal.
    let s = TestServer::start_with(&["fetch-probe"], setup).await;
    let by_name = format!(
        "/fetch-probe?url=http://localhost:{}/hello",
        origin.addr.port()
    );
    let r = s.get(&by_name).await;
    assert!(r.text().starts_with("error denied: "), "{}", r.text());
    assert!(r.text().contains("localhost"), "{}", r.text());
    let r = s.get(&probe(&origin, "/hello", "")).await;
    assert!(r.text().starts_with("error denied: "), "{}", r.text());
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn slow_origins_end_in_a_timeout_error_not_a_hang() {
    let origin = Origin::start().await;
    let s = server(&["http://127.0.0.1:*"], Limits::default()).await;
    let started = Instant::now();
    let r = s
        .get(&probe(&origin, "/slow", "&timeout_ms=200").replace("/slow", "/slow?ms=5000"))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("error timeout"), "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn the_request_deadline_caps_a_fetch_without_its_own_timeout() {
    let origin = Origin::start().await;
    let limits = Limits {
        wall_clock: Duration::from_millis(400),
        ..Limits::default()
    };
    let s = server(&["http://127.0.0.1:*"], limits).await;
    let started = Instant::now();
    let r = s
        .get(&probe(&origin, "/slow", "").replace("/slow", "/slow?ms=5000"))
        .await;
    // Either the guest saw the timeout and answered, or the request's own
    // deadline ended it: never the origin's 5 s.
    assert!(
        r.status == 504 || r.text().starts_with("error timeout"),
        "{} {}",
        r.status,
        r.text()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn subrequests_are_capped_at_the_limit() {
    let origin = Origin::start().await;
    let limits = Limits {
        max_subrequests: 3,
        ..Limits::default()
    };
    let s = server(&["http://127.0.0.1:*"], limits).await;
    let r = s.get(&probe(&origin, "/hello", "&n=3")).await;
    assert_eq!(r.text().matches("ok 200").count(), 3, "{}", r.text());
    assert!(!r.text().contains("error"));
    let r = s.get(&probe(&origin, "/hello", "&n=4")).await;
    assert_eq!(r.text().matches("ok 200").count(), 3, "{}", r.text());
    assert!(
        r.text().contains("error too-many-subrequests"),
        "{}",
        r.text()
    );
    assert_eq!(origin.hits(), 6, "the refused call never left the host");
}

#[tokio::test]
async fn the_default_subrequest_limit_is_fifty() {
    let origin = Origin::start().await;
    let s = server(&["http://127.0.0.1:*"], Limits::default()).await;
    let n = DEFAULT_MAX_SUBREQUESTS + 1;
    let r = s
        .get(&probe(&origin, "/hello", &format!("&n={n}&echo=0")))
        .await;
    let text = r.text();
    assert_eq!(text.matches("ok 200").count(), 50, "{text}");
    assert_eq!(text.matches("error too-many-subrequests").count(), 1);
}

#[tokio::test]
async fn redirects_are_followed_only_when_asked_and_each_hop_is_checked() {
    let origin = Origin::start().await;
    let s = server(&["http://127.0.0.1:*"], Limits::default()).await;
    let to_hello = "/redirect?to=/hello";
    let r = s.get(&probe(&origin, to_hello, "")).await;
    assert!(r.text().starts_with("ok 302 "), "{}", r.text());
    let r = s.get(&probe(&origin, to_hello, "&follow=1")).await;
    assert!(r.text().starts_with("ok 200 17"), "{}", r.text());
    let off_list = "/redirect?to=http://elsewhere.example/";
    let r = s.get(&probe(&origin, off_list, "&follow=1")).await;
    assert!(r.text().starts_with("error denied: "), "{}", r.text());
    // A hop is a subrequest: with a budget of one, the redirect is refused.
    let limits = Limits {
        max_subrequests: 1,
        ..Limits::default()
    };
    let s = server(&["http://127.0.0.1:*"], limits).await;
    let r = s.get(&probe(&origin, to_hello, "&follow=1")).await;
    assert!(
        r.text().starts_with("error too-many-subrequests"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn hop_by_hop_headers_and_host_are_not_forwarded() {
    let origin = Origin::start().await;
    let s = server(&["http://127.0.0.1:*"], Limits::default()).await;
    let r = s.get(&probe(&origin, "/headers", "&hop=1")).await;
    let text = r.text();
    assert!(text.contains("x-probe: 1"), "{text}");
    assert!(!text.contains("x-secret"), "{text}");
    assert!(!text.contains("keep-alive"), "{text}");
    assert!(!text.contains("spoofed.example"), "{text}");
    assert!(text.contains(&format!("host: {}", origin.addr)), "{text}");
}

#[tokio::test]
async fn response_bodies_are_capped_at_the_limit() {
    let origin = Origin::start().await;
    let s = server(&["http://127.0.0.1:*"], Limits::default()).await;
    let at = format!("/bytes?n={MAX_FETCH_RESPONSE_BYTES}");
    let r = s.get(&probe(&origin, &at, "&echo=0")).await;
    assert_eq!(
        r.text().lines().next(),
        Some(format!("ok 200 {MAX_FETCH_RESPONSE_BYTES}").as_str())
    );
    let past = format!("/bytes?n={}", MAX_FETCH_RESPONSE_BYTES + 1);
    let r = s.get(&probe(&origin, &past, "&echo=0")).await;
    assert!(r.text().starts_with("error too-large"), "{}", r.text());
}

#[tokio::test]
async fn a_bad_allow_list_entry_is_refused_at_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path()).await;
    let token = p.tenant("acme").await;
    let manifest = serde_json::json!({
        "routes": ["bad.localhost"],
        "allowed_hosts": ["https://origin.example/path"],
    })
    .to_string()
    .into_bytes();
    let r = p
        .admin("PUT", "/v1/tenants/acme/apps/bad", Some(&token), manifest)
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("origin.example/path"), "{}", r.text());
}

#[tokio::test]
async fn names_that_do_not_resolve_are_dns_errors() {
    let s = server(&["http://does-not-exist.invalid"], Limits::default()).await;
    let r = s
        .get("/fetch-probe?url=http://does-not-exist.invalid/&timeout_ms=5000")
        .await;
    let text = r.text();
    // A resolver that cannot answer in time is a timeout; one that answers
    // says the name does not exist.
    assert!(
        text.starts_with("error dns: ") || text.starts_with("error timeout"),
        "{text}"
    );
}

#[tokio::test]
async fn a_tenant_subrequest_limit_applies_to_its_deployed_apps() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Setup::default().engine;
    let p = Platform::start_with(dir.path(), engine, loopback_capabilities()).await;
    let token = p
        .tenant_with_limits("acme", serde_json::json!({ "max_subrequests": 2 }))
        .await;
    let manifest = serde_json::json!({
        "routes": ["probe.localhost"],
        "allowed_hosts": [format!("http://{}", origin.addr)],
    });
    let r = p
        .deploy_manifest(&token, "acme", "probe", manifest, "fetch-probe")
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = p
        .get("probe.localhost", &probe(&origin, "/hello", "&n=3"))
        .await;
    assert_eq!(r.text().matches("ok 200").count(), 2, "{}", r.text());
    assert!(
        r.text().contains("error too-many-subrequests"),
        "{}",
        r.text()
    );
}
