//! The JWT auth example deployed on a platform in front of a local origin:
//! every way a token can be wrong, and rate limits that trip and reset.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use verge::daemon::CapabilityConfig;
use verge_tests::origin::Origin;
use verge_tests::{Platform, Reply, Setup};

const HOST: &str = "api.test";
const SECRET: &str = "a-long-random-hs256-key";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token_with(header: &Value, claims: &Value, key: &str) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let sig = URL_SAFE_NO_PAD.encode(verge::tenancy::tokens::hmac_sha256(
        key.as_bytes(),
        format!("{h}.{c}").as_bytes(),
    ));
    format!("{h}.{c}.{sig}")
}

fn token(claims: &Value) -> String {
    token_with(&json!({"alg": "HS256", "typ": "JWT"}), claims, SECRET)
}

fn claims(sub: &str) -> Value {
    json!({
        "sub": sub, "iss": "https://issuer.test", "aud": ["other", "verge-test"],
        "exp": now() + 600, "nbf": now() - 10,
    })
}

async fn platform(dir: &std::path::Path, origin: &Origin, limits: (u32, u32, u32)) -> Platform {
    let capabilities = CapabilityConfig {
        outbound_allow_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..CapabilityConfig::default()
    };
    let p = Platform::start_with(dir, Setup::default().engine, capabilities).await;
    let tenant = p.tenant("acme").await;
    let (per_subject, per_ip, window) = limits;
    let manifest = json!({
        "routes": [HOST],
        "kv_stores": ["ratelimits"],
        "allowed_hosts": [format!("http://{}", origin.addr)],
        "config": {
            "issuer": "https://issuer.test",
            "audience": "verge-test",
            "origin": origin.url(""),
            "rate-limit-subject": per_subject.to_string(),
            "rate-limit-ip": per_ip.to_string(),
            "window-seconds": window.to_string(),
        },
    });
    let r = p
        .deploy_manifest(&tenant, "acme", "auth", manifest, "auth")
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = p
        .admin(
            "PUT",
            "/v1/tenants/acme/apps/auth/secrets/jwt-secret",
            Some(&tenant),
            SECRET.into(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    p
}

async fn call(p: &Platform, authorization: Option<&str>, client: &str) -> Reply {
    let mut req = Request::get(format!("http://{}/headers", p.daemon.addr))
        .header("host", HOST)
        .header("x-forwarded-for", client)
        .header("x-user-id", "spoofed");
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    p.request(req.body(Full::default()).unwrap()).await
}

async fn bearer(p: &Platform, token: &str) -> Reply {
    call(p, Some(&format!("Bearer {token}")), "203.0.113.1").await
}

/// Waits until a fresh `window`-second window has just begun, so a burst
/// of requests lands in one window.
async fn align_to_window(window: u64) {
    loop {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        if since_epoch.as_secs().is_multiple_of(window) && since_epoch.subsec_millis() < 300 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_token_reaches_the_origin_as_its_subject() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path(), &origin, (100, 100, 60)).await;
    let r = bearer(&p, &token(&claims("alice"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.text();
    assert!(seen.contains("x-user-id: alice"), "{seen}");
    assert!(!seen.contains("spoofed"), "{seen}");
    assert!(!seen.contains("authorization"), "{seen}");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_bad_token_is_a_401_with_a_challenge() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path(), &origin, (100, 100, 60)).await;
    let mut expired = claims("bob");
    expired["exp"] = json!(now() - 120);
    let mut early = claims("bob");
    early["nbf"] = json!(now() + 3600);
    let mut audience = claims("bob");
    audience["aud"] = json!("someone-else");
    let mut issuer = claims("bob");
    issuer["iss"] = json!("https://evil.test");
    let mut no_exp = claims("bob");
    no_exp.as_object_mut().unwrap().remove("exp");
    let none_alg = token_with(&json!({"alg": "none"}), &claims("bob"), SECRET);
    let cases = [
        (token(&expired), "expired"),
        (token(&early), "not valid yet"),
        (token(&audience), "audience"),
        (token(&issuer), "issuer"),
        (token(&no_exp), "expired"),
        (
            token_with(&json!({"alg": "HS256"}), &claims("bob"), "wrong-key"),
            "signature",
        ),
        (none_alg, "only HS256"),
        ("not.a.jwt".to_owned(), "malformed"),
        ("garbage".to_owned(), "malformed"),
    ];
    for (bad, why) in cases {
        let r = bearer(&p, &bad).await;
        assert_eq!(r.status, 401, "{why}: {}", r.text());
        let challenge = r.header("www-authenticate");
        assert!(
            challenge.starts_with("Bearer realm=\"verge\""),
            "{challenge}"
        );
        assert!(challenge.contains("invalid_token"), "{challenge}");
        assert!(challenge.contains(why), "{why}: {challenge}");
    }
    let r = call(&p, None, "203.0.113.1").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), "Bearer realm=\"verge\"");
    let r = call(&p, Some("Basic dXNlcjpwdw=="), "203.0.113.1").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        origin.hits(),
        0,
        "nothing unauthenticated reached the origin"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_subject_rate_limit_trips_at_the_limit_and_resets_after_the_window() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path(), &origin, (3, 1000, 2)).await;
    let alice = token(&claims("alice"));
    align_to_window(2).await;
    for i in 0..3 {
        let r = bearer(&p, &alice).await;
        assert_eq!(r.status, 200, "request {i} is within the limit");
    }
    let r = bearer(&p, &alice).await;
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // Another subject has its own budget.
    assert_eq!(bearer(&p, &token(&claims("carol"))).await.status, 200);
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(bearer(&p, &alice).await.status, 200, "a new window");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ip_rate_limit_applies_before_verification() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path(), &origin, (1000, 5, 2)).await;
    align_to_window(2).await;
    // Guessing tokens from one address is throttled like anything else.
    for _ in 0..5 {
        assert_eq!(
            call(&p, Some("Bearer guess"), "198.51.100.7").await.status,
            401
        );
    }
    let r = call(&p, Some("Bearer guess"), "198.51.100.7").await;
    assert_eq!(r.status, 429);
    assert!(!r.header("retry-after").is_empty());
    // The client address comes from the trusted proxy's header: another
    // client behind the same proxy is not affected.
    let r = call(
        &p,
        Some(&format!("Bearer {}", token(&claims("dave")))),
        "198.51.100.8",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}
