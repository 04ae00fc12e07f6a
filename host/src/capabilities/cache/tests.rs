//! The cache core without Wasm: expiry, stale windows, coalescing, tags,
//! tenants and the byte bound.

use super::*;
use std::time::Duration;

fn entry(body: &str, ttl_ms: u64, swr_ms: u64, tags: &[&str]) -> CacheEntry {
    CacheEntry {
        body: Bytes::from(body.to_owned()),
        headers: vec![("content-type".into(), "text/plain".into())],
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        stored: Instant::now(),
        ttl: Duration::from_millis(ttl_ms),
        swr: Duration::from_millis(swr_ms),
    }
}

fn soon() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(5)
}

#[tokio::test]
async fn entries_expire_after_ttl_and_serve_stale_inside_the_window() {
    let cache = CacheStore::new(DEFAULT_CACHE_CAPACITY_BYTES);
    cache.put("t", "k", entry("v", 100, 400, &[])).unwrap();
    assert!(matches!(
        cache.lookup("t", "k", soon()).await,
        Lookup::Hit(_)
    ));
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Stale: exactly one caller is asked to refresh.
    let first = cache.lookup("t", "k", soon()).await;
    let second = cache.lookup("t", "k", soon()).await;
    let (Lookup::Stale(e1, Some(refresh)), Lookup::Stale(_, None)) = (first, second) else {
        panic!("expected one refresher and one plain stale");
    };
    assert_eq!(e1.body, "v");
    cache.put("t", "k", entry("v2", 1000, 0, &[])).unwrap();
    drop(refresh);
    let Lookup::Hit(fresh) = cache.lookup("t", "k", soon()).await else {
        panic!("refreshed");
    };
    assert_eq!(fresh.body, "v2");
    cache.put("t", "gone", entry("v", 50, 50, &[])).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        cache.get("t", "gone").is_none(),
        "past TTL + SWR it is gone"
    );
    assert!(matches!(
        cache.lookup("t", "gone", soon()).await,
        Lookup::Fill(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_misses_make_one_filler() {
    let cache = CacheStore::new(DEFAULT_CACHE_CAPACITY_BYTES);
    let fills = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (cache, fills) = (cache.clone(), fills.clone());
        tasks.push(tokio::spawn(async move {
            match cache.lookup("t", "cold", soon()).await {
                Lookup::Hit(entry) => entry.body.clone(),
                Lookup::Fill(guard) => {
                    fills.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    cache
                        .put("t", "cold", entry("filled", 10_000, 0, &[]))
                        .unwrap();
                    drop(guard);
                    Bytes::from_static(b"filled")
                }
                Lookup::Stale(..) => panic!("nothing stale here"),
            }
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), "filled");
    }
    assert_eq!(fills.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_filler_that_gives_up_hands_the_fill_to_a_waiter() {
    let cache = CacheStore::new(DEFAULT_CACHE_CAPACITY_BYTES);
    let Lookup::Fill(guard) = cache.lookup("t", "k", soon()).await else {
        panic!("cold");
    };
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move { matches!(cache.lookup("t", "k", soon()).await, Lookup::Fill(_)) })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    drop(guard);
    assert!(waiter.await.unwrap(), "the waiter became the filler");
}

#[tokio::test]
async fn purge_by_tag_removes_exactly_the_tagged_entries_of_that_tenant() {
    let cache = CacheStore::new(DEFAULT_CACHE_CAPACITY_BYTES);
    cache
        .put("a", "1", entry("x", 10_000, 0, &["img:cat", "img"]))
        .unwrap();
    cache
        .put("a", "2", entry("x", 10_000, 0, &["img:cat"]))
        .unwrap();
    cache
        .put("a", "3", entry("x", 10_000, 0, &["img:dog"]))
        .unwrap();
    cache
        .put("b", "1", entry("x", 10_000, 0, &["img:cat"]))
        .unwrap();
    assert_eq!(cache.purge_tag("a", "img:cat"), 2);
    assert!(cache.get("a", "1").is_none() && cache.get("a", "2").is_none());
    assert!(cache.get("a", "3").is_some(), "other tags stay");
    assert!(cache.get("b", "1").is_some(), "other tenants stay");
    assert_eq!(cache.purge_tag("a", "img:cat"), 0);
    cache.purge_all(Some("a"));
    assert!(cache.get("a", "3").is_none());
    assert!(cache.get("b", "1").is_some());
}

#[tokio::test]
async fn tenants_never_see_each_others_keys() {
    let cache = CacheStore::new(DEFAULT_CACHE_CAPACITY_BYTES);
    cache.put("a", "k", entry("a's", 10_000, 0, &[])).unwrap();
    assert!(cache.get("b", "k").is_none());
    assert!(matches!(
        cache.lookup("b", "k", soon()).await,
        Lookup::Fill(_)
    ));
}

#[test]
fn the_byte_bound_evicts_and_limits_hold_at_the_edge() {
    let capacity = 1 << 20;
    let cache = CacheStore::new(capacity);
    let body = "x".repeat(10_000);
    for i in 0..500 {
        cache
            .put("t", &format!("k{i}"), entry(&body, 60_000, 0, &["all"]))
            .unwrap();
    }
    assert!(cache.bytes() <= capacity, "{} > {capacity}", cache.bytes());
    assert!(cache.bytes() > capacity / 2);
    let key_at = "k".repeat(MAX_CACHE_KEY_BYTES);
    assert!(cache.put("t", &key_at, entry("x", 1000, 0, &[])).is_ok());
    let key_past = "k".repeat(MAX_CACHE_KEY_BYTES + 1);
    assert_eq!(
        cache.put("t", &key_past, entry("x", 1000, 0, &[])),
        Err(CacheError::InvalidKey)
    );
    let tags: Vec<String> = (0..MAX_CACHE_TAGS).map(|i| format!("t{i}")).collect();
    let mut at = entry("x", 1000, 0, &[]);
    at.tags = tags.clone();
    assert!(cache.put("t", "tags", at.clone()).is_ok());
    at.tags.push("one-more".into());
    assert_eq!(cache.put("t", "tags", at), Err(CacheError::InvalidTag));
    let big = CacheEntry {
        body: Bytes::from(vec![0u8; MAX_CACHE_ENTRY_BYTES]),
        ..entry("", 1000, 0, &[])
    };
    assert_eq!(cache.put("t", "big", big), Err(CacheError::TooLarge));
}
