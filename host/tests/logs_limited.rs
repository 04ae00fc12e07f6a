//! A function failing on every request cannot flood the operator's log:
//! failure lines are one line each, at most ten a second per app, and say
//! how many were dropped; control-plane events are logged at info.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

mod common;

use common::{Daemon, Options, http, start_with};

/// A daemon on `data` logging JSON lines at info to `log`, without the
/// access log.
fn with_json_log(data: &std::path::Path, log: &std::path::Path) -> Daemon {
    start_with(
        data,
        &Options {
            stderr: Some(log),
            args: &["--no-access-log"],
            json_logs: true,
            ..Options::default()
        },
    )
}

#[test]
fn failure_logs_are_rate_limited_per_app_and_control_plane_events_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let data = dir.path().join("data");
    let d = with_json_log(&data, &log);
    common::deploy(&d, "acme", "panics", "boom", "boom.test");
    let started = std::time::Instant::now();
    for _ in 0..200 {
        let (status, _) = http(d.data, "GET", "/", "boom.test", b"").unwrap();
        assert_eq!(status, 500);
    }
    let window = started.elapsed();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(http(d.data, "GET", "/", "boom.test", b"").unwrap().0, 500);
    drop(d);
    let text = std::fs::read_to_string(&log).unwrap();
    let failures: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("request failed"))
        .collect();
    // Ten per limiter window the failures touched, plus the lines of the
    // request after the pause (without a limit: 201 failure lines and 402
    // guest lines).
    let windows = window.as_secs() + 2;
    assert!(
        failures.len() as u64 <= 10 * windows + 2,
        "{} failure lines for 201 failures in {window:?}:\n{text}",
        failures.len()
    );
    assert!(failures.len() >= 10, "{text}");
    assert!(
        failures.last().unwrap().contains("\"dropped\":"),
        "the line after the pause says how many were dropped: {text}"
    );
    assert!(
        !text.contains("wasm backtrace"),
        "no backtraces at warn: {text}"
    );
    let mirrored = text.lines().filter(|l| l.contains("verge::guest")).count() as u64;
    assert!(
        mirrored <= 10 * windows + 2,
        "{mirrored} guest lines mirrored into the host log:\n{text}"
    );
    assert!(
        text.lines().count() < 100,
        "{} lines:\n{text}",
        text.lines().count()
    );
    assert!(text.contains("tenant created"), "{text}");
    assert!(text.contains("deployed"), "{text}");
}

#[test]
fn a_guest_panic_is_logged_once_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let data = dir.path().join("data");
    let d = with_json_log(&data, &log);
    common::deploy(&d, "acme", "panics", "boom", "boom.test");
    assert_eq!(
        http(d.data, "GET", "/once", "boom.test", b"").unwrap().0,
        500
    );
    // The app's own log keeps the guest's lines.
    let (status, ring) = common::admin(&d, "GET", "/v1/tenants/acme/apps/boom/logs", b"");
    assert_eq!(status, 200);
    assert!(
        ring.contains("the panics guest panicked on /once"),
        "{ring}"
    );
    drop(d);
    let text = std::fs::read_to_string(&log).unwrap();
    let mentions: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("the panics guest panicked on /once"))
        .collect();
    assert_eq!(mentions.len(), 1, "once in the host's log:\n{text}");
    assert!(mentions[0].contains("request failed"), "{}", mentions[0]);
    assert!(
        mentions[0].contains("panicked at"),
        "with where: {}",
        mentions[0]
    );
}
