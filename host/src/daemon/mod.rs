//! Wiring: build the runtime, restore or load apps, bind the listeners, run
//! until told to stop. `verge serve`, `verge demo` and the end-to-end tests
//! all start here.

pub mod cluster_import;
mod fleet;
mod local;
mod services;

pub use local::{LocalApp, LocalHost, start};
pub use services::CapabilityConfig;

use crate::admin::AdminApi;
use crate::runtime::{EngineSettings, Limits, Runtime};
use crate::server::TrustedProxies;
use crate::server::connection::ConnectionGate;
use crate::server::cores::{ServingCores, default_threads};
use crate::server::limits::RESERVED_FDS;
use crate::server::tls::TlsCertificate;
use crate::server::{ConnectionLimits, Dispatcher, HttpLimits, Server, serve_http};
use crate::storage::bus::{ClusterBus, PurgeMessage};
use crate::storage::kv::redb::RedbKv;
use crate::storage::kv::redis_backend::RedisKv;
use crate::storage::kv::{KvBackend, SystemClock};
use crate::storage::secrets::{self, SecretBox};
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::metrics::Metrics;
use crate::tenancy::{Registry, RegistryCaps, RouteTable, tokens};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::server::cores::EVENT_INTERVAL;

/// The tokio runtime builder for the binary's main runtime: multi-threaded,
/// IO and timers on, the IO driver checked every [`EVENT_INTERVAL`] polls.
/// It runs the accept loops, the admin API and the control plane; the data
/// plane's connections are served on [`crate::server::cores`].
pub fn runtime_builder() -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().event_interval(EVENT_INTERVAL);
    builder
}

/// Default admin API address: loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9900";

/// The file under the data dir holding a generated operator token.
pub const OPERATOR_TOKEN_FILE: &str = "admin-token";

/// How long shutdown waits for finished connection tasks to drop their
/// handles after the drain; they exit within one scheduler tick.
const SHUTDOWN_RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the daemon needs to start.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Data-plane listen address.
    pub listen: SocketAddr,
    /// How the engine and its instance pool are built.
    pub engine: EngineSettings,
    /// Per-request guest limits (the host defaults and ceiling).
    pub limits: Limits,
    /// HTTP caps.
    pub http: HttpLimits,
    /// Where access-log lines go; `None` writes none.
    pub access_log: Option<AccessLog>,
    /// Outbound fetch and geo settings.
    pub capabilities: CapabilityConfig,
    /// An HTTPS listener for the data plane, beside the plain one.
    pub tls: Option<TlsListener>,
    /// Connection caps and timeouts for the listeners (the admin listener
    /// takes [`ConnectionLimits::admin`] of them).
    pub connections: ConnectionLimits,
    /// Where uploads are compiled: `verge compile-worker` children under a
    /// budget (the binary), or this process (`None`: the library in tests).
    pub compile_worker: Option<crate::runtime::compile::CompileWorker>,
    /// Serving threads (one current-thread runtime each; see
    /// [`crate::server::cores`]); `None`: one per core.
    pub serving_threads: Option<usize>,
}

/// The data plane's HTTPS listener.
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Certificates, chosen per connection by SNI; the first is the
    /// default.
    pub certificates: Vec<TlsCertificate>,
}

/// Where the multi-tenant daemon keeps state and takes admin requests.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// The data directory (control.redb, components, compiled artifacts).
    pub data_dir: PathBuf,
    /// Admin API listen address.
    pub admin_listen: SocketAddr,
    /// The operator token; when `None`, read from (or generated into)
    /// `data_dir/admin-token`.
    pub operator_token: Option<String>,
    /// Count caps on tenants, apps and routes.
    pub caps: RegistryCaps,
    /// Start even though the data dir was initialised and has lost its
    /// stores (they are created empty); without it such a start is refused.
    pub start_empty: bool,
    /// The key app secrets are sealed with; `None`: `DATA_DIR/secrets.key`,
    /// generated on first start.
    pub secrets_key_file: Option<PathBuf>,
    /// A previous key, to open secrets sealed before a rotation.
    pub previous_secrets_key_file: Option<PathBuf>,
    /// How people reach the data plane (scheme and port of the URLs the
    /// admin API shows); `None`: the data plane's bound address.
    pub public_url: Option<String>,
    /// Fleet mode: the shared Redis (KV goes there instead of `kv.redb`).
    pub cluster: Option<ClusterConfig>,
}

