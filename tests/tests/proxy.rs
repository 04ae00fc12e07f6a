//! Standard `wasi:http/proxy` components (built with the `wasi` crate, no
//! Verge SDK) run unchanged: served streaming, under the same limits,
//! error mapping and outbound policy as Verge functions.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use std::time::{Duration, Instant};
use verge_tests::origin::Origin;
use verge_tests::{Platform, Setup, TestServer};

#[tokio::test(flavor = "multi_thread")]
async fn a_component_with_only_wasi_imports_serves() {
    // The benches serve these bytes on `wasmtime serve` too.
    let s = TestServer::start(&["wasi-hello"]).await;
    let r = s.get("/wasi-hello/x").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello from wasi:http /wasi-hello/x\n");
    assert_eq!(r.header("content-type"), "text/plain");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_component_serves_in_local_mode_and_when_deployed() {
    let s = TestServer::start(&["proxy-probe"]).await;
    let r = s.get("/proxy-probe/hello?x=1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello from wasi:http /proxy-probe/hello?x=1");

    // As `verge serve --app proxy_probe.wasm` runs it.
    let dir = tempfile::tempdir().unwrap();
    let config = verge::daemon::DaemonConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        engine: Setup::default().engine,
        limits: verge::runtime::Limits::default(),
        http: verge::server::HttpLimits::default(),
        access_log: None,
        capabilities: Default::default(),
        tls: None,
        connections: Default::default(),
        compile_worker: None,
        serving_threads: None,
    };
    let app = verge::daemon::LocalApp {
        name: "proxy-probe".into(),
        wasm: verge_tests::guest("proxy-probe"),
        vars: Default::default(),
        data_dir: dir.path().join("local"),
        allowed_hosts: Vec::new(),
    };
    let local = verge::daemon::start(&config, &app).await.unwrap();
    let r = s
        .send(
            Request::get(format!("http://{}/any/hello", local.addr))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(r.text(), "hello from wasi:http /any/hello");
    local.shutdown().await;

    let p = Platform::start(dir.path()).await;
    let token = p.tenant("acme").await;
    let r = p
        .deploy(&token, "acme", "std", &["std.test"], "proxy-probe")
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = p.get("std.test", "/hello").await;
    assert_eq!(r.text(), "hello from wasi:http /hello");
    let versions = p
        .admin(
            "GET",
            "/v1/tenants/acme/apps/std/versions",
            Some(&token),
            Vec::new(),
        )
        .await;
    let versions: serde_json::Value = serde_json::from_slice(&versions.body).unwrap();
    assert_eq!(versions[0]["world"], "wasi:http/proxy");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_chunk_arrives_before_the_last_is_written() {
    let s = TestServer::start(&["proxy-probe"]).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let started = Instant::now();
    let res = client
        .request(
            Request::get(s.url("/proxy-probe/stream"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let first_at = started.elapsed();
    assert_eq!(first, "first\n");
    let mut rest = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            rest.extend_from_slice(&data);
        }
    }
    let last_at = started.elapsed();
    assert_eq!(rest, b"last\n");
    assert!(
        first_at < Duration::from_millis(500),
        "first chunk after {first_at:?}"
    );
    assert!(
        last_at >= Duration::from_millis(700),
        "last chunk after {last_at:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_over_the_cap_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path()).await;
    let token = p
        .tenant_with_limits("acme", json!({ "max_response_body_bytes": 200_000 }))
        .await;
    let r = p
        .deploy(&token, "acme", "std", &["std.test"], "proxy-probe")
        .await;
    assert_eq!(r.status, 201);
    let at = p.get("std.test", "/bytes?n=200000").await;
    assert_eq!(at.body.len(), 200_000, "exactly at the cap");
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let req = Request::get(format!("http://{}/bytes?n=1000000", p.daemon.addr))
        .header("host", "std.test")
        .body(Full::default())
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(
        res.status(),
        200,
        "the head went out before the cap was hit"
    );
    let collected = res.into_body().collect().await;
    assert!(collected.is_err(), "the body was cut, not completed");
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_requests_follow_the_fetch_policy() {
    let origin = Origin::start().await;
    let url = format!("/proxy-probe/fetch?url={}", origin.url("/hello"));
    let denied = TestServer::start(&["proxy-probe"]).await;
    let r = denied.get(&url).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "error ErrorCode::HttpRequestDenied");
    assert_eq!(origin.hits(), 0);
    let allowed = TestServer::start_with(&["proxy-probe"], Setup::loopback()).await;
    assert_eq!(allowed.get(&url).await.text(), "status 200");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_and_memory_limits_map_as_for_verge_functions() {
    let s = TestServer::start(&["proxy-probe", "hello"]).await;
    let r = s.get("/proxy-probe/spin").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("verge-error"), "cpu-limit");
    let r = s.get("/proxy-probe/bomb").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("verge-error"), "memory-limit");
    assert_eq!(
        s.get("/hello/").await.status,
        200,
        "others keep being served"
    );
    assert_eq!(s.get("/proxy-probe/hello").await.status, 200);
    let short = Setup {
        limits: verge::runtime::Limits {
            wall_clock: Duration::from_millis(300),
            ..verge::runtime::Limits::default()
        },
        ..Setup::default()
    };
    let s = TestServer::start_with(&["proxy-probe"], short).await;
    let started = Instant::now();
    let r = s.get("/proxy-probe/sleep").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.header("verge-error"), "timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_components_can_use_verges_own_imports() {
    let setup = Setup {
        vars: vec![("greeting".into(), "hej".into())],
        ..Setup::default()
    };
    let s = TestServer::start_with(&["proxy-probe"], setup).await;
    assert_eq!(
        s.get("/proxy-probe/verge").await.text(),
        "greeting=hej hits=1"
    );
    assert_eq!(
        s.get("/proxy-probe/verge").await.text(),
        "greeting=hej hits=2"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_body_over_the_cap_is_refused_before_the_guest_runs() {
    let setup = Setup {
        http: verge::server::HttpLimits {
            max_request_body_bytes: 1000,
            ..verge::server::HttpLimits::default()
        },
        ..Setup::default()
    };
    let s = TestServer::start_with(&["proxy-probe"], setup).await;
    let at = Request::post(s.url("/proxy-probe/hello"))
        .body(Full::new(bytes::Bytes::from(vec![b'x'; 1000])))
        .unwrap();
    assert_eq!(s.send(at).await.status, 200, "exactly at the cap");
    let past = Request::post(s.url("/proxy-probe/hello"))
        .body(Full::new(bytes::Bytes::from(vec![b'x'; 1001])))
        .unwrap();
    let r = s.send(past).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.header("verge-error"), "body-too-large");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_components_outgoing_requests_run_at_once() {
    let origin = Origin::start().await;
    let s = TestServer::start_with(&["proxy-probe"], Setup::loopback()).await;
    let url = origin.url("/slow?ms=300");
    let started = Instant::now();
    let r = s.get(&format!("/proxy-probe/fanout?url={url}&n=3")).await;
    let took = started.elapsed();
    assert_eq!(r.text(), "status 200\nstatus 200\nstatus 200");
    // One after another would take 900 ms or more.
    assert!(took < Duration::from_millis(450), "took {took:?}");
    assert_eq!(origin.max_active(), 3);
}

/// A proxy component's outgoing requests take the request's in-flight
/// slots as `fetch` does: a fan-out of 20 (used to run all at once) never
/// has more than `MAX_IN_FLIGHT_SUBREQUESTS` heads pending.
#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_components_fan_out_is_held_to_the_in_flight_cap() {
    use verge::capabilities::fetch::MAX_IN_FLIGHT_SUBREQUESTS;
    let origin = Origin::start().await;
    let s = TestServer::start_with(&["proxy-probe"], Setup::loopback()).await;
    let url = origin.url("/slow?ms=200");
    let r = s.get(&format!("/proxy-probe/fanout?url={url}&n=20")).await;
    assert_eq!(r.text(), vec!["status 200"; 20].join("\n"));
    let most = usize::try_from(origin.max_active()).unwrap();
    assert_eq!(
        most, MAX_IN_FLIGHT_SUBREQUESTS,
        "at most the cap, and the cap is used"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_components_outgoing_bodies_stream_both_ways() {
    let origin = Origin::start().await;
    let s = TestServer::start_with(&["proxy-probe"], Setup::loopback()).await;
    // 64 MiB up: more than the 16 MiB the host used to collect.
    let url = origin.url("/count");
    let r = s.get(&format!("/proxy-probe/upload?url={url}&mb=64")).await;
    assert_eq!(r.text(), format!("{} bytes", 64 << 20));
    // And 64 MiB down, read by the guest in chunks.
    let url = origin.url(&format!("/bytes?n={}", 64 << 20));
    let r = s.get(&format!("/proxy-probe/download?url={url}")).await;
    assert_eq!(
        r.text(),
        format!("status 200 bytes {}", 64 << 20),
        "{}",
        r.text()
    );
}
