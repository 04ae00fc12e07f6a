//! End to end: the kv capability through real tenants, routes and redb.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use verge::storage::kv::{MAX_KEY_BYTES, MAX_LIST_LIMIT, MAX_VALUE_BYTES};
use verge_tests::Platform;

async fn platform_with_two_tenants(dir: &std::path::Path) -> Platform {
    let p = Platform::start(dir).await;
    for tenant in ["alpha", "beta"] {
        let token = p.tenant(tenant).await;
        let manifest =
            json!({ "routes": [format!("{tenant}.test")], "kv_stores": ["data", "other"] });
        assert_eq!(
            p.deploy_manifest(&token, tenant, "probe", manifest, "kv-probe")
                .await
                .status,
            201
        );
    }
    p
}

async fn call(p: &Platform, tenant: &str, query: &str) -> (u16, String) {
    let reply = p
        .get(&format!("{tenant}.test"), &format!("/kv-probe/{query}"))
        .await;
    (reply.status.as_u16(), reply.text())
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_with_the_same_store_and_key_never_meet() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform_with_two_tenants(dir.path()).await;
    assert_eq!(
        call(&p, "alpha", "set?key=k&value=from-alpha").await,
        (200, "ok".into())
    );
    assert_eq!(call(&p, "beta", "get?key=k").await, (200, "<none>".into()));
    assert_eq!(call(&p, "beta", "list?prefix=").await, (200, "|".into()));
    assert_eq!(call(&p, "beta", "set?key=k&value=from-beta").await.0, 200);
    assert_eq!(
        call(&p, "alpha", "get?key=k").await,
        (200, "from-alpha".into())
    );
    assert_eq!(
        call(&p, "beta", "get?key=k").await,
        (200, "from-beta".into())
    );
    assert_eq!(call(&p, "alpha", "delete?key=k").await.0, 200);
    assert_eq!(
        call(&p, "beta", "get?key=k").await,
        (200, "from-beta".into())
    );
    // Stores of one tenant are separate too.
    assert_eq!(
        call(&p, "beta", "get?key=k&store=other").await,
        (200, "<none>".into())
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sixteen_tasks_times_a_thousand_increments_make_sixteen_thousand() {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(platform_with_two_tenants(dir.path()).await);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..1000 {
                let (status, body) = call(&p, "alpha", "incr?key=counter").await;
                assert_eq!(status, 200, "{body}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        call(&p, "alpha", "get?key=counter").await,
        (200, "16000".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ttl_expires_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform_with_two_tenants(dir.path()).await;
    assert_eq!(call(&p, "alpha", "set?key=t&value=v&ttl=1").await.0, 200);
    assert_eq!(call(&p, "alpha", "get?key=t").await.1, "v");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(call(&p, "alpha", "get?key=t").await.1, "<none>");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors_and_corrupts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform_with_two_tenants(dir.path()).await;
    assert_eq!(call(&p, "alpha", "set?key=keep&value=safe").await.0, 200);
    assert_eq!(
        call(&p, "alpha", "get?key=keep&store=undeclared").await,
        (500, "no-such-store".into())
    );
    assert_eq!(
        call(&p, "alpha", "set?key=&value=v").await,
        (500, "key-too-large".into())
    );
    let at = "k".repeat(MAX_KEY_BYTES);
    assert_eq!(
        call(&p, "alpha", &format!("set?key={at}&value=v")).await.0,
        200,
        "a key at the limit"
    );
    assert_eq!(
        call(&p, "alpha", &format!("set?key={at}k&value=v")).await,
        (500, "key-too-large".into())
    );
    let big = format!("big?key=big&bytes={}", MAX_VALUE_BYTES);
    assert_eq!(call(&p, "alpha", &big).await.0, 200, "a value at the limit");
    let past = format!("big?key=big2&bytes={}", MAX_VALUE_BYTES + 1);
    assert_eq!(
        call(&p, "alpha", &past).await,
        (500, "value-too-large".into())
    );
    assert_eq!(
        call(&p, "alpha", "incr?key=keep").await.1,
        "other: the value is not a decimal integer"
    );
    for i in 0..3 {
        assert_eq!(
            call(&p, "alpha", &format!("set?key=l{i}&value=v")).await.0,
            200
        );
    }
    assert_eq!(
        call(&p, "alpha", "list?prefix=l&limit=0").await.1,
        "l0|l0",
        "limit 0 is clamped to 1"
    );
    assert_eq!(
        call(&p, "alpha", "list?prefix=l&limit=4000000000").await.1,
        "l0,l1,l2|"
    );
    let past = format!("list?prefix=l&limit={}", MAX_LIST_LIMIT + 1);
    assert_eq!(call(&p, "alpha", &past).await.1, "l0,l1,l2|");
    assert_eq!(
        call(&p, "alpha", "get?key=keep").await.1,
        "safe",
        "nothing corrupted"
    );
    assert_eq!(
        call(&p, "alpha", "cas?key=keep&expected=nope&value=x")
            .await
            .1,
        "false"
    );
    assert_eq!(
        call(&p, "alpha", "cas?key=keep&expected=safe&value=x")
            .await
            .1,
        "true"
    );
    p.shutdown().await;
}
