//! End to end: the multi-tenant daemon, its admin API and its routing.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use verge::runtime::EngineSettings;
use verge::tenancy::registry::MAX_COMPONENT_BYTES;
use verge_tests::{Backend, Platform, Setup, guest};

fn json(reply: &verge_tests::Reply) -> Value {
    serde_json::from_slice(&reply.body).unwrap_or(Value::Null)
}

async fn deploy_routes_by_host_and_prefix_and_survives_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_on(dir.path(), &backend).await;
    let acme = p
        .tenant_with("acme", serde_json::json!({}), &["*.acme.test"])
        .await;
    p.deployed(&acme, "acme", "web", &["www.acme.test"], "hello")
        .await;
    p.deployed(
        &acme,
        "acme",
        "api",
        &["www.acme.test/api", "*.acme.test"],
        "echo",
    )
    .await;
    let home = p.get("www.acme.test", "/").await;
    assert_eq!(
        (home.status.as_u16(), home.text()),
        (200, "hello from verge /\n".into())
    );
    assert!(
        p.get("www.acme.test", "/api/x")
            .await
            .text()
            .starts_with("method=GET")
    );
    assert!(
        p.get("eu.acme.test", "/")
            .await
            .text()
            .starts_with("method=GET")
    );
    assert_eq!(
        p.get("www.acme.test:8080", "/").await.status,
        200,
        "the port is ignored"
    );
    let none = p.get("other.test", "/").await;
    assert_eq!(
        (none.status.as_u16(), none.header("verge-error")),
        (404, "no-route")
    );
    let compiled = p.daemon.registry.as_ref().unwrap().compiles();
    assert_eq!(compiled, 2);
    p.shutdown().await;

    let p = Platform::start_on(dir.path(), &backend).await;
    let registry = p.daemon.registry.as_ref().unwrap();
    assert_eq!(registry.live_apps(), 2);
    assert_eq!(registry.compiles(), 0, "restart loads compiled artifacts");
    assert_eq!(
        p.get("www.acme.test", "/x").await.text(),
        "hello from verge /x\n"
    );
    p.shutdown().await;

    // A different engine configuration must not load the stale artifacts.
    let engine = EngineSettings {
        metering: false,
        ..Setup::default().engine
    };
    let p = Platform::start_in_on(dir.path(), engine, &backend).await;
    assert_eq!(
        p.daemon.registry.as_ref().unwrap().compiles(),
        2,
        "recompiled for the new engine"
    );
    assert_eq!(
        p.get("www.acme.test", "/y").await.text(),
        "hello from verge /y\n"
    );
    p.shutdown().await;
}

async fn tokens_are_checked_and_tenants_are_isolated(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_on(dir.path(), &backend).await;
    let a = p.tenant("alpha").await;
    let b = p.tenant("beta").await;
    p.deployed(&a, "alpha", "site", &["alpha.test"], "hello")
        .await;
    p.deployed(&b, "beta", "site", &["beta.test"], "hello")
        .await;

    assert_eq!(
        p.admin("GET", "/v1/tenants/alpha/apps", None, vec![])
            .await
            .status,
        401,
        "no token"
    );
    assert_eq!(
        p.admin(
            "GET",
            "/v1/tenants/alpha/apps",
            Some("verge_alpha_00"),
            vec![]
        )
        .await
        .status,
        401,
        "forged token"
    );
    for (method, path) in [
        ("GET", "/v1/tenants/alpha/apps"),
        ("GET", "/v1/tenants/alpha/apps/site"),
        ("DELETE", "/v1/tenants/alpha/apps/site"),
        ("PUT", "/v1/tenants/alpha/apps/site"),
        ("POST", "/v1/tenants/alpha/apps/site/rollback"),
        ("GET", "/v1/tenants"),
        ("DELETE", "/v1/tenants/alpha"),
    ] {
        let reply = p.admin(method, path, Some(&b), b"{}".to_vec()).await;
        assert_eq!(
            reply.status,
            403,
            "{method} {path} with beta's token: {}",
            reply.text()
        );
    }
    assert_eq!(
        p.get("alpha.test", "/").await.status,
        200,
        "alpha still serving"
    );
    let own = p
        .admin("GET", "/v1/tenants/beta/apps", Some(&b), vec![])
        .await;
    assert_eq!(json(&own).as_array().map(Vec::len), Some(1));

    let op = p.operator.clone();
    assert_eq!(
        p.admin("GET", "/v1/tenants/nobody/apps", Some(&op), vec![])
            .await
            .status,
        404
    );
    assert_eq!(
        p.admin("GET", "/v1/tenants/alpha/apps/nope", Some(&a), vec![])
            .await
            .status,
        404
    );
    let activate = p
        .admin(
            "POST",
            "/v1/tenants/alpha/apps/site/activate",
            Some(&a),
            br#"{"version": 99}"#.to_vec(),
        )
        .await;
    assert_eq!(activate.status, 404, "{}", activate.text());
    let steal = p
        .admin(
            "PUT",
            "/v1/tenants/beta/apps/thief",
            Some(&b),
            br#"{"routes":["alpha.test"]}"#.to_vec(),
        )
        .await;
    assert_eq!(steal.status, 409, "{}", steal.text());
    assert_eq!(
        p.get("alpha.test", "/").await.text(),
        "hello from verge /\n"
    );
    p.shutdown().await;
}

