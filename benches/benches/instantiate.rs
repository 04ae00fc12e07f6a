//! In-process cost of one request to the hello function: new `Store`,
//! instantiate from the `InstancePre`, call `handle`, drop. Pooling vs
//! on-demand, and the pool's keep-resident size.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use verge::capabilities::{config::ConfigCtx, log::LogCtx};
use verge::runtime::{EngineSettings, GuestRequest, Limits, RequestContext, Runtime};

fn request() -> GuestRequest {
    GuestRequest {
        method: "GET".into(),
        uri: "http://bench.local/x".into(),
        headers: vec![
            ("host".into(), "bench.local".into()),
            ("accept".into(), "*/*".into()),
        ],
        body: Vec::new(),
    }
}

fn hello(c: &mut Criterion) {
    let guests = verge_benches::build_guests().expect("building guests");
    let bytes = std::fs::read(&guests["hello"]).expect("hello.wasm");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let variants = [
        ("pooling/keep-resident-256k", true, 256 << 10),
        ("pooling/keep-resident-0", true, 0),
        ("pooling/keep-resident-1m", true, 1 << 20),
        ("on-demand", false, 0),
    ];
    let mut group = c.benchmark_group("hello-request");
    for (name, pooling, keep_resident_bytes) in variants {
        let settings = EngineSettings {
            pooling,
            keep_resident_bytes,
            pool_instances: 16,
            ..EngineSettings::default()
        };
        let runtime = Runtime::new(settings).unwrap();
        assert_eq!(runtime.is_pooling(), pooling);
        let function = runtime.load("hello", &bytes, Limits::default()).unwrap();
        let config = ConfigCtx::default();
        group.bench_function(name, |b| {
            b.iter(|| {
                let ctx = RequestContext::new(
                    config.clone(),
                    LogCtx::new("hello".into(), "bench".into()),
                );
                let (result, _usage) = rt.block_on(function.handle(request(), ctx));
                black_box(result.unwrap());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hello);
criterion_main!(benches);
