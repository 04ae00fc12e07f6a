//! End to end: per-tenant and per-app limits enforced by the platform
//! (concurrency, sizes) and the metrics that report them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;
use std::time::Duration;
use verge_tests::Platform;

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_at_its_concurrency_cap_gets_503_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(Platform::start(dir.path()).await);
    let limits = serde_json::json!({ "max_concurrency": 1 });
    let capped = p.tenant_with_limits("capped", limits).await;
    p.deployed(
        &capped,
        "capped",
        "slow",
        &["slow.test"],
        "sleeps-past-deadline",
    )
    .await;
    let other = p.tenant("other").await;
    p.deployed(&other, "other", "site", &["other.test"], "hello")
        .await;

    let holder = {
        let p = p.clone();
        tokio::spawn(async move { p.get("slow.test", "/sleeps-past-deadline?ms=1500").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = p.get("slow.test", "/sleeps-past-deadline?ms=1").await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("verge-error"), "overloaded");
    assert_eq!(refused.header("retry-after"), "1");
    assert_eq!(
        p.get("other.test", "/").await.status,
        200,
        "another tenant is not affected"
    );
    assert_eq!(holder.await.unwrap().status, 200);
    assert_eq!(
        p.get("slow.test", "/sleeps-past-deadline?ms=1")
            .await
            .status,
        200,
        "the slot is free again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_as_openmetrics_and_move_with_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path()).await;
    let a = p.tenant("alpha").await;
    p.deployed(&a, "alpha", "site", &["site.test"], "hello")
        .await;
    p.deployed(&a, "alpha", "spin", &["spin.test"], "cpu-spin")
        .await;
    let manifest = serde_json::json!({ "routes": ["kv.test"], "kv_stores": ["data"] });
    let r = p
        .deploy_manifest(&a, "alpha", "kv", manifest, "kv-probe")
        .await;
    assert_eq!(r.status, 201);
    for _ in 0..3 {
        assert_eq!(p.get("site.test", "/").await.status, 200);
    }
    assert_eq!(
        p.get("kv.test", "/set?store=data&key=k&value=v")
            .await
            .status,
        200
    );
    assert_eq!(p.get("kv.test", "/get?store=data&key=k").await.status, 200);
    assert_eq!(p.get("kv.test", "/get?store=data&key=k").await.status, 200);
    assert_eq!(p.get("spin.test", "/").await.status, 503);
    assert_eq!(p.get("nowhere.test", "/").await.status, 404);
    let metrics = p.admin("GET", "/metrics", None, vec![]).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .starts_with("application/openmetrics-text")
    );
    let text = metrics.text();
    // Every line is a comment, or `name{labels} value` with a numeric value.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample line: {line}");
    }
    assert!(text.trim_end().ends_with("# EOF"));
    let has = |needle: &str| text.lines().any(|l| l == needle);
    assert!(
        has(r#"verge_requests_total{tenant="alpha",app="site",status_class="2xx",error=""} 3"#),
        "{text}"
    );
    assert!(
        has(
            r#"verge_requests_total{tenant="alpha",app="spin",status_class="5xx",error="cpu-limit"} 1"#
        ),
        "{text}"
    );
    assert!(
        has(r#"verge_requests_total{tenant="-",app="-",status_class="4xx",error="no-route"} 1"#),
        "{text}"
    );
    assert!(has("verge_instances_in_flight 0"), "{text}");
    assert!(has("verge_admission_waiting 0"), "{text}");
    assert!(
        has(r#"verge_kv_operations_total{tenant="alpha",op="get",outcome="ok"} 2"#),
        "{text}"
    );
    assert!(has(
        r#"verge_kv_operations_total{tenant="alpha",op="set",outcome="ok"} 1"#
    ));
    assert!(text.contains("process_resident_memory_bytes "), "{text}");
    assert!(text.contains("process_cpu_seconds_total "), "{text}");
    assert!(text.contains(r#"verge_request_duration_seconds_count{tenant="alpha",app="site"} 3"#));
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_and_app_size_caps_apply_at_and_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path()).await;
    let limits = serde_json::json!({ "max_request_body_bytes": 1000 });
    let t = p.tenant_with_limits("sized", limits).await;
    let echo =
        serde_json::json!({ "routes": ["echo.test"], "limits": { "max_header_bytes": 400 } });
    assert_eq!(
        p.deploy_manifest(&t, "sized", "echo", echo, "echo")
            .await
            .status,
        201
    );
    let huge = serde_json::json!({ "routes": ["huge.test"], "limits": { "max_response_body_bytes": 1 << 20 } });
    assert_eq!(
        p.deploy_manifest(&t, "sized", "huge", huge, "huge-response")
            .await
            .status,
        201
    );

    let post = |len: usize| {
        http::Request::post(format!("http://{}/", p.daemon.addr))
            .header("host", "echo.test")
            .body(vec![b'x'; len].into())
            .unwrap()
    };
    let at = p.request(post(1000)).await;
    assert_eq!(at.status, 200, "{}", at.text());
    let past = p.request(post(1001)).await;
    assert_eq!(
        (past.status.as_u16(), past.header("verge-error")),
        (413, "body-too-large")
    );

    let with_header = |len: usize| {
        http::Request::get(format!("http://{}/", p.daemon.addr))
            .header("host", "echo.test")
            .header("x-pad", "p".repeat(len))
            .body(Default::default())
            .unwrap()
    };
    assert_eq!(p.request(with_header(300)).await.status, 200);
    let big = p.request(with_header(450)).await;
    assert_eq!(
        (big.status.as_u16(), big.header("verge-error")),
        (431, "headers-too-large")
    );

    let one = p.get("huge.test", "/huge-response?mib=1").await;
    assert_eq!((one.status.as_u16(), one.body.len()), (200, 1 << 20));
    let two = p.get("huge.test", "/huge-response?mib=2").await;
    assert_eq!(
        (two.status.as_u16(), two.header("verge-error")),
        (502, "bad-guest-response")
    );
    p.shutdown().await;
}
