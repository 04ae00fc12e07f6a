//! Turning stored records into running deployments: the AOT cache (load a
//! compiled artifact, or compile and store one) and deployment assembly.

use super::HttpLimits;
use super::{
    Deployment, DeploymentSpec, RegistryError, Slots, effective_http_limits, effective_limits,
};
use crate::capabilities::fetch::AllowList;
use crate::capabilities::{AppCapabilities, Services};
use crate::runtime::{Limits, Runtime};
use crate::storage::blobs::BlobStore;
use crate::storage::kv::{DEFAULT_TENANT_QUOTA_BYTES, KvBackend};
use crate::storage::records::{AppRecord, TenantRecord};
use crate::storage::secrets::SecretBox;
use crate::telemetry::log_ring::LogRing;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;
use wasmtime::component::Component;

/// Compiles components at most once per (hash, engine configuration).
pub(super) struct Loader {
    pub(super) runtime: Arc<Runtime>,
    pub(super) blobs: BlobStore,
    pub(super) host_limits: Limits,
    pub(super) host_http: HttpLimits,
    engine_key: String,
    compiles: AtomicU64,
    semaphores: Mutex<HashMap<String, (u32, Arc<Semaphore>)>>,
    logs: Mutex<HashMap<String, Arc<LogRing>>>,
    /// Components loaded, by content hash, while an active version uses
    /// them (300 apps of one component used to hold 300 fds and mappings).
    loaded: Mutex<HashMap<String, Component>>,
    /// Seals app secrets at rest.
    pub(super) secrets: SecretBox,
    /// Each tenant's heavy mark (`runtime::lane`).
    heavy: Mutex<HashMap<String, Arc<crate::runtime::lane::HeavyMark>>>,
    pub(super) services: Services,
    /// The fleet's control plane, where components missing here come from.
    pub(super) remote: Option<Arc<crate::storage::control_redis::RedisControl>>,
}

/// Requests one tenant may run at once unless its limits say otherwise, as
/// a share of the instance pool: a quarter, so no single tenant can take
/// the slots every other tenant needs (250 of the default 1,000; with
/// `--pool-instances 128`, 32: a fixed 250 let one tenant hold a smaller
/// pool whole).
pub const DEFAULT_TENANT_POOL_DIVISOR: u32 = 4;

/// The default per-tenant cap for a pool of `pool` instances.
pub fn default_tenant_max_concurrency(pool: u32) -> u32 {
    (pool / DEFAULT_TENANT_POOL_DIVISOR).max(1)
}

impl Loader {
    pub(super) fn new(
        runtime: Arc<Runtime>,
        blobs: BlobStore,
        host_limits: Limits,
        host_http: HttpLimits,
        services: Services,
        secrets: SecretBox,
    ) -> Self {
        let engine_key = runtime.engine_key();
        Self {
            runtime,
            blobs,
            host_limits,
            host_http,
            engine_key,
            compiles: AtomicU64::new(0),
            semaphores: Mutex::new(HashMap::new()),
            logs: Mutex::new(HashMap::new()),
            loaded: Mutex::new(HashMap::new()),
            heavy: Mutex::new(HashMap::new()),
            services,
            secrets,
            remote: None,
        }
    }

    /// The host-wide services deployments use.
    pub(super) fn services(&self) -> &Services {
        &self.services
    }

    /// The KV backend deployments use.
    pub(super) fn kv(&self) -> Arc<dyn KvBackend> {
        self.services.kv.clone()
    }

