//! Fleet mode: three nodes on one real Redis are one platform. Each test
//! starts three nodes on empty data dirs and sets everything up through
//! node A; B and C get it from the control plane in Redis. What is shared
//! through Redis: the control plane (deploys, rollbacks, routes, secrets),
//! KV (a write through one node is read through the others, counters and
//! compare-and-swap are atomic across nodes, the auth example's rate limit
//! counts across them) and cache purges.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use verge_tests::Platform;
use verge_tests::fleet::{eventually, fleet};
use verge_tests::redis_server::RedisServer;

#[tokio::test(flavor = "multi_thread")]
async fn a_write_through_one_node_is_read_through_the_others() {
    let (_redis, nodes, _dirs) =
        fleet("kv-probe", "kv.test", json!({ "kv_stores": ["data"] }), &[]).await;
    let r = nodes[0]
        .get("kv.test", "/kv-probe/set?key=greeting&value=hello")
        .await;
    assert_eq!(r.text(), "ok");
    for node in &nodes {
        assert_eq!(
            node.get("kv.test", "/kv-probe/get?key=greeting")
                .await
                .text(),
            "hello"
        );
    }
    // Listing order and pages are the same through every node.
    for i in [3, 1, 2] {
        let r = nodes[i % 3]
            .get("kv.test", &format!("/kv-probe/set?key=list/{i}&value=x"))
            .await;
        assert_eq!(r.text(), "ok");
    }
    let pages: Vec<String> = {
        let mut pages = Vec::new();
        for node in &nodes {
            pages.push(
                node.get("kv.test", "/kv-probe/list?prefix=list/&limit=2")
                    .await
                    .text(),
            );
        }
        pages
    };
    assert!(pages.iter().all(|p| p == &pages[0]), "{pages:?}");
    assert!(
        pages[0].contains("list/1") && pages[0].contains("list/2"),
        "{pages:?}"
    );
    // A TTL runs out on every node.
    let r = nodes[1]
        .get("kv.test", "/kv-probe/set?key=brief&value=x&ttl=1")
        .await;
    assert_eq!(r.text(), "ok");
    assert_eq!(
        nodes[2]
            .get("kv.test", "/kv-probe/get?key=brief")
            .await
            .text(),
        "x"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for node in &nodes {
        assert_eq!(
            node.get("kv.test", "/kv-probe/get?key=brief").await.text(),
            "<none>"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_and_swaps_are_atomic_across_nodes() {
    let (_redis, nodes, _dirs) =
        fleet("kv-probe", "kv.test", json!({ "kv_stores": ["data"] }), &[]).await;
    let nodes = std::sync::Arc::new(nodes);
    let mut calls = Vec::new();
    // 3 nodes x 1,000 increments, 50 in flight per node: the test process
    // holds both ends of every connection, under its open-file limit.
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(150));
    for i in 0..3000 {
        let (nodes, in_flight) = (nodes.clone(), in_flight.clone());
        calls.push(tokio::spawn(async move {
            let _slot = in_flight.acquire().await.unwrap();
            nodes[i % 3]
                .get("kv.test", "/kv-probe/incr?key=hits")
                .await
                .status
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    for node in nodes.iter() {
        assert_eq!(
            node.get("kv.test", "/kv-probe/get?key=hits").await.text(),
            "3000"
        );
    }
    // Three nodes race to create one key: exactly one wins each round.
    for round in 0..5 {
        let mut racers = Vec::new();
        for i in 0..3 {
            let nodes = nodes.clone();
            racers.push(tokio::spawn(async move {
                let path = format!("/kv-probe/cas?key=round{round}&value=node{i}");
                nodes[i].get("kv.test", &path).await.text()
            }));
        }
        let mut won = 0;
        for r in racers {
            won += usize::from(r.await.unwrap() == "true");
        }
        assert_eq!(won, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_auth_examples_rate_limit_counts_across_nodes() {
    // A window of an hour, not about to end, so the burst is in one window.
    let window = 3600;
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % window;
    if into > window - 30 {
        tokio::time::sleep(Duration::from_secs(window - into + 1)).await;
    }
    let manifest = json!({
        "kv_stores": ["ratelimits"],
        "config": {
            "issuer": "https://issuer.test",
            "audience": "verge-test",
            "origin": "http://127.0.0.1:1",
            "rate-limit-subject": "100",
            "rate-limit-ip": "10",
            "window-seconds": window.to_string(),
        },
    });
    let secrets = [("jwt-secret", "a-long-random-hs256-key")];
    let (_redis, nodes, _dirs) = fleet("auth", "api.test", manifest, &secrets).await;
    // The per-IP limit is checked before the token: 5 requests to each of
    // 3 nodes from one address, 10 may pass (to a 401), the rest are 429.
    let mut admitted = 0;
    for round in 0..5 {
        for node in &nodes {
            let status = node.get("api.test", "/").await.status.as_u16();
            assert!(status == 401 || status == 429, "round {round}: {status}");
            admitted += usize::from(status != 429);
        }
    }
    assert_eq!(admitted, 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_starts_while_redis_is_away_and_uses_it_once_it_answers() {
    let mut redis = RedisServer::stopped();
    let dir = tempfile::tempdir().unwrap();
    let node = Platform::start_node(dir.path(), &redis.url(), "a").await;
    // Admin writes answer 503 with the reason; nothing is written anywhere.
    let create = json!({ "name": "acme" }).to_string().into_bytes();
    let r = node
        .admin("POST", "/v1/tenants", Some(&node.operator), create.clone())
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("Redis"), "{}", r.text());
    let ready = node.admin("GET", "/readyz", None, Vec::new()).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    redis.restart();
    eventually("the node reconnects", Duration::from_secs(10), || async {
        node.admin("GET", "/readyz", None, Vec::new()).await.status == 200
    })
    .await;
    let token = node.tenant("acme").await;
    let manifest = json!({ "routes": ["kv.test"], "kv_stores": ["data"] });
    node.deployed_manifest(&token, "acme", "app", manifest, "kv-probe")
        .await;
    let r = node.get("kv.test", "/kv-probe/set?key=k&value=v").await;
    assert_eq!(r.text(), "ok");
    // Redis goes away: the app keeps being served, KV fails fast with the
    // storage error, admin writes get 503.
    redis.kill();
    let started = Instant::now();
    let r = node.get("kv.test", "/kv-probe/get?key=k").await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (500, "other: storage failure")
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    let r = node.get("kv.test", "/kv-probe/nothing").await;
    assert_ne!(r.status, 404, "the app is still served: {}", r.text());
    let r = node
        .admin(
            "PUT",
            "/v1/tenants/acme/apps/app/config/colour",
            Some(&token),
            b"blue".to_vec(),
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    let ready = node.admin("GET", "/readyz", None, Vec::new()).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(ready.text().contains("\"kv\""), "{}", ready.text());
    // Redis is back: readiness says so without waiting for a KV call to
    // find out (none is made until it does).
    redis.restart();
    eventually("ready again", Duration::from_secs(10), || async {
        node.admin("GET", "/readyz", None, Vec::new()).await.status == 200
    })
    .await;
    // (AOF on): the acknowledged deploy and KV write are there.
    eventually("KV is back", Duration::from_secs(10), || async {
        node.get("kv.test", "/kv-probe/get?key=k").await.status == 200
    })
    .await;
    assert_eq!(node.get("kv.test", "/kv-probe/get?key=k").await.text(), "v");
    let other = tempfile::tempdir().unwrap();
    let late = Platform::start_node(other.path(), &redis.url(), "b").await;
    assert_eq!(late.get("kv.test", "/kv-probe/get?key=k").await.text(), "v");
}

/// Waits (at most 2 s on each node) until no node has cache key `k`, which
/// `what` purged.
async fn purged_everywhere(nodes: &[Platform], what: &str) {
    for node in nodes {
        eventually(what, Duration::from_secs(2), || async {
            node.get("cache.test", "/cache-probe/get?key=k")
                .await
                .status
                == 404
        })
        .await;
    }
}

/// Purges tag `t` of tenant acme through `node`'s admin API.
async fn purge_tag(node: &Platform) -> verge_tests::Reply {
    let body = json!({ "tag": "t" }).to_string().into_bytes();
    node.admin(
        "POST",
        "/v1/tenants/acme/cache/purge",
        Some(&node.operator),
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cache_purge_through_one_node_reaches_every_node() {
    let origin = verge_tests::origin::Origin::start().await;
    let manifest = json!({ "allowed_hosts": [format!("http://{}", origin.addr)] });
    let (mut redis, nodes, _dirs) = fleet("cache-probe", "cache.test", manifest, &[]).await;
    // Every node listens on the bus before the purge is sent.
    let waited = std::time::Instant::now();
    while redis.subscribers(verge::storage::bus::PURGE_CHANNEL) < 3 {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "the nodes never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fill = format!(
        "/cache-probe/fill?key=k&ttl=600&tag=t&url={}",
        origin.url("/hello")
    );
    for node in &nodes {
        assert_eq!(node.get("cache.test", &fill).await.status, 200);
        assert_eq!(
            node.get("cache.test", "/cache-probe/get?key=k")
                .await
                .status,
            200
        );
    }
    let r = purge_tag(&nodes[0]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (answer["purged"].as_u64(), answer["nodes"].as_u64()),
        (Some(1), Some(3)),
        "{answer}"
    );
    purged_everywhere(&nodes, "the admin purge").await;
    // A guest's own purges travel too: `purge-tag` and `delete` through
    // node A remove the entry on every node.
    for purge in ["/cache-probe/purge?tag=t", "/cache-probe/delete?key=k"] {
        for node in &nodes {
            assert_eq!(node.get("cache.test", &fill).await.status, 200);
        }
        assert_eq!(nodes[0].get("cache.test", purge).await.status, 200);
        purged_everywhere(&nodes, purge).await;
    }
    // Without Redis the purge still happens here, and the answer says the
    // others were not reached.
    assert_eq!(nodes[1].get("cache.test", &fill).await.status, 200);
    redis.kill();
    let r = purge_tag(&nodes[1]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("this node only"), "{}", r.text());
    assert_eq!(
        nodes[1]
            .get("cache.test", "/cache-probe/get?key=k")
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_live_node_is_listed_with_its_region() {
    let (_redis, nodes, _dirs) =
        fleet("kv-probe", "kv.test", json!({ "kv_stores": ["data"] }), &[]).await;
    let waited = std::time::Instant::now();
    let listed = loop {
        let r = nodes[1]
            .admin("GET", "/v1/nodes", Some(&nodes[1].operator), Vec::new())
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let answer: Value = serde_json::from_slice(&r.body).unwrap();
        let names: Vec<String> = answer["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                format!(
                    "{}@{}",
                    n["name"].as_str().unwrap(),
                    n["region"].as_str().unwrap()
                )
            })
            .collect();
        if names.len() == 3 || waited.elapsed() > Duration::from_secs(5) {
            assert_eq!(answer["cluster"], true);
            break names;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listed, ["a@test", "b@test", "c@test"]);
    // A tenant token may not list the fleet.
    let r = nodes[0].admin("GET", "/v1/nodes", None, Vec::new()).await;
    assert_eq!(r.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_read_cache_reads_own_writes_and_bounds_staleness_by_its_ttl() {
    let manifest = json!({ "kv_stores": ["data"], "kv_cache_ttl_seconds": 2 });
    let (redis, nodes, _dirs) = fleet("kv-probe", "kv.test", manifest, &[]).await;
    let get = |i: usize| {
        let node = &nodes[i];
        async move { node.get("kv.test", "/kv-probe/get?key=k").await.text() }
    };
    assert_eq!(
        nodes[0]
            .get("kv.test", "/kv-probe/set?key=k&value=v0")
            .await
            .text(),
        "ok"
    );
    // B and C read it, so they cache it.
    assert_eq!(get(1).await, "v0");
    assert_eq!(get(2).await, "v0");
    // The writer reads its own write at once; the others once the
    // invalidation arrived.
    assert_eq!(
        nodes[0]
            .get("kv.test", "/kv-probe/set?key=k&value=v1")
            .await
            .text(),
        "ok"
    );
    assert_eq!(get(0).await, "v1");
    for i in [1, 2] {
        let started = Instant::now();
        while get(i).await != "v1" {
            assert!(started.elapsed() < Duration::from_millis(500), "node {i}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // A write no node announces (as if the channel were cut): the nodes
    // serve what they cached until the TTL, then the new value.
    let ns = nodes[1]
        .daemon
        .registry
        .as_ref()
        .unwrap()
        .kv_namespace("acme".into(), "data".into())
        .await
        .unwrap();
    let behind = verge::storage::kv::redis_backend::RedisKv::connect(
        &redis.url(),
        std::sync::Arc::new(verge::storage::kv::SystemClock),
    )
    .await
    .unwrap();
    let quiet = verge::storage::kv::WriteOp::Set {
        key: "k".into(),
        value: b"v2".to_vec(),
        ttl: None,
    };
    use verge::storage::kv::KvBackend as _;
    behind.write(&ns, quiet).await.unwrap();
    let written = Instant::now();
    assert_eq!(get(1).await, "v1", "cached, within the TTL");
    let started = Instant::now();
    while get(1).await != "v2" {
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "stale past the TTL"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(written.elapsed() < Duration::from_millis(2500));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_on_rediss_trusts_only_its_ca() {
    let pki = verge_tests::pki::Pki::new();
    let leaf = pki.leaf("redis", &["127.0.0.1"]);
    let redis = RedisServer::start_tls(&leaf.cert, &leaf.key);
    assert!(redis.url().starts_with("rediss://"));
    let config = |name: &str, ca: Option<std::path::PathBuf>| verge::daemon::ClusterConfig {
        url: redis.url(),
        node_name: name.into(),
        region: "test".into(),
        ca_file: ca,
    };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = Platform::start_node_with(dirs[0].path(), config("a", Some(pki.ca_file()))).await;
    let b = Platform::start_node_with(dirs[1].path(), config("b", Some(pki.ca_file()))).await;
    let token = a.tenant("acme").await;
    let manifest = json!({ "routes": ["kv.test"], "kv_stores": ["data"] });
    a.deployed_manifest(&token, "acme", "app", manifest, "kv-probe")
        .await;
    assert_eq!(
        a.get("kv.test", "/kv-probe/set?key=k&value=tls")
            .await
            .text(),
        "ok"
    );
    let started = Instant::now();
    while b.get("kv.test", "/kv-probe/get?key=k").await.text() != "tls" {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "never reached B"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A node that does not trust the server's CA never talks to it: admin
    // writes are refused and it is not ready.
    let untrusting = Platform::start_node_with(dirs[2].path(), config("c", None)).await;
    let body = json!({ "name": "other" }).to_string().into_bytes();
    let r = untrusting
        .admin("POST", "/v1/tenants", Some(&untrusting.operator), body)
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    let ready = untrusting.admin("GET", "/readyz", None, Vec::new()).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
}
