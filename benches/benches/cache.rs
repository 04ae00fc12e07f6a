//! The cache's hit path and what caching saves the image example.
//!
//! 1. Host side: the `lookup` host function on a 10 KB entry (the store
//!    lookup plus building the WIT record the guest receives), per call.
//! 2. From a guest: a request whose handler reads a 10 KB entry, against
//!    the hello function in the same run.
//! 3. The image example: the same resize cached and uncached, same run.
//!
//! Everything in process on one thread; medians and p99 over many rounds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use std::time::{Duration, Instant};
use verge::capabilities::bindings::verge::edge::cache::{Host as _, LookupResult};
use verge::capabilities::cache::{CacheCtx, CacheEntry, CacheStore};
use verge::capabilities::config::ConfigCtx;
use verge::capabilities::fetch::{AllowList, FetchCtx};
use verge::capabilities::log::LogCtx;
use verge::runtime::{EngineSettings, GuestRequest, Limits, RequestContext, Runtime};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn report(name: &str, samples: &mut [Duration]) -> Duration {
    let p50 = percentile(samples, 0.5);
    let p99 = percentile(samples, 0.99);
    println!(
        "{name:<42} p50 {:>9.2} µs   p99 {:>9.2} µs   (n={})",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        samples.len()
    );
    p50
}

fn entry(bytes: usize) -> CacheEntry {
    CacheEntry {
        body: vec![b'x'; bytes].into(),
        headers: vec![("content-type".into(), "text/html".into())],
        tags: vec!["page".into()],
        stored: Instant::now(),
        ttl: Duration::from_secs(3600),
        swr: Duration::ZERO,
    }
}

fn get(uri: &str) -> GuestRequest {
    GuestRequest {
        method: "GET".into(),
        uri: uri.into(),
        headers: vec![("host".into(), "bench.local".into())],
        body: Vec::new(),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = CacheStore::new(64 << 20);
    store.put("t", "page", entry(10_000)).unwrap();

    // 1. Host side.
    let mut ctx = CacheCtx::new(store.clone(), "t");
    let mut host = Vec::with_capacity(100_000);
    for _ in 0..100_000 {
        let started = Instant::now();
        let result = rt.block_on(ctx.lookup("page".into())).unwrap();
        host.push(started.elapsed());
        assert!(matches!(result, LookupResult::Hit(ref e) if e.body.len() == 10_000));
    }
    println!("cache hit path, 10 KB entry");
    report("host-side lookup (store + WIT record)", &mut host);

    // 2. From a guest, against hello in the same run.
    let guests = verge_benches::build_guests().unwrap();
    let runtime = Runtime::new(EngineSettings {
        pool_instances: 16,
        ..EngineSettings::default()
    })
    .unwrap();
    let load = |name: &str| {
        let bytes = std::fs::read(&guests[name]).unwrap();
        runtime.load(name, &bytes, Limits::default()).unwrap()
    };
    let (hello, probe) = (load("hello"), load("cache-probe"));
    let context = |cache: CacheCtx| {
        let mut ctx =
            RequestContext::new(ConfigCtx::default(), LogCtx::new("b".into(), "b".into()));
        ctx.capabilities.cache = cache;
        ctx
    };
    let (mut base, mut hit) = (Vec::new(), Vec::new());
    for _ in 0..3_000 {
        let started = Instant::now();
        let (r, _) = rt.block_on(hello.handle(get("http://b/x"), context(CacheCtx::default())));
        base.push(started.elapsed());
        assert_eq!(r.unwrap().status, 200);
        let started = Instant::now();
        let cache = CacheCtx::new(store.clone(), "t");
        let (r, _) =
            rt.block_on(probe.handle(get("http://b/cache-probe/get?key=page"), context(cache)));
        hit.push(started.elapsed());
        assert_eq!(r.unwrap().body.len(), 10_000);
    }
    let base_p50 = report("request: hello (baseline)", &mut base);
    let hit_p50 = report("request: read a 10 KB cache entry", &mut hit);
    println!(
        "  cache read adds {:.2} µs per request ({:.2}x hello)",
        (hit_p50.as_secs_f64() - base_p50.as_secs_f64()) * 1e6,
        hit_p50.as_secs_f64() / base_p50.as_secs_f64()
    );

    // 3. The image example, cached vs uncached.
    let png = {
        let img = image::RgbaImage::from_fn(640, 480, |x, y| {
            image::Rgba([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8, 255])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let origin = rt.block_on(verge_tests::origin::Origin::start_with_files(vec![(
        "cat.png", png,
    )]));
    let services = verge_tests::loopback_capabilities()
        .services(std::sync::Arc::new(
            verge::storage::kv::memory::MemoryKv::new(std::sync::Arc::new(
                verge::storage::kv::SystemClock,
            )),
        ))
        .unwrap();
    let image = load("image");
    let allow = AllowList::parse(&[format!("http://{}", origin.addr)]).unwrap();
    let vars: std::collections::BTreeMap<String, String> =
        [("origin".to_owned(), origin.url("/files"))]
            .into_iter()
            .collect();
    let image_ctx = || {
        let mut ctx = RequestContext::new(
            ConfigCtx::new(vars.clone()),
            LogCtx::new("i".into(), "i".into()),
        );
        ctx.capabilities.fetch = FetchCtx::new(services.fetch.clone(), allow.clone());
        ctx.capabilities.cache = CacheCtx::new(services.cache.clone(), "t");
        ctx
    };
    let uri = "http://b/img/cat.png?w=320&fmt=jpeg";
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for round in 0..40 {
        services.cache.purge_all(None);
        let started = Instant::now();
        let (r, _) = rt.block_on(image.handle(get(uri), image_ctx()));
        cold.push(started.elapsed());
        assert_eq!(r.unwrap().status, 200, "round {round}");
        for _ in 0..10 {
            let started = Instant::now();
            let (r, _) = rt.block_on(image.handle(get(uri), image_ctx()));
            warm.push(started.elapsed());
            assert_eq!(r.unwrap().status, 200);
        }
    }
    println!("image example, 640x480 PNG -> 320x240 JPEG");
    let cold_p50 = report("uncached (fetch, decode, resize, encode)", &mut cold);
    let warm_p50 = report("cached", &mut warm);
    println!(
        "  caching makes it {:.1}x faster",
        cold_p50.as_secs_f64() / warm_p50.as_secs_f64()
    );
}
