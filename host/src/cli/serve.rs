//! `verge serve`: run the daemon.

use super::manifest::{ManifestFile, manifest_beside, resolve_component};
use super::settings::DaemonFile;
use crate::capabilities::cache::DEFAULT_CACHE_CAPACITY_BYTES;
use crate::capabilities::fetch::DEFAULT_MAX_SUBREQUESTS;
use crate::daemon::{self, CapabilityConfig, DaemonConfig, LocalApp, PlatformConfig, TlsListener};
use crate::runtime::{
    DEFAULT_FUEL, DEFAULT_MEMORY_BYTES, DEFAULT_WALL_CLOCK, EngineSettings, FUEL_PER_CPU_MS, Limits,
};
use crate::server::HttpLimits;
use crate::server::tls::TlsCertificate;
use crate::telemetry::access_log::AccessLog;
use anyhow::{Context as _, bail};
use clap::Args;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options of `verge serve`. Every option without a value here comes from
/// the config file, else its default (shown in brackets).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The daemon config file (TOML; see docs/configuration.md). Flags and
    /// environment variables override it.
    #[arg(long, env = "VERGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address for the data plane (function traffic) [default: 127.0.0.1:8080].
    #[arg(long, env = "VERGE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the daemon's state; created if missing [default: verge-data].
    #[arg(long, env = "VERGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Local-run mode: serve one function for every host and path, a
    /// `.wasm` component or a function crate directory (built for
    /// wasm32-wasip2 first). Without it, the multi-tenant daemon runs with
    /// its admin API and serves the apps deployed in the data dir.
    #[arg(long)]
    pub app: Option<PathBuf>,
    /// Address for the admin API (multi-tenant mode; refused with --app,
    /// which has no admin API) [default: 127.0.0.1:9900].
    #[arg(long, env = "VERGE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// The operator token for the admin API. Without it, one is read from
    /// (or generated into) DATA_DIR/admin-token with mode 0600.
    #[arg(long, env = "VERGE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The key app secrets are sealed with at rest (64 hex digits; keep it
    /// apart from the data dir) [default: DATA_DIR/secrets.key, generated].
    #[arg(long, env = "VERGE_SECRETS_KEY_FILE", value_name = "FILE")]
    pub secrets_key_file: Option<PathBuf>,
    /// Rotation: the key secrets were sealed with before; every secret is
    /// sealed again under --secrets-key-file at start.
    #[arg(long, value_name = "FILE")]
    pub previous_secrets_key_file: Option<PathBuf>,
    /// How people reach the data plane, e.g. `https://edge.example.net`
    /// behind a proxy: `verge deploy` prints each route with its scheme and
    /// port [default: the data plane's own address].
    #[arg(long, env = "VERGE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Start even if the data dir was initialised and has lost
    /// control.redb or kv.redb (they are created empty). Without it such a
    /// start is refused, naming the file.
    #[arg(long)]
    pub start_empty: bool,
    #[command(flatten)]
    pub cluster: super::cluster::ClusterArgs,
    #[command(flatten)]
    pub local: LocalAppArgs,
    #[command(flatten)]
    pub tuning: Tuning,
}

/// What local-run mode adds to the function's own verge.toml.
#[derive(Debug, Args, Clone, Default)]
pub struct LocalAppArgs {
    /// A configuration variable for the app, as KEY=VALUE (repeatable;
    /// added to the `[config]` of its verge.toml).
    #[arg(long = "var", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// An origin the app may fetch, `scheme://host[:port]` (repeatable;
    /// added to the `allowed_hosts` of its verge.toml).
    #[arg(long = "allow-host", value_name = "ORIGIN")]
    pub allowed_hosts: Vec<String>,
}

