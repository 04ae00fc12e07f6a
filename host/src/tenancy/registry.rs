//! The registry: the control plane's one writer. It validates and stores
//! tenants, apps and versions in `control.redb`, keeps the live deployments,
//! and swaps the routing table atomically after every change: requests
//! already running keep the `Arc<Deployment>` they started with.

use super::HttpLimits;
use super::caps::RegistryCaps;
use super::loader::Loader;
use super::router::{Route, Router};
use super::{Deployment, RegistryError, RouteTable};
use crate::runtime::{Limits, Runtime};
use crate::storage::blobs::BlobStore;
use crate::storage::control::ControlStore;
use crate::storage::kv::{DEFAULT_TENANT_QUOTA_BYTES, KvBackend, Namespace};
use crate::storage::records::{AppRecord, TenantRecord, is_valid_name};
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Largest component upload: 32 MiB. Rust components are typically
/// 0.1–5 MiB; the cap bounds compile time and memory per deploy.
pub const MAX_COMPONENT_BYTES: usize = 32 << 20;

/// Largest config variable or secret value: 64 KiB (a PEM key fits).
pub const MAX_VAR_VALUE_BYTES: usize = 64 << 10;

/// The world every Verge-SDK function exports.
pub const FUNCTION_WORLD: &str = crate::runtime::VERGE_WORLD;

/// Which kind of app variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarKind {
    /// Listed back by the API.
    Config,
    /// Never listed back.
    Secret,
}

/// How often a control-plane change refused because another node changed
/// the same records first is run again (after catching up) before the
/// client gets the 409: the refused attempt wrote nothing, and a change is
/// checked afresh each time.
pub const CONTROL_WRITE_ATTEMPTS: u32 = 8;

/// A short wait before attempt `attempt`, 5–20 ms growing, with jitter
/// from the clock so two nodes racing do not collide again in step.
fn conflict_backoff(attempt: u32) -> std::time::Duration {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_micros() % 5_000));
    std::time::Duration::from_micros(u64::from(attempt) * 5_000 + jitter)
}

/// The control plane's state and its single writer.
pub struct Registry {
    pub(super) store: ControlStore,
    pub(super) loader: Loader,
    router: ArcSwap<Router<Deployment>>,
    live: Mutex<BTreeMap<String, Arc<Deployment>>>,
    writes: tokio::sync::Mutex<()>,
    pub(super) caps: RegistryCaps,
    pub(super) compiles: super::caps::TenantSlots,
    /// Each tenant's compile time in its window.
    pub(super) compile_time: super::caps::CompileTime,
    /// Why the last fleet sync failed; `None` once one succeeds.
    pub(super) fleet_fault: Mutex<Option<String>>,
    /// A revision of Redis's older than this node's that the operator
    /// accepted (`POST /v1/fleet/accept`): the next sync applies it.
    pub(super) accepted_rollback: Mutex<Option<u64>>,
    /// Whether the last sync refused Redis for going back in time.
    pub(super) diverged: std::sync::atomic::AtomicBool,
    /// The control-plane revision whose deployments are live (the
    /// snapshot's revision is stored before its apps are brought up).
    pub(super) applied: std::sync::atomic::AtomicU64,
}

impl RouteTable for Registry {
    fn resolve(&self, host: &str, path: &str) -> Option<Arc<Deployment>> {
        self.router.load().resolve(host, path).cloned()
    }
}

pub(super) fn key(tenant: &str, app: &str) -> String {
    format!("{tenant}/{app}")
}

