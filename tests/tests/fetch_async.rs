//! Parallel subrequests and work after the response, end to end: a real
//! guest (`fetch-async-probe`) starting fetches to a local origin.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use verge::capabilities::fetch::{DEFAULT_MAX_SUBREQUESTS, MAX_IN_FLIGHT_SUBREQUESTS};
use verge::runtime::Limits;
use verge_tests::origin::Origin;
use verge_tests::{Platform, Setup, TestServer, loopback_capabilities};

async fn server(limits: Limits) -> TestServer {
    let setup = Setup {
        limits,
        ..Setup::loopback()
    };
    TestServer::start_with(&["fetch-async-probe", "wit-0-1-0"], setup).await
}

fn probe(mode: &str, url: &str, extra: &str) -> String {
    format!("/fetch-async-probe?mode={mode}&url={url}{extra}")
}

#[tokio::test]
async fn started_fetches_run_at_once() {
    let origin = Origin::start().await;
    let s = server(Limits::default()).await;
    let slow = origin.url("/slow?ms=300");
    let started = Instant::now();
    let r = s.get(&probe("all", &slow, "&n=3")).await;
    let took = started.elapsed();
    assert_eq!(r.text(), "ok 200 10\nok 200 10\nok 200 10", "{}", r.text());
    // One after another would take 900 ms or more.
    assert!(took < Duration::from_millis(450), "took {took:?}");
    assert_eq!(origin.max_active(), 3);
}

#[tokio::test]
async fn at_most_the_in_flight_cap_runs_and_the_budget_counts_every_start() {
    let origin = Origin::start().await;
    let s = server(Limits::default()).await;
    let slow = origin.url("/slow?ms=50");
    let n = DEFAULT_MAX_SUBREQUESTS as usize + 1;
    let r = s.get(&probe("all", &slow, &format!("&n={n}"))).await;
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), n, "{text}");
    assert!(lines[..n - 1].iter().all(|l| *l == "ok 200 10"), "{text}");
    // Past the budget a start fails at once, before any origin request.
    assert_eq!(lines[n - 1], "error too-many-subrequests");
    assert_eq!(origin.hits(), DEFAULT_MAX_SUBREQUESTS as u64);
    // Starts past the cap waited for a slot instead of failing.
    assert_eq!(origin.max_active(), MAX_IN_FLIGHT_SUBREQUESTS as u64);
}

#[tokio::test]
async fn select_returns_the_first_ready_and_ready_does_not_wait() {
    let origin = Origin::start().await;
    let s = server(Limits::default()).await;
    let slow = origin.url("/slow?ms=400");
    let fast = origin.url("/hello");
    let started = Instant::now();
    let r = s
        .get(&probe("select", &slow, &format!("&url2={fast}")))
        .await;
    assert_eq!(r.text(), "first 1\nok 200 17", "{}", r.text());
    // The loser was dropped, not waited for.
    assert!(started.elapsed() < Duration::from_millis(350));
    let r = s
        .get(&probe("ready", &origin.url("/slow?ms=100"), ""))
        .await;
    assert_eq!(r.text(), "ready false\nok 200 10");
}

#[tokio::test]
async fn a_dropped_pending_fetch_closes_its_origin_request() {
    let origin = Origin::start().await;
    let s = server(Limits::default()).await;
    let slow = origin.url("/slow?ms=2000");
    let r = s
        .get(&probe(
            "drop",
            &slow,
            &format!("&url2={}", origin.url("/slow?ms=100")),
        ))
        .await;
    assert_eq!(r.text(), "dropped\nok 200 10");
    let waited = Instant::now();
    while origin.abandoned() == 0 && waited.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The origin saw its client go away well before it would answer.
    assert_eq!(origin.abandoned(), 1);
    assert_eq!(origin.active(), 0);
}

