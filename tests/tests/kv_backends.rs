//! One conformance suite for every KV backend: the in-memory one, redb on
//! a real file, and Redis (a real `redis-server` the harness starts, the
//! way fleet mode uses it). Each rule is written once and run on all
//! three, with the same manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;
use verge::storage::kv::memory::MemoryKv;
use verge::storage::kv::redb::RedbKv;
use verge::storage::kv::redis_backend::RedisKv;
use verge::storage::kv::{
    KvBackend, KvError, MAX_KEY_BYTES, MAX_TTL_SECONDS, MAX_VALUE_BYTES, ManualClock, Namespace,
    Outcome, WriteOp,
};
use verge_tests::kv::{ns, set};
use verge_tests::redis_server::RedisServer;

/// A backend under test, its clock, and what keeps it alive.
struct Backend {
    name: &'static str,
    kv: Arc<dyn KvBackend>,
    /// What an entry of `key` with `payload` bytes is charged in the
    /// namespace (Redis charges what it really holds, see `charge`).
    charge: fn(&Namespace, &str, usize) -> u64,
    clock: Arc<ManualClock>,
    _keep: Box<dyn std::any::Any + Send>,
}

/// Every backend, fresh, with the clock at `now_ms`.
async fn backends(now_ms: u64) -> Vec<Backend> {
    let clock = || Arc::new(ManualClock::at(now_ms));
    let memory = clock();
    let redb = clock();
    let dir = tempfile::tempdir().unwrap();
    let redb_kv = RedbKv::open(&dir.path().join("kv.redb"), redb.clone()).unwrap();
    let redis = clock();
    let server = RedisServer::start();
    let redis_kv = RedisKv::connect(&server.url(), redis.clone())
        .await
        .unwrap();
    vec![
        Backend {
            name: "memory",
            kv: Arc::new(MemoryKv::new(memory.clone())),
            charge: file_charge,
            clock: memory,
            _keep: Box::new(()),
        },
        Backend {
            name: "redb",
            kv: Arc::new(redb_kv),
            charge: file_charge,
            clock: redb,
            _keep: Box::new(dir),
        },
        Backend {
            name: "redis",
            kv: Arc::new(redis_kv),
            charge: |ns, key, payload| {
                verge::storage::kv::redis_backend::charge(ns.prefix().len(), key.len(), payload)
            },
            clock: redis,
            _keep: Box::new(server),
        },
    ]
}

/// The charge on memory and redb: the stored key (namespace, key), 8
/// bytes of expiry, the payload.
fn file_charge(ns: &Namespace, key: &str, payload: usize) -> u64 {
    (ns.prefix().len() + key.len() + 8 + payload) as u64
}

fn inc(key: &str, delta: i64, ttl: Option<u32>) -> WriteOp {
    WriteOp::Increment {
        key: key.into(),
        delta,
        ttl,
    }
}

