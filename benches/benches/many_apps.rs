//! 1,000 apps on one node, through the shipped binary (`verge serve`
//! pinned to core 0, load from core 1): hello's p99 with one app deployed
//! and with 1,000 (requests to the first and the last app, interleaved),
//! RSS per app, deploy time for apps of an already compiled component, and
//! SIGKILL-restart to ready. 10 tenants × 100 apps (the per-tenant cap),
//! all of the hello component (one compiled artifact, `many_apps` test).
//! `VERGE_BENCH_APPS` (default 1000), `VERGE_BENCH_ROUNDS`, `VERGE_BENCH_SECS`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use std::time::Instant;
use verge_benches::binary::VergeProcess;
use verge_benches::compare::{self, Plan};

/// Apps per tenant: the registry's default cap.
const APPS_PER_TENANT: usize = 100;

fn rss_bytes(pid: u32) -> u64 {
    verge_benches::servers::rss_of(pid).0
}

fn main() -> anyhow::Result<()> {
    let plan = Plan::from_env();
    let apps: usize = std::env::var("VERGE_BENCH_APPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let binary = verge_benches::binary::build_verge()?;
    let guests = verge_benches::build_guests()?;
    let hello = &guests["hello"];
    verge_benches::pin(1);
    let load_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut verge = VergeProcess::start(&binary, &[])?;
    let tenants = apps.div_ceil(APPS_PER_TENANT);
    for t in 0..tenants {
        verge.tenant(&format!("t{t}"), "{}")?;
    }
    let host = |i: usize| format!("a{i}.t{}.bench", i / APPS_PER_TENANT);
    let deploy = |verge: &VergeProcess, i: usize| {
        verge.deploy(
            &format!("t{}", i / APPS_PER_TENANT),
            &format!("a{i}"),
            &host(i),
            hello,
        )
    };
    deploy(&verge, 0)?;
    let rss_one = rss_bytes(verge.pid());
    let one = compare::run_hosts(&load_rt, plan, 16, "/", &[("1 app", verge.data, host(0))])?;
    let started = Instant::now();
    for i in 1..apps {
        deploy(&verge, i)?;
    }
    let deploy_ms = started.elapsed().as_secs_f64() * 1000.0 / (apps - 1).max(1) as f64;
    let rss_all = rss_bytes(verge.pid());
    let last = apps - 1;
    let many = compare::run_hosts(
        &load_rt,
        plan,
        16,
        "/",
        &[
            ("first of many", verge.data, host(0)),
            ("last of many", verge.data, host(last)),
        ],
    )?;
    verge = verge.restart(&binary, &[])?;
    let restart_ms = verge.spawn_to_ready_ms;
    let ready_line = verge.ready_line.clone();
    let after = compare::run_hosts(
        &load_rt,
        Plan { rounds: 1, ..plan },
        16,
        "/",
        &[("last after restart", verge.data, host(last))],
    )?;
    let rss_restarted = rss_bytes(verge.pid());
    println!(
        "{apps} apps: hello p99 {:.2} ms with 1 app, {:.2} / {:.2} ms (first / last app) with {apps}; \
         req/s {:.0} vs {:.0} / {:.0}",
        one[0].median_p99_us() / 1000.0,
        many[0].median_p99_us() / 1000.0,
        many[1].median_p99_us() / 1000.0,
        one[0].median_rps(),
        many[0].median_rps(),
        many[1].median_rps(),
    );
    println!(
        "{apps} apps: RSS {} MB with 1 app, {} MB with {apps} ({:.1} KB per app), {} MB after restart and load; deploy {deploy_ms:.1} ms per app",
        rss_one >> 20,
        rss_all >> 20,
        rss_all.saturating_sub(rss_one) as f64 / 1024.0 / (apps - 1).max(1) as f64,
        rss_restarted >> 20,
    );
    println!(
        "{apps} apps: SIGKILL restart to ready {restart_ms:.0} ms from spawn ({ready_line}); last app after restart p99 {:.2} ms",
        after[0].median_p99_us() / 1000.0
    );
    let failed: u64 = [one, many, after]
        .iter()
        .flatten()
        .map(compare::Series::failed)
        .sum();
    anyhow::ensure!(failed == 0, "{failed} failed requests");
    Ok(())
}
