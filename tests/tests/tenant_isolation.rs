//! Hostile tenants against the control plane: route claims across tenants,
//! operator grants for wildcards, count caps at and past their limits, and
//! reserved names (docs/security.md).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

use serde_json::json;
use verge::tenancy::RegistryCaps;
use verge_tests::{Backend, Platform, Setup};

fn manifest(routes: &[&str]) -> Vec<u8> {
    json!({ "routes": routes }).to_string().into_bytes()
}

async fn a_tenant_cannot_claim_a_host_another_tenant_owns(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_on(dir.path(), &backend).await;
    let victim = p.tenant("victim").await;
    let attacker = p.tenant("attacker").await;
    let deployed = p
        .deploy(&victim, "victim", "shop", &["evil.test"], "hello")
        .await;
    assert_eq!(deployed.status, 201, "{}", deployed.text());
    for route in ["evil.test/sub", "evil.test", "EVIL.test/api/"] {
        let steal = p
            .admin(
                "PUT",
                "/v1/tenants/attacker/apps/thief",
                Some(&attacker),
                manifest(&[route]),
            )
            .await;
        assert_eq!(steal.status, 409, "{route}: {}", steal.text());
        let text = steal.text();
        assert!(
            !text.contains("victim") && !text.contains("shop"),
            "the refusal names the owner: {text}"
        );
    }
    // Nothing was created by the refusals, and the victim's paths serve.
    let apps = p
        .admin("GET", "/v1/tenants/attacker/apps", Some(&attacker), vec![])
        .await;
    assert_eq!(apps.text().trim(), "[]");
    assert_eq!(
        p.get("evil.test", "/sub").await.text(),
        "hello from verge /sub\n"
    );
    // The owner may route more paths on its own host from another app.
    let own = p
        .admin(
            "PUT",
            "/v1/tenants/victim/apps/api",
            Some(&victim),
            manifest(&["evil.test/api"]),
        )
        .await;
    assert_eq!(own.status, 200, "{}", own.text());
    p.shutdown().await;
}

async fn wildcards_and_catch_all_are_operator_grants_and_never_cover_another_tenant(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_on(dir.path(), &backend).await;
    let victim = p.tenant("victim").await;
    let attacker = p.tenant("attacker").await;
    let put = |token: String, routes: &'static [&'static str]| {
        let p = &p;
        async move {
            p.admin(
                "PUT",
                "/v1/tenants/attacker/apps/wild",
                Some(&token),
                manifest(routes),
            )
            .await
        }
    };
    p.deployed(&victim, "victim", "shop", &["shop.test"], "hello")
        .await;
    for routes in [&["*"][..], &["*.test"], &["*.attacker.test"]] {
        let refused = put(attacker.clone(), routes).await;
        assert_eq!(refused.status, 403, "{routes:?}: {}", refused.text());
        assert!(refused.text().contains("grant"), "{}", refused.text());
    }
    // A tenant may not grant itself anything.
    let self_grant = p
        .admin(
            "PUT",
            "/v1/tenants/attacker/route-grants",
            Some(&attacker),
            br#"{"route_grants":["*"]}"#.to_vec(),
        )
        .await;
    assert_eq!(self_grant.status, 403);
    let granted = p
        .admin(
            "PUT",
            "/v1/tenants/attacker/route-grants",
            Some(&p.operator),
            br#"{"route_grants":["*.test"]}"#.to_vec(),
        )
        .await;
    assert_eq!(granted.status, 200, "{}", granted.text());
    // Granted, but `*.test` would cover the victim's shop.test.
    let covering = put(attacker.clone(), &["*.test"]).await;
    assert_eq!(covering.status, 409, "{}", covering.text());
    assert!(!covering.text().contains("victim"), "{}", covering.text());
    let narrower = put(attacker.clone(), &["*.attacker.test"]).await;
    assert_eq!(narrower.status, 200, "{}", narrower.text());
    // And now the victim may not take a host under the attacker's wildcard.
    let under = p
        .admin(
            "PUT",
            "/v1/tenants/victim/apps/other",
            Some(&victim),
            manifest(&["www.attacker.test"]),
        )
        .await;
    assert_eq!(under.status, 409, "{}", under.text());
    p.shutdown().await;
}