#[tokio::test]
async fn the_deadline_ends_every_pending_fetch_with_timeout() {
    let origin = Origin::start().await;
    let s = server(Limits {
        wall_clock: Duration::from_millis(400),
        ..Limits::default()
    })
    .await;
    let slow = origin.url("/slow?ms=2000");
    // The guest waits on fetches that outlive the request: the host's
    // timer ends the call, and with it every fetch still in flight.
    let r = s.get(&probe("all", &slow, "&n=4")).await;
    // The fetches end at the request's deadline, a tick before the call
    // does: the guest answers with four timeouts if it gets to run in that
    // tick, else the call itself ends as a 504. Either way, no fetch lives on.
    match r.status.as_u16() {
        200 => assert_eq!(r.text(), ["error timeout"; 4].join("\n")),
        status => assert_eq!(status, 504, "{}", r.text()),
    }
    let waited = Instant::now();
    while origin.active() > 0 && waited.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(origin.active(), 0, "no fetch outlives its request");
    assert_eq!(origin.abandoned(), 4);
}

#[tokio::test]
async fn using_a_pending_fetch_twice_is_a_clean_5xx() {
    let origin = Origin::start().await;
    let s = server(Limits::default()).await;
    let r = s.get(&probe("reuse", &origin.url("/hello"), "")).await;
    assert_eq!(r.status, 500, "{}", r.text());
    // The host keeps serving.
    let r = s.get(&probe("all", &origin.url("/hello"), "")).await;
    assert_eq!(r.text(), "ok 200 17");
}

#[tokio::test]
async fn a_function_built_against_0_1_0_still_runs() {
    let origin = Origin::start().await;
    let s = server(Limits::default()).await;
    let r = s.get("/wit-0-1-0").await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "0.1.0 hello"));
    let r = s
        .get(&format!("/wit-0-1-0?url={}", origin.url("/hello")))
        .await;
    assert_eq!(r.text(), "0.1.0 200 hello from origin");
}

/// A platform with `fetch-async-probe` deployed as acme/bg on `bg.test`,
/// allowed to fetch `origin`.
async fn background_platform(dir: &std::path::Path, origin: &Origin) -> (Platform, String) {
    background_platform_with(dir, origin, json!({})).await
}

/// [`background_platform`] for a tenant with `limits`.
async fn background_platform_with(
    dir: &std::path::Path,
    origin: &Origin,
    limits: Value,
) -> (Platform, String) {
    let p = Platform::start_with(dir, Setup::default().engine, loopback_capabilities()).await;
    let token = p.tenant_with_limits("acme", limits).await;
    let manifest = json!({
        "routes": ["bg.test"],
        "allowed_hosts": [format!("http://{}", origin.addr), "http://127.0.0.1:1"],
    });
    let r = p
        .deploy_manifest(&token, "acme", "bg", manifest, "fetch-async-probe")
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    (p, token)
}

