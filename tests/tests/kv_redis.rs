//! KV on the shared Redis, where one tenant's calls could hold every other
//! tenant's: bounded scripts, a sweeper that never scans the keyspace, a
//! deleted tenant's entries removed, charges that bound what Redis really
//! holds, a write pace per tenant, and writes whose outcome is unknown
//! said to be so. A real `redis-server` each, started by the harness.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use redis::AsyncCommands;
use std::sync::Arc;
use std::time::Duration;
use verge::storage::kv::redis_backend::{self, RedisKv};
use verge::storage::kv::{KvBackend, KvError, MAX_VALUE_BYTES, ManualClock, Namespace, WriteOp};
use verge_tests::kv::{ns, set};
use verge_tests::redis_server::RedisServer;

/// A plain connection, to look at Redis from outside.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Keys matching `pattern` (tests' keyspaces are small).
async fn keys(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    conn.keys(pattern).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_going_away_fails_calls_fast_with_a_storage_error() {
    use verge::storage::kv::redis_backend::REDIS_KV_TIMEOUT;
    let server = RedisServer::start();
    let clock = Arc::new(ManualClock::at(0));
    let kv = RedisKv::connect(&server.url(), clock).await.unwrap();
    let a = ns("a", u64::MAX);
    kv.write(&a, set("k", b"v", None)).await.unwrap();
    drop(server);
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let got = kv.get(&a, "k").await;
        assert!(matches!(got, Err(KvError::Storage(_))), "{got:?}");
        // A write that went unanswered may have been applied, for all the
        // node knows: an unknown outcome, or a storage error when it was
        // never sent.
        let wrote = kv.write(&a, set("k", b"w", None)).await;
        assert!(
            matches!(wrote, Err(KvError::Storage(_) | KvError::OutcomeUnknown(_))),
            "{wrote:?}"
        );
        // Each call is bounded by the timeout; neither hangs.
        assert!(
            started.elapsed() < REDIS_KV_TIMEOUT * 3,
            "{:?}",
            started.elapsed()
        );
    }
}

/// A `list` over many expired entries on the shared Redis examines at most
/// `REDIS_LIST_MAX_EXAMINED` of them per call (a script cannot be stopped
/// by the client's timeout) and hands back a cursor where the next page
/// continues; following the cursors reaches the live key behind them.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_list_over_expired_entries_is_bounded_and_continues() {
    use verge::storage::kv::redis_backend::REDIS_LIST_MAX_EXAMINED;
    let server = RedisServer::start();
    let clock = Arc::new(ManualClock::at(1_000_000));
    let kv = RedisKv::connect(&server.url(), clock.clone())
        .await
        .unwrap();
    let a = ns("a", u64::MAX);
    let expired = REDIS_LIST_MAX_EXAMINED * 3;
    for chunk in (0..expired).collect::<Vec<_>>().chunks(500) {
        let ops = chunk
            .iter()
            .map(|i| set(&format!("e{i:06}"), b"v", Some(60)))
            .collect();
        kv.write_all(&a, ops).await.unwrap();
    }
    kv.write(&a, set("z-live", b"v", None)).await.unwrap();
    // Everything but `z-live` expires (the sweeper, 1,000 a second, has
    // not caught up yet).
    clock.set(1_000_000 + 120_000);
    let first = kv.list(&a, "", None, 10).await.unwrap();
    assert!(first.keys.is_empty(), "{:?}", first.keys);
    let mut cursor = first.cursor.clone();
    assert!(cursor.is_some(), "a short page says where to go on");
    let mut pages = 1;
    let mut live = Vec::new();
    while let Some(at) = cursor {
        let page = kv.list(&a, "", Some(&at), 10).await.unwrap();
        live.extend(page.keys);
        cursor = page.cursor;
        pages += 1;
        assert!(pages < 20, "the cursors go on");
    }
    assert_eq!(live, ["z-live"]);
    assert!(pages >= 2, "{pages} pages");
}