fn cas(expected: Option<&[u8]>, new: &[u8]) -> WriteOp {
    WriteOp::CompareAndSwap {
        key: "k".into(),
        expected: expected.map(<[u8]>::to_vec),
        new: new.to_vec(),
        ttl: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ttl_expires_on_read_and_in_listings() {
    for b in backends(1_000_000).await {
        let a = ns("a", 10_000);
        b.kv.write(&a, set("k", b"v", Some(10))).await.unwrap();
        b.kv.write(&a, set("forever", b"v", None)).await.unwrap();
        b.clock.set(1_000_000 + 9_999);
        assert_eq!(
            b.kv.get(&a, "k").await.unwrap(),
            Some(b"v".to_vec()),
            "{}",
            b.name
        );
        b.clock.set(1_000_000 + 10_000);
        assert_eq!(
            b.kv.get(&a, "k").await.unwrap(),
            None,
            "{}: at expiry",
            b.name
        );
        let page = b.kv.list(&a, "", None, 10).await.unwrap();
        assert_eq!(page.keys, vec!["forever"], "{}", b.name);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn increment_keeps_the_first_ttl_and_refuses_non_integers() {
    for b in backends(0).await {
        let (a, name) = (ns("a", 10_000), b.name);
        let kv = &b.kv;
        assert_eq!(
            kv.write(&a, inc("c", 5, Some(60))).await,
            Ok(Outcome::Counter(5)),
            "{name}"
        );
        b.clock.set(30_000);
        assert_eq!(
            kv.write(&a, inc("c", -2, Some(60))).await,
            Ok(Outcome::Counter(3)),
            "{name}"
        );
        b.clock.set(60_000);
        assert_eq!(
            kv.get(&a, "c").await,
            Ok(None),
            "{name}: the window began at the first"
        );
        assert_eq!(
            kv.write(&a, inc("c", 1, None)).await,
            Ok(Outcome::Counter(1)),
            "{name}"
        );
        kv.write(&a, set("c", b"abc", None)).await.unwrap();
        assert!(
            matches!(
                kv.write(&a, inc("c", 1, None)).await,
                Err(KvError::NotAnInteger(_))
            ),
            "{name}"
        );
        kv.write(&a, set("c", b" 41 ", None)).await.unwrap();
        assert_eq!(
            kv.write(&a, inc("c", 1, None)).await,
            Ok(Outcome::Counter(42)),
            "{name}"
        );
        let max = i64::MAX.to_string();
        kv.write(&a, set("c", max.as_bytes(), None)).await.unwrap();
        assert!(
            matches!(
                kv.write(&a, inc("c", 1, None)).await,
                Err(KvError::NotAnInteger(_))
            ),
            "{name}: overflow"
        );
        assert_eq!(
            kv.get(&a, "c").await,
            Ok(Some(max.into_bytes())),
            "{name}: unchanged"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compare_and_swap_quota_and_tenant_isolation() {
    for b in backends(0).await {
        // Room for one 9,000-byte value and three small ones, not two
        // large ones.
        let sized = ns("b", 0);
        let quota = (b.charge)(&sized, "big2", 9_000)
            + (b.charge)(&sized, "big", 5)
            + (b.charge)(&sized, "x", 1)
            + (b.charge)(&sized, "n", 1);
        let (a, other, name) = (ns("a", 10_000), ns("b", quota), b.name);
        let kv = &b.kv;
        assert_eq!(
            kv.write(&a, cas(None, b"1")).await,
            Ok(Outcome::Swapped(true)),
            "{name}"
        );
        assert_eq!(
            kv.write(&a, cas(None, b"2")).await,
            Ok(Outcome::Swapped(false)),
            "{name}"
        );
        assert_eq!(
            kv.write(&a, cas(Some(b"9"), b"2")).await,
            Ok(Outcome::Swapped(false)),
            "{name}"
        );
        assert_eq!(
            kv.write(&a, cas(Some(b"1"), b"2")).await,
            Ok(Outcome::Swapped(true)),
            "{name}"
        );
        assert_eq!(
            kv.get(&other, "k").await,
            Ok(None),
            "{name}: b does not see a's key"
        );
        assert!(
            kv.list(&other, "", None, 10).await.unwrap().keys.is_empty(),
            "{name}"
        );
        let big = vec![0u8; 9_000];
        kv.write(&other, set("big", &big, None)).await.unwrap();
        assert_eq!(
            kv.write(&other, set("big2", &big, None)).await,
            Err(KvError::QuotaExceeded),
            "{name}"
        );
        kv.write(&other, set("big", b"small", None)).await.unwrap();
        assert!(
            kv.write(&other, set("big2", &big, None)).await.is_ok(),
            "{name}: space was freed"
        );
        // A batch applies whole or not at all.
        let batch = vec![set("x", b"1", None), set("y", &big, None)];
        assert_eq!(
            kv.write_all(&other, batch).await,
            Err(KvError::QuotaExceeded),
            "{name}"
        );
        assert_eq!(
            kv.get(&other, "x").await,
            Ok(None),
            "{name}: the batch left nothing"
        );
        let batch = vec![
            set("x", b"1", None),
            inc("n", 2, None),
            WriteOp::Delete { key: "big".into() },
        ];
        assert_eq!(kv.write_all(&other, batch).await, Ok(3), "{name}");
        assert_eq!(kv.get(&other, "n").await, Ok(Some(b"2".to_vec())), "{name}");
        assert_eq!(kv.get(&other, "big").await, Ok(None), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_is_in_key_order_with_a_cursor_and_a_clamped_limit() {
    for b in backends(0).await {
        let (a, name) = (ns("a", u64::MAX), b.name);
        // Written out of order: the listing is sorted all the same.
        for i in (0..25).rev() {
            b.kv.write(&a, set(&format!("p/{i:02}"), b"", None))
                .await
                .unwrap();
        }
        b.kv.write(&a, set("q", b"", None)).await.unwrap();
        b.kv.write(&a, set("o", b"", None)).await.unwrap();
        let first = b.kv.list(&a, "p/", None, 10).await.unwrap();
        let expected: Vec<String> = (0..10).map(|i| format!("p/{i:02}")).collect();
        assert_eq!(first.keys, expected, "{name}");
        assert_eq!(first.cursor.as_deref(), Some("p/09"), "{name}");
        let second =
            b.kv.list(&a, "p/", first.cursor.as_deref(), 10)
                .await
                .unwrap();
        assert_eq!(
            second.keys.first().map(String::as_str),
            Some("p/10"),
            "{name}"
        );
        let last = b.kv.list(&a, "p/", Some("p/19"), 10).await.unwrap();
        assert_eq!((last.keys.len(), last.cursor), (5, None), "{name}");
        assert_eq!(
            b.kv.list(&a, "p/", None, 0).await.unwrap().keys.len(),
            1,
            "{name}: 0 is 1"
        );
        let all = b.kv.list(&a, "", None, u32::MAX).await.unwrap();
        assert_eq!(all.keys.len(), 27, "{name}");
        assert_eq!(all.keys.first().map(String::as_str), Some("o"), "{name}");
        assert_eq!(all.keys.last().map(String::as_str), Some("q"), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_values_and_ttls_at_and_past_the_limits() {
    for b in backends(0).await {
        let (a, name) = (ns("a", u64::MAX), b.name);
        let kv = &b.kv;
        let at = "k".repeat(MAX_KEY_BYTES);
        assert!(kv.write(&a, set(&at, b"v", None)).await.is_ok(), "{name}");
        assert_eq!(
            kv.write(&a, set(&format!("{at}k"), b"v", None)).await,
            Err(KvError::KeyTooLarge),
            "{name}"
        );
        assert_eq!(
            kv.write(&a, set("", b"v", None)).await,
            Err(KvError::KeyTooLarge),
            "{name}"
        );
        assert!(
            matches!(
                kv.write(&a, set("a\0b", b"v", None)).await,
                Err(KvError::InvalidKey(_))
            ),
            "{name}"
        );
        let value = vec![7u8; MAX_VALUE_BYTES];
        let written = kv.write(&a, set("v", &value, None)).await;
        assert!(written.is_ok(), "{name}: {written:?}");
        assert_eq!(
            kv.get(&a, "v").await.unwrap().map(|v| v.len()),
            Some(MAX_VALUE_BYTES),
            "{name}"
        );
        let past = vec![0u8; MAX_VALUE_BYTES + 1];
        assert_eq!(
            kv.write(&a, set("v", &past, None)).await,
            Err(KvError::ValueTooLarge),
            "{name}"
        );
        assert!(
            kv.write(&a, set("t", b"", Some(MAX_TTL_SECONDS)))
                .await
                .is_ok(),
            "{name}"
        );
        assert_eq!(
            kv.write(&a, set("t", b"", Some(MAX_TTL_SECONDS + 1))).await,
            Err(KvError::TtlTooLong),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_increments_and_swaps_are_atomic() {
    for b in backends(0).await {
        let (a, name) = (ns("a", u64::MAX), b.name);
        let mut writers = Vec::new();
        for _ in 0..16 {
            let (kv, a) = (b.kv.clone(), a.clone());
            writers.push(tokio::spawn(async move {
                for _ in 0..50 {
                    kv.write(&a, inc("hits", 1, None)).await.unwrap();
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        assert_eq!(
            b.kv.get(&a, "hits").await,
            Ok(Some(b"800".to_vec())),
            "{name}"
        );
        let mut racers = Vec::new();
        for i in 0..16u8 {
            let (kv, a) = (b.kv.clone(), a.clone());
            racers.push(tokio::spawn(async move {
                kv.write(&a, cas(None, &[i])).await.unwrap()
            }));
        }
        let mut winners = 0;
        for r in racers {
            winners += usize::from(r.await.unwrap() == Outcome::Swapped(true));
        }
        assert_eq!(winners, 1, "{name}: one creation wins");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweeper_gives_expired_bytes_back_to_the_quota() {
    for b in backends(1_000_000).await {
        let sized = ns("a", 0);
        let quota = (b.charge)(&sized, "brief", 9_000) + (b.charge)(&sized, "kept", 1);
        let (a, name) = (ns("a", quota), b.name);
        let big = vec![1u8; 9_000];
        b.kv.write(&a, set("brief", &big, Some(10))).await.unwrap();
        b.kv.write(&a, set("kept", b"v", Some(3600))).await.unwrap();
        b.clock.set(1_000_000 + 10_000);
        b.kv.sweep_expired().await.unwrap();
        assert!(
            b.kv.write(&a, set("next", &big, None)).await.is_ok(),
            "{name}: freed"
        );
        assert_eq!(
            b.kv.get(&a, "kept").await,
            Ok(Some(b"v".to_vec())),
            "{name}: the live one stays"
        );
        let keys = b.kv.list(&a, "", None, 10).await.unwrap().keys;
        assert_eq!(keys, vec!["kept", "next"], "{name}");
    }
}