/// The app's log lines, as `verge logs` reads them.
async fn log_lines(p: &Platform, token: &str) -> Vec<(String, String)> {
    let r = p
        .admin(
            "GET",
            "/v1/tenants/acme/apps/bg/logs",
            Some(token),
            Vec::new(),
        )
        .await;
    let value: Value = serde_json::from_slice(&r.body).unwrap();
    value["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["level"].as_str().unwrap_or("").to_owned(),
                l["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn wait_for_log(p: &Platform, token: &str, needle: &str) -> Vec<(String, String)> {
    let started = Instant::now();
    loop {
        let lines = log_lines(p, token).await;
        if lines.iter().any(|(_, m)| m.contains(needle))
            || started.elapsed() > Duration::from_secs(5)
        {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn work_handed_to_wait_until_finishes_after_the_response() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (p, token) = background_platform(dir.path(), &origin).await;
    // A handed-over fetch: the client does not wait for the 200 ms origin.
    let slow = origin.url("/slow?ms=200");
    let started = Instant::now();
    let r = p.get("bg.test", &probe("background", &slow, "")).await;
    let answered = started.elapsed();
    assert_eq!(r.text(), "sent");
    assert!(
        answered < Duration::from_millis(100),
        "answered in {answered:?}"
    );
    let lines = wait_for_log(&p, &token, "background fetch done").await;
    assert!(
        lines
            .iter()
            .any(|(level, m)| level == "debug" && m == "background fetch done: 200"),
        "{lines:?}"
    );
    assert_eq!(origin.hits(), 1);
    assert_eq!(origin.abandoned(), 0, "the background fetch ran to the end");

    // A deferred closure runs after the response, in the same instance,
    // and its fetch is logged with the request's id.
    let started = Instant::now();
    let r = p.get("bg.test", &probe("defer", &slow, "")).await;
    assert_eq!(r.text(), "deferred");
    assert!(started.elapsed() < Duration::from_millis(100));
    let lines = wait_for_log(&p, &token, "deferred fetch").await;
    assert!(
        lines.iter().any(|(_, m)| m == "deferred fetch 200"),
        "{lines:?}"
    );
    assert_eq!(origin.hits(), 2);

    // A background fetch that fails is logged, and counted apart.
    let refused = "http://127.0.0.1:1/nothing-listens";
    let r = p.get("bg.test", &probe("background", refused, "")).await;
    assert_eq!(r.text(), "sent");
    let lines = wait_for_log(&p, &token, "background fetch failed").await;
    assert!(
        lines.iter().any(|(level, m)| level == "warn"
            && m.starts_with("background fetch failed: connection failed")),
        "{lines:?}"
    );
    let metrics = p
        .admin("GET", "/metrics", Some(&p.operator), Vec::new())
        .await;
    let metrics = metrics.text();
    for series in [
        r#"verge_background_tasks_total{tenant="acme",op="fetch",outcome="ok"} 1"#,
        r#"verge_background_tasks_total{tenant="acme",op="fetch",outcome="connection"} 1"#,
        r#"verge_background_tasks_total{tenant="acme",op="deferred",outcome="ok"} 1"#,
        "verge_fetch_in_flight 0",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deferred_work_past_the_cpu_budget_is_stopped_and_logged() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (p, token) = background_platform(dir.path(), &origin).await;
    let started = Instant::now();
    let r = p
        .get("bg.test", &probe("defer", &origin.url("/hello"), "&spin=1"))
        .await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "deferred"));
    assert!(started.elapsed() < Duration::from_millis(100));
    let lines = wait_for_log(&p, &token, "deferred work stopped").await;
    assert!(
        lines.iter().any(|(level, m)| level == "warn"
            && m.contains("deferred work stopped")
            && m.contains("CPU budget")),
        "{lines:?}"
    );
    // It never reached its fetch, and the platform still serves.
    assert_eq!(origin.hits(), 0);
    let r = p
        .get("bg.test", &probe("all", &origin.url("/hello"), ""))
        .await;
    assert_eq!(r.text(), "ok 200 17");
}

#[tokio::test(flavor = "multi_thread")]
async fn work_after_the_response_shares_the_requests_subrequest_budget() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let limits = json!({ "max_subrequests": 1 });
    let (p, token) = background_platform_with(dir.path(), &origin, limits).await;
    // The handler spends the one subrequest; the deferred fetch gets none.
    let r = p
        .get("bg.test", &probe("defer", &origin.url("/hello"), "&pre=1"))
        .await;
    assert_eq!(r.text(), "ok 200 17\ndeferred");
    let lines = wait_for_log(&p, &token, "deferred fetch").await;
    assert!(
        lines
            .iter()
            .any(|(_, m)| m == "deferred fetch error too-many-subrequests"),
        "{lines:?}"
    );
    assert_eq!(origin.hits(), 1);
}

/// Work after the response keeps the admission its request had: a tenant
/// capped at 3 concurrent calls that hands 1 s fetches to `wait_until`
/// never has more than 3 running, and its requests past that wait (then
/// get 503) instead of the tenant filling the pool behind its own cap.
#[tokio::test(flavor = "multi_thread")]
async fn background_work_counts_against_the_tenants_concurrency_cap() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (p, _token) =
        background_platform_with(dir.path(), &origin, json!({ "max_concurrency": 3 })).await;
    let slow = origin.url("/slow?ms=1000");
    let path = probe("background", &slow, "");
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(p.get("bg.test", &path).await.status.as_u16());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        origin.max_active() <= 3,
        "{} background fetches at once under a cap of 3 ({statuses:?})",
        origin.max_active()
    );
    assert!(
        (3..12).contains(&ok) && statuses.contains(&503),
        "the cap held further requests back: {statuses:?}"
    );
    // Once the work ends, the tenant's slots are free again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(p.get("bg.test", &path).await.status, 200);
}
