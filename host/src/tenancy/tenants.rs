//! The registry's tenant operations: create (with a fresh token and
//! generation), grants, effective limits, listing and delete.

use super::RegistryError;
use super::caps;
use super::registry::{Registry, check_name};
use super::router::Route;
use super::tokens;
use crate::storage::records::{AppRecord, LimitOverrides, TenantRecord, now_secs};
use std::sync::Arc;

impl Registry {
    /// Creates a tenant; returns its record and its token (shown once).
    pub async fn create_tenant(
        self: &Arc<Self>,
        name: String,
        limits: LimitOverrides,
        route_grants: Vec<String>,
        outbound: Vec<String>,
    ) -> Result<(TenantRecord, String), RegistryError> {
        self.write(move |r| {
            check_name("tenant", &name)?;
            caps::check_tenant_name(&name)?;
            let route_grants = check_grants(route_grants.clone())?;
            caps::outbound_grants(&outbound)?;
            if r.store.tenant(&name)?.is_some() {
                return Err(RegistryError::AlreadyExists(format!("tenant {name}")));
            }
            caps::room_for_one("tenants", r.store.tenants()?.len(), r.caps.max_tenants)?;
            let token = tokens::new_tenant_token(&name)
                .map_err(|e| RegistryError::Host(format!("no randomness for a token: {e}")))?;
            let record = TenantRecord {
                name: name.clone(),
                token_sha256: tokens::token_hash(&token),
                limits,
                route_grants,
                outbound_grants: outbound.clone(),
                generation: tokens::new_generation()
                    .map_err(|e| RegistryError::Host(format!("no randomness: {e}")))?,
                created_at: now_secs(),
            };
            r.store.put_tenant(&record)?;
            tracing::info!(tenant = record.name, "tenant created");
            Ok((record, token))
        })
        .await
    }

    /// Replaces the wildcard and catch-all route hosts `name` may use
    /// (operator only). Routes already deployed are not re-checked.
    pub async fn set_route_grants(
        self: &Arc<Self>,
        name: String,
        grants: Vec<String>,
    ) -> Result<TenantRecord, RegistryError> {
        self.update_tenant(name, move |record| {
            record.route_grants = check_grants(grants.clone())?;
            Ok(())
        })
        .await
    }

    /// Replaces the private ranges `name`'s fetches may reach (operator
    /// only); its live apps pick them up at once.
    pub async fn set_outbound_grants(
        self: &Arc<Self>,
        name: String,
        grants: Vec<String>,
    ) -> Result<TenantRecord, RegistryError> {
        self.update_tenant(name, move |record| {
            caps::outbound_grants(&grants)?;
            record.outbound_grants = grants.clone();
            Ok(())
        })
        .await
    }

    /// Changes tenant `name` with `change`, stores it, and brings its live
    /// apps up again under the new record.
    async fn update_tenant(
        self: &Arc<Self>,
        name: String,
        change: impl Fn(&mut TenantRecord) -> Result<(), RegistryError> + Send + Sync + 'static,
    ) -> Result<TenantRecord, RegistryError> {
        self.write(move |r| {
            let mut record = r.tenant_record(&name)?;
            change(&mut record)?;
            r.store.put_tenant(&record)?;
            for app in r.store.apps(Some(&name))? {
                r.refresh(&app)?;
            }
            Ok(record)
        })
        .await
    }

    /// The limits `app` of `tenant` runs under, written out in full.
    pub async fn effective_limits(
        self: &Arc<Self>,
        tenant: String,
        app: AppRecord,
    ) -> Result<LimitOverrides, RegistryError> {
        self.read(move |r| {
            let record = r.tenant_record(&tenant)?;
            Ok(super::effective_overrides(
                &r.loader.host_limits,
                &r.loader.host_http,
                &record.limits,
                &app.manifest.limits,
            ))
        })
        .await
    }

    /// Every tenant.
    pub async fn tenants(self: &Arc<Self>) -> Result<Vec<TenantRecord>, RegistryError> {
        self.read(|r| Ok(r.store.tenants()?)).await
    }

    /// One tenant.
    pub async fn tenant(self: &Arc<Self>, name: String) -> Result<TenantRecord, RegistryError> {
        self.read(move |r| r.tenant_record(&name)).await
    }

    /// Deletes a tenant, its apps and their versions; its routes stop serving.
    /// Its KV data, cache entries and log lines become unreachable for
    /// good: a tenant created again under the name has a new generation,
    /// and so a new data key; the cache entries and log rings go now, the
    /// KV entries in the background (on Redis; see `sweeper.rs`).
    pub async fn delete_tenant(self: &Arc<Self>, name: String) -> Result<(), RegistryError> {
        self.write(move |r| {
            let record = r.tenant_record(&name)?;
            if !r.store.delete_tenant(&name)? {
                return Err(RegistryError::NotFound(format!("tenant {name}")));
            }
            r.loader.services.cache.purge_all(Some(&record.data_key()));
            r.loader.forget_logs(&name);
            r.loader.forget_kv(record.data_key());
            r.lock_live()
                .retain(|k, _| !k.starts_with(&format!("{name}/")));
            tracing::info!(tenant = name, "tenant deleted with its apps and data");
            r.rebuild_router()
        })
        .await
    }
}

/// Checks the operator's route grants: each a `*.suffix` or `*` host
/// pattern.
fn check_grants(grants: Vec<String>) -> Result<Vec<String>, RegistryError> {
    for grant in &grants {
        let route = Route::parse(grant)?;
        if route.to_string() != *grant || route.to_string().contains('/') {
            return Err(RegistryError::Invalid(format!(
                "route grant {grant:?}: use a host, `*.suffix` or `*`, without a path"
            )));
        }
    }
    Ok(grants)
}
