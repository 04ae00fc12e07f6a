//! `verge serve`: run the daemon.

use crate::daemon::{self, CapabilityConfig, DaemonConfig, LocalApp, PlatformConfig};
use crate::runtime::{DEFAULT_MEMORY_BYTES, EngineSettings, FUEL_PER_CPU_MS, Limits};
use crate::server::HttpLimits;
use crate::telemetry::access_log::AccessLog;
use anyhow::{Context as _, bail};
use clap::Args;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options of `verge serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address for the data plane (function traffic).
    #[arg(long, default_value = "127.0.0.1:8080", env = "VERGE_LISTEN")]
    pub listen: SocketAddr,
    /// Directory for the daemon's state; created if missing.
    #[arg(long, default_value = "verge-data", env = "VERGE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Local-run mode: serve one function for every host and path, a
    /// `.wasm` component or a function crate directory (built for
    /// wasm32-wasip2 first). Without it, the multi-tenant daemon runs with
    /// its admin API and serves the apps deployed in the data dir.
    #[arg(long)]
    pub app: Option<PathBuf>,
    /// Address for the admin API (multi-tenant mode).
    #[arg(long, default_value = crate::daemon::DEFAULT_ADMIN_LISTEN, env = "VERGE_ADMIN_LISTEN")]
    pub admin_listen: SocketAddr,
    /// The operator token for the admin API. Without it, one is read from
    /// (or generated into) DATA_DIR/admin-token with mode 0600.
    #[arg(long, env = "VERGE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// A configuration variable for the app, as KEY=VALUE (repeatable).
    #[arg(long = "var", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// An origin the app may fetch, `scheme://host[:port]` (repeatable;
    /// local-run mode, added to the `allowed_hosts` of its verge.toml).
    #[arg(long = "allow-host", value_name = "ORIGIN")]
    pub allowed_hosts: Vec<String>,
    #[command(flatten)]
    pub tuning: Tuning,
}