/// Engine, limit, TLS and capability settings shared by the serving
/// commands.
#[derive(Debug, Args, Clone, Default)]
pub struct Tuning {
    /// CPU budget per request, in milliseconds of CPU (converted to fuel) [default: 50].
    #[arg(long, env = "VERGE_CPU_MS")]
    pub cpu_ms: Option<u64>,
    /// Wall-clock deadline per request, in milliseconds [default: 30000].
    #[arg(long, env = "VERGE_WALL_CLOCK_MS")]
    pub wall_clock_ms: Option<u64>,
    /// Linear memory cap per request, in MiB, 1-4096 [default: 128].
    #[arg(long, env = "VERGE_MEMORY_MIB")]
    pub memory_mib: Option<usize>,
    /// Outbound fetches (redirects included) per request [default: 50].
    #[arg(long, env = "VERGE_MAX_SUBREQUESTS")]
    pub max_subrequests: Option<u32>,
    /// Request body cap, in MiB: the ceiling for every tenant and app [default: 16].
    #[arg(long, env = "VERGE_MAX_REQUEST_BODY_MIB")]
    pub max_request_body_mib: Option<usize>,
    /// Response body cap, in MiB: the ceiling for every tenant and app;
    /// a streamed body is cut there [default: 32].
    #[arg(long, env = "VERGE_MAX_RESPONSE_BODY_MIB")]
    pub max_response_body_mib: Option<usize>,
    /// Instance slots in the pool: the number of requests running at once [default: 1000].
    #[arg(long, env = "VERGE_POOL_INSTANCES")]
    pub pool_instances: Option<u32>,
    /// Allocate instances on demand instead of from the pool.
    #[arg(long)]
    pub no_pooling: bool,
    /// Write no access log (by default one logfmt line per request on stderr).
    #[arg(long, env = "VERGE_NO_ACCESS_LOG")]
    pub no_access_log: bool,
    /// Address for an HTTPS data-plane listener (needs --tls-cert and --tls-key).
    #[arg(long, env = "VERGE_TLS_LISTEN", value_name = "ADDR")]
    pub tls_listen: Option<SocketAddr>,
    /// A PEM certificate chain for HTTPS (repeatable, paired in order with
    /// --tls-key; chosen per connection by SNI, the first is the default).
    #[arg(long = "tls-cert", value_name = "PEM")]
    pub tls_certs: Vec<PathBuf>,
    /// The PEM private key for the --tls-cert at the same position.
    #[arg(long = "tls-key", value_name = "PEM")]
    pub tls_keys: Vec<PathBuf>,
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
    /// Bytes the edge cache may hold, in MiB [default: 256].
    #[arg(long, env = "VERGE_CACHE_MIB")]
    pub cache_mib: Option<u64>,
}

/// Default data-plane address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "verge-data";

/// A list from the flags when any were given, else from the file.
fn flags_or_file<T: Clone>(flags: &[T], file: &[T]) -> Vec<T> {
    if flags.is_empty() {
        file.to_vec()
    } else {
        flags.to_vec()
    }
}

impl Tuning {
    /// The server's body caps: flags, then `[limits]`, then the defaults.
    fn http_limits(&self, file: &DaemonFile) -> anyhow::Result<HttpLimits> {
        let mut http = HttpLimits::default();
        let pick = |flag: Option<usize>, file: Option<usize>, default: usize, name: &str| match flag
            .or(file)
        {
            Some(0) => bail!(
                "{name} (--{} / [limits]) must be above 0",
                name.replace('_', "-")
            ),
            Some(mib) => Ok(mib.saturating_mul(1 << 20)),
            None => Ok(default),
        };
        http.max_request_body_bytes = pick(
            self.max_request_body_mib,
            file.limits.max_request_body_mib,
            http.max_request_body_bytes,
            "max_request_body_mib",
        )?;
        http.max_response_body_bytes = pick(
            self.max_response_body_mib,
            file.limits.max_response_body_mib,
            http.max_response_body_bytes,
            "max_response_body_mib",
        )?;
        Ok(http)
    }

