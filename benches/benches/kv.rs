//! KV host side, on redb and on Redis in the same run: durable increments
//! with 64 concurrent writers and with one, `get` latency of a 100-byte
//! value, and listing 1,000 keys. redb is a real file with fsync on this
//! machine's disk; Redis is a real `redis-server` on loopback (AOF on,
//! `appendfsync always`, started by the test harness), reached through
//! the same `KvBackend` fleet nodes use. Bounded by VERGE_BENCH_SECS
//! (default 3) per increment phase.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use verge::storage::kv::redb::RedbKv;
use verge::storage::kv::redis_backend::RedisKv;
use verge::storage::kv::{KvBackend, Namespace, SystemClock, WriteOp};
use verge_tests::redis_server::RedisServer;

async fn increments(kv: Arc<dyn KvBackend>, ns: Namespace, writers: usize, secs: u64) -> f64 {
    increments_on(&[kv], ns, writers, secs).await
}

/// Increments by `writers` spread over `nodes` (writer `w` on node `w % n`).
async fn increments_on(
    nodes: &[Arc<dyn KvBackend>],
    ns: Namespace,
    writers: usize,
    secs: u64,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let kv = nodes[w % nodes.len()].clone();
            let (ns, done) = (ns.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let op = WriteOp::Increment {
                        key: format!("counter-{}", w % 8),
                        delta: 1,
                        ttl: None,
                    };
                    kv.write(&ns, op).await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn micros(hist: &Histogram<u64>, q: f64) -> f64 {
    hist.value_at_quantile(q) as f64 / 1000.0
}

async fn timed<T>(hist: &mut Histogram<u64>, call: impl std::future::Future<Output = T>) -> T {
    let t = Instant::now();
    let out = call.await;
    let nanos = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
    hist.record(nanos.max(1)).unwrap();
    out
}

/// Every phase on `kv`, printed under `name`.
async fn phases(name: &str, kv: Arc<dyn KvBackend>, secs: u64) -> anyhow::Result<()> {
    let ns = Namespace {
        tenant: "bench".into(),
        store: "s".into(),
        quota_bytes: u64::MAX,
    };
    let many = increments(kv.clone(), ns.clone(), 64, secs).await;
    let one = increments(kv.clone(), ns.clone(), 1, secs).await;
    println!(
        "{name}: durable increments {many:.0}/s with 64 writers, {one:.0}/s with 1 writer ({:.1}x)",
        many / one
    );
    let value = WriteOp::Set {
        key: "v100".into(),
        value: vec![7; 100],
        ttl: None,
    };
    kv.write(&ns, value).await?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
    for _ in 0..20_000 {
        let v = timed(&mut hist, kv.get(&ns, "v100")).await?;
        assert_eq!(v.map(|v| v.len()), Some(100));
    }
    println!(
        "{name}: get 100 B p50 {:.1} µs, p99 {:.1} µs (host side, 20,000 calls, one at a time)",
        micros(&hist, 0.5),
        micros(&hist, 0.99)
    );
    let keys: Vec<WriteOp> = (0..1000)
        .map(|i| WriteOp::Set {
            key: format!("list/{i:04}"),
            value: vec![1; 32],
            ttl: None,
        })
        .collect();
    kv.write_all(&ns, keys).await?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
    for _ in 0..300 {
        let page = timed(&mut hist, kv.list(&ns, "list/", None, 1000)).await?;
        assert_eq!(page.keys.len(), 1000);
    }
    println!(
        "{name}: list 1,000 keys p50 {:.0} µs, p99 {:.0} µs (300 calls)",
        micros(&hist, 0.5),
        micros(&hist, 0.99)
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("VERGE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir()?;
    let redis = RedisServer::start();
    let rt = verge::daemon::runtime_builder().build()?;
    rt.block_on(async {
        let redb: Arc<dyn KvBackend> = Arc::new(RedbKv::open(
            &dir.path().join("kv.redb"),
            Arc::new(SystemClock),
        )?);
        phases("redb", redb, secs).await?;
        let on_redis: Arc<dyn KvBackend> =
            Arc::new(RedisKv::connect(&redis.url(), Arc::new(SystemClock)).await?);
        phases("redis", on_redis, secs).await?;
        // Three fleet nodes: three connections to the one Redis.
        let mut nodes: Vec<Arc<dyn KvBackend>> = Vec::new();
        for _ in 0..3 {
            nodes.push(Arc::new(
                RedisKv::connect(&redis.url(), Arc::new(SystemClock)).await?,
            ));
        }
        let ns = Namespace {
            tenant: "fleet".into(),
            store: "s".into(),
            quota_bytes: u64::MAX,
        };
        let spread = increments_on(&nodes, ns.clone(), 64, secs).await;
        println!(
            "redis, 3 nodes: durable increments {spread:.0}/s with 64 writers spread over 3 nodes"
        );
        // A read-cache hit, as a cached app's `get` is answered.
        let cache = verge::capabilities::kv_cache::KvReadCache::default();
        cache.fill(&ns, "v100", Some(&[7; 100]));
        let ttl = Duration::from_secs(60);
        let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
        for _ in 0..20_000 {
            let started = Instant::now();
            let hit = cache.lookup(&ns, "v100", ttl);
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            hist.record(nanos.max(1))?;
            assert_eq!(hit.flatten().map(|v| v.len()), Some(100));
        }
        println!(
            "read cache: hit 100 B p50 {:.2} µs, p99 {:.2} µs (20,000 lookups)",
            micros(&hist, 0.5),
            micros(&hist, 0.99)
        );
        Ok(())
    })
}
