//! Three fleet nodes on one real Redis, and the waits fleet tests share.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers")]

use crate::Platform;
use crate::redis_server::RedisServer;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The revision `node` applied.
pub fn revision(node: &Platform) -> u64 {
    node.daemon.registry.as_ref().unwrap().served().0
}

/// Waits (at most `within`) until every node applied `nodes[0]`'s
/// revision; returns how long that took.
pub async fn converged(nodes: &[Platform], within: Duration) -> Duration {
    let started = Instant::now();
    let target = revision(&nodes[0]);
    while nodes.iter().any(|node| revision(node) < target) {
        let behind: Vec<u64> = nodes.iter().map(revision).collect();
        assert!(
            started.elapsed() < within,
            "not at revision {target} within {within:?}: {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// One node per data dir on `redis`, named `n0`, `n1`, ...
pub async fn nodes(redis: &RedisServer, dirs: &[tempfile::TempDir]) -> Vec<Platform> {
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        nodes.push(Platform::start_node(dir.path(), &redis.url(), &format!("n{i}")).await);
    }
    nodes
}

/// Three nodes on one Redis, started on empty data dirs, serving `guest`
/// as acme/app on `host` with `manifest` (routes added) and `secrets`,
/// all set up through node A.
pub async fn fleet(
    guest: &str,
    host: &str,
    mut manifest: Value,
    secrets: &[(&str, &str)],
) -> (RedisServer, Vec<Platform>, Vec<tempfile::TempDir>) {
    let redis = RedisServer::start();
    manifest["routes"] = json!([host]);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (dir, name) in dirs.iter().zip(["a", "b", "c"]) {
        nodes.push(Platform::start_node(dir.path(), &redis.url(), name).await);
    }
    let first = &nodes[0];
    let token = first.tenant("acme").await;
    let r = first
        .deploy_manifest(&token, "acme", "app", manifest, guest)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    for (name, value) in secrets {
        let path = format!("/v1/tenants/acme/apps/app/secrets/{name}");
        let r = first
            .admin("PUT", &path, Some(&token), value.as_bytes().to_vec())
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    converged(&nodes, Duration::from_secs(5)).await;
    (redis, nodes, dirs)
}

/// Polls `f` every 100 ms until it is true, at most `within`.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut f: impl FnMut() -> F,
) {
    let started = Instant::now();
    while !f().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