async fn counts_are_capped_at_their_limit_and_one_past_is_refused(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let caps = RegistryCaps {
        max_tenants: 3,
        max_apps_per_tenant: 4,
        max_routes_per_app: 5,
        ..RegistryCaps::default()
    };
    let p = Platform::start_capped_on(dir.path(), Setup::default().engine, caps, &backend).await;
    let t = p.tenant("t1").await;
    p.tenant("t2").await;
    p.tenant("t3").await;
    let fourth = p
        .admin(
            "POST",
            "/v1/tenants",
            Some(&p.operator),
            br#"{"name":"t4"}"#.to_vec(),
        )
        .await;
    assert_eq!(fourth.status, 422, "{}", fourth.text());
    assert!(fourth.text().contains("at most 3"), "{}", fourth.text());

    let routes: Vec<String> = (0..5).map(|i| format!("r{i}.t1.test")).collect();
    let at = p
        .admin(
            "PUT",
            "/v1/tenants/t1/apps/a0",
            Some(&t),
            json!({ "routes": routes }).to_string().into_bytes(),
        )
        .await;
    assert_eq!(at.status, 200, "5 routes: {}", at.text());
    let routes: Vec<String> = (0..6).map(|i| format!("r{i}.t1.test")).collect();
    let past = p
        .admin(
            "PUT",
            "/v1/tenants/t1/apps/a0",
            Some(&t),
            json!({ "routes": routes }).to_string().into_bytes(),
        )
        .await;
    assert_eq!(past.status, 422, "6 routes: {}", past.text());

    for i in 1..4 {
        let app = p
            .admin(
                "PUT",
                &format!("/v1/tenants/t1/apps/a{i}"),
                Some(&t),
                manifest(&[]),
            )
            .await;
        assert_eq!(app.status, 200, "app {i}: {}", app.text());
    }
    let fifth = p
        .admin("PUT", "/v1/tenants/t1/apps/a4", Some(&t), manifest(&[]))
        .await;
    assert_eq!(fifth.status, 422, "{}", fifth.text());
    let update = p
        .admin("PUT", "/v1/tenants/t1/apps/a3", Some(&t), manifest(&[]))
        .await;
    assert_eq!(
        update.status, 200,
        "updating an existing app is not a new one"
    );
    p.shutdown().await;
}

async fn tens_of_thousands_of_routes_are_refused_at_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_on(dir.path(), &backend).await;
    let t = p.tenant("t").await;
    // 95,000 routes no longer fit the admin body cap (413); 60,000 do and
    // are refused by the route cap before any is parsed (422).
    for (count, status) in [(95_000, 413), (60_000, 422)] {
        let routes: Vec<String> = (0..count).map(|i| format!("h{i}.t.test")).collect();
        let started = std::time::Instant::now();
        let refused = p
            .admin(
                "PUT",
                "/v1/tenants/t/apps/many",
                Some(&t),
                json!({ "routes": routes }).to_string().into_bytes(),
            )
            .await;
        assert_eq!(refused.status, status, "{count}: {}", refused.text());
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
    p.shutdown().await;
}

async fn reserved_tenant_names_are_refused(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_on(dir.path(), &backend).await;
    for name in verge::tenancy::RESERVED_TENANT_NAMES {
        let reply = p
            .admin(
                "POST",
                "/v1/tenants",
                Some(&p.operator),
                json!({ "name": name }).to_string().into_bytes(),
            )
            .await;
        assert_eq!(reply.status, 403, "{name}: {}", reply.text());
        assert!(reply.text().contains("reserved"), "{}", reply.text());
    }
    p.shutdown().await;
}