    /// The daemon configuration these settings describe on top of `file`
    /// (flags win), listening on `listen`.
    pub fn daemon_config(
        &self,
        listen: SocketAddr,
        file: &DaemonFile,
    ) -> anyhow::Result<DaemonConfig> {
        let memory_mib = self
            .memory_mib
            .or(file.limits.memory_mib)
            .unwrap_or(DEFAULT_MEMORY_BYTES >> 20);
        if memory_mib == 0 || memory_mib > 4096 {
            bail!(
                "memory_mib (--memory-mib / [limits] memory_mib) must be between 1 and 4096, got {memory_mib}"
            );
        }
        let cpu_ms = self
            .cpu_ms
            .or(file.limits.cpu_ms)
            .unwrap_or(DEFAULT_FUEL / FUEL_PER_CPU_MS);
        let wall_clock_ms = self
            .wall_clock_ms
            .or(file.limits.wall_clock_ms)
            .unwrap_or(u64::try_from(DEFAULT_WALL_CLOCK.as_millis()).unwrap_or(u64::MAX));
        if cpu_ms == 0 || wall_clock_ms == 0 {
            bail!("cpu_ms and wall_clock_ms (--cpu-ms, --wall-clock-ms, [limits]) must be above 0");
        }
        let memory_bytes = memory_mib << 20;
        let limits = Limits {
            fuel: cpu_ms.saturating_mul(FUEL_PER_CPU_MS),
            wall_clock: Duration::from_millis(wall_clock_ms),
            memory_bytes,
            max_subrequests: self
                .max_subrequests
                .or(file.limits.max_subrequests)
                .unwrap_or(DEFAULT_MAX_SUBREQUESTS),
            ..Limits::default()
        };
        let engine = EngineSettings {
            pool_instances: self
                .pool_instances
                .or(file.pool.instances)
                .unwrap_or(EngineSettings::default().pool_instances)
                .max(1),
            max_memory_bytes: memory_bytes.max(DEFAULT_MEMORY_BYTES),
            pooling: !self.no_pooling && file.pool.pooling.unwrap_or(true),
            keep_resident_bytes: file
                .pool
                .keep_resident_kib
                .map_or(EngineSettings::default().keep_resident_bytes, |kib| {
                    kib.saturating_mul(1024)
                }),
            pagemap_scan: file.pool.pagemap_scan.unwrap_or(true),
            ..EngineSettings::default()
        };
        let access_log = if self.no_access_log || file.access_log == Some(false) {
            None
        } else {
            Some(AccessLog::stderr()?)
        };
        Ok(DaemonConfig {
            listen,
            engine,
            limits,
            http: self.http_limits(file)?,
            access_log,
            capabilities: CapabilityConfig {
                outbound_allow_cidrs: flags_or_file(
                    &self.outbound_allow_cidrs,
                    &file.outbound.allow_cidrs,
                ),
                outbound_ca_file: self
                    .outbound_ca_file
                    .clone()
                    .or_else(|| file.outbound.ca_file.clone()),
                geo_database: self.geo_db.clone().or_else(|| file.geo.database.clone()),
                trusted_proxies: flags_or_file(&self.trusted_proxies, &file.geo.trusted_proxies),
                cache_capacity_bytes: self
                    .cache_mib
                    .or(file.cache.capacity_mib)
                    .unwrap_or(DEFAULT_CACHE_CAPACITY_BYTES >> 20)
                    .saturating_mul(1 << 20),
            },
            tls: self.tls(file)?,
            connections: file.connections.limits()?,
            compile_worker: std::env::current_exe().ok().map(|binary| {
                crate::runtime::compile::CompileWorker {
                    binary,
                    budget: file.tenancy.compile_budget_secs.map_or(
                        crate::runtime::compile::DEFAULT_COMPILE_BUDGET,
                        Duration::from_secs,
                    ),
                }
            }),
            serving_threads: file.connections.serving_threads,
        })
    }

    fn tls(&self, file: &DaemonFile) -> anyhow::Result<Option<TlsListener>> {
        if self.tls_certs.len() != self.tls_keys.len() {
            bail!(
                "--tls-cert and --tls-key come in pairs: got {} certificates and {} keys",
                self.tls_certs.len(),
                self.tls_keys.len()
            );
        }
        let from_flags: Vec<TlsCertificate> = self
            .tls_certs
            .iter()
            .zip(&self.tls_keys)
            .map(|(cert, key)| TlsCertificate {
                cert: cert.clone(),
                key: key.clone(),
            })
            .collect();
        let listen = self.tls_listen.or(file.tls.as_ref().map(|t| t.listen));
        let certificates = match &file.tls {
            Some(tls) if from_flags.is_empty() => tls.certificates.clone(),
            _ => from_flags,
        };
        match (listen, certificates.is_empty()) {
            (None, true) => Ok(None),
            (Some(listen), false) => Ok(Some(TlsListener {
                listen,
                certificates,
            })),
            (None, false) => bail!(
                "TLS certificates given without a TLS listen address (--tls-listen or [tls] listen)"
            ),
            (Some(_), true) => bail!(
                "a TLS listen address needs at least one certificate and key (--tls-cert/--tls-key or [[tls.certificates]])"
            ),
        }
    }
}

pub(super) fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

