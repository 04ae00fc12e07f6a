//! Loopback load: a standard `wasi:http/proxy` hello (built with the
//! `wasi` crate) against the Verge-SDK hello, same daemon settings, same
//! run, interleaved rounds. Bounded like the load bench: VERGE_BENCH_ROUNDS
//! rounds (default 5) of VERGE_BENCH_SECS seconds (default 2) per server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use std::time::Duration;
use verge::runtime::EngineSettings;
use verge_benches::load;

fn main() -> anyhow::Result<()> {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (secs, rounds) = (env("VERGE_BENCH_SECS", 2), env("VERGE_BENCH_ROUNDS", 5));
    let guests = verge_benches::build_guests()?;
    let server_rt = verge_benches::pinned_server_runtime()?;
    let config = verge_benches::bench_daemon_config(EngineSettings::default(), false)?;
    let app = |name: &str| verge_benches::bench_local_app(&guests, name);
    let (sdk, proxy) = server_rt.block_on(async {
        let sdk = verge::daemon::start(&config, &app("hello")).await?;
        let proxy = verge::daemon::start(&config, &app("proxy-probe")).await?;
        let addrs = (sdk.addr, proxy.addr);
        tokio::spawn(sdk.wait());
        tokio::spawn(proxy.wait());
        anyhow::Ok(addrs)
    })?;
    verge_benches::pin(1);
    let load_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let run = |addr, secs: u64| {
        load_rt.block_on(load::run(
            addr,
            "bench.local",
            "/hello",
            16,
            Duration::from_secs(secs),
        ))
    };
    run(sdk, 1)?;
    run(proxy, 1)?;
    println!(
        "proxy-world hello vs Verge-SDK hello: 16 connections, {rounds} rounds of {secs} s each"
    );
    let (mut ratios, mut failed) = (Vec::new(), 0);
    for _ in 0..rounds {
        let s = run(sdk, secs)?;
        let p = run(proxy, secs)?;
        failed += s.failed + p.failed;
        ratios.push(p.rps / s.rps);
        println!(
            "  sdk {:>7.0} req/s p50 {:>5} µs p99 {:>5} µs | proxy {:>7.0} req/s p50 {:>5} µs p99 {:>5} µs | {:>5.1}%",
            s.rps,
            s.p50_us,
            s.p99_us,
            p.rps,
            p.p50_us,
            p.p99_us,
            100.0 * p.rps / s.rps
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "proxy/sdk: median {:.1}% of requests/s",
        100.0 * ratios[ratios.len() / 2]
    );
    anyhow::ensure!(failed == 0, "failed requests during the run");
    Ok(())
}
