//! Tenants sharing the fleet's Redis: tenant B's KV `get` latency through
//! `RedisKv` (what fleet nodes use), alone, then while tenant A runs what
//! an attacker ran against the shared Redis: four writers of 25 MiB
//! values, and `list` calls over a million expired entries. Each node has
//! its own `RedisKv`, as three fleet nodes would: A's on two, B's on a
//! third. A real `redis-server` on loopback (AOF on, `appendfsync
//! always`). Reported: B's p50 and p99 and their ratio to alone, B's
//! failed gets, and what A got through. Last, with nothing running but
//! the three nodes' sweepers (every second each), the Redis CPU a 1M-entry
//! keyspace costs over 10 s (`INFO cpu`). Bounded by VERGE_BENCH_SECS
//! (default 3) per phase.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use verge::storage::kv::redis_backend::RedisKv;
use verge::storage::kv::{KvBackend, MAX_VALUE_BYTES, Namespace, SystemClock, WriteOp};
use verge_tests::redis_server::RedisServer;

fn ns(tenant: &str) -> Namespace {
    Namespace {
        tenant: tenant.into(),
        store: "s".into(),
        quota_bytes: u64::MAX,
    }
}

/// B's gets for `secs`: (p50 µs, p99 µs, failed).
async fn gets(kv: Arc<RedisKv>, secs: u64) -> (u64, u64, u64) {
    let b = ns("b~1");
    let mut hist = Histogram::<u64>::new(3).unwrap();
    let mut failed = 0;
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let started = Instant::now();
        match kv.get(&b, "k").await {
            Ok(Some(_)) => {
                let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                hist.record(us.max(1)).unwrap();
            }
            _ => failed += 1,
        }
    }
    (
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        failed,
    )
}

fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("VERGE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let redis = RedisServer::start();
        let node = || async {
            Arc::new(RedisKv::connect(&redis.url(), Arc::new(SystemClock)).await.unwrap())
        };
        let (a1, a2, b) = (node().await, node().await, node().await);
        b.write(&ns("b~1"), WriteOp::Set { key: "k".into(), value: vec![7; 100], ttl: None })
            .await
            .unwrap();
        // A million of A's entries, expired long ago (the sweeper is
        // behind), written straight into Redis's layout.
        let client = redis::Client::open(redis.url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        for chunk in 0..50 {
            let _: i64 = redis::cmd("EVAL")
                .arg(
                    "for i=ARGV[1],ARGV[1]+19999 do local k=string.format('e%07d', i) \
                     redis.call('HSET','{t:a~1}:v:s\\0'..k,'p','v','x',1) \
                     redis.call('ZADD','{t:a~1}:i:s',0,k) end return 1",
                )
                .arg(0)
                .arg(chunk * 20_000)
                .query_async(&mut conn)
                .await?;
        }
        // As on a fleet that has run a while: the one-off scan that fills
        // the sweep index from an older layout is done.
        let _: () = redis::cmd("SET")
            .arg("verge:kv:due-seeded")
            .arg("done")
            .query_async(&mut conn)
            .await?;
        // Loading a million entries set off an AOF rewrite (a fork): let
        // it finish before measuring.
        loop {
            let info: String = redis::cmd("INFO").arg("persistence").query_async(&mut conn).await?;
            if !info.contains("aof_rewrite_in_progress:1") && !info.contains("aof_rewrite_scheduled:1") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let alone = gets(b.clone(), secs).await;
        println!("Redis neighbour: tenant B's 100-byte get through its own RedisKv, {secs} s per phase");
        println!("B alone                 p50 {:>6} µs  p99 {:>6} µs  failed {}", alone.0, alone.1, alone.2);
        // Four writers of 25 MiB values, two per node.
        let stop = Arc::new(AtomicBool::new(false));
        let (written, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut writers = Vec::new();
        for w in 0..4 {
            let kv = if w % 2 == 0 { a1.clone() } else { a2.clone() };
            let (stop, written, refused) = (stop.clone(), written.clone(), refused.clone());
            writers.push(tokio::spawn(async move {
                let value = vec![1u8; MAX_VALUE_BYTES - 64];
                while !stop.load(Ordering::Relaxed) {
                    let op = WriteOp::Set { key: format!("big{w}"), value: value.clone(), ttl: None };
                    match kv.write(&ns("a~1"), op).await {
                        Ok(_) => written.fetch_add(1, Ordering::Relaxed),
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            refused.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            }));
        }
        let big = gets(b.clone(), secs).await;
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await?;
        }
        println!(
            "B under 4 × 25 MiB writers p50 {:>6} µs  p99 {:>6} µs  failed {}  ({:.2}× alone at p99; A wrote {} values, {} paced or failed)",
            big.0, big.1, big.2, big.1 as f64 / alone.1.max(1) as f64,
            written.load(Ordering::Relaxed), refused.load(Ordering::Relaxed)
        );
        // Lists over the expired million, five callers.
        let stop = Arc::new(AtomicBool::new(false));
        let pages = Arc::new(AtomicU64::new(0));
        let mut listers = Vec::new();
        for l in 0..5 {
            let kv = if l % 2 == 0 { a1.clone() } else { a2.clone() };
            let (stop, pages) = (stop.clone(), pages.clone());
            listers.push(tokio::spawn(async move {
                let mut cursor: Option<String> = None;
                while !stop.load(Ordering::Relaxed) {
                    match kv.list(&ns("a~1"), "", cursor.as_deref(), 1000).await {
                        Ok(page) => {
                            pages.fetch_add(1, Ordering::Relaxed);
                            cursor = page.cursor;
                        }
                        // Paced: an attacker retries at once, a little later.
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            }));
        }
        let listed = gets(b.clone(), secs).await;
        stop.store(true, Ordering::Relaxed);
        for l in listers {
            l.await?;
        }
        println!(
            "B under 5 listers        p50 {:>6} µs  p99 {:>6} µs  failed {}  ({:.2}× alone at p99; A listed {} pages over 1M expired entries)",
            listed.0, listed.1, listed.2, listed.1 as f64 / alone.1.max(1) as f64,
            pages.load(Ordering::Relaxed)
        );
        // The idle keyspace: only the sweepers run.
        let cpu = |info: String| -> f64 {
            info.lines()
                .filter(|l| l.starts_with("used_cpu_sys:") || l.starts_with("used_cpu_user:"))
                .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
                .sum()
        };
        let before = cpu(redis::cmd("INFO").arg("cpu").query_async(&mut conn).await?);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = cpu(redis::cmd("INFO").arg("cpu").query_async(&mut conn).await?);
        println!(
            "Redis CPU over 10 s with three nodes' sweepers idle over {} keys: {:.3} s",
            redis::cmd("DBSIZE").query_async::<u64>(&mut conn).await?,
            after - before
        );
        // B's failures are reported, not fatal: a 25 MiB write fsynced by
        // Redis (`appendfsync always`) can hold it past a get's 250 ms.
        anyhow::Ok(())
    })
}
