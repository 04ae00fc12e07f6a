//! Fleet faults: a Redis that went back in time (emptied, restored from
//! an old backup, failed over to a lagging replica) is refused, not
//! obeyed, until the operator re-seeds it from a node or accepts it; a
//! node that stopped is listed as down. Three nodes on one real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use serde_json::{Value, json};
use std::time::Duration;
use verge_tests::fleet::{converged, eventually, fleet, revision};

/// A Redis emptied under the fleet (`FLUSHALL`, or a restore of an older
/// backup) is not obeyed: every node keeps serving its snapshot and its
/// tokens, says it diverged, and takes no writes until the operator
/// accepts Redis's state on it.
#[tokio::test(flavor = "multi_thread")]
async fn an_emptied_redis_is_refused_not_obeyed() {
    let (redis, nodes, _dirs) = fleet("hello", "hello.test", json!({}), &[]).await;
    converged(&nodes, Duration::from_secs(10)).await;
    let before = revision(&nodes[0]);
    assert!(before > 0);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    // Each node finds out at its next reconcile (every 5 s).
    for node in &nodes {
        eventually(
            "the divergence is reported",
            Duration::from_secs(12),
            || async { node.admin("GET", "/readyz", None, Vec::new()).await.status == 503 },
        )
        .await;
    }
    for node in &nodes {
        let r = node.get("hello.test", "/").await;
        assert_eq!(r.status, 200, "the node still serves its snapshot");
        assert_eq!(revision(node), before, "the node did not move back");
        let ready = node.admin("GET", "/readyz", None, Vec::new()).await;
        assert_eq!(ready.status, 503, "{}", ready.text());
        let tenants = node
            .admin("GET", "/v1/tenants", Some(&node.operator), Vec::new())
            .await;
        assert_eq!(
            tenants.status,
            200,
            "reads still answer: {}",
            tenants.text()
        );
        assert!(tenants.text().contains("acme"), "{}", tenants.text());
    }
    let create = json!({ "name": "late" }).to_string().into_bytes();
    let r = nodes[1]
        .admin("POST", "/v1/tenants", Some(&nodes[1].operator), create)
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("behind this node's"), "{}", r.text());
    // Accepting another revision than Redis's is refused; Redis's own is
    // applied on that node (here: nothing, so nothing is served).
    let accept = |revision: u64| json!({ "revision": revision }).to_string().into_bytes();
    let r = nodes[0]
        .admin(
            "POST",
            "/v1/fleet/accept",
            Some(&nodes[0].operator),
            accept(7),
        )
        .await;
    assert_ne!(r.status, 200, "{}", r.text());
    assert_eq!(nodes[0].get("hello.test", "/").await.status, 200);
    let r = nodes[0]
        .admin(
            "POST",
            "/v1/fleet/accept",
            Some(&nodes[0].operator),
            accept(0),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(nodes[0].get("hello.test", "/").await.status, 404);
    // The other nodes still serve until they are told.
    assert_eq!(nodes[2].get("hello.test", "/").await.status, 200);
}

