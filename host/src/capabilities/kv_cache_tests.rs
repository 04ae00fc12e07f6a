use super::*;
use crate::storage::kv::SystemClock;
use crate::storage::kv::memory::MemoryKv;
use std::sync::Mutex;

fn ns() -> Namespace {
    Namespace {
        tenant: "acme~1".into(),
        store: "data".into(),
        quota_bytes: 1 << 20,
    }
}

fn set(key: &str, value: &str) -> WriteOp {
    WriteOp::Set {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        ttl: None,
    }
}

const TTL: Duration = Duration::from_secs(60);

#[tokio::test]
async fn own_writes_are_read_back_at_once_and_entries_age_out() {
    let cache = Arc::new(KvReadCache::default());
    cache.set_cached_stores(HashSet::from([("acme~1".to_owned(), "data".to_owned())]));
    let kv = CachingKv::new(
        Arc::new(MemoryKv::new(Arc::new(SystemClock))),
        cache.clone(),
    );
    assert_eq!(cache.lookup(&ns(), "k", TTL), None, "a miss");
    cache.fill(&ns(), "k", None);
    assert_eq!(cache.lookup(&ns(), "k", TTL), Some(None), "known absent");
    kv.write(&ns(), set("k", "v1")).await.unwrap();
    assert_eq!(cache.lookup(&ns(), "k", TTL), Some(Some(b"v1".to_vec())));
    let bump = |delta| WriteOp::Increment {
        key: "n".into(),
        delta,
        ttl: None,
    };
    kv.write(&ns(), bump(41)).await.unwrap();
    kv.write(&ns(), bump(1)).await.unwrap();
    assert_eq!(cache.lookup(&ns(), "n", TTL), Some(Some(b"42".to_vec())));
    // A value with its own TTL is read again rather than cached past it.
    let brief = WriteOp::Set {
        key: "k".into(),
        value: b"v2".to_vec(),
        ttl: Some(1),
    };
    kv.write(&ns(), brief).await.unwrap();
    assert_eq!(cache.lookup(&ns(), "k", TTL), None);
    // A lost compare-and-swap drops the entry: the winner's value is elsewhere.
    cache.fill(&ns(), "c", Some(b"old"));
    let lost = WriteOp::CompareAndSwap {
        key: "c".into(),
        expected: Some(b"other".to_vec()),
        new: b"new".to_vec(),
        ttl: None,
    };
    kv.write(&ns(), lost).await.unwrap();
    assert_eq!(cache.lookup(&ns(), "c", TTL), None);
    // An entry is good for the reader's TTL only.
    cache.fill(&ns(), "aged", Some(b"x"));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(cache.lookup(&ns(), "aged", Duration::from_millis(10)), None);
    assert!(cache.lookup(&ns(), "aged", TTL).is_some());
}

#[tokio::test]
async fn writes_to_cached_stores_are_announced_and_others_are_not() {
    let cache = Arc::new(KvReadCache::default());
    let announced = Arc::new(Mutex::new(Vec::new()));
    let seen = announced.clone();
    cache.announce_with(Arc::new(move |tenant: &str, store: &str, key: &str| {
        seen.lock().unwrap().push(format!("{tenant}/{store}/{key}"));
    }));
    let kv = CachingKv::new(
        Arc::new(MemoryKv::new(Arc::new(SystemClock))),
        cache.clone(),
    );
    kv.write(&ns(), set("quiet", "v")).await.unwrap();
    cache.set_cached_stores(HashSet::from([("acme~1".to_owned(), "data".to_owned())]));
    kv.write(&ns(), set("loud", "v")).await.unwrap();
    assert_eq!(*announced.lock().unwrap(), ["acme~1/data/loud"]);
    // An invalidation from another node drops the entry.
    cache.invalidate("acme~1", "data", "loud");
    assert_eq!(cache.lookup(&ns(), "loud", TTL), None);
}

#[test]
fn the_cache_holds_at_most_its_capacity() {
    // 64 KiB of cache, 1,000 values of 1 KiB: at most ~60 stay.
    let cache = KvReadCache::with_capacity(64 << 10);
    let value = vec![7u8; 1024];
    for i in 0..1000 {
        cache.fill(&ns(), &format!("k{i}"), Some(&value));
    }
    let held = cache.len();
    assert!(held > 0 && held <= 64, "{held} entries");
}
