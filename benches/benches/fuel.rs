//! Fuel calibration and metering cost. For each representative workload of
//! the `fuel-burn` guest: fuel burned per millisecond of CPU (metering on),
//! and the time of the same request with metering off, in the same run.
//! Run: `cargo bench --bench fuel`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use std::time::{Duration, Instant};
use verge::capabilities::{config::ConfigCtx, log::LogCtx};
use verge::runtime::{
    EngineSettings, FUEL_PER_CPU_MS, GuestRequest, Limits, RequestContext, Runtime,
};

/// Repetitions per workload and mode; the median is reported.
const ROUNDS: usize = 15;

fn request(work: &str, n: u32) -> GuestRequest {
    GuestRequest {
        method: "GET".into(),
        uri: format!("http://bench/?work={work}&n={n}"),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

fn ctx() -> RequestContext {
    RequestContext::new(
        ConfigCtx::default(),
        LogCtx::new("bench".into(), "bench".into()),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let guests = verge_benches::build_guests()?;
    let bytes = std::fs::read(&guests["fuel-burn"])?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let limits = Limits {
        fuel: 100_000 * FUEL_PER_CPU_MS,
        wall_clock: Duration::from_secs(60),
        ..Limits::default()
    };
    let metered = Runtime::new(EngineSettings {
        pool_instances: 4,
        ..EngineSettings::default()
    })?
    .load("fuel-burn", &bytes, limits)?;
    let unmetered = Runtime::new(EngineSettings {
        pool_instances: 4,
        metering: false,
        ..EngineSettings::default()
    })?
    .load("fuel-burn", &bytes, limits)?;
    println!("workload   fuel/ms(cpu)   metered ms   unmetered ms   metered/unmetered");
    for (work, n) in [("hash", 2_000), ("sort", 2_000), ("text", 500)] {
        let mut on = Vec::new();
        let mut off = Vec::new();
        let mut fuel = 0;
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let (result, usage) = rt.block_on(metered.handle(request(work, n), ctx()));
            on.push(t.elapsed());
            anyhow::ensure!(result.is_ok(), "{work}: {result:?}");
            fuel = usage.fuel;
            let t = Instant::now();
            let (result, _) = rt.block_on(unmetered.handle(request(work, n), ctx()));
            off.push(t.elapsed());
            anyhow::ensure!(result.is_ok(), "{work}: {result:?}");
        }
        let (on, off) = (median(on), median(off));
        let ms = on.as_secs_f64() * 1000.0;
        println!(
            "{work:<10} {:>12.0}   {:>10.2}   {:>12.2}   {:>8.3}",
            fuel as f64 / ms,
            ms,
            off.as_secs_f64() * 1000.0,
            on.as_secs_f64() / off.as_secs_f64()
        );
    }
    println!("FUEL_PER_CPU_MS in use: {FUEL_PER_CPU_MS}");
    Ok(())
}
