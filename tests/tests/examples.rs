//! End to end: the example functions, deployed as users deploy them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use http::Request;
use serde_json::{Value, json};
use std::sync::Arc;
use verge_tests::Platform;
use verge_tests::origin::Origin;

const TOKEN: &str = "s3cret";

async fn redirect_platform(dir: &std::path::Path) -> (Platform, String) {
    let p = Platform::start(dir).await;
    let tenant = p.tenant("acme").await;
    let manifest = json!({ "routes": ["go.test"], "kv_stores": ["links"] });
    assert_eq!(
        p.deploy_manifest(&tenant, "acme", "redirect", manifest, "redirect")
            .await
            .status,
        201
    );
    let secret = p
        .admin(
            "PUT",
            "/v1/tenants/acme/apps/redirect/secrets/admin-token",
            Some(&tenant),
            TOKEN.into(),
        )
        .await;
    assert_eq!(secret.status, 200);
    (p, tenant)
}

/// A platform whose functions may reach 127.0.0.1, with tenant `acme`.
async fn loopback_platform(dir: &std::path::Path) -> (Platform, String) {
    let engine = verge_tests::Setup::default().engine;
    let p = Platform::start_with(dir, engine, verge_tests::loopback_capabilities()).await;
    let tenant = p.tenant("acme").await;
    (p, tenant)
}

async fn create(p: &Platform, token: Option<&str>, body: Value) -> verge_tests::Reply {
    let mut req =
        Request::post(format!("http://{}/api/links", p.daemon.addr)).header("host", "go.test");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    p.request(req.body(body.to_string().into()).unwrap()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_url_shortener_creates_redirects_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _) = redirect_platform(dir.path()).await;
    let link = json!({ "slug": "docs", "url": "https://example.com/docs", "permanent": true });
    assert_eq!(create(&p, None, link.clone()).await.status, 401);
    assert_eq!(create(&p, Some("wrong"), link.clone()).await.status, 401);
    let bad_url = json!({ "slug": "x", "url": "javascript:alert(1)" });
    assert_eq!(create(&p, Some(TOKEN), bad_url).await.status, 400);
    let bad_slug = json!({ "slug": "a/b", "url": "https://example.com" });
    assert_eq!(create(&p, Some(TOKEN), bad_slug).await.status, 400);
    let created = create(&p, Some(TOKEN), link.clone()).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(
        create(&p, Some(TOKEN), link).await.status,
        409,
        "duplicate slug"
    );

    let hit = p.get("go.test", "/docs").await;
    assert_eq!(hit.status, 301);
    assert_eq!(hit.header("location"), "https://example.com/docs");
    assert_eq!(hit.header("cache-control"), "public, max-age=86400");
    assert_eq!(p.get("go.test", "/docs").await.status, 301);
    let temp = json!({ "slug": "sale", "url": "https://example.com/sale" });
    assert_eq!(create(&p, Some(TOKEN), temp).await.status, 201);
    let hit = p.get("go.test", "/sale").await;
    assert_eq!(
        (hit.status.as_u16(), hit.header("cache-control")),
        (302, "no-cache")
    );

    let info = p.get("go.test", "/api/links/docs").await;
    let info: Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(info["clicks"], 2);
    assert_eq!(info["url"], "https://example.com/docs");
    let missing = p.get("go.test", "/nope").await;
    assert_eq!(missing.status, 404);
    assert!(missing.header("content-type").starts_with("text/html"));
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creators_of_one_slug_get_exactly_one_201() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _) = redirect_platform(dir.path()).await;
    let p = Arc::new(p);
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move {
                let link = json!({ "slug": "race", "url": format!("https://example.com/{i}") });
                create(&p, Some(TOKEN), link).await.status.as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        9,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_slugs_fall_back_to_the_origin() {
    let (origin, dir) = (Origin::start().await, tempfile::tempdir().unwrap());
    let (p, tenant) = loopback_platform(dir.path()).await;
    let manifest = json!({
        "routes": ["go.test"],
        "kv_stores": ["links"],
        "allowed_hosts": [format!("http://{}", origin.addr)],
        "config": { "origin": origin.url("") },
    });
    let r = p
        .deploy_manifest(&tenant, "acme", "redirect", manifest, "redirect")
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = p.get("go.test", "/hello").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello from origin");
    let r = p.get("go.test", "/nothing-here").await;
    assert_eq!(r.status, 404);
    assert!(r.text().starts_with("origin: no such page"), "{}", r.text());
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ab_variant_can_be_served_from_its_origin() {
    let (origin, dir) = (Origin::start().await, tempfile::tempdir().unwrap());
    let (p, tenant) = loopback_platform(dir.path()).await;
    let manifest = json!({
        "routes": ["ab.test"],
        "allowed_hosts": [format!("http://{}", origin.addr)],
        "config": { "variants": "only=1", "origin-only": origin.url("") },
    });
    let r = p
        .deploy_manifest(&tenant, "acme", "ab", manifest, "ab")
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = p.get("ab.test", "/hello").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello from origin");
    assert_eq!(r.header("x-ab-variant"), "only");
}
