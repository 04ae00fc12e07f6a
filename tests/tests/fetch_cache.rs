//! The read-through fetch cache: Cache-Control decides, stale responses
//! are revalidated in the background with ETags, identical misses share
//! one origin request.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;
use std::time::Duration;
use verge_tests::origin::Origin;
use verge_tests::{Setup, TestServer};

async fn server() -> Arc<TestServer> {
    Arc::new(TestServer::start_with(&["fetch-probe"], Setup::loopback()).await)
}

/// The first line of the probe's answer: `ok STATUS BYTES CACHE`.
async fn fetch(s: &TestServer, origin: &Origin, path: &str, extra: &str) -> String {
    let r = s
        .get(&format!(
            "/fetch-probe?echo=0&cache_ttl=0{extra}&url={}",
            origin.url(path)
        ))
        .await;
    r.text().lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_control_decides_what_is_served_from_the_cache() {
    let origin = Origin::start().await;
    let s = server().await;
    let cacheable = "/cc?cc=max-age=60&etag=a";
    assert_eq!(fetch(&s, &origin, cacheable, "").await, "ok 200 14 miss");
    assert_eq!(fetch(&s, &origin, cacheable, "").await, "ok 200 14 hit");
    assert_eq!(origin.hits(), 1);
    let shared = "/cc?cc=max-age=0,s-maxage=60&etag=b";
    assert_eq!(fetch(&s, &origin, shared, "").await, "ok 200 14 miss");
    assert_eq!(fetch(&s, &origin, shared, "").await, "ok 200 14 hit");
    assert_eq!(origin.hits(), 2);
    for (i, refused) in ["no-store", "private,max-age=60", "no-cache"]
        .iter()
        .enumerate()
    {
        let path = format!("/cc?cc={refused}&etag=r{i}");
        assert_eq!(fetch(&s, &origin, &path, "").await, "ok 200 14 pass");
        assert_eq!(
            fetch(&s, &origin, &path, "").await,
            "ok 200 14 pass",
            "{refused}"
        );
    }
    assert_eq!(
        origin.hits(),
        8,
        "uncacheable responses always reach the origin"
    );
    // Without a policy the cache is not used at all.
    let r = s
        .get(&format!(
            "/fetch-probe?echo=0&url={}",
            origin.url(cacheable)
        ))
        .await;
    assert_eq!(r.text().lines().next(), Some("ok 200 14"));
    assert_eq!(origin.hits(), 9);
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_responses_are_served_while_an_etag_revalidation_runs() {
    let origin = Origin::start().await;
    let s = server().await;
    let path = "/cc?cc=max-age=1,stale-while-revalidate=30&etag=swr";
    assert_eq!(fetch(&s, &origin, path, "").await, "ok 200 14 miss");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = Origin::not_modified();
    assert_eq!(fetch(&s, &origin, path, "").await, "ok 200 14 stale");
    // The revalidation runs in the background: wait for its 304.
    for _ in 0..100 {
        if Origin::not_modified() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        Origin::not_modified(),
        before + 1,
        "revalidated with If-None-Match"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        fetch(&s, &origin, path, "").await,
        "ok 200 14 hit",
        "fresh again after the 304"
    );
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_misses_share_one_origin_request() {
    let origin = Origin::start().await;
    let s = server().await;
    let url = format!(
        "/fetch-probe?echo=0&cache_ttl=60&url={}",
        origin.url("/slow?ms=300")
    );
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let (s, url) = (s.clone(), url.clone());
        tasks.spawn(async move { s.get(&url).await.text() });
    }
    let mut results = Vec::new();
    while let Some(text) = tasks.join_next().await {
        results.push(text.unwrap());
    }
    assert_eq!(
        origin.hits(),
        1,
        "one origin request for 30 identical misses"
    );
    let misses = results
        .iter()
        .filter(|t| t.starts_with("ok 200 10 miss"))
        .count();
    let hits = results
        .iter()
        .filter(|t| t.starts_with("ok 200 10 hit"))
        .count();
    assert_eq!((misses, hits), (1, 29), "{results:?}");
}
