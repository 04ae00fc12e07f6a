//! Fleet mode with real `verge serve` processes as nodes on one real
//! Redis: a node SIGKILLed under load loses nothing and catches up with
//! what changed while it was down; Redis stopped under load leaves every
//! node serving, and admin writes refused until it is back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

mod common;

use common::{Daemon, Options, admin, deploy, guests, http, start_with};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use verge_tests::redis_server::RedisServer;

/// Starts node `name` on `dir` against `redis`.
fn node(dir: &Path, redis: &RedisServer, name: &str) -> Daemon {
    let args = verge_tests::fleet_serve_args(dir, &redis.url(), name);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_with(
        dir,
        &Options {
            args: &args,
            ..Options::default()
        },
    )
}

/// The body `d` answers for `host` `/x`, or the status when not 200.
fn body(d: &Daemon, host: &str) -> String {
    match http(d.data, "GET", "/x", host, b"") {
        Ok((200, body)) => body,
        Ok((status, _)) => format!("status {status}"),
        Err(err) => format!("error {err}"),
    }
}

/// Waits until every node in `nodes` answers `host` with `text` in it.
fn served(nodes: &[&Daemon], host: &str, text: &str, within: Duration) {
    let started = Instant::now();
    for (i, d) in nodes.iter().enumerate() {
        loop {
            let got = body(d, host);
            if got.contains(text) {
                break;
            }
            assert!(
                started.elapsed() < within,
                "node {i}: {got:?}, not {text:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Load on `nodes` from two threads until `stop`; counts answers and
/// anything but a 200.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(targets: Vec<std::net::SocketAddr>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let threads = (0..2)
            .map(|t| {
                let (stop, answered, failed) = (stop.clone(), answered.clone(), failed.clone());
                let targets = targets.clone();
                std::thread::spawn(move || {
                    let mut i = t;
                    // Bounded: at most 60 s of load whatever the test does.
                    let started = Instant::now();
                    while !stop.load(Ordering::Relaxed)
                        && started.elapsed() < Duration::from_secs(60)
                    {
                        let addr = targets[i % targets.len()];
                        i += 1;
                        match http(addr, "GET", "/x", "web.test", b"") {
                            Ok((200, _)) => answered.fetch_add(1, Ordering::Relaxed),
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        Self {
            stop,
            answered,
            failed,
            threads,
        }
    }

    /// Stops the load: (answered, failed).
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        (
            self.answered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[test]
fn a_node_killed_under_load_loses_nothing_and_catches_up() {
    let redis = RedisServer::start();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = node(dirs[0].path(), &redis, "a");
    let mut b = node(dirs[1].path(), &redis, "b");
    let c = node(dirs[2].path(), &redis, "c");
    deploy(&a, "acme", "hello", "web", "web.test");
    served(
        &[&a, &b, &c],
        "web.test",
        "hello from verge",
        Duration::from_secs(2),
    );
    let load = Load::start(vec![a.data, c.data]);
    std::thread::sleep(Duration::from_millis(300));
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    // While B is down, a new version goes out through A.
    let wasm = std::fs::read(&guests()["echo"]).unwrap();
    let (status, text) = admin(&a, "POST", "/v1/tenants/acme/apps/web/versions", &wasm);
    assert_eq!(status, 201, "{text}");
    served(&[&a, &c], "web.test", "method=GET", Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(300));
    let (answered, failed) = load.finish();
    assert_eq!(failed, 0, "A and C answered {answered} and failed {failed}");
    assert!(answered > 100, "{answered}");
    // B restarts on its data dir and serves the current version at once,
    // even with its snapshot lost: the control plane is in Redis.
    std::fs::remove_file(dirs[1].path().join("control.redb")).unwrap();
    let b = node(dirs[1].path(), &redis, "b");
    assert!(
        body(&b, "web.test").contains("method=GET"),
        "{}",
        body(&b, "web.test")
    );
    let (_, nodes) = admin(&b, "GET", "/v1/nodes", b"");
    let nodes = common::json(&nodes);
    let revision = nodes["revision"].as_u64().unwrap();
    let started = Instant::now();
    loop {
        let (_, nodes) = admin(&b, "GET", "/v1/nodes", b"");
        let nodes = common::json(&nodes);
        let caught_up = nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["revision"].as_u64() == Some(revision))
            .count();
        if caught_up == 3 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{nodes}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn redis_stopped_under_load_leaves_every_node_serving() {
    let mut redis = RedisServer::start();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = node(dirs[0].path(), &redis, "a");
    let b = node(dirs[1].path(), &redis, "b");
    deploy(&a, "acme", "hello", "web", "web.test");
    served(
        &[&a, &b],
        "web.test",
        "hello from verge",
        Duration::from_secs(2),
    );
    let metric = |d: &Daemon, line: &str| admin(d, "GET", "/metrics", b"").1.contains(line);
    assert!(metric(&a, "verge_cluster_connected 1"));
    assert!(metric(&a, "verge_cluster_revision_lag 0"));
    let load = Load::start(vec![a.data, b.data]);
    std::thread::sleep(Duration::from_millis(200));
    redis.kill();
    std::thread::sleep(Duration::from_millis(500));
    // Admin writes are refused with the reason, on every node.
    for d in [&a, &b] {
        let (status, text) = admin(d, "PUT", "/v1/tenants/acme/apps/web/config/colour", b"blue");
        assert_eq!(status, 503, "{text}");
        assert!(text.contains("Redis"), "{text}");
        let (status, text) = admin(d, "GET", "/readyz", b"");
        assert_eq!(status, 503, "{text}");
        assert!(metric(d, "verge_cluster_connected 0"));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (answered, failed) = load.finish();
    assert_eq!(failed, 0, "answered {answered}, failed {failed}");
    // A node restarted during the outage serves its snapshot.
    drop(b);
    let b = node(dirs[1].path(), &redis, "b");
    assert!(body(&b, "web.test").contains("hello from verge"));
    // Redis is back (AOF on): writes work again and nothing acknowledged
    // was lost.
    redis.restart();
    let started = Instant::now();
    loop {
        let (status, _) = admin(
            &b,
            "PUT",
            "/v1/tenants/acme/apps/web/config/colour",
            b"blue",
        );
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, text) = admin(&a, "GET", "/v1/tenants/acme/apps/web/versions", b"");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"number\": 1"), "{text}");
}

#[test]
fn deploy_wait_returns_once_every_node_serves_the_version() {
    let redis = RedisServer::start();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = node(dirs[0].path(), &redis, "a");
    let mut b = node(dirs[1].path(), &redis, "b");
    let run = common::cli_in(
        &a,
        common::TOKEN,
        b"",
        &["tenants", "create", "acme", "--json"],
    );
    assert!(run.ok, "{}{}", run.out, run.err);
    let token = common::json(&run.out)["token"].as_str().unwrap().to_owned();
    let hello = guests()["hello"].to_string_lossy().into_owned();
    let args = [
        "deploy",
        hello.as_str(),
        "--app",
        "web",
        "--route",
        "web.test",
        "--wait",
    ];
    let run = common::cli_in(&a, &token, b"", &args);
    assert!(run.ok, "{}{}", run.out, run.err);
    assert!(run.out.contains("served by every node (2)"), "{}", run.out);
    // No polling: B serves it the moment the deploy returns.
    assert!(body(&b, "web.test").contains("hello from verge"));
    // `verge nodes` shows each node with its revision and lag.
    let run = common::cli_in(&a, common::TOKEN, b"", &["nodes"]);
    assert!(run.ok, "{}{}", run.out, run.err);
    for word in ["control-plane revision", "REVISION", "LAG"] {
        assert!(run.out.contains(word), "{word}: {}", run.out);
    }
    let run = common::cli_in(&a, common::TOKEN, b"", &["nodes", "--json"]);
    let nodes = common::json(&run.out);
    let lags: Vec<u64> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["lag"].as_u64().unwrap())
        .collect();
    assert_eq!(lags, [0, 0], "{nodes}");
    // A node that stopped (its heartbeat not yet expired) is named.
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let echo = guests()["echo"].to_string_lossy().into_owned();
    let args = [
        "deploy",
        echo.as_str(),
        "--app",
        "web",
        "--wait",
        "--wait-timeout",
        "1",
    ];
    let run = common::cli_in(&a, &token, b"", &args);
    assert!(!run.ok, "{}", run.out);
    assert!(
        run.err.contains("b (serves version 1)"),
        "{}{}",
        run.out,
        run.err
    );
}