pub(super) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => DaemonFile::read(path)?,
        None => DaemonFile::default(),
    };
    let listen = match args.listen.or(file.listen) {
        Some(listen) => listen,
        None => DEFAULT_LISTEN.parse()?,
    };
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let config = args.tuning.daemon_config(listen, &file)?;
    if let (Some(_), Some(admin)) = (&args.app, args.admin_listen) {
        anyhow::bail!(
            "--admin-listen {admin} cannot be used with --app: a local run has no admin API \
             (its /healthz, /readyz and /metrics are the multi-tenant daemon's); \
             drop --app to run the daemon, or drop --admin-listen"
        );
    }
    let Some(app_path) = &args.app else {
        let platform = PlatformConfig {
            data_dir,
            admin_listen: match args.admin_listen.or(file.admin_listen) {
                Some(addr) => addr,
                None => crate::daemon::DEFAULT_ADMIN_LISTEN.parse()?,
            },
            operator_token: args
                .admin_token
                .clone()
                .or_else(|| file.admin_token.clone()),
            caps: file.tenancy.caps(),
            start_empty: args.start_empty,
            secrets_key_file: args
                .secrets_key_file
                .clone()
                .or_else(|| file.secrets.key_file.clone()),
            previous_secrets_key_file: args.previous_secrets_key_file.clone(),
            public_url: args.public_url.clone().or_else(|| file.public_url.clone()),
            cluster: args.cluster.config(&file.cluster)?,
        };
        let running = daemon::start_platform(&config, &platform).await?;
        let apps = running.registry.as_ref().map_or(0, |r| r.live_apps());
        println!(
            "verge: serving {apps} apps on http://{}{} (admin API on http://{}), ready in {} ms",
            running.addr,
            running
                .tls_addr
                .map_or_else(String::new, |a| format!(" and https://{a}")),
            running
                .admin_addr
                .map_or_else(String::new, |a| a.to_string()),
            running.startup.as_millis()
        );
        return run_until_signal(running).await;
    };
    if args.cluster.url.is_some() {
        bail!(
            "--cluster is for the multi-tenant daemon; local-run mode (--app) keeps its KV on this machine"
        );
    }
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    let (name, wasm) = resolve_component(app_path)?;
    let app = local_app(app_path, name, wasm, &args.local, &data_dir)?;
    let running = daemon::start(&config, &app).await?;
    println!(
        "verge: serving {} on http://{}{}",
        app.name,
        running.addr,
        running
            .tls_addr
            .map_or_else(String::new, |a| format!(" and https://{a}"))
    );
    run_until_signal(running).await
}

/// The local app: its verge.toml (beside the crate or the file), if any,
/// with the command line's variables and hosts added.
pub(super) fn local_app(
    app_path: &Path,
    name: String,
    wasm: PathBuf,
    extra: &LocalAppArgs,
    data_dir: &Path,
) -> anyhow::Result<LocalApp> {
    let manifest = manifest_beside(app_path);
    let file = if manifest.exists() {
        ManifestFile::read(&manifest)?
    } else {
        ManifestFile::default()
    };
    let mut vars = file.config;
    vars.extend(extra.vars.iter().cloned());
    let mut allowed_hosts = file.allowed_hosts;
    allowed_hosts.extend(extra.allowed_hosts.iter().cloned());
    Ok(LocalApp {
        name: file.name.unwrap_or(name),
        wasm,
        vars: vars.into_iter().collect::<BTreeMap<_, _>>(),
        data_dir: data_dir.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_caps_come_from_flags_then_the_file_then_the_defaults() {
        let mut file = DaemonFile::default();
        file.limits.max_response_body_mib = Some(256);
        let tuning = Tuning::default();
        let http = tuning.http_limits(&file).unwrap();
        assert_eq!(http.max_response_body_bytes, 256 << 20);
        assert_eq!(
            http.max_request_body_bytes,
            HttpLimits::default().max_request_body_bytes
        );
        let tuning = Tuning {
            max_response_body_mib: Some(64),
            max_request_body_mib: Some(1),
            ..Tuning::default()
        };
        let http = tuning.http_limits(&file).unwrap();
        assert_eq!(
            (http.max_request_body_bytes, http.max_response_body_bytes),
            (1 << 20, 64 << 20)
        );
        let zero = Tuning {
            max_request_body_mib: Some(0),
            ..Tuning::default()
        };
        let err = zero.http_limits(&file).unwrap_err().to_string();
        assert!(err.contains("--max-request-body-mib"), "{err}");
    }
}
