//! Loopback load against what ships: the `verge` binary (`verge serve
//! --app`, access log on, written to a file) as a child process on core 0,
//! beside its baselines in the same run, the load generator on core 1.
//! Scenarios (`VERGE_BENCH_ONLY=hello,stack,wasi,js` picks some):
//! - `hello`: the SDK hello against a raw hyper hello (target ≥ 40 %, p99
//!   < 1 ms at 16 connections);
//! - `stack`: the SDK hello built with Rust's default 1 MiB stack against
//!   the 64 KiB build (target ≥ 80 %);
//! - `wasi`: one wasi-crate hello component on Verge and on `wasmtime
//!   serve` 48.0.8 (target ≥ 3×);
//! - `js`: the componentize-js hello on both (target ≥ 2×), its server time
//!   at one connection (target p50 ≤ 300 µs) and Verge's RSS (≤ 100 MB).
//!
//! Bounded: `VERGE_BENCH_ROUNDS` (5) rounds of `VERGE_BENCH_SECS` (2) s per
//! server, each phase at most `MAX_REQUESTS_PER_RUN` requests.
//! `VERGE_BENCH_VERGE=PATH` measures another `verge` binary (an older build).
//! `VERGE_BENCH_AGAINST=PATH` adds the `against` scenario: the SDK hello on
//! that binary and on this one, beside raw hyper, in the same rounds (a
//! refactor's before and after); `VERGE_BENCH_AGAINST_GUEST` picks another
//! guest (`wasi-hello`, or `js` for the componentize-js hello).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use std::path::PathBuf;
use verge_benches::compare::{self, Plan, median, median_ratio};
use verge_benches::servers::ChildServer;
use verge_benches::setup;