/// A deleted tenant's entries, in every store, leave Redis in bounded
/// steps while a neighbour's stay; the tenant leaves the forgotten index
/// once the grace for late writes is over.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_tenants_entries_leave_redis_and_a_neighbours_stay() {
    use redis_backend::{FORGET_GRACE, FORGOTTEN_KEY, MAX_PURGE_ENTRIES, PURGE_STEPS_PER_TICK};
    let server = RedisServer::start();
    let clock = Arc::new(ManualClock::at(1_000_000));
    let kv = RedisKv::connect(&server.url(), clock.clone())
        .await
        .unwrap();
    let per_store = MAX_PURGE_ENTRIES * PURGE_STEPS_PER_TICK / 2;
    for store in ["one", "two", "three"] {
        let gone = Namespace {
            store: store.into(),
            ..ns("gone~1", u64::MAX)
        };
        for chunk in (0..per_store).collect::<Vec<_>>().chunks(1000) {
            let ops = chunk
                .iter()
                .map(|i| set(&format!("k{i}"), b"v", Some(3600)))
                .collect();
            kv.write_all(&gone, ops).await.unwrap();
        }
    }
    let kept = ns("gone~2", u64::MAX);
    kv.write(&kept, set("k", b"mine", Some(3600)))
        .await
        .unwrap();
    let mut conn = raw(&server).await;
    assert!(keys(&mut conn, "{t:gone~1}:*").await.len() > 3 * per_store);

    kv.forget_tenant("gone~1").await.unwrap();
    // 3 × 2,500 entries at 5,000 a tick: two ticks, not one.
    kv.sweep_expired().await.unwrap();
    assert!(
        !keys(&mut conn, "{t:gone~1}:*").await.is_empty(),
        "one tick is bounded"
    );
    kv.sweep_expired().await.unwrap();
    assert_eq!(keys(&mut conn, "{t:gone~1}:*").await, Vec::<String>::new());
    assert_eq!(kv.get(&kept, "k").await, Ok(Some(b"mine".to_vec())));
    // Still filed during the grace (a late write would go too) ...
    let filed: Option<f64> = conn.zscore(FORGOTTEN_KEY, "gone~1").await.unwrap();
    assert!(filed.is_some());
    let late = ns("gone~1", u64::MAX);
    kv.write(&late, set("late", b"v", None)).await.unwrap();
    kv.sweep_expired().await.unwrap();
    assert_eq!(keys(&mut conn, "{t:gone~1}:*").await, Vec::<String>::new());
    // ... and unfiled after it, from the sweep index too.
    clock.set(1_000_000 + FORGET_GRACE.as_millis() as u64 + 1);
    kv.sweep_expired().await.unwrap();
    let filed: Option<f64> = conn.zscore(FORGOTTEN_KEY, "gone~1").await.unwrap();
    assert_eq!(filed, None);
    let due: Option<f64> = conn.zscore(redis_backend::DUE_KEY, "gone~1").await.unwrap();
    assert_eq!(due, None);
    assert_eq!(kv.get(&kept, "k").await, Ok(Some(b"mine".to_vec())));
}