pub(super) fn check_name(what: &'static str, name: &str) -> Result<(), RegistryError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(RegistryError::InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

impl Registry {
    /// Opens the control store in `data_dir` and brings every app's active
    /// version back to life (from compiled artifacts when they fit this
    /// engine). Blocking: call before serving or from `spawn_blocking`.
    pub fn open(
        runtime: Arc<Runtime>,
        data_dir: &Path,
        host_limits: Limits,
        host_http: HttpLimits,
        services: crate::capabilities::Services,
        secrets: crate::storage::secrets::SecretBox,
    ) -> Result<Self, RegistryError> {
        let store = ControlStore::open(&data_dir.join("control.redb"))?;
        let blobs = BlobStore::open(data_dir)?;
        let registry = Self {
            store,
            loader: Loader::new(runtime, blobs, host_limits, host_http, services, secrets),
            router: ArcSwap::from_pointee(Router::default()),
            live: Mutex::new(BTreeMap::new()),
            writes: tokio::sync::Mutex::new(()),
            caps: RegistryCaps::default(),
            compiles: super::caps::TenantSlots::compiles(),
            compile_time: super::caps::CompileTime::default(),
            fleet_fault: Mutex::new(None),
            accepted_rollback: Mutex::new(None),
            diverged: std::sync::atomic::AtomicBool::new(false),
            applied: std::sync::atomic::AtomicU64::new(0),
        };
        let tenants: BTreeMap<String, TenantRecord> = registry
            .store
            .tenants()?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        registry.reseal_secrets()?;
        for app in registry.store.apps(None)? {
            let (Some(version), Some(tenant)) = (app.active_version, tenants.get(&app.tenant))
            else {
                continue;
            };
            match registry.bring_up(&app, tenant, version) {
                Ok(deployment) => {
                    registry
                        .lock_live()
                        .insert(key(&app.tenant, &app.name), deployment);
                }
                Err(err) => {
                    tracing::error!(tenant = app.tenant, app = app.name, version, error = %err,
                    "could not restore the active version; the app is offline")
                }
            }
        }
        registry.rebuild_router()?;
        registry.mark_applied();
        Ok(registry)
    }

    /// Seals again every secret stored in clear (from before sealing) or
    /// under a previous key, so after one start with a new key nothing in
    /// `control.redb` needs the old one.
    pub(super) fn reseal_secrets(&self) -> Result<(), RegistryError> {
        let secrets = &self.loader.secrets;
        for mut app in self.store.apps(None)? {
            if !app.secrets.values().any(|v| secrets.needs_reseal(v)) {
                continue;
            }
            for (name, stored) in app.secrets.iter_mut() {
                if secrets.needs_reseal(stored) {
                    let place = super::loader::secret_place(&app.tenant, &app.name, name);
                    *stored = secrets.seal(&place, &secrets.open(&place, stored)?)?;
                }
            }
            self.store.put_app(&app)?;
            tracing::info!(
                tenant = app.tenant,
                app = app.name,
                "secrets sealed under the current key"
            );
        }
        Ok(())
    }

    /// Where the admin API spools uploads as they arrive.
    pub fn uploads_dir(&self) -> &Path {
        self.loader.blobs.uploads_dir()
    }

    /// Applies `caps` to what tenants may create from now on.
    pub fn with_caps(mut self, caps: RegistryCaps) -> Self {
        self.caps = caps;
        self
    }

    pub(super) fn lock_live(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Deployment>>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`Registry::write`] for a change that can run only once (it
    /// consumes an upload): a conflict is the caller's to retry.
    pub(super) async fn write_once<T: Send + 'static>(
        self: &Arc<Self>,
        op: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let _guard = self.writes.lock().await;
        self.read(move |r| {
            r.synced()?;
            let result = op(r);
            r.mark_applied();
            result
        })
        .await
    }

    /// Runs a mutation: one at a time, off the async runtime; on a fleet,
    /// again (up to [`CONTROL_WRITE_ATTEMPTS`]) when another node changed
    /// the records it read first.
    pub(super) async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        op: impl Fn(&Registry) -> Result<T, RegistryError> + Send + Sync + 'static,
    ) -> Result<T, RegistryError> {
        let _guard = self.writes.lock().await;
        let op = Arc::new(op);
        let mut attempt = 1;
        loop {
            // A fleet node first catches up, so it checks against the
            // latest state (and fails with 503 when Redis cannot be
            // reached).
            let once = op.clone();
            let result = self
                .read(move |r| {
                    r.synced()?;
                    let result = once(r);
                    r.mark_applied();
                    result
                })
                .await;
            // Another node changed a record this change read: nothing was
            // written, so it is safe to catch up and run it again.
            let conflict = matches!(
                result,
                Err(RegistryError::Storage(
                    crate::storage::StorageError::Conflict(_)
                ))
            );
            if !conflict || attempt >= CONTROL_WRITE_ATTEMPTS {
                return result;
            }
            attempt += 1;
            tokio::time::sleep(conflict_backoff(attempt)).await;
        }
    }

    /// Runs `op` under the write lock without the fleet catch-up (the sync
    /// itself).
    pub(super) async fn locked<T: Send + 'static>(
        self: &Arc<Self>,
        op: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let _guard = self.writes.lock().await;
        self.read(op).await
    }

    /// Runs a read off the async runtime.
    pub(super) async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        op: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let path = me.store.path().to_owned();
            use crate::storage::StorageError;
            let result = crate::storage::guard_corruption(
                &path,
                || op(&me),
                |why| RegistryError::Storage(StorageError::Corrupted(why)),
            );
            // Every storage message names its file.
            result.map_err(|err| match err {
                RegistryError::Storage(
                    err @ (StorageError::Db(_)
                    | StorageError::Corrupt { .. }
                    | StorageError::Task(_)),
                ) => RegistryError::Storage(StorageError::InFile {
                    path,
                    message: err.to_string(),
                }),
                other => other,
            })
        })
        .await
        .map_err(|e| RegistryError::Storage(crate::storage::StorageError::Task(e.to_string())))?
    }

    /// The KV namespace of a tenant's store, for the admin API (which may
    /// reach every store of the tenant, declared or not).
    pub async fn kv_namespace(
        self: &Arc<Self>,
        tenant: String,
        store: String,
    ) -> Result<Namespace, RegistryError> {
        check_name("kv store", &store)?;
        let record = self.tenant(tenant).await?;
        let quota_bytes = record
            .limits
            .kv_quota_mib
            .map_or(DEFAULT_TENANT_QUOTA_BYTES, |mib| {
                mib.saturating_mul(1 << 20)
            });
        Ok(Namespace {
            tenant: record.data_key(),
            store,
            quota_bytes,
        })
    }

    /// The guest log ring of `tenant/app` (created empty when new).
    pub fn logs(&self, tenant: &str, app: &str) -> Arc<crate::telemetry::log_ring::LogRing> {
        self.loader.log_ring(tenant, app)
    }

    /// The edge cache.
    pub fn cache(&self) -> Arc<crate::capabilities::cache::CacheStore> {
        self.loader.services().cache.clone()
    }

    /// This node's KV read cache.
    pub fn kv_cache(&self) -> Arc<crate::capabilities::kv_cache::KvReadCache> {
        self.loader.services().kv_cache.clone()
    }

    /// The KV backend.
    pub fn kv(&self) -> Arc<dyn KvBackend> {
        self.loader.kv()
    }

    /// Components compiled from source since start (AOT cache misses).
    pub fn compiles(&self) -> u64 {
        self.loader.compiles()
    }

    /// Apps with a live deployment.
    pub fn live_apps(&self) -> usize {
        self.lock_live().len()
    }

    pub(super) fn bring_up(
        &self,
        app: &AppRecord,
        tenant: &TenantRecord,
        version: u32,
    ) -> Result<Arc<Deployment>, RegistryError> {
        let record = self
            .store
            .version(&app.tenant, &app.name, version)?
            .ok_or_else(|| RegistryError::NotFound(format!("version {version} of {}", app.name)))?;
        let component = self.loader.component(&record.sha256)?;
        self.loader.deployment(app, tenant, version, component)
    }

    /// Builds and swaps in a routing table from the live deployments.
    pub(super) fn rebuild_router(&self) -> Result<(), RegistryError> {
        let live = self.lock_live().clone();
        let mut entries = Vec::new();
        let mut active = HashSet::new();
        for (app_key, deployment) in live {
            let Some((tenant, app)) = app_key.split_once('/') else {
                continue;
            };
            let Some(record) = self.store.app(tenant, app)? else {
                continue;
            };
            let version = self.store.version(tenant, app, deployment.version)?;
            active.extend(version.map(|v| v.sha256));
            for route in &record.manifest.routes {
                entries.push((Route::parse(route)?, deployment.clone()));
            }
        }
        self.router.store(Arc::new(Router::new(entries)));
        self.loader.retain_loaded(&active);
        self.publish_cached_stores()?;
        Ok(())
    }

    pub(super) fn tenant_record(&self, tenant: &str) -> Result<TenantRecord, RegistryError> {
        self.store
            .tenant(tenant)?
            .ok_or_else(|| RegistryError::NotFound(format!("tenant {tenant}")))
    }

    pub(super) fn app_record(&self, tenant: &str, app: &str) -> Result<AppRecord, RegistryError> {
        self.store
            .app(tenant, app)?
            .ok_or_else(|| RegistryError::NotFound(format!("app {app}")))
    }

    /// Replaces the live deployment of `app` (if it has an active version)
    /// after its record changed, then swaps the router.
    pub(super) fn refresh(&self, app: &AppRecord) -> Result<(), RegistryError> {
        let k = key(&app.tenant, &app.name);
        match app.active_version {
            Some(version) => {
                let tenant = self.tenant_record(&app.tenant)?;
                let deployment = self.bring_up(app, &tenant, version)?;
                self.lock_live().insert(k, deployment);
            }
            None => {
                self.lock_live().remove(&k);
            }
        }
        self.rebuild_router()
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