fn main() -> anyhow::Result<()> {
    let only = std::env::var("VERGE_BENCH_ONLY").unwrap_or_else(|_| "hello,stack,wasi,js".into());
    let wants = |s: &str| only.split(',').any(|o| o == s);
    let connections: usize = std::env::var("VERGE_BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let plan = Plan::from_env();
    let verge = match std::env::var_os("VERGE_BENCH_VERGE") {
        Some(path) => PathBuf::from(path),
        None => verge_benches::binary::build_verge()?,
    };
    let guests = verge_benches::build_guests()?;
    verge_benches::pin(1);
    let load_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!(
        "binary load: {connections} connections, {} rounds of {} s per server, servers on core 0, load on core 1",
        plan.rounds, plan.secs
    );
    let mut failed = 0;
    if wants("hello") {
        let hyper = ChildServer::hyper(env!("CARGO_BIN_EXE_hyper-hello").as_ref())?;
        let hello = ChildServer::verge(&verge, &guests["hello"], true)?;
        println!("hello: SDK hello on verge vs raw hyper");
        let s = compare::run(
            &load_rt,
            plan,
            connections,
            "/x",
            &[("hyper", hyper.addr), ("verge", hello.addr)],
        )?;
        println!(
            "hello: verge/hyper median {:.1}% of requests/s (hyper {:.0}, verge {:.0} req/s), verge median p99 {:.2} ms",
            100.0 * median_ratio(&s[1], &s[0]),
            s[0].median_rps(),
            s[1].median_rps(),
            s[1].median_p99_us() / 1000.0
        );
        failed += compare::failed(&s);
    }
    if let Some(before) = std::env::var_os("VERGE_BENCH_AGAINST") {
        let hyper = ChildServer::hyper(env!("CARGO_BIN_EXE_hyper-hello").as_ref())?;
        // VERGE_BENCH_AGAINST_GUEST=wasi-hello compares the proxy world.
        // `js` compares the componentize-js hello (`benches/js`).
        let guest = std::env::var("VERGE_BENCH_AGAINST_GUEST").unwrap_or_else(|_| "hello".into());
        let component = match guest.as_str() {
            "js" => setup::js_hello()?,
            _ => guests
                .get(&guest)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no guest {guest}"))?,
        };
        let old = ChildServer::verge(before.as_ref(), &component, true)?;
        let new = ChildServer::verge(&verge, &component, true)?;
        println!(
            "against: {guest} on {} and on this build",
            PathBuf::from(&before).display()
        );
        let s = compare::run(
            &load_rt,
            plan,
            connections,
            "/x",
            &[
                ("hyper", hyper.addr),
                ("before", old.addr),
                ("after", new.addr),
            ],
        )?;
        println!(
            "against: after/before median {:.1}% of requests/s ({:.0} vs {:.0} req/s; {:.1}% and {:.1}% of hyper's {:.0}), p99 {:.2} vs {:.2} ms",
            100.0 * median_ratio(&s[2], &s[1]),
            s[2].median_rps(),
            s[1].median_rps(),
            100.0 * median_ratio(&s[2], &s[0]),
            100.0 * median_ratio(&s[1], &s[0]),
            s[0].median_rps(),
            s[2].median_p99_us() / 1000.0,
            s[1].median_p99_us() / 1000.0
        );
        failed += compare::failed(&s);
    }
    if wants("stack") {
        let big = setup::default_stack_hello()?;
        let small = ChildServer::verge(&verge, &guests["hello"], true)?;
        let default = ChildServer::verge(&verge, &big, true)?;
        println!("stack: SDK hello with Rust's default 1 MiB stack vs the 64 KiB build");
        let s = compare::run(
            &load_rt,
            plan,
            connections,
            "/x",
            &[("64k", small.addr), ("1m", default.addr)],
        )?;
        println!(
            "stack: 1 MiB / 64 KiB median {:.1}% of requests/s ({:.0} vs {:.0} req/s), 1 MiB median p99 {:.2} ms",
            100.0 * median_ratio(&s[1], &s[0]),
            s[1].median_rps(),
            s[0].median_rps(),
            s[1].median_p99_us() / 1000.0
        );
        failed += compare::failed(&s);
    }
    let wasmtime = if wants("wasi") || wants("js") {
        Some(setup::wasmtime_cli()?)
    } else {
        None
    };
    if let (true, Some(cli)) = (wants("wasi"), &wasmtime) {
        let component = &guests["wasi-hello"];
        let theirs = ChildServer::wasmtime(cli, component)?;
        let ours = ChildServer::verge(&verge, component, true)?;
        println!("wasi: the same wasi-crate hello on verge vs wasmtime serve");
        let s = compare::run(
            &load_rt,
            plan,
            connections,
            "/hello",
            &[("wasmtime", theirs.addr), ("verge", ours.addr)],
        )?;
        println!(
            "wasi: verge/wasmtime median {:.2}x requests/s ({:.0} vs {:.0} req/s), verge median p99 {:.2} ms",
            median_ratio(&s[1], &s[0]),
            s[1].median_rps(),
            s[0].median_rps(),
            s[1].median_p99_us() / 1000.0
        );
        failed += compare::failed(&s);
    }
    if let (true, Some(cli)) = (wants("js"), &wasmtime) {
        let component = setup::js_hello()?;
        let theirs = ChildServer::wasmtime(cli, &component)?;
        let ours = ChildServer::verge(&verge, &component, true)?;
        println!("js: the componentize-js hello on verge vs wasmtime serve");
        let s = compare::run(
            &load_rt,
            plan,
            connections,
            "/",
            &[("wasmtime", theirs.addr), ("verge", ours.addr)],
        )?;
        let one = compare::run(
            &load_rt,
            Plan { rounds: 1, ..plan },
            1,
            "/",
            &[("verge-1-connection", ours.addr)],
        )?;
        // The access log is flushed every 20 ms.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let micros = ours.server_micros();
        let at_one = micros
            .len()
            .saturating_sub(usize::try_from(one[0].rounds[0].ok).unwrap_or(0));
        let server_p50 = median(micros[at_one..].iter().map(|&m| m as f64).collect());
        let (rss, peak) = ours.rss();
        let (their_rss, _) = theirs.rss();
        println!(
            "js: verge/wasmtime median {:.2}x requests/s ({:.0} vs {:.0} req/s), verge median p99 {:.2} ms; \
             at 1 connection server time p50 {server_p50:.0} µs ({:.0} req/s); verge RSS {} MB (peak {} MB), wasmtime RSS {} MB",
            median_ratio(&s[1], &s[0]),
            s[1].median_rps(),
            s[0].median_rps(),
            s[1].median_p99_us() / 1000.0,
            one[0].median_rps(),
            rss >> 20,
            peak >> 20,
            their_rss >> 20,
        );
        failed += compare::failed(&s);
    }
    anyhow::ensure!(failed == 0, "{failed} failed requests during the run");
    Ok(())
}
