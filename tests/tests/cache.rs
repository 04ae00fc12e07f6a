//! The cache capability end to end: a real guest in front of a local
//! origin that counts requests.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use verge::runtime::EngineSettings;
use verge_tests::origin::Origin;
use verge_tests::{Platform, Reply, Setup, TestServer, loopback_capabilities};

async fn server() -> Arc<TestServer> {
    let setup = Setup {
        engine: EngineSettings {
            pool_instances: 128,
            ..EngineSettings::default()
        },
        ..Setup::loopback()
    };
    Arc::new(TestServer::start_with(&["cache-probe"], setup).await)
}

fn fill(origin: &Origin, key: &str, path: &str, extra: &str) -> String {
    format!(
        "/cache-probe/fill?key={key}{extra}&url={}",
        origin.url(path)
    )
}

/// `n` concurrent GETs of `path`.
async fn burst(s: &Arc<TestServer>, path: &str, n: usize) -> Vec<Reply> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (s, path) = (s.clone(), path.to_owned());
        tasks.spawn(async move { s.get(&path).await });
    }
    let mut replies = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        replies.push(reply.unwrap());
    }
    replies
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_concurrent_misses_make_one_origin_fetch() {
    let origin = Origin::start().await;
    let s = server().await;
    let path = fill(&origin, "cold", "/slow?ms=300", "&ttl=60");
    let replies = burst(&s, &path, 100).await;
    assert_eq!(origin.hits(), 1, "one fill reached the origin");
    assert!(
        replies
            .iter()
            .all(|r| r.status == 200 && r.text() == "slow hello")
    );
    let filled = replies
        .iter()
        .filter(|r| r.header("x-cache") == "filled")
        .count();
    assert_eq!(filled, 1);
    assert_eq!(s.get(&path).await.header("x-cache"), "hit");
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_expire_and_stale_ones_are_served_while_one_refreshes() {
    let origin = Origin::start().await;
    let s = server().await;
    let plain = fill(&origin, "short", "/hello", "&ttl=1");
    assert_eq!(s.get(&plain).await.header("x-cache"), "filled");
    assert_eq!(s.get(&plain).await.header("x-cache"), "hit");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(s.get(&plain).await.header("x-cache"), "filled", "expired");
    assert_eq!(origin.hits(), 2);

    // The refresh takes a second, so all ten requests arrive while it runs.
    let swr = fill(&origin, "swr", "/slow?ms=1000", "&ttl=1&swr=60");
    assert_eq!(s.get(&swr).await.header("x-cache"), "filled");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let replies = burst(&s, &swr, 10).await;
    let count = |what: &str| {
        replies
            .iter()
            .filter(|r| r.header("x-cache") == what)
            .count()
    };
    assert_eq!(count("filled"), 1, "exactly one refresh");
    assert_eq!(count("stale"), 9, "the rest served stale without waiting");
    assert_eq!(origin.hits(), 4);
    assert_eq!(s.get(&swr).await.header("x-cache"), "hit", "refreshed");
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_by_tag_removes_every_tagged_entry_and_nothing_else() {
    let origin = Origin::start().await;
    let s = server().await;
    for (key, tag) in [("a", "img:cat"), ("b", "img:cat"), ("c", "img:dog")] {
        let r = s
            .get(&fill(&origin, key, "/hello", &format!("&ttl=60&tag={tag}")))
            .await;
        assert_eq!(r.header("x-cache"), "filled");
    }
    assert_eq!(s.get("/cache-probe/purge?tag=img:cat").await.text(), "2");
    assert_eq!(s.get("/cache-probe/get?key=a").await.status, 404);
    assert_eq!(s.get("/cache-probe/get?key=b").await.status, 404);
    assert_eq!(s.get("/cache-probe/get?key=c").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_are_isolated_and_the_admin_api_purges() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p =
        Platform::start_with(dir.path(), Setup::default().engine, loopback_capabilities()).await;
    let mut tokens = Vec::new();
    for tenant in ["acme", "other"] {
        let token = p.tenant(tenant).await;
        let manifest = json!({
            "routes": [format!("{tenant}.test")],
            "allowed_hosts": [format!("http://{}", origin.addr)],
        });
        let r = p
            .deploy_manifest(&token, tenant, "c", manifest, "cache-probe")
            .await;
        assert_eq!(r.status, 201);
        tokens.push(token);
    }
    let path = fill(&origin, "k", "/hello", "&ttl=60&tag=t");
    assert_eq!(p.get("acme.test", &path).await.header("x-cache"), "filled");
    assert_eq!(
        p.get("acme.test", "/cache-probe/get?key=k").await.status,
        200
    );
    assert_eq!(
        p.get("other.test", "/cache-probe/get?key=k").await.status,
        404
    );
    let purge = |body: serde_json::Value| body.to_string().into_bytes();
    let r = p
        .admin(
            "POST",
            "/v1/tenants/acme/cache/purge",
            Some(&tokens[0]),
            purge(json!({"tag": "t"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(answer["purged"], 1);
    assert_eq!(
        p.get("acme.test", "/cache-probe/get?key=k").await.status,
        404
    );
    // A tenant cannot purge another's cache, nor everyone's.
    let r = p
        .admin(
            "POST",
            "/v1/tenants/acme/cache/purge",
            Some(&tokens[1]),
            purge(json!({"all": true})),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = p
        .admin(
            "POST",
            "/v1/cache/purge",
            Some(&tokens[1]),
            purge(json!({"all": true})),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = p
        .admin(
            "POST",
            "/v1/tenants/acme/cache/purge",
            Some(&tokens[0]),
            purge(json!({"tag": "t", "all": true})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(p.get("acme.test", &path).await.header("x-cache"), "filled");
    let operator = p.operator.clone();
    let r = p
        .admin(
            "POST",
            "/v1/cache/purge",
            Some(&operator),
            purge(json!({"all": true})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        p.get("acme.test", "/cache-probe/get?key=k").await.status,
        404
    );
    let metrics = p.admin("GET", "/metrics", None, vec![]).await.text();
    assert!(
        metrics
            .contains(r#"verge_cache_lookups_total{tenant="acme",op="lookup",outcome="fill"} 2"#),
        "{metrics}"
    );
}
