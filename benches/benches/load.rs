//! Loopback load: Verge serving the hello function vs a plain hyper hello
//! server, in the same run. The servers run on one core, the load generator
//! on the other. Bounded: VERGE_BENCH_SECS seconds per target (default 5)
//! and at most `MAX_REQUESTS_PER_RUN` requests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use std::time::Duration;
use verge::daemon::{DaemonConfig, LocalApp};
use verge::runtime::{EngineSettings, Limits};
use verge::server::HttpLimits;
use verge_benches::{baseline, load};

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; ignore arguments.
    let secs: u64 = std::env::var("VERGE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let connections: usize = std::env::var("VERGE_BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    // Access logs are formatted as in production, then discarded.
    tracing_sink();
    let guests = verge_benches::build_guests()?;
    let server_rt = verge_benches::pinned_server_runtime()?;
    let config = DaemonConfig {
        listen: "127.0.0.1:0".parse()?,
        engine: EngineSettings::default(),
        limits: Limits::default(),
        http: HttpLimits::default(),
    };
    let app = LocalApp {
        name: "hello".into(),
        wasm: guests["hello"].clone(),
        vars: Default::default(),
        data_dir: std::env::temp_dir().join(format!("verge-bench-{}", std::process::id())),
    };
    let (verge_addr, baseline_addr) = server_rt.block_on(async {
        let daemon = verge::daemon::start(&config, &app).await?;
        let addr = daemon.addr;
        tokio::spawn(daemon.wait());
        anyhow::Ok((addr, baseline::serve_hello().await?))
    })?;
    verge_benches::pin(1);
    let load_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let run = |name: &str, addr| {
        // Warm up (connections, pool slots, caches), then measure.
        load_rt.block_on(load::run(
            addr,
            "bench.local",
            "/x",
            connections,
            Duration::from_secs(1),
        ))?;
        let r = load_rt.block_on(load::run(
            addr,
            "bench.local",
            "/x",
            connections,
            Duration::from_secs(secs),
        ))?;
        println!(
            "{name:<10} {:>9.0} req/s  p50 {:>6} µs  p99 {:>6} µs  ok {:>8}  failed {}",
            r.rps, r.p50_us, r.p99_us, r.ok, r.failed
        );
        anyhow::Ok(r)
    };
    println!(
        "loopback load: {connections} connections, {secs} s per target, server on core 0, load on core 1"
    );
    let base = run("hyper", baseline_addr)?;
    let verge = run("verge", verge_addr)?;
    println!(
        "verge/hyper: {:.1}% of requests/s, p99 {:.2} ms",
        100.0 * verge.rps / base.rps,
        verge.p99_us as f64 / 1000.0
    );
    anyhow::ensure!(
        verge.failed == 0 && base.failed == 0,
        "failed requests during the run"
    );
    Ok(())
}

fn tracing_sink() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,wasmtime=warn,cranelift=warn",
        ))
        .with_writer(std::io::sink)
        .try_init();
}