    /// Components compiled from source since start (cache misses).
    pub(super) fn compiles(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// Writes the compiled artifact of `component` for later restarts and
    /// returns the component mapped from that file (see
    /// [`Runtime::deserialize_kept`]), or `component` itself when it could
    /// not be written.
    pub(super) fn cache(
        &self,
        sha256: &str,
        component: Component,
    ) -> Result<Component, RegistryError> {
        self.compiles.fetch_add(1, Ordering::Relaxed);
        match component.serialize() {
            Ok(artifact) => self.keep_artifact(sha256, &artifact),
            Err(err) => {
                tracing::warn!(error = %err, sha256, "could not serialize a compiled component");
                Ok(component)
            }
        }
    }

    /// Writes an artifact the compile worker produced for later restarts
    /// (content-addressed, so harmless if the deploy is then refused) and
    /// loads it mapped from that file.
    pub(super) fn keep_artifact(
        &self,
        sha256: &str,
        artifact: &[u8],
    ) -> Result<Component, RegistryError> {
        let path = self.blobs.compiled_path(sha256, &self.engine_key);
        self.blobs
            .put_compiled(sha256, &self.engine_key, artifact)?;
        Ok(self.runtime.deserialize_kept(&path, artifact)?)
    }

    /// Counts a compile and shares its component with later deployments of
    /// the same bytes.
    pub(super) fn note_compiled(&self, sha256: &str, component: &Component) {
        self.compiles.fetch_add(1, Ordering::Relaxed);
        self.remember(sha256, component);
    }

    /// The loaded component of `sha256`, if some deployment uses it: one
    /// mapping of the compiled artifact however many apps deploy it.
    fn loaded(&self, sha256: &str) -> Option<Component> {
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(sha256)
            .cloned()
    }

    /// Remembers `component` as the one loaded for `sha256`.
    pub(super) fn remember(&self, sha256: &str, component: &Component) {
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(sha256.to_owned(), component.clone());
    }

    /// Forgets loaded components no active version uses any more.
    pub(super) fn retain_loaded(&self, active: &std::collections::HashSet<String>) {
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|sha256, _| active.contains(sha256));
    }

    /// The compiled component from the AOT cache, if this engine has one.
    pub(super) fn cached(&self, sha256: &str) -> Option<Component> {
        if let Some(component) = self.loaded(sha256) {
            return Some(component);
        }
        let cached = self.blobs.compiled_path(sha256, &self.engine_key);
        if !cached.exists() {
            return None;
        }
        match self.runtime.deserialize(&cached) {
            Ok(component) => {
                self.remember(sha256, &component);
                Some(component)
            }
            Err(err) => {
                tracing::warn!(error = %err, sha256, "stale compiled artifact; recompiling");
                None
            }
        }
    }

    /// The compiled component for a stored hash: from the AOT cache when an
    /// artifact for this engine exists and loads, otherwise compiled again.
    pub(super) fn component(&self, sha256: &str) -> Result<Component, RegistryError> {
        if let Some(component) = self.cached(sha256) {
            return Ok(component);
        }
        let bytes = match self.blobs.component(sha256) {
            Ok(bytes) => bytes,
            Err(missing) => self.fetch_component(sha256).ok_or(missing)??,
        };
        let component = self.cache(sha256, self.runtime.compile(&bytes)?)?;
        self.remember(sha256, &component);
        Ok(component)
    }

    /// A component only the fleet has so far: fetched from Redis, checked
    /// against its hash and kept here. `None` on a single node.
    fn fetch_component(&self, sha256: &str) -> Option<Result<Vec<u8>, RegistryError>> {
        let remote = self.remote.as_ref()?;
        let fetched = (|| {
            let bytes = crate::storage::control_redis::block_on(remote.component(sha256))?
                .ok_or_else(|| {
                    RegistryError::NotFound(format!("component {sha256} in the fleet's Redis"))
                })?;
            if crate::storage::sha256_hex(&bytes) != sha256 {
                return Err(RegistryError::Invalid(format!(
                    "the fleet's copy of component {sha256} does not match its hash"
                )));
            }
            self.blobs.put_component(sha256, &bytes)?;
            Ok(bytes)
        })();
        Some(fetched)
    }