async fn conflicts_malformed_json_and_bad_names_are_refused(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_on(dir.path(), &backend).await;
    let a = p.tenant("alpha").await;
    let b = p.tenant("beta").await;
    p.deployed(&a, "alpha", "site", &["shared.test/app"], "hello")
        .await;
    let steal = p
        .admin(
            "PUT",
            "/v1/tenants/beta/apps/x",
            Some(&b),
            br#"{"routes":["SHARED.test/app/"]}"#.to_vec(),
        )
        .await;
    assert_eq!(steal.status, 409, "{}", steal.text());
    assert!(
        !steal.text().contains("alpha") && !steal.text().contains("site"),
        "a refusal names no other tenant: {}",
        steal.text()
    );
    // A host belongs to one tenant: another prefix on it is refused too.
    let other_prefix = p
        .admin(
            "PUT",
            "/v1/tenants/beta/apps/x",
            Some(&b),
            br#"{"routes":["shared.test/other"]}"#.to_vec(),
        )
        .await;
    assert_eq!(other_prefix.status, 409, "{}", other_prefix.text());
    // Its owner may route another prefix on it from another app.
    let own_prefix = p
        .admin(
            "PUT",
            "/v1/tenants/alpha/apps/other",
            Some(&a),
            br#"{"routes":["shared.test/other"]}"#.to_vec(),
        )
        .await;
    assert_eq!(own_prefix.status, 200, "{}", own_prefix.text());
    for body in [
        &b"{not json"[..],
        br#"{"routez": []}"#,
        br#"{"routes": "x"}"#,
    ] {
        let reply = p
            .admin("PUT", "/v1/tenants/alpha/apps/y", Some(&a), body.to_vec())
            .await;
        assert_eq!(reply.status, 400, "{}", reply.text());
    }
    let bad_route = p
        .admin(
            "PUT",
            "/v1/tenants/alpha/apps/y",
            Some(&a),
            br#"{"routes":["bad host"]}"#.to_vec(),
        )
        .await;
    assert_eq!(bad_route.status, 400);
    let bad_name = p
        .admin(
            "PUT",
            "/v1/tenants/alpha/apps/Bad_Name",
            Some(&a),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(bad_name.status, 400);
    let dup = p
        .admin(
            "POST",
            "/v1/tenants",
            Some(&p.operator),
            br#"{"name":"alpha"}"#.to_vec(),
        )
        .await;
    assert_eq!(dup.status, 409);
    p.shutdown().await;
}

async fn bad_uploads_are_refused_with_the_reason_and_change_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_on(dir.path(), &backend).await;
    let a = p.tenant("alpha").await;
    p.deployed(&a, "alpha", "site", &["alpha.test"], "hello")
        .await;
    let unknown_import = std::fs::read(guest("imports-unknown")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "garbage",
            b"definitely not wasm".to_vec(),
            "not a WebAssembly component",
        ),
        ("empty", Vec::new(), "empty"),
        (
            "core module",
            b"\0asm\x01\0\0\0".to_vec(),
            "not a WebAssembly component",
        ),
        ("unknown import", unknown_import, "test:unknown/missing"),
        ("too large", vec![0u8; MAX_COMPONENT_BYTES + 1], "limit"),
    ];
    for (what, bytes, reason) in cases {
        // A body over its cap is 413; every other refusal 400.
        let status = if what == "too large" { 413 } else { 400 };
        let reply = p
            .admin(
                "POST",
                "/v1/tenants/alpha/apps/site/versions",
                Some(&a),
                bytes,
            )
            .await;
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        assert!(reply.text().contains(reason), "{what}: {}", reply.text());
        let versions = p
            .admin(
                "GET",
                "/v1/tenants/alpha/apps/site/versions",
                Some(&a),
                vec![],
            )
            .await;
        assert_eq!(
            json(&versions).as_array().map(Vec::len),
            Some(1),
            "{what}: nothing stored"
        );
        assert_eq!(
            p.get("alpha.test", "/still").await.text(),
            "hello from verge /still\n",
            "{what}"
        );
    }
    let stored: Vec<_> = std::fs::read_dir(dir.path().join("components"))
        .unwrap()
        .collect();
    assert_eq!(stored.len(), 1, "no blob written for refused uploads");
    p.shutdown().await;
}

