//! The aggregate example end to end: three real origins on 127.0.0.1, the
//! example fanning out to them at once through a real platform.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use verge_tests::origin::Origin;
use verge_tests::{Platform, Setup, loopback_capabilities};

/// A platform with `aggregate` on `agg.test`, its parts from `origins`
/// (each `/slow?ms=MS`), a part timeout of `timeout_ms`.
async fn platform(dir: &std::path::Path, origins: &[(&Origin, u64)], timeout_ms: u32) -> Platform {
    let p = Platform::start_with(dir, Setup::default().engine, loopback_capabilities()).await;
    let token = p.tenant("acme").await;
    let mut config = serde_json::Map::new();
    for ((origin, ms), part) in origins.iter().zip(["profile", "posts", "stats"]) {
        config.insert(
            format!("{part}-url"),
            json!(origin.url(&format!("/slow?ms={ms}&user={{id}}&part={part}"))),
        );
    }
    config.insert("part-timeout-ms".into(), json!(timeout_ms.to_string()));
    let manifest = json!({
        "routes": ["agg.test"],
        "allowed_hosts": origins.iter().map(|(o, _)| format!("http://{}", o.addr)).collect::<Vec<_>>(),
        "config": config,
    });
    let r = p
        .deploy_manifest(&token, "acme", "aggregate", manifest, "aggregate")
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn three_300ms_origins_answer_in_well_under_their_sum() {
    let origins = [
        Origin::start().await,
        Origin::start().await,
        Origin::start().await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let parts: Vec<(&Origin, u64)> = origins.iter().map(|o| (o, 300)).collect();
    let p = platform(dir.path(), &parts, 2000).await;
    // Warm the instance path once on another id, so the timing below is
    // the fan-out's.
    let _ = p.get("agg.test", "/users/warm").await;
    let started = Instant::now();
    let r = p.get("agg.test", "/users/ada").await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        doc,
        json!({ "id": "ada", "partial": false,
                "profile": "slow hello", "posts": "slow hello", "stats": "slow hello" })
    );
    // One after another would take 900 ms or more.
    assert!(took < Duration::from_millis(450), "took {took:?}");
    // Each part was cached: the same page again touches no origin.
    let hits: Vec<u64> = origins.iter().map(Origin::hits).collect();
    let started = Instant::now();
    let again = p.get("agg.test", "/users/ada").await;
    assert_eq!(again.body, r.body);
    assert!(started.elapsed() < Duration::from_millis(150));
    assert_eq!(origins.iter().map(Origin::hits).collect::<Vec<_>>(), hits);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_part_is_left_out_and_marked() {
    let origins = [
        Origin::start().await,
        Origin::start().await,
        Origin::start().await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let parts = [(&origins[0], 10), (&origins[1], 10), (&origins[2], 5000)];
    let p = platform(dir.path(), &parts, 300).await;
    let started = Instant::now();
    let r = p.get("agg.test", "/users/ada").await;
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert_eq!(r.status, 200, "{}", r.text());
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["partial"], true, "{doc}");
    assert_eq!(doc["profile"], "slow hello");
    assert_eq!(doc["posts"], "slow hello");
    assert!(doc.get("stats").is_none(), "{doc}");
    assert_eq!(doc["missing"][0]["part"], "stats");
    assert_eq!(doc["missing"][0]["reason"], "timeout");
    // A bad id never reaches an origin.
    let r = p.get("agg.test", "/users/../etc").await;
    assert_eq!(r.status, 404);
    assert_eq!(origins.iter().map(Origin::hits).sum::<u64>(), 3);
}
