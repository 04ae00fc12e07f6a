//! Local-run mode (`verge serve --app`, `verge dev`): one function for
//! every host and path, swappable in place so `verge dev` can reload it
//! without dropping the server.

use super::{DaemonConfig, RunningDaemon, serve_data_plane};
use crate::capabilities::AppCapabilities;
use crate::capabilities::Services;
use crate::capabilities::fetch::AllowList;
use crate::runtime::{Limits, Runtime};
use crate::storage::kv::redb::RedbKv;
use crate::storage::kv::{KvBackend, SystemClock};
use crate::tenancy::HttpLimits;
use crate::tenancy::{Deployment, DeploymentSpec, RouteTable, local_capabilities};
use anyhow::Context as _;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// The single app of local-run mode.
#[derive(Debug, Clone)]
pub struct LocalApp {
    /// Name used in logs.
    pub name: String,
    /// The component file.
    pub wasm: PathBuf,
    /// Configuration variables.
    pub vars: BTreeMap<String, String>,
    /// Where its KV data lives (`kv.redb`); any store name may be opened.
    pub data_dir: PathBuf,
    /// Outbound `scheme://host[:port]` it may fetch.
    pub allowed_hosts: Vec<String>,
}

/// The function local-run mode serves, replaced whole on reload.
pub struct LocalHost {
    runtime: Arc<Runtime>,
    limits: Limits,
    http: HttpLimits,
    services: Services,
    current: ArcSwap<Deployment>,
    reloads: std::sync::atomic::AtomicU32,
}

impl RouteTable for LocalHost {
    fn resolve(&self, _host: &str, _path: &str) -> Option<Arc<Deployment>> {
        Some(self.current.load_full())
    }
}

impl LocalHost {
    fn deployment(
        runtime: &Runtime,
        limits: Limits,
        http: HttpLimits,
        services: &Services,
        app: &LocalApp,
        version: u32,
    ) -> anyhow::Result<Deployment> {
        let bytes =
            std::fs::read(&app.wasm).with_context(|| format!("reading {}", app.wasm.display()))?;
        let loading = || format!("loading {}", app.wasm.display());
        let component = cached_component(runtime, &app.data_dir, &bytes).with_context(loading)?;
        let function = runtime
            .prepare(&app.name, component, limits)
            .with_context(loading)?;
        let allow = AllowList::parse(&app.allowed_hosts)?;
        Ok(Deployment::new(
            services,
            DeploymentSpec {
                version,
                http_limits: http,
                capabilities: AppCapabilities {
                    vars: app.vars.clone(),
                    allow,
                    ..local_capabilities(&app.name)
                },
                ..DeploymentSpec::local(&app.name, function)
            },
        ))
    }

    /// Loads `app` again (a new build, new variables or allowed hosts) and
    /// swaps it in: requests in flight finish on the old version, new ones
    /// get the new one. On error the old version keeps serving. Blocking
    /// (it compiles): call from `spawn_blocking`.
    pub fn reload(&self, app: &LocalApp) -> anyhow::Result<u32> {
        let version = self.reloads.load(std::sync::atomic::Ordering::Relaxed) + 1;
        let deployment = Self::deployment(
            &self.runtime,
            self.limits,
            self.http,
            &self.services,
            app,
            version,
        )?;
        self.current.store(Arc::new(deployment));
        self.reloads
            .store(version, std::sync::atomic::Ordering::Relaxed);
        Ok(version)
    }
}

/// The compiled component for `bytes`: loaded from `data_dir/compiled/`
/// when this engine compiled the same bytes before (a second start of an
/// unchanged function skips compiling: seconds for a large one), else
/// compiled and kept there.
fn cached_component(
    runtime: &Runtime,
    data_dir: &std::path::Path,
    bytes: &[u8],
) -> anyhow::Result<wasmtime::component::Component> {
    let blobs = crate::storage::blobs::BlobStore::open(data_dir)?;
    let sha256 = crate::storage::blobs::sha256_hex(bytes);
    let engine_key = runtime.engine_key();
    let path = blobs.compiled_path(&sha256, &engine_key);
    if path.exists() {
        match runtime.deserialize(&path) {
            Ok(component) => return Ok(component),
            Err(err) => {
                tracing::warn!(error = %err, file = %path.display(), "stale compiled artifact; recompiling")
            }
        }
    }
    let artifact = crate::runtime::compile::compile_artifact_blocking(runtime, bytes)?;
    blobs.put_compiled(&sha256, &engine_key, &artifact)?;
    Ok(runtime.deserialize_kept(&path, &artifact)?)
}

/// Local-run mode: serves `app` for every host and path.
pub async fn start(config: &DaemonConfig, app: &LocalApp) -> anyhow::Result<RunningDaemon> {
    let started = Instant::now();
    let runtime =
        Arc::new(Runtime::new(config.engine)?.with_compile_worker(config.compile_worker.clone()));
    std::fs::create_dir_all(&app.data_dir)
        .with_context(|| format!("creating {}", app.data_dir.display()))?;
    let kv: Arc<dyn KvBackend> = Arc::new(RedbKv::open(
        &app.data_dir.join("kv.redb"),
        Arc::new(SystemClock),
    )?);
    let services = config.capabilities.services(kv)?;
    let deployment =
        LocalHost::deployment(&runtime, config.limits, config.http, &services, app, 0)?;
    let host = Arc::new(LocalHost {
        runtime,
        limits: config.limits,
        http: config.http,
        services,
        current: ArcSwap::from_pointee(deployment),
        reloads: std::sync::atomic::AtomicU32::new(0),
    });
    let (stop, _) = watch::channel(false);
    let metrics = host.services.metrics.clone();
    let plane = serve_data_plane(config, host.clone(), metrics, &stop).await?;
    host.services.fetch.set_own_listeners(
        [Some(plane.addr), plane.tls_addr]
            .into_iter()
            .flatten()
            .collect(),
    );
    Ok(RunningDaemon {
        addr: plane.addr,
        tls_addr: plane.tls_addr,
        admin_addr: None,
        registry: None,
        local: Some(host),
        startup: started.elapsed(),
        stop,
        tasks: plane.tasks,
    })
}
