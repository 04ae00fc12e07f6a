//! 300 apps of one component share one loaded artifact: one mapping of
//! the compiled file, not one per app (which used to run a daemon out of
//! file descriptors), before and after a restart.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

mod common;

use common::{Daemon, admin, guests, start};

/// Lines of the daemon's memory map, and open fds, naming a compiled
/// artifact (`.cwasm`).
fn artifact_maps_and_fds(d: &Daemon) -> (usize, usize) {
    let pid = d.child.id();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let lines = maps.lines().filter(|l| l.contains(".cwasm")).count();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains(".cwasm"))
        .count();
    (lines, fds)
}

#[test]
fn three_hundred_apps_of_one_component_hold_one_artifact_mapping() {
    let hello = std::fs::read(&guests()["hello"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path());
    for t in 0..3 {
        let body = format!(r#"{{"name":"t{t}"}}"#);
        assert_eq!(admin(&d, "POST", "/v1/tenants", body.as_bytes()).0, 201);
        for a in 0..100 {
            let path = format!("/v1/tenants/t{t}/apps/a{a}");
            let routes = format!(r#"{{"routes":["a{a}.t{t}.test"]}}"#);
            assert_eq!(admin(&d, "PUT", &path, routes.as_bytes()).0, 200);
            let (status, text) = admin(&d, "POST", &format!("{path}/versions"), &hello);
            assert_eq!(status, 201, "{text}");
        }
    }
    let (one, _) = {
        let (status, _) = common::http(d.data, "GET", "/", "a7.t2.test", b"").unwrap();
        assert_eq!(status, 200);
        artifact_maps_and_fds(&d)
    };
    drop(d);
    d = start(dir.path());
    let (status, _) = common::http(d.data, "GET", "/", "a99.t0.test", b"").unwrap();
    assert_eq!(status, 200);
    let (maps, fds) = artifact_maps_and_fds(&d);
    assert!(
        maps <= 4,
        "{maps} mapping lines of compiled artifacts for 300 apps"
    );
    assert!(one <= 4, "{one} mapping lines before the restart");
    assert!(fds <= 1, "{fds} open artifact files");
}
