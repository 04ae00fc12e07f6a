//! Shared pieces of the benchmarks: guest building, a baseline hyper server
//! and the bounded loopback load generator.

pub mod baseline;
pub mod binary;
pub mod compare;
pub mod load;
pub mod servers;
pub mod setup;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Pins the current thread to core `index` (no-op if there is no such core).
pub fn pin(index: usize) {
    if let Some(core) = core_affinity::get_core_ids().and_then(|ids| ids.get(index).copied()) {
        core_affinity::set_for_current(core);
    }
}

/// A serving runtime as the daemon builds it, with one worker pinned to
/// core 0 (the load generator takes core 1).
pub fn pinned_server_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    verge::daemon::runtime_builder()
        .worker_threads(1)
        .on_thread_start(|| pin(0))
        .build()
}

/// Builds the example and test guests and returns them by package name.
pub fn build_guests() -> anyhow::Result<HashMap<String, PathBuf>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target/guests");
    let mut all = HashMap::new();
    for dir in ["examples", "tests/guests"] {
        let artifacts = verge::guest_build::build(&root.join(dir), Some(&target))?;
        all.extend(artifacts.into_iter().map(|a| (a.package, a.path)));
    }
    Ok(all)
}

/// The daemon configuration the loopback benches serve with: port 0,
/// default limits, `engine`, and access-log lines formatted as in
/// production then discarded when `access_log` is set.
pub fn bench_daemon_config(
    engine: verge::runtime::EngineSettings,
    access_log: bool,
) -> anyhow::Result<verge::daemon::DaemonConfig> {
    let access_log = match access_log {
        true => Some(verge::telemetry::access_log::AccessLog::start(
            std::io::sink(),
        )?),
        false => None,
    };
    Ok(verge::daemon::DaemonConfig {
        listen: "127.0.0.1:0".parse()?,
        engine,
        limits: verge::runtime::Limits::default(),
        http: verge::server::HttpLimits::default(),
        access_log,
        capabilities: Default::default(),
        tls: None,
        connections: Default::default(),
        compile_worker: None,
        serving_threads: None,
    })
}

/// Guest `name` from `guests` as a local-run app with its own temp data dir.
pub fn bench_local_app(guests: &HashMap<String, PathBuf>, name: &str) -> verge::daemon::LocalApp {
    verge::daemon::LocalApp {
        name: name.into(),
        wasm: guests[name].clone(),
        vars: Default::default(),
        data_dir: std::env::temp_dir().join(format!("verge-bench-{name}-{}", std::process::id())),
        allowed_hosts: Vec::new(),
    }
}