async fn a_tenant_created_again_sees_none_of_the_old_ones_data_or_logs(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_on(dir.path(), &backend).await;
    let old = p.tenant("victim").await;
    let put = p
        .admin(
            "PUT",
            "/v1/tenants/victim/kv/main/keys/secret",
            Some(&old),
            b"old tenant's value".to_vec(),
        )
        .await;
    assert!(put.status.is_success(), "{}", put.text());
    p.deployed(&old, "victim", "echo", &["victim.test"], "echo")
        .await;
    assert_eq!(p.get("victim.test", "/hello").await.status, 200);
    let logs = p
        .admin(
            "GET",
            "/v1/tenants/victim/apps/echo/logs",
            Some(&old),
            vec![],
        )
        .await;
    assert!(logs.text().contains("echo /hello"), "{}", logs.text());

    let deleted = p
        .admin("DELETE", "/v1/tenants/victim", Some(&p.operator), vec![])
        .await;
    assert_eq!(deleted.status, 200);
    let new = p.tenant("victim").await;
    let read = p
        .admin(
            "GET",
            "/v1/tenants/victim/kv/main/keys/secret",
            Some(&new),
            vec![],
        )
        .await;
    assert_eq!(read.status, 404, "the old value leaked: {}", read.text());
    let listed = p
        .admin("GET", "/v1/tenants/victim/kv/main/keys", Some(&new), vec![])
        .await;
    assert!(!listed.text().contains("secret"), "{}", listed.text());
    assert_eq!(
        p.admin(
            "PUT",
            "/v1/tenants/victim/apps/echo",
            Some(&new),
            manifest(&["victim.test"]),
        )
        .await
        .status,
        200
    );
    let logs = p
        .admin(
            "GET",
            "/v1/tenants/victim/apps/echo/logs",
            Some(&new),
            vec![],
        )
        .await;
    assert!(
        !logs.text().contains("echo /hello"),
        "old log lines: {}",
        logs.text()
    );
    // The old token is dead.
    let stale = p
        .admin("GET", "/v1/tenants/victim/apps", Some(&old), vec![])
        .await;
    assert_eq!(stale.status, 401);
    p.shutdown().await;
}

async fn limits_above_the_tenant_ceiling_are_reported_as_what_the_app_gets(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_on(dir.path(), &backend).await;
    let t = p
        .tenant_with_limits("t", json!({ "cpu_ms": 20, "memory_mib": 64 }))
        .await;
    let manifest = json!({
        "routes": ["t.test"],
        "limits": { "cpu_ms": 100, "memory_mib": 32 }
    });
    let put = p
        .admin(
            "PUT",
            "/v1/tenants/t/apps/site",
            Some(&t),
            manifest.to_string().into_bytes(),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let deployed = p.deploy_manifest(&t, "t", "site", manifest, "hello").await;
    assert_eq!(deployed.status, 201, "{}", deployed.text());
    let answer: serde_json::Value = serde_json::from_slice(&deployed.body).unwrap();
    assert_eq!(answer["effective_limits"]["cpu_ms"], 20, "{answer}");
    assert_eq!(answer["effective_limits"]["memory_mib"], 32, "{answer}");
    let shown = p
        .admin("GET", "/v1/tenants/t/apps/site", Some(&t), vec![])
        .await;
    let shown: serde_json::Value = serde_json::from_slice(&shown.body).unwrap();
    assert_eq!(shown["limits"]["cpu_ms"], 100, "what was asked: {shown}");
    assert_eq!(
        shown["effective_limits"]["cpu_ms"], 20,
        "what it gets: {shown}"
    );
    p.shutdown().await;
}

async fn outbound_grants_are_per_tenant_and_port_and_never_reach_the_daemon(backend: Backend) {
    let origin = verge_tests::origin::Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_on(dir.path(), &backend).await;
    let origin_url = origin.url("/hello");
    let port = origin_url
        .rsplit(':')
        .next()
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let granted = p
        .tenant_with_outbound("granted", &[&format!("127.0.0.1/32:{port}")])
        .await;
    let other = p.tenant("other").await;
    for (token, tenant) in [(&granted, "granted"), (&other, "other")] {
        let manifest = json!({
            "routes": [format!("{tenant}.test")],
            "allowed_hosts": ["http://127.0.0.1:*"],
        });
        let deployed = p
            .deploy_manifest(token, tenant, "probe", manifest, "fetch-probe")
            .await;
        assert_eq!(deployed.status, 201, "{}", deployed.text());
    }
    let fetch = |host: &'static str, url: String| {
        let p = &p;
        async move {
            p.get(host, &format!("/fetch-probe?url={url}&echo=0"))
                .await
                .text()
        }
    };
    let ok = fetch("granted.test", origin_url.clone()).await;
    assert!(ok.starts_with("ok 200"), "the granted tenant: {ok}");
    let refused = fetch("other.test", origin_url.clone()).await;
    assert!(
        refused.starts_with("error denied"),
        "another tenant: {refused}"
    );
    let admin = format!("http://{}/metrics", p.daemon.admin_addr.unwrap());
    let refused = fetch("granted.test", admin.clone()).await;
    assert!(
        refused.starts_with("error denied"),
        "another port: {refused}"
    );

    // Granted all of 127.0.0.1: still never the daemon's own listeners.
    let wide = p
        .admin(
            "PUT",
            "/v1/tenants/granted/outbound-grants",
            Some(&p.operator),
            br#"{"outbound_grants":["127.0.0.1/32"]}"#.to_vec(),
        )
        .await;
    assert_eq!(wide.status, 200, "{}", wide.text());
    let refused = fetch("granted.test", admin).await;
    assert!(
        refused.starts_with("error denied"),
        "the admin API: {refused}"
    );
    let data = format!("http://{}/", p.daemon.addr);
    let refused = fetch("granted.test", data).await;
    assert!(
        refused.starts_with("error denied"),
        "the data plane: {refused}"
    );
    assert!(
        fetch("granted.test", origin_url)
            .await
            .starts_with("ok 200")
    );
    // A tenant may not grant itself a range.
    let self_grant = p
        .admin(
            "PUT",
            "/v1/tenants/other/outbound-grants",
            Some(&other),
            br#"{"outbound_grants":["0.0.0.0/0"]}"#.to_vec(),
        )
        .await;
    assert_eq!(self_grant.status, 403);
    p.shutdown().await;
}

