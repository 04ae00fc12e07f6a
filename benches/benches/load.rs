//! Loopback load: Verge serving the hello function vs a plain hyper hello
//! server, in the same run. The servers run on one core, the load generator
//! on the other. Bounded: VERGE_BENCH_ROUNDS rounds (default 7) of
//! VERGE_BENCH_SECS seconds per server (default 2), each phase at most
//! `MAX_REQUESTS_PER_RUN` requests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use std::time::Duration;
use verge::runtime::EngineSettings;
use verge_benches::{baseline, load};

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; ignore arguments.
    let secs: u64 = std::env::var("VERGE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let connections: usize = std::env::var("VERGE_BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    // Access logs are formatted as in production, then discarded.
    tracing_sink();
    let guests = verge_benches::build_guests()?;
    let server_rt = verge_benches::pinned_server_runtime()?;
    let config = verge_benches::bench_daemon_config(EngineSettings::default(), true)?;
    let app = verge_benches::bench_local_app(&guests, "hello");
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
    let run = |addr, secs: u64| {
        load_rt.block_on(load::run(
            addr,
            "bench.local",
            "/x",
            connections,
            Duration::from_secs(secs),
        ))
    };
    // Warm up both (connections, pool slots, caches).
    run(baseline_addr, 1)?;
    run(verge_addr, 1)?;
    // Interleave short phases so machine drift (this VM's steal time comes
    // and goes) hits both servers alike; report the median round.
    let rounds: usize = std::env::var("VERGE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    println!(
        "loopback load: {connections} connections, {rounds} rounds of {secs} s per server, server on core 0, load on core 1"
    );
    let mut ratios = Vec::new();
    let mut p99s = Vec::new();
    let mut failed = 0;
    for _ in 0..rounds {
        let f0 = minor_faults();
        let b = run(baseline_addr, secs)?;
        let f1 = minor_faults();
        let v = run(verge_addr, secs)?;
        let f2 = minor_faults();
        println!(
            "  minor faults per request: hyper {:.2}, verge {:.2}",
            f1.saturating_sub(f0) as f64 / b.ok.max(1) as f64,
            f2.saturating_sub(f1) as f64 / v.ok.max(1) as f64
        );
        ratios.push(v.rps / b.rps);
        p99s.push(v.p99_us as f64);
        failed += b.failed + v.failed;
        println!(
            "  hyper {:>7.0} req/s p99 {:>5} µs | verge {:>7.0} req/s p50 {:>5} µs p99 {:>5} µs | {:>5.1}%",
            b.rps,
            b.p99_us,
            v.rps,
            v.p50_us,
            v.p99_us,
            100.0 * v.rps / b.rps
        );
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "verge/hyper: median {:.1}% of requests/s (min {:.1}%, max {:.1}%), median verge p99 {:.2} ms",
        100.0 * median(ratios.clone()),
        100.0 * ratios.iter().copied().fold(f64::INFINITY, f64::min),
        100.0 * ratios.iter().copied().fold(0.0, f64::max),
        median(p99s) / 1000.0
    );
    anyhow::ensure!(failed == 0, "failed requests during the run");
    Ok(())
}

/// This process's minor page faults so far (field 10 of /proc/self/stat);
/// 0 where /proc is not available.
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1.to_owned();
            after_name.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

fn tracing_sink() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("VERGE_BENCH_LOG")
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        ))
        .with_writer(std::io::sink)
        .try_init();
}