    /// Shares a stored component with the fleet (a no-op on a single node
    /// or when the fleet has it).
    pub(super) fn share_component(&self, sha256: &str) -> Result<(), RegistryError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let bytes = self.blobs.component(sha256)?;
        crate::storage::control_redis::block_on(remote.put_component(sha256, &bytes))?;
        Ok(())
    }

    /// Links `component` for `app` at `version` under its effective limits.
    pub(super) fn deployment(
        &self,
        app: &AppRecord,
        tenant: &TenantRecord,
        version: u32,
        component: Component,
    ) -> Result<Arc<Deployment>, RegistryError> {
        let tenant_limits = &tenant.limits;
        let data_key = tenant.data_key();
        let limits = effective_limits(&self.host_limits, tenant_limits, &app.manifest.limits);
        let name = format!("{}/{}", app.tenant, app.name);
        let function = self.runtime.prepare(&name, component, limits)?;
        let mut vars = app.manifest.config.clone();
        for (name, sealed) in &app.secrets {
            let place = secret_place(&app.tenant, &app.name, name);
            vars.insert(name.clone(), self.secrets.open(&place, sealed)?);
        }
        let tenant_cap = tenant_limits
            .max_concurrency
            .unwrap_or_else(|| default_tenant_max_concurrency(self.runtime.pool_instances()));
        let slots = Slots {
            tenant: Some(self.semaphore(&app.tenant, tenant_cap)),
            tenant_cap: usize::try_from(tenant_cap.max(1)).unwrap_or(usize::MAX),
            app: app
                .manifest
                .limits
                .max_concurrency
                .map(|cap| self.semaphore(&format!("{}/{}", app.tenant, app.name), cap)),
            heavy: self.heavy_mark(&app.tenant),
        };
        let http_limits =
            effective_http_limits(&self.host_http, tenant_limits, &app.manifest.limits);
        let allow = AllowList::parse(&app.manifest.allowed_hosts)
            .map_err(|err| RegistryError::Invalid(err.to_string()))?;
        Ok(Arc::new(Deployment::new(
            &self.services,
            DeploymentSpec {
                version,
                function,
                http_limits,
                slots,
                capabilities: AppCapabilities {
                    tenant: app.tenant.as_str().into(),
                    app: app.name.as_str().into(),
                    data_key,
                    vars,
                    allow,
                    grants: super::caps::outbound_grants(&tenant.outbound_grants)?,
                    kv_stores: Some(app.manifest.kv_stores.clone()),
                    kv_quota_bytes: tenant_limits
                        .kv_quota_mib
                        .map_or(DEFAULT_TENANT_QUOTA_BYTES, |mib| {
                            mib.saturating_mul(1 << 20)
                        }),
                    logs: Some(self.log_ring(&app.tenant, &app.name)),
                    kv_cache_ttl: app
                        .manifest
                        .kv_cache_ttl_seconds
                        .filter(|&s| s > 0)
                        .map(|s| std::time::Duration::from_secs(u64::from(s))),
                },
            },
        )))
    }

    /// The heavy mark of `tenant`, shared by all its deployments.
    fn heavy_mark(&self, tenant: &str) -> Arc<crate::runtime::lane::HeavyMark> {
        self.heavy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(tenant.to_owned())
            .or_default()
            .clone()
    }

    /// Drops the log rings of every app of `tenant` (deleted).
    pub(super) fn forget_logs(&self, tenant: &str) {
        let prefix = format!("{tenant}/");
        self.logs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|key, _| !key.starts_with(&prefix));
    }

    /// Files the KV entries under a deleted tenant's data key for removal
    /// in the background (on a fleet every node files it, so one Redis
    /// fault at the deleting node does not leave them behind for good).
    pub(super) fn forget_kv(&self, data_key: String) {
        let kv = self.kv();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            if let Err(err) = kv.forget_tenant(&data_key).await {
                tracing::warn!(tenant = data_key, error = %err, "filing a deleted tenant's KV entries for removal");
            }
        });
    }

    /// The log ring of app `tenant/app`, shared by all its versions.
    pub(super) fn log_ring(&self, tenant: &str, app: &str) -> Arc<LogRing> {
        self.logs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(format!("{tenant}/{app}"))
            .or_default()
            .clone()
    }

    /// The semaphore for `key` with `cap` permits, shared by every
    /// deployment with that key; replaced when the cap changes.
    fn semaphore(&self, key: &str, cap: u32) -> Arc<Semaphore> {
        let mut map = self
            .semaphores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(key) {
            Some((current, sem)) if *current == cap => sem.clone(),
            _ => {
                let sem = Arc::new(Semaphore::new(usize::try_from(cap.max(1)).unwrap_or(1)));
                map.insert(key.to_owned(), (cap, sem.clone()));
                sem
            }
        }
    }
}

/// Where a secret lives, bound into its sealed value: `tenant/app/name`.
pub(super) fn secret_place(tenant: &str, app: &str, name: &str) -> String {
    format!("{tenant}/{app}/{name}")
}