/// The sweeper reads the sweep index, not the keyspace: after the one
/// seeding scan, ticks over a keyspace of many entries run no `SCAN`, and
/// a tenant whose entries never expire is never swept.
#[tokio::test(flavor = "multi_thread")]
async fn the_sweeper_finds_due_tenants_without_scanning_the_keyspace() {
    let server = RedisServer::start();
    let clock = Arc::new(ManualClock::at(1_000_000));
    let kv = RedisKv::connect(&server.url(), clock.clone())
        .await
        .unwrap();
    let lasting = ns("lasting", u64::MAX);
    for chunk in (0..20_000).collect::<Vec<_>>().chunks(2000) {
        let ops = chunk
            .iter()
            .map(|i| set(&format!("k{i}"), b"v", None))
            .collect();
        kv.write_all(&lasting, ops).await.unwrap();
    }
    let brief = ns("brief", u64::MAX);
    kv.write(&brief, set("soon", b"v", Some(10))).await.unwrap();
    kv.write(&brief, set("later", b"v", Some(3600)))
        .await
        .unwrap();
    kv.sweep_expired().await.unwrap(); // the one seeding scan
    let mut conn = raw(&server).await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    clock.set(1_000_000 + 11_000);
    for _ in 0..5 {
        kv.sweep_expired().await.unwrap();
    }
    assert_eq!(kv.get(&brief, "later").await, Ok(Some(b"v".to_vec())));
    let soon: Vec<String> = keys(&mut conn, "{t:brief}:v:s*soon").await;
    assert!(soon.is_empty(), "the expired entry was swept: {soon:?}");
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!stats.contains("cmdstat_scan"), "{stats}");
    // `lasting` was never due: not in the index at all.
    let due: Option<f64> = conn
        .zscore(redis_backend::DUE_KEY, "lasting")
        .await
        .unwrap();
    assert_eq!(due, None);
    let next: Option<f64> = conn.zscore(redis_backend::DUE_KEY, "brief").await.unwrap();
    let next = next.unwrap() as u64;
    assert!(
        next <= 1_000_000 + 11_000 + redis_backend::SWEEP_REVISIT.as_millis() as u64,
        "{next}"
    );
}

/// What a tenant is charged bounds what Redis holds for it: 20,000
/// entries with expiries (the costlier kind) use no more Redis memory than
/// their charge.
#[tokio::test(flavor = "multi_thread")]
async fn redis_holds_no_more_than_a_tenant_is_charged() {
    let server = RedisServer::start();
    let clock = Arc::new(ManualClock::at(1_000_000));
    let kv = RedisKv::connect(&server.url(), clock).await.unwrap();
    let mut conn = raw(&server).await;
    let used = |info: String| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    };
    let before = used(
        redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await
            .unwrap(),
    );
    let a = ns("charged", u64::MAX);
    for (round, size) in [(0, 8), (1, 200), (2, 3000)] {
        let value = vec![b'x'; size];
        for chunk in (0..5_000).collect::<Vec<_>>().chunks(1000) {
            let ops = chunk
                .iter()
                .map(|i| set(&format!("r{round}-key-{i}"), &value, Some(3600)))
                .collect();
            kv.write_all(&a, ops).await.unwrap();
        }
    }
    let after = used(
        redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await
            .unwrap(),
    );
    let charged: u64 = conn.get("{t:charged}:u").await.unwrap();
    let held = after - before;
    assert!(
        held <= charged,
        "Redis holds {held} bytes for {charged} charged"
    );
    assert!(
        charged <= 3 * held,
        "charged {charged} for {held} held: too harsh"
    );
}

/// One tenant's large writes are paced: its third 25 MiB value at once is
/// refused with the wait, while another tenant still writes its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_large_writes_are_paced_and_a_neighbour_still_writes() {
    let server = RedisServer::start();
    let clock = Arc::new(ManualClock::at(1_000_000));
    let kv = RedisKv::connect(&server.url(), clock).await.unwrap();
    let big = vec![1u8; MAX_VALUE_BYTES - 16];
    let a = ns("heavy", u64::MAX);
    kv.write(&a, set("one", &big, None)).await.unwrap();
    kv.write(&a, set("two", &big, None)).await.unwrap();
    let third = kv.write(&a, set("three", &big, None)).await;
    let Err(KvError::RateLimited(why)) = third else {
        panic!("past the burst: {third:?}");
    };
    assert!(why.contains("retry in"), "{why}");
    assert_eq!(kv.get(&a, "three").await, Ok(None), "nothing was written");
    let b = ns("neighbour", u64::MAX);
    kv.write(&b, set("mine", &big, None)).await.unwrap();
    kv.write(&b, set("small", b"v", None)).await.unwrap();
    assert_eq!(kv.get(&b, "small").await, Ok(Some(b"v".to_vec())));
}

