//! Noisy neighbour: tenant B's hello under load, alone and then while tenant
//! A floods a CPU-spinning and a memory-bombing function, in the same run.
//! Every B request must succeed; B's p99 under attack is reported against B
//! alone. Server on core 0, load generator on core 1; bounded by
//! VERGE_BENCH_SECS (default 5) per phase.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use std::sync::Arc;
use std::time::Duration;
use verge::daemon::PlatformConfig;
use verge::runtime::EngineSettings;
use verge::storage::records::{AppManifest, LimitOverrides};
use verge_benches::load;

/// Requests tenant A may run at once: its operator-set cap.
const ATTACKER_MAX_CONCURRENCY: u32 = 2;

fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("VERGE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let guests = verge_benches::build_guests()?;
    let dir = tempfile::tempdir()?;
    let server_rt = verge_benches::pinned_server_runtime()?;
    let engine = EngineSettings {
        pool_instances: 128,
        ..EngineSettings::default()
    };
    let config = verge_benches::bench_daemon_config(engine, true)?;
    let platform = PlatformConfig {
        data_dir: dir.path().to_owned(),
        admin_listen: "127.0.0.1:0".parse()?,
        operator_token: Some("verge_op_bench".into()),
    };
    let addr = server_rt.block_on(async {
        let daemon = verge::daemon::start_platform(&config, &platform).await?;
        let registry: Arc<_> = daemon.registry.clone().unwrap();
        let capped = LimitOverrides {
            max_concurrency: Some(ATTACKER_MAX_CONCURRENCY),
            ..LimitOverrides::default()
        };
        registry.create_tenant("a".into(), capped).await?;
        registry
            .create_tenant("b".into(), LimitOverrides::default())
            .await?;
        for (tenant, app, guest) in [
            ("a", "spin", "cpu-spin"),
            ("a", "bomb", "memory-bomb"),
            ("b", "hello", "hello"),
        ] {
            let manifest = AppManifest {
                routes: vec![format!("{app}.test")],
                ..AppManifest::default()
            };
            registry
                .put_app(tenant.into(), app.into(), manifest)
                .await?;
            registry
                .upload(
                    tenant.into(),
                    app.into(),
                    std::fs::read(&guests[guest])?,
                    true,
                )
                .await?;
        }
        let addr = daemon.addr;
        tokio::spawn(daemon.wait());
        anyhow::Ok(addr)
    })?;
    verge_benches::pin(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let phase = Duration::from_secs(secs);
    rt.block_on(load::run(
        addr,
        "hello.test",
        "/",
        8,
        Duration::from_secs(1),
    ))?;
    let alone = rt.block_on(load::run(addr, "hello.test", "/", 8, phase))?;
    // VERGE_BENCH_ATTACK picks the attackers: spin, bomb or both (default).
    let attack = std::env::var("VERGE_BENCH_ATTACK").unwrap_or_else(|_| "both".into());
    let conns = |kind: &str| {
        if attack == "both" || attack == kind {
            8
        } else {
            0
        }
    };
    let (attacked, spin, bomb) = rt.block_on(async {
        tokio::join!(
            load::run(addr, "hello.test", "/", 8, phase),
            load::run(addr, "spin.test", "/", conns("spin"), phase),
            load::run(addr, "bomb.test", "/", conns("bomb"), phase),
        )
    });
    let (attacked, spin, bomb) = (attacked?, spin?, bomb?);
    println!(
        "noisy neighbour: B = hello (8 conns); A = cpu-spin + memory-bomb (8 conns each, A capped at {ATTACKER_MAX_CONCURRENCY} concurrent)"
    );
    let show = |name: &str, r: &load::LoadResult| {
        println!(
            "{name:<22} {:>8.0} ok/s  p50 {:>6} µs  p99 {:>7} µs  ok {:>7}  non-2xx {}",
            r.rps, r.p50_us, r.p99_us, r.ok, r.failed
        );
    };
    show("B alone", &alone);
    show("B under attack", &attacked);
    show("A cpu-spin", &spin);
    show("A memory-bomb", &bomb);
    println!(
        "B p99 under attack / alone: {:.2}x; B throughput under attack / alone: {:.2}",
        attacked.p99_us as f64 / alone.p99_us.max(1) as f64,
        attacked.rps / alone.rps
    );
    anyhow::ensure!(
        attacked.failed == 0 && alone.failed == 0,
        "tenant B had failed requests"
    );
    Ok(())
}
