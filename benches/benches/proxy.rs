//! The two worlds through the shipped binary: the Verge-SDK hello and a
//! standard `wasi:http/proxy` hello (the `wasi-hello` guest, built with the
//! `wasi` crate alone), each served by its own `verge serve --app` child on
//! core 0, 16 connections from core 1, interleaved rounds
//! (`VERGE_BENCH_ROUNDS`, `VERGE_BENCH_SECS`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use verge_benches::compare::{self, Plan, median_ratio};
use verge_benches::servers::ChildServer;

fn main() -> anyhow::Result<()> {
    let plan = Plan::from_env();
    let verge = verge_benches::binary::build_verge()?;
    let guests = verge_benches::build_guests()?;
    let sdk = ChildServer::verge(&verge, &guests["hello"], true)?;
    let proxy = ChildServer::verge(&verge, &guests["wasi-hello"], true)?;
    verge_benches::pin(1);
    let load_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!(
        "proxy world vs Verge SDK through the binary: 16 connections, {} rounds of {} s",
        plan.rounds, plan.secs
    );
    let s = compare::run(
        &load_rt,
        plan,
        16,
        "/hello",
        &[("sdk", sdk.addr), ("proxy", proxy.addr)],
    )?;
    println!(
        "proxy/sdk: median {:.1}% of requests/s ({:.0} vs {:.0} req/s), p99 {:.2} vs {:.2} ms",
        100.0 * median_ratio(&s[1], &s[0]),
        s[1].median_rps(),
        s[0].median_rps(),
        s[1].median_p99_us() / 1000.0,
        s[0].median_p99_us() / 1000.0
    );
    anyhow::ensure!(compare::failed(&s) == 0, "failed requests during the run");
    Ok(())
}