/// Engine and limit settings shared by the serving commands.
#[derive(Debug, Args, Clone)]
pub struct Tuning {
    /// CPU budget per request, in milliseconds of CPU (converted to fuel).
    #[arg(long, default_value_t = 50, env = "VERGE_CPU_MS")]
    pub cpu_ms: u64,
    /// Wall-clock deadline per request, in milliseconds.
    #[arg(long, default_value_t = 30_000, env = "VERGE_WALL_CLOCK_MS")]
    pub wall_clock_ms: u64,
    /// Linear memory cap per request, in MiB (at most 4096).
    #[arg(long, default_value_t = DEFAULT_MEMORY_BYTES >> 20, env = "VERGE_MEMORY_MIB")]
    pub memory_mib: usize,
    /// Instance slots in the pool: the number of requests running at once.
    #[arg(long, default_value_t = crate::runtime::EngineSettings::default().pool_instances, env = "VERGE_POOL_INSTANCES")]
    pub pool_instances: u32,
    /// Allocate instances on demand instead of from the pool.
    #[arg(long)]
    pub no_pooling: bool,
    /// Write no access log (by default one logfmt line per request on stderr).
    #[arg(long, env = "VERGE_NO_ACCESS_LOG")]
    pub no_access_log: bool,
    /// A private address range (CIDR) functions may fetch from anyway, e.g.
    /// 10.0.0.0/8 for an internal origin (repeatable). By default private,
    /// loopback and link-local destinations are refused.
    #[arg(long = "allow-outbound-cidr", value_name = "CIDR")]
    pub outbound_allow_cidrs: Vec<ipnet::IpNet>,
    /// PEM file of extra CA certificates to trust for outbound TLS.
    #[arg(long, env = "VERGE_OUTBOUND_CA_FILE", value_name = "PEM")]
    pub outbound_ca_file: Option<PathBuf>,
    /// MaxMind-format geo database (.mmdb): GeoIP2/GeoLite2, DB-IP or
    /// ip-location-db; reloaded when the file changes.
    #[arg(long, env = "VERGE_GEO_DB", value_name = "MMDB")]
    pub geo_db: Option<PathBuf>,
    /// A proxy (CIDR) whose Forwarded / X-Forwarded-For headers name the
    /// client (repeatable). Headers from other peers are ignored.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Tuning {
    /// The daemon configuration these settings describe.
    pub fn daemon_config(&self, listen: SocketAddr) -> anyhow::Result<DaemonConfig> {
        if self.memory_mib == 0 || self.memory_mib > 4096 {
            bail!(
                "--memory-mib must be between 1 and 4096, got {}",
                self.memory_mib
            );
        }
        if self.cpu_ms == 0 || self.wall_clock_ms == 0 {
            bail!("--cpu-ms and --wall-clock-ms must be above 0");
        }
        let memory_bytes = self.memory_mib << 20;
        let limits = Limits {
            fuel: self.cpu_ms.saturating_mul(FUEL_PER_CPU_MS),
            wall_clock: Duration::from_millis(self.wall_clock_ms),
            memory_bytes,
            ..Limits::default()
        };
        let engine = EngineSettings {
            pool_instances: self.pool_instances.max(1),
            max_memory_bytes: memory_bytes.max(DEFAULT_MEMORY_BYTES),
            pooling: !self.no_pooling,
            ..EngineSettings::default()
        };
        let access_log = if self.no_access_log {
            None
        } else {
            Some(AccessLog::stderr()?)
        };
        Ok(DaemonConfig {
            listen,
            engine,
            limits,
            http: HttpLimits::default(),
            access_log,
            capabilities: CapabilityConfig {
                outbound_allow_cidrs: self.outbound_allow_cidrs.clone(),
                outbound_ca_file: self.outbound_ca_file.clone(),
                geo_database: self.geo_db.clone(),
                trusted_proxies: self.trusted_proxies.clone(),
            },
        })
    }
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// The `.wasm` to serve for `path`: the file itself, or the component built
/// from the crate directory.
pub(super) fn resolve_component(path: &Path) -> anyhow::Result<(String, PathBuf)> {
    if path.is_dir() {
        let artifacts = crate::guest_build::build(path, None)?;
        let [artifact] = artifacts.as_slice() else {
            bail!(
                "{} builds {} components; pass one .wasm file instead",
                path.display(),
                artifacts.len()
            );
        };
        return Ok((artifact.package.clone(), artifact.path.clone()));
    }
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("app")
        .replace('_', "-");
    Ok((name, path.to_owned()))
}

pub(super) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.tuning.daemon_config(args.listen)?;
    let Some(app_path) = &args.app else {
        let platform = PlatformConfig {
            data_dir: args.data_dir.clone(),
            admin_listen: args.admin_listen,
            operator_token: args.admin_token.clone(),
        };
        let running = daemon::start_platform(&config, &platform).await?;
        let apps = running.registry.as_ref().map_or(0, |r| r.live_apps());
        println!(
            "verge: serving {apps} apps on http://{} (admin API on http://{}), ready in {} ms",
            running.addr,
            running
                .admin_addr
                .map_or_else(String::new, |a| a.to_string()),
            running.startup.as_millis()
        );
        return run_until_signal(running).await;
    };
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data dir {}", args.data_dir.display()))?;
    let (name, wasm) = resolve_component(app_path)?;
    let app = local_app(app_path, name, wasm, &args)?;
    let running = daemon::start(&config, &app).await?;
    println!("verge: serving {} on http://{}", app.name, running.addr);
    run_until_signal(running).await
}

/// The local app: its verge.toml (beside the crate or the file), if any,
/// with the command line's variables and hosts added.
pub(super) fn local_app(
    app_path: &Path,
    name: String,
    wasm: PathBuf,
    args: &ServeArgs,
) -> anyhow::Result<LocalApp> {
    let manifest = if app_path.is_dir() {
        app_path.join("verge.toml")
    } else {
        app_path.with_file_name("verge.toml")
    };
    let file = if manifest.exists() {
        super::deploy::ManifestFile::read(&manifest)?
    } else {
        super::deploy::ManifestFile::default()
    };
    let mut vars = file.config;
    vars.extend(args.vars.iter().cloned());
    let mut allowed_hosts = file.allowed_hosts;
    allowed_hosts.extend(args.allowed_hosts.iter().cloned());
    Ok(LocalApp {
        name: file.name.unwrap_or(name),
        wasm,
        vars: vars.into_iter().collect::<BTreeMap<_, _>>(),
        data_dir: args.data_dir.clone(),
        allowed_hosts,
    })
}

/// Serves until SIGINT or SIGTERM, then drains.
pub(super) async fn run_until_signal(running: daemon::RunningDaemon) -> anyhow::Result<()> {
    let stop = running.stopper();
    tokio::spawn(async move {
        super::shutdown_signal().await;
        let _ = stop.send(true);
    });
    running.wait().await;
    Ok(())
}
