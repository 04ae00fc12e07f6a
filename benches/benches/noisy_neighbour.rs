//! Noisy neighbour through the shipped binary: tenant B's hello under load,
//! alone and then while tenant A floods a CPU-spinning, a memory-bombing,
//! a huge-response function and two that leave work after the response (a
//! sleep, a spin) (each alone, then all five), in the same
//! run against one `verge serve` child process. Every B request must
//! succeed; B's p99 under attack is reported against B alone. Server on
//! core 0 (`taskset`), load generator on core 1; bounded by
//! VERGE_BENCH_SECS (default 5) per phase. Both tenants have the default
//! limits, as a hostile tenant would keep them; VERGE_BENCH_ATTACKER_CAP=N
//! caps A at N concurrent requests instead (what an operator may set).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use std::time::Duration;
use verge_benches::binary::{VergeProcess, build_verge};
use verge_benches::load::{self, LoadResult};

/// Connections each attacker opens.
const ATTACKER_CONNECTIONS: usize = 8;

/// The attackers: app, guest, path. The last two answer at once and leave
/// work after the response: a 2 s sleep holding the instance, and a spin
/// through the CPU budget.
const ATTACKERS: [(&str, &str, &str); 5] = [
    ("spin", "cpu-spin", "/"),
    ("bomb", "memory-bomb", "/"),
    ("huge", "huge-response", "/?mib=40"),
    ("sleeper", "fetch-async-probe", "/?mode=defer&sleep=2000"),
    ("deferred", "fetch-async-probe", "/?mode=defer&spin=1"),
];

fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("VERGE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let guests = verge_benches::build_guests()?;
    let binary = build_verge()?;
    let verge = VergeProcess::start(&binary, &["--pool-instances", "128"])?;
    let cap: Option<u32> = std::env::var("VERGE_BENCH_ATTACKER_CAP")
        .ok()
        .and_then(|s| s.parse().ok());
    match cap {
        Some(cap) => verge.tenant("a", &format!(r#"{{"max_concurrency":{cap}}}"#))?,
        None => verge.tenant("a", "{}")?,
    }
    verge.tenant("b", "{}")?;
    for (app, guest, _) in ATTACKERS {
        verge.deploy("a", app, &format!("{app}.test"), &guests[guest])?;
    }
    verge.deploy("b", "hello", "hello.test", &guests["hello"])?;
    verge_benches::pin(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let addr = verge.data;
    let phase = Duration::from_secs(secs);
    rt.block_on(load::run(
        addr,
        "hello.test",
        "/",
        8,
        Duration::from_secs(1),
    ))?;
    let alone = rt.block_on(load::run(addr, "hello.test", "/", 8, phase))?;
    println!(
        "noisy neighbour through the verge binary: B = hello (8 conns); A = {ATTACKER_CONNECTIONS} conns per attacker, A {}",
        cap.map_or("with the default limits".to_owned(), |cap| format!(
            "capped at {cap} concurrent"
        ))
    );
    show("B alone", &alone);
    let mut worst = 1.0f64;
    let mut failed = alone.failed;
    let mut phases: Vec<(&str, Vec<usize>)> = (0..ATTACKERS.len())
        .map(|i| (ATTACKERS[i].0, vec![i]))
        .collect();
    phases.push(("all five", (0..ATTACKERS.len()).collect()));
    for (name, which) in phases {
        let (attacked, attackers) = rt.block_on(async {
            // Each attacker on its own task, all beside B's load.
            let tasks: Vec<_> = which
                .iter()
                .map(|&i| {
                    let (app, _, path) = ATTACKERS[i];
                    tokio::spawn(async move {
                        let host = format!("{app}.test");
                        load::run(addr, &host, path, ATTACKER_CONNECTIONS, phase).await
                    })
                })
                .collect();
            let attacked = load::run(addr, "hello.test", "/", 8, phase).await;
            let mut attackers = Vec::new();
            for task in tasks {
                attackers.push(task.await?);
            }
            anyhow::Ok((attacked, attackers))
        })?;
        let attacked = attacked?;
        show(&format!("B under {name}"), &attacked);
        for (i, result) in which.iter().zip(attackers) {
            show(&format!("  A {}", ATTACKERS[*i].1), &result?);
        }
        let ratio = attacked.p99_us as f64 / alone.p99_us.max(1) as f64;
        println!(
            "  B p99 under {name} / alone: {ratio:.2}x; B throughput: {:.2}",
            attacked.rps / alone.rps
        );
        worst = worst.max(ratio);
        failed += attacked.failed;
    }
    println!("worst B p99 under attack / alone: {worst:.2}x; failed B requests: {failed}");
    anyhow::ensure!(failed == 0, "tenant B had failed requests");
    Ok(())
}

fn show(name: &str, r: &LoadResult) {
    println!(
        "{name:<26} {:>8.0} ok/s  p50 {:>6} µs  p99 {:>7} µs  ok {:>7}  non-2xx {}",
        r.rps, r.p50_us, r.p99_us, r.ok, r.failed
    );
}
