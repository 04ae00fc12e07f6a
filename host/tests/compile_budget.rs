//! Compile bombs against the `verge` binary: a slow compile holds no other
//! tenant's admin writes, is stopped at the compile budget, and is killed
//! when its client goes away (the compile runs in a `verge compile-worker`
//! child process).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

mod common;

use common::{Daemon, Options, TOKEN, admin, nested_blocks_component, start_with};
use std::io::Write as _;
use std::time::{Duration, Instant};

/// The daemon's live `verge compile-worker` children.
fn compile_workers(d: &Daemon) -> usize {
    let pid = d.child.id();
    let mut count = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace() {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("compile-worker") {
                count += 1;
            }
        }
    }
    count
}

fn two_tenants(d: &Daemon) {
    for tenant in ["bomber", "other"] {
        let body = format!(r#"{{"name":"{tenant}"}}"#);
        assert_eq!(admin(d, "POST", "/v1/tenants", body.as_bytes()).0, 201);
        let manifest = format!(r#"{{"routes":["{tenant}.test"]}}"#);
        let path = format!("/v1/tenants/{tenant}/apps/site");
        assert_eq!(admin(d, "PUT", &path, manifest.as_bytes()).0, 200);
    }
}

#[test]
fn a_compile_bomb_holds_no_other_tenants_writes_and_is_stopped_at_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(
        dir.path(),
        &Options {
            config: Some("[tenancy]\ncompile_budget_secs = 2\n"),
            ..Options::default()
        },
    );
    two_tenants(&d);
    // ~390 KB that would compile for tens of seconds (nested blocks).
    let bomb = nested_blocks_component(130_000);
    let upload = {
        let (addr, bomb) = (d.admin, bomb.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let auth = format!("authorization: Bearer {TOKEN}\r\n");
            let path = "/v1/tenants/bomber/apps/site/versions";
            let (status, body) = common::request(addr, "POST", path, "a", &auth, &bomb).unwrap();
            (status, body, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let second = admin(&d, "POST", "/v1/tenants/bomber/apps/site/versions", &bomb);
    assert_eq!(second.0, 429, "the bomber's second upload: {}", second.1);
    for i in 0..5 {
        let started = Instant::now();
        let path = "/v1/tenants/other/apps/site/config/greeting";
        let (status, body) = admin(&d, "PUT", path, format!("hello {i}").as_bytes());
        let took = started.elapsed();
        assert_eq!(status, 200, "{body}");
        assert!(
            took < Duration::from_millis(200),
            "a config write waited {took:?} behind another tenant's compile"
        );
    }
    let (status, body, took) = upload.join().unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("compile budget"), "{body}");
    assert!(
        took < Duration::from_secs(5),
        "stopped at the 2 s budget, took {took:?}"
    );
    assert_eq!(compile_workers(&d), 0, "the worker was killed");
    // The bomber spent its window's compile time (one budget): its next
    // compile is refused at once, before any worker starts.
    let started = Instant::now();
    let third = admin(&d, "POST", "/v1/tenants/bomber/apps/site/versions", &bomb);
    assert_eq!(third.0, 429, "the bomber's next bomb: {}", third.1);
    assert!(third.1.contains("compile time"), "{}", third.1);
    assert!(started.elapsed() < Duration::from_secs(1));
    // A real component still deploys, through the worker.
    common::deploy(&d, "other", "hello", "site", "other.test");
    let (status, _) = common::http(d.data, "GET", "/", "other.test", b"").unwrap();
    assert_eq!(status, 200);
}

#[test]
fn a_compile_is_killed_when_its_client_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(dir.path(), &Options::default());
    two_tenants(&d);
    let bomb = nested_blocks_component(130_000);
    let mut stream = std::net::TcpStream::connect(d.admin).unwrap();
    let head = format!(
        "POST /v1/tenants/bomber/apps/site/versions HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {TOKEN}\r\ncontent-length: {}\r\n\r\n",
        bomb.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&bomb).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while compile_workers(&d) == 0 {
        assert!(Instant::now() < deadline, "no compile worker started");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while compile_workers(&d) > 0 {
        assert!(
            Instant::now() < deadline,
            "the compile went on after its client left"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The tenant's compile slot is free again.
    let (status, _) = admin(&d, "GET", "/readyz", b"");
    assert_eq!(status, 200);
}