/// A node that stops beating is listed as down with when it was last seen
/// (it used to vanish from `verge nodes`), and is not counted as serving.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_stopped_is_listed_as_down() {
    use verge::storage::bus::HEARTBEAT_TTL;
    let (_redis, mut nodes, _dirs) = fleet("hello", "hello.test", json!({}), &[]).await;
    let gone = nodes.pop().unwrap();
    gone.shutdown().await;
    tokio::time::sleep(HEARTBEAT_TTL + Duration::from_secs(1)).await;
    let r = nodes[0]
        .admin("GET", "/v1/nodes", Some(&nodes[0].operator), Vec::new())
        .await;
    let answer: Value = serde_json::from_slice(&r.body).unwrap();
    let listed = answer["nodes"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{answer}");
    let state = |name: &str| {
        listed
            .iter()
            .find(|n| n["name"] == name)
            .map(|n| n["up"].clone())
    };
    assert_eq!(state("a"), Some(json!(true)), "{answer}");
    assert_eq!(state("c"), Some(json!(false)), "{answer}");
    let r = nodes[0]
        .admin(
            "GET",
            "/v1/tenants/acme/apps/app/nodes",
            Some(&nodes[0].operator),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let answer: Value = serde_json::from_slice(&r.body).unwrap();
    let c = answer["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "c")
        .cloned()
        .unwrap();
    assert_eq!(c["up"], json!(false), "{answer}");
    assert!(c["heartbeat_age_ms"].as_u64().unwrap() >= HEARTBEAT_TTL.as_millis() as u64);
}

/// After `FLUSHALL`, every node is listed as diverged (and says so in its
/// metrics) until the operator re-seeds Redis from a node's snapshot; then
/// every node applies it, serves, answers ready and takes writes again. A
/// re-seed while Redis is not behind is refused.
#[tokio::test(flavor = "multi_thread")]
async fn the_operators_reseed_brings_an_emptied_redis_back_everywhere() {
    let (redis, nodes, _dirs) = fleet("hello", "hello.test", json!({}), &[]).await;
    let reseed = |i: usize| {
        let node = &nodes[i];
        async move {
            node.admin("POST", "/v1/fleet/reseed", Some(&node.operator), Vec::new())
                .await
        }
    };
    let r = reseed(0).await;
    assert_eq!(r.status, 400, "nothing to re-seed: {}", r.text());
    let before = revision(&nodes[0]);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    eventually(
        "every node listed as diverged",
        Duration::from_secs(15),
        || async {
            let r = nodes[0]
                .admin("GET", "/v1/nodes", Some(&nodes[0].operator), Vec::new())
                .await;
            let answer: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let listed = answer["nodes"].as_array().cloned().unwrap_or_default();
            listed.len() == 3 && listed.iter().all(|n| n["diverged"] == json!(true))
        },
    )
    .await;
    let admin = nodes[1].daemon.admin_addr.unwrap();
    let metrics = nodes[1]
        .admin("GET", "/metrics", Some(&nodes[1].operator), Vec::new())
        .await
        .text();
    assert!(
        metrics.contains("verge_fleet_diverged 1"),
        "{admin}: {metrics}"
    );
    let r = reseed(1).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for node in &nodes {
        eventually(
            "ready on the re-seeded state",
            Duration::from_secs(10),
            || async { node.admin("GET", "/readyz", None, Vec::new()).await.status == 200 },
        )
        .await;
        assert!(revision(node) > before, "{} > {before}", revision(node));
        assert_eq!(node.get("hello.test", "/").await.status, 200);
    }
    let create = json!({ "name": "after" }).to_string().into_bytes();
    let r = nodes[2]
        .admin("POST", "/v1/tenants", Some(&nodes[2].operator), create)
        .await;
    assert_eq!(r.status, 201, "writes work again: {}", r.text());
    converged(&nodes, Duration::from_secs(5)).await;
    let metrics = nodes[1]
        .admin("GET", "/metrics", Some(&nodes[1].operator), Vec::new())
        .await
        .text();
    assert!(metrics.contains("verge_fleet_diverged 0"), "{metrics}");
}

/// Redis restored from an older backup (what a lagging replica promoted
/// by a failover looks like too): a tenant created since is missing there
/// and the revision is lower. No node moves back: the newer tenant's token
/// keeps its answer on every node, under load, and the divergence is
/// reported.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_restored_to_an_older_revision_is_refused_under_load() {
    let (redis, nodes, _dirs) = fleet("hello", "hello.test", json!({}), &[]).await;
    converged(&nodes, Duration::from_secs(10)).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let old_rev: u64 = redis::cmd("GET")
        .arg("{verge:cp}:rev")
        .query_async(&mut conn)
        .await
        .unwrap();
    let newer = nodes[0].tenant("newer").await;
    converged(&nodes, Duration::from_secs(10)).await;
    // The "backup": the newer tenant gone, the revision back where it was.
    let _: () = redis::cmd("HDEL")
        .arg("{verge:cp}:tenants")
        .arg("newer")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("{verge:cp}:rev")
        .arg(old_rev)
        .query_async(&mut conn)
        .await
        .unwrap();
    // Load through every node meanwhile: hello keeps answering 200.
    let load = async {
        let mut failed = 0;
        for i in 0..300 {
            if nodes[i % 3].get("hello.test", "/").await.status != 200 {
                failed += 1;
            }
        }
        failed
    };
    let reported = async {
        for node in &nodes {
            eventually(
                "the divergence is reported",
                Duration::from_secs(12),
                || async { node.admin("GET", "/readyz", None, Vec::new()).await.status == 503 },
            )
            .await;
        }
    };
    let (failed, ()) = tokio::join!(load, reported);
    assert_eq!(failed, 0, "hello failed under the restore");
    for node in &nodes {
        assert!(revision(node) > old_rev, "the node did not move back");
        let r = node
            .admin("GET", "/v1/tenants/newer/apps", Some(&newer), Vec::new())
            .await;
        assert_eq!(
            r.status,
            200,
            "the newer tenant's token still answers: {}",
            r.text()
        );
    }
}