/// An import Redis takes but does not answer in time reports an unknown
/// outcome, not a failure; it was applied, and running it again leaves
/// the same state.
#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_import_says_its_outcome_is_unknown_and_a_rerun_is_the_same() {
    let server = RedisServer::start();
    let clock = Arc::new(ManualClock::at(1_000_000));
    let kv = RedisKv::connect(&server.url(), clock).await.unwrap();
    let a = ns("importer", u64::MAX);
    let import = || -> Vec<WriteOp> {
        (0..5_000)
            .map(|i| set(&format!("k{i:04}"), format!("v{i}").as_bytes(), None))
            .collect()
    };
    // The script is loaded (as on any Redis that served a write before).
    kv.write_all(&a, vec![set("warm", b"v", None)])
        .await
        .unwrap();
    let mut conn = raw(&server).await;
    // Redis holds every write for 1.5 s: longer than the import's wait.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("WRITE")
        .query_async(&mut conn)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let first = kv.write_all(&a, import()).await;
    assert!(
        matches!(first, Err(KvError::OutcomeUnknown(_))),
        "{first:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    // Once Redis resumes it applies the import it was sent.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while kv.get(&a, "k4999").await.ok().flatten().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the import never landed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let usage: u64 = conn.get("{t:importer}:u").await.unwrap();
    assert_eq!(kv.write_all(&a, import()).await, Ok(5_000));
    let again: u64 = conn.get("{t:importer}:u").await.unwrap();
    assert_eq!(usage, again, "the same entries, the same charge");
    assert_eq!(kv.get(&a, "k1234").await, Ok(Some(b"v1234".to_vec())));
    assert_eq!(keys(&mut conn, "{t:importer}:v:*").await.len(), 5_001);
}

/// A tenant's `list` work on the shared Redis is paced: calls examining
/// many entries (here expired ones) pass up to the tenant's allowance and
/// are then refused with the wait, while another tenant lists at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_list_work_is_paced_and_a_neighbour_still_lists() {
    use redis_backend::{REDIS_LIST_MAX_EXAMINED, REDIS_TENANT_LIST_ENTRIES_PER_SECOND};
    let server = RedisServer::start();
    let clock = Arc::new(ManualClock::at(1_000_000));
    let kv = RedisKv::connect(&server.url(), clock.clone())
        .await
        .unwrap();
    let a = ns("lister", u64::MAX);
    for chunk in (0..REDIS_LIST_MAX_EXAMINED * 2)
        .collect::<Vec<_>>()
        .chunks(1000)
    {
        let ops = chunk
            .iter()
            .map(|i| set(&format!("e{i:06}"), b"v", Some(60)))
            .collect();
        kv.write_all(&a, ops).await.unwrap();
    }
    clock.set(1_000_000 + 120_000);
    // Each call examines the most it may (every entry is expired).
    let allowed =
        usize::try_from(REDIS_TENANT_LIST_ENTRIES_PER_SECOND).unwrap() / REDIS_LIST_MAX_EXAMINED;
    for _ in 0..allowed {
        kv.list(&a, "", None, 10).await.unwrap();
    }
    let refused = kv.list(&a, "", None, 10).await;
    let Err(KvError::RateLimited(why)) = refused else {
        panic!("past the pace: {refused:?}");
    };
    assert!(why.contains("retry in"), "{why}");
    let b = ns("neighbour", u64::MAX);
    kv.write(&b, set("k", b"v", None)).await.unwrap();
    assert_eq!(kv.list(&b, "", None, 10).await.unwrap().keys, ["k"]);
    // A cheap list gives back what it did not use.
    for _ in 0..20 {
        assert!(kv.list(&b, "", None, 10).await.is_ok());
    }
}