async fn a_tenant_created_again_sees_none_of_the_old_ones_cache_entries_or_secrets(
    backend: Backend,
) {
    let origin = verge_tests::origin::Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start_on(dir.path(), &backend).await;
    let manifest = json!({
        "routes": ["victim.test"],
        "allowed_hosts": ["http://127.0.0.1:*"],
    });
    let fill = format!(
        "/cache-probe/fill?key=k&ttl=300&url={}",
        origin.url("/hello")
    );
    let old = p.tenant_with_outbound("victim", &["127.0.0.1/32"]).await;
    let deployed = p
        .deploy_manifest(&old, "victim", "site", manifest.clone(), "cache-probe")
        .await;
    assert_eq!(deployed.status, 201, "{}", deployed.text());
    assert_eq!(p.get("victim.test", &fill).await.status, 200);
    assert_eq!(
        p.get("victim.test", "/cache-probe/get?key=k").await.status,
        200
    );
    let secret = p
        .admin(
            "PUT",
            "/v1/tenants/victim/apps/site/secrets/api-key",
            Some(&old),
            b"old-secret".to_vec(),
        )
        .await;
    assert!(secret.status.is_success(), "{}", secret.text());

    let deleted = p
        .admin("DELETE", "/v1/tenants/victim", Some(&p.operator), vec![])
        .await;
    assert_eq!(deleted.status, 200);
    let new = p.tenant_with_outbound("victim", &["127.0.0.1/32"]).await;
    let deployed = p
        .deploy_manifest(&new, "victim", "site", manifest, "cache-probe")
        .await;
    assert_eq!(deployed.status, 201, "{}", deployed.text());
    let cached = p.get("victim.test", "/cache-probe/get?key=k").await;
    assert_eq!(
        cached.status,
        404,
        "the old tenant's cache entry: {}",
        cached.text()
    );
    let app = p
        .admin("GET", "/v1/tenants/victim/apps/site", Some(&new), vec![])
        .await;
    let app: serde_json::Value = serde_json::from_slice(&app.body).unwrap();
    assert_eq!(app["secrets"], json!([]), "the old tenant's secrets: {app}");
    p.shutdown().await;
}

verge_tests::on_both_backends!(
    a_tenant_cannot_claim_a_host_another_tenant_owns,
    wildcards_and_catch_all_are_operator_grants_and_never_cover_another_tenant,
    counts_are_capped_at_their_limit_and_one_past_is_refused,
    tens_of_thousands_of_routes_are_refused_at_once,
    reserved_tenant_names_are_refused,
    a_tenant_created_again_sees_none_of_the_old_ones_data_or_logs,
    limits_above_the_tenant_ceiling_are_reported_as_what_the_app_gets,
    outbound_grants_are_per_tenant_and_port_and_never_reach_the_daemon,
    a_tenant_created_again_sees_none_of_the_old_ones_cache_entries_or_secrets,
);