async fn config_and_secrets_reach_the_guest_and_secrets_are_never_listed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_on(dir.path(), &backend).await;
    let a = p.tenant("alpha").await;
    p.deployed(&a, "alpha", "echo", &["echo.test"], "echo")
        .await;
    let set = p
        .admin(
            "PUT",
            "/v1/tenants/alpha/apps/echo/secrets/greeting",
            Some(&a),
            b"top-secret".to_vec(),
        )
        .await;
    assert_eq!(set.status, 200);
    assert!(!set.text().contains("top-secret"), "{}", set.text());
    assert!(
        p.get("echo.test", "/")
            .await
            .text()
            .contains("greeting=top-secret")
    );
    let show = p
        .admin("GET", "/v1/tenants/alpha/apps/echo", Some(&a), vec![])
        .await;
    assert!(!show.text().contains("top-secret") && show.text().contains("greeting"));
    let unset = p
        .admin(
            "DELETE",
            "/v1/tenants/alpha/apps/echo/secrets/greeting",
            Some(&a),
            vec![],
        )
        .await;
    assert_eq!(unset.status, 200);
    assert!(
        p.get("echo.test", "/")
            .await
            .text()
            .contains("greeting=<unset>")
    );
    p.shutdown().await;
}

async fn deploy_and_rollback_under_load_drop_no_request(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(Platform::start_on(dir.path(), &backend).await);
    let a = p.tenant("alpha").await;
    p.deployed(&a, "alpha", "site", &["site.test"], "hello")
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let (failed, hello, echo) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut load = Vec::new();
    for _ in 0..4 {
        let (p, stop, failed, hello, echo) = (
            p.clone(),
            stop.clone(),
            failed.clone(),
            hello.clone(),
            echo.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let reply = p.get("site.test", "/").await;
                let text = reply.text();
                match (
                    reply.status.as_u16(),
                    text.starts_with("hello"),
                    text.starts_with("method="),
                ) {
                    (200, true, _) => hello.fetch_add(1, Ordering::Relaxed),
                    (200, _, true) => echo.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let v2 = std::fs::read(guest("echo")).unwrap();
    assert_eq!(
        p.admin("POST", "/v1/tenants/alpha/apps/site/versions", Some(&a), v2)
            .await
            .status,
        201
    );
    assert!(
        p.get("site.test", "/").await.text().starts_with("method="),
        "v2 serves right after activation"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let back = p
        .admin(
            "POST",
            "/v1/tenants/alpha/apps/site/rollback",
            Some(&a),
            vec![],
        )
        .await;
    assert_eq!(json(&back)["active_version"], 1, "{}", back.text());
    assert!(
        p.get("site.test", "/").await.text().starts_with("hello"),
        "v1 serves right after rollback"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(hello.load(Ordering::Relaxed) > 0 && echo.load(Ordering::Relaxed) > 0);
}

verge_tests::on_both_backends!(
    deploy_routes_by_host_and_prefix_and_survives_restart,
    tokens_are_checked_and_tenants_are_isolated,
    conflicts_malformed_json_and_bad_names_are_refused,
    bad_uploads_are_refused_with_the_reason_and_change_nothing,
    config_and_secrets_reach_the_guest_and_secrets_are_never_listed,
    deploy_and_rollback_under_load_drop_no_request,
);
