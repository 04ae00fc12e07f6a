//! Bulk KV import through the admin API: one commit for every entry, the
//! entry cap checked while parsing, and a refused import stores nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use serde_json::json;
use verge::admin::kv::MAX_IMPORT_ENTRIES;
use verge::storage::kv::MAX_KEY_BYTES;
use verge_tests::Platform;

async fn import(p: &Platform, token: &str, body: Vec<u8>) -> (u16, String) {
    let reply = p
        .admin("POST", "/v1/tenants/t/kv/main/import", Some(token), body)
        .await;
    (reply.status.as_u16(), reply.text())
}

async fn count(p: &Platform, token: &str) -> usize {
    let mut total = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tenants/t/kv/main/keys?limit=1000&cursor={c}"),
            None => "/v1/tenants/t/kv/main/keys?limit=1000".to_owned(),
        };
        let page = p.admin("GET", &path, Some(token), vec![]).await;
        let page: serde_json::Value = serde_json::from_slice(&page.body).unwrap();
        total += page["keys"].as_array().unwrap().len();
        match page["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return total,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_at_the_cap_commits_once_and_past_it_or_with_a_bad_entry_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path()).await;
    let t = p.tenant("t").await;

    let past: serde_json::Map<String, serde_json::Value> = (0..=MAX_IMPORT_ENTRIES)
        .map(|i| (format!("k{i:05}"), json!(format!("v{i}"))))
        .collect();
    let (status, text) = import(&p, &t, serde_json::to_vec(&past).unwrap()).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("at most 10000"), "{text}");
    assert_eq!(count(&p, &t).await, 0, "nothing stored past the cap");

    let mut bad: Vec<serde_json::Value> = (0..100)
        .map(|i| json!({ "key": format!("b{i}"), "value": "x" }))
        .collect();
    bad.push(json!({ "key": "k".repeat(MAX_KEY_BYTES + 1), "value": "x" }));
    let (status, text) = import(&p, &t, serde_json::to_vec(&bad).unwrap()).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        count(&p, &t).await,
        0,
        "one bad entry stores none of the others"
    );

    let at: serde_json::Map<String, serde_json::Value> = (0..MAX_IMPORT_ENTRIES)
        .map(|i| (format!("k{i:05}"), json!(format!("v{i}"))))
        .collect();
    let started = std::time::Instant::now();
    let (status, text) = import(&p, &t, serde_json::to_vec(&at).unwrap()).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("10000"), "{text}");
    println!("10,000-entry import in one commit: {took:?}");
    assert_eq!(count(&p, &t).await, MAX_IMPORT_ENTRIES);
    let one = p
        .admin("GET", "/v1/tenants/t/kv/main/keys/k09999", Some(&t), vec![])
        .await;
    assert_eq!(one.text(), "v9999");
    p.shutdown().await;
}