/// A fleet node's settings (`verge serve --cluster`).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The Redis URL, password included.
    pub url: String,
    /// This node's name.
    pub node_name: String,
    /// This node's region label.
    pub region: String,
    /// The CA bundle (PEM) a `rediss://` server's certificate must chain
    /// to; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl ClusterConfig {
    /// A client for the fleet's Redis.
    pub fn client(&self) -> anyhow::Result<redis::Client> {
        let ca = match &self.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("reading the cluster CA file {}", path.display()))?,
            ),
            None => None,
        };
        crate::storage::redis_link::client(&self.url, ca).map_err(anyhow::Error::msg)
    }
}

/// A started daemon.
pub struct RunningDaemon {
    /// The bound data-plane address.
    pub addr: SocketAddr,
    /// The bound HTTPS address, when TLS is configured.
    pub tls_addr: Option<SocketAddr>,
    /// The bound admin address (multi-tenant mode only).
    pub admin_addr: Option<SocketAddr>,
    /// The registry (multi-tenant mode only).
    pub registry: Option<Arc<Registry>>,
    /// The reloadable function (local-run mode only).
    pub local: Option<Arc<LocalHost>>,
    /// Time from start to ready (apps restored, listeners bound).
    pub startup: Duration,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningDaemon {
    /// Starts graceful shutdown and waits for in-flight requests to drain
    /// and for the last connection task to let go of the registry, so the
    /// data dir can be opened again at once (restarts within a process).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let registry = self.registry.clone();
        self.wait().await;
        if let Some(registry) = registry {
            let deadline = Instant::now() + SHUTDOWN_RELEASE_TIMEOUT;
            while Arc::strong_count(&registry) > 1 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Waits until every listener has stopped.
    pub async fn wait(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// A handle that triggers graceful shutdown.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// The bound data-plane addresses: plain HTTP, and HTTPS when configured.
pub(crate) struct DataPlane {
    pub(crate) addr: SocketAddr,
    pub(crate) tls_addr: Option<SocketAddr>,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

pub(crate) async fn serve_data_plane(
    config: &DaemonConfig,
    routes: Arc<dyn RouteTable>,
    metrics: Arc<Metrics>,
    stop: &watch::Sender<bool>,
) -> anyhow::Result<DataPlane> {
    // Certificates first: a bad file fails the start before any port opens.
    let acceptor = match &config.tls {
        Some(tls) => Some(crate::server::tls::acceptor(&tls.certificates)?),
        None => None,
    };
    let pool = usize::try_from(config.engine.pool_instances).unwrap_or(usize::MAX);
    let mut connections = config.connections.clone();
    connections
        .exempt
        .extend(config.capabilities.trusted_proxies.iter().copied());
    if let Some(open_files) = raise_open_file_limit() {
        // The origin sockets' share (a quarter) comes off too, so a flood
        // of fetches and a flood of clients cannot together run the daemon
        // out of descriptors.
        let origin = crate::capabilities::fetch::origin_socket_cap(open_files, RESERVED_FDS);
        connections.max_connections = connections
            .max_connections
            .min(open_files.saturating_sub(RESERVED_FDS + origin).max(1));
    }
    let dispatcher = Arc::new(
        Dispatcher::new(routes, config.http, pool, metrics)
            .with_connection_limits(connections)
            .with_access_log(config.access_log.clone())
            .with_trusted_proxies(TrustedProxies::new(
                config.capabilities.trusted_proxies.clone(),
            )),
    );
    let cores = ServingCores::start(config.serving_threads.unwrap_or_else(default_threads))
        .context("starting the serving threads")?;
    let server = Server::bind(config.listen, dispatcher.clone())
        .await
        .with_context(|| format!("binding {}", config.listen))?
        .on_cores(cores.clone());
    let addr = server.local_addr();
    let mut tasks = vec![tokio::spawn(server.serve(stopped(stop.subscribe())))];
    let mut tls_addr = None;
    if let (Some(tls), Some(acceptor)) = (&config.tls, acceptor) {
        let server = Server::bind(tls.listen, dispatcher)
            .await
            .with_context(|| format!("binding the TLS listener {}", tls.listen))?
            .with_tls(acceptor)
            .on_cores(cores);
        tls_addr = Some(server.local_addr());
        tasks.push(tokio::spawn(server.serve(stopped(stop.subscribe()))));
    }
    Ok(DataPlane {
        addr,
        tls_addr,
        tasks,
    })
}

/// Multi-tenant mode: restores every deployed app from the data dir, then
/// serves the data plane and the admin API.
pub async fn start_platform(
    config: &DaemonConfig,
    platform: &PlatformConfig,
) -> anyhow::Result<RunningDaemon> {
    let started = Instant::now();
    create_private_dir(&platform.data_dir)?;
    check_data_files(
        &platform.data_dir,
        platform.start_empty,
        platform.cluster.is_some(),
    )?;
    let operator_hash = match &platform.operator_token {
        Some(token) => tokens::token_hash(token),
        None => tokens::token_hash(&operator_token_file(&platform.data_dir)?),
    };
    let runtime =
        Arc::new(Runtime::new(config.engine)?.with_compile_worker(config.compile_worker.clone()));
    let data_dir = platform.data_dir.clone();
    let limits = config.limits;
    let kv: Arc<dyn KvBackend> = match &platform.cluster {
        Some(cluster) => {
            Arc::new(RedisKv::with_client(&cluster.client()?, Arc::new(SystemClock)).await)
        }
        None => Arc::new(RedbKv::open(
            &data_dir.join("kv.redb"),
            Arc::new(SystemClock),
        )?),
    };
    let http = config.http;
    let caps = platform.caps;
    let secrets = secret_box(platform)?;
    let services = config.capabilities.services(kv)?;
    let metrics = services.metrics.clone();
    let fetch = services.fetch.clone();
    let registry = tokio::task::spawn_blocking(move || {
        Registry::open(runtime, &data_dir, limits, http, services, secrets)
            .map(|r| r.with_caps(caps))
    })
    .await
    .context("restoring apps")??;
    let registry = match &platform.cluster {
        Some(cluster) => {
            let registry = Arc::new(registry.with_remote(fleet::control(cluster).await?));
            fleet::first_sync(&registry, &metrics).await;
            registry
        }
        None => Arc::new(registry),
    };
    crate::storage::blobs::write_atomically(
        &platform.data_dir.join(DATA_DIR_MARKER),
        b"this data dir holds control.redb and kv.redb; verge refuses to start if they go missing\n",
    )?;
    let (stop, _) = watch::channel(false);
    let plane = serve_data_plane(config, registry.clone(), metrics.clone(), &stop).await?;
    let admin_listener = crate::server::bind_listener(platform.admin_listen)
        .with_context(|| format!("binding the admin API on {}", platform.admin_listen))?;
    let admin_addr = admin_listener.local_addr()?;
    // No fetch may reach the daemon's own listeners, whatever is granted.
    fetch.set_own_listeners(
        [Some(plane.addr), plane.tls_addr, Some(admin_addr)]
            .into_iter()
            .flatten()
            .collect(),
    );
    let admin_limits = config.connections.admin();
    let public_urls = crate::admin::PublicUrls::for_plane(
        platform.public_url.as_deref(),
        plane.addr,
        plane.tls_addr,
    )
    .map_err(anyhow::Error::msg)?;
    let bus = match &platform.cluster {
        Some(cluster) => Some(Arc::new(ClusterBus::with_client(
            cluster.client()?,
            &cluster.node_name,
        ))),
        None => None,
    };
    if let Some(bus) = &bus {
        registry
            .cache()
            .set_announcer(guest_purge_announcer(bus.clone()));
    }
    let fleet_tasks = match (&bus, &platform.cluster) {
        (Some(bus), Some(cluster)) => fleet::start(
            &registry,
            bus,
            cluster,
            fleet::Addresses {
                data: plane.addr,
                admin: admin_addr,
            },
            metrics.clone(),
        ),
        _ => Vec::new(),
    };
    let admin = Arc::new(
        AdminApi::new(registry.clone(), operator_hash, metrics)
            .with_body_policy(admin_limits.body)
            .with_public_urls(public_urls)
            .with_bus(bus),
    );
    let handler = move |req| {
        let admin = admin.clone();
        async move { admin.handle(req).await }
    };
    let admin_task = tokio::spawn(serve_http(
        admin_listener,
        None,
        None,
        ConnectionGate::new(admin_limits),
        handler,
        stopped(stop.subscribe()),
    ));
    let mut tasks = plane.tasks;
    tasks.push(admin_task);
    // The bus listens, the node syncs and beats, until the daemon stops.
    for task in fleet_tasks {
        let stop = stop.subscribe();
        tasks.push(tokio::spawn(async move {
            stopped(stop).await;
            task.abort();
        }));
    }
    Ok(RunningDaemon {
        addr: plane.addr,
        tls_addr: plane.tls_addr,
        admin_addr: Some(admin_addr),
        registry: Some(registry),
        local: None,
        startup: started.elapsed(),
        stop,
        tasks,
    })
}

/// Raises the soft open-file limit to the hard limit, once per process, and
/// logs both; returns the soft limit now in force (`None` where it cannot
/// be read). The data plane's connection cap stays [`RESERVED_FDS`] below
/// it, so the admin listener and the data files always have descriptors.
pub fn raise_open_file_limit() -> Option<usize> {
    static RAISED: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *RAISED.get_or_init(|| {
        let (soft, hard) = match rlimit::Resource::NOFILE.get() {
            Ok(limits) => limits,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the open-file limit");
                return None;
            }
        };
        let now = if soft < hard {
            match rlimit::Resource::NOFILE.set(hard, hard) {
                Ok(()) => hard,
                Err(err) => {
                    tracing::warn!(error = %err, soft, hard, "cannot raise the open-file limit");
                    soft
                }
            }
        } else {
            soft
        };
        tracing::info!(soft = now, hard, was = soft, "open-file limit");
        Some(usize::try_from(now).unwrap_or(usize::MAX))
    })
}

/// The operator's secrets key (or one generated into the data dir), with
/// the previous key for a rotation.
fn secret_box(platform: &PlatformConfig) -> anyhow::Result<SecretBox> {
    let (path, generate) = match &platform.secrets_key_file {
        Some(path) => (path.clone(), false),
        None if platform.cluster.is_some() => anyhow::bail!(
            "fleet nodes must share one secrets key, or a secret set through one node cannot be opened on another: pass --secrets-key-file FILE (64 hex digits; `openssl rand -hex 32`), the same file on every node"
        ),
        None => (platform.data_dir.join(secrets::DEFAULT_KEY_FILE), true),
    };
    let mut secrets = SecretBox::open_key_file(&path, generate)?;
    if let Some(previous) = &platform.previous_secrets_key_file {
        secrets = secrets.with_previous_key_file(previous)?;
    }
    Ok(secrets)
}

/// Written into a data dir once its stores exist: with it there, a missing
/// or empty store means its data was lost, not that the dir is new.
pub const DATA_DIR_MARKER: &str = "verge-data-dir";

/// The stores an initialised data dir must hold.
const DATA_FILES: [&str; 2] = ["control.redb", "kv.redb"];

/// Refuses to start on a data dir that was initialised and has lost a
/// store (deleted, or truncated to nothing), naming the file, unless the
/// operator asked to start empty.
/// Refuses to start on an initialised data dir that lost a store file;
/// `kv.redb` only matters when KV is on this disk (not in fleet mode).
fn check_data_files(dir: &Path, start_empty: bool, fleet: bool) -> anyhow::Result<()> {
    // A fleet node's data is in Redis: its `control.redb` is a snapshot
    // rebuilt at the first sync, and it has no `kv.redb`.
    if fleet || !dir.join(DATA_DIR_MARKER).exists() {
        return Ok(());
    }
    for name in DATA_FILES {
        let path = dir.join(name);
        let problem = match std::fs::metadata(&path) {
            Ok(meta) if meta.len() > 0 => continue,
            Ok(_) => "is empty",
            Err(_) => "is missing",
        };
        if start_empty {
            tracing::warn!(file = %path.display(), problem, "starting with an empty store (--start-empty)");
            continue;
        }
        anyhow::bail!(
            "{} {problem}, but {} was initialised and held it: its data would be lost. Restore the file from a backup, or start with --start-empty to begin with an empty store",
            path.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Sends a guest's cache purge to the other nodes, as an admin purge is
/// sent (in the background: the guest does not wait on Redis).
fn guest_purge_announcer(bus: Arc<ClusterBus>) -> crate::capabilities::cache::Announcer {
    use crate::capabilities::cache::GuestPurge;
    Arc::new(move |purge: GuestPurge| {
        let (tenant, tag, key) = match purge {
            GuestPurge::Tag { tenant, tag } => (tenant, Some(tag), None),
            GuestPurge::Key { tenant, key } => (tenant, None, Some(key)),
        };
        let message = PurgeMessage {
            origin: bus.node().to_owned(),
            tenant: Some(tenant),
            tag,
            key,
            all: false,
        };
        let bus = bus.clone();
        tokio::spawn(async move {
            if let Err(err) = bus.publish(&message).await {
                tracing::warn!(error = %err, "a guest's cache purge did not reach the fleet");
            }
        });
    })
}

/// Applies a purge another node sent to this node's cache.
fn apply_purge(cache: &crate::capabilities::cache::CacheStore, purge: &PurgeMessage) {
    match (purge.tenant.as_deref(), &purge.tag, &purge.key) {
        (Some(tenant), Some(tag), _) => {
            cache.purge_tag(tenant, tag);
        }
        (Some(tenant), None, Some(key)) => cache.delete(tenant, key),
        (tenant, None, None) if purge.all => {
            cache.purge_all(tenant);
        }
        _ => tracing::warn!(?purge, "a purge with nothing to purge on the cluster bus"),
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data dir {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

/// Reads the operator token from the data dir, generating it (mode 0600)
/// on first start.
fn operator_token_file(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(OPERATOR_TOKEN_FILE);
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_owned());
    }
    let token = tokens::new_operator_token().context("generating the operator token")?;
    crate::storage::blobs::write_atomically(&path, token.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    println!("verge: generated an operator token in {}", path.display());
    Ok(token)
}
