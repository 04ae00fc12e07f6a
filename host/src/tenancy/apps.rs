//! The registry's app operations: create or update an app's manifest
//! (routes normalised and owned by one app), list, read, delete, and its
//! config variables and secrets.

use super::RegistryError;
use super::caps;
use super::ownership::{self, Claim};
use super::registry::{MAX_VAR_VALUE_BYTES, Registry, VarKind, check_name, key};
use super::router::Route;
use crate::storage::records::{AppManifest, AppRecord};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

impl Registry {
    /// Creates or updates an app's manifest. Routes owned by any other app
    /// are refused with [`RegistryError::RouteConflict`].
    pub async fn put_app(
        self: &Arc<Self>,
        tenant: String,
        app: String,
        manifest: AppManifest,
    ) -> Result<AppRecord, RegistryError> {
        self.write(move |r| {
            check_name("app", &app)?;
            let tenant_record = r.tenant_record(&tenant)?;
            if manifest.routes.len() > r.caps.max_routes_per_app {
                return Err(RegistryError::TooMany {
                    what: "routes per app",
                    max: r.caps.max_routes_per_app,
                });
            }
            let manifest = normalise(manifest.clone())?;
            let routes = manifest
                .routes
                .iter()
                .map(|route| Route::parse(route))
                .collect::<Result<Vec<_>, _>>()?;
            let apps = r.store.apps(None)?;
            let mut claims = Vec::new();
            for other in &apps {
                for route in &other.manifest.routes {
                    claims.push(Claim {
                        tenant: &other.tenant,
                        app: &other.name,
                        route: Route::parse(route)?,
                    });
                }
            }
            ownership::check(
                &tenant,
                &app,
                &tenant_record.route_grants,
                r.caps.hosts_need_grants,
                &routes,
                claims,
            )?;
            let exists = apps.iter().any(|a| a.tenant == tenant && a.name == app);
            if !exists {
                let owned = apps.iter().filter(|a| a.tenant == tenant).count();
                caps::room_for_one("apps per tenant", owned, r.caps.max_apps_per_tenant)?;
            }
            let existing = r.store.app(&tenant, &app)?;
            if let Some(name) = existing.as_ref().and_then(|e| {
                manifest
                    .config
                    .keys()
                    .find(|name| e.secrets.contains_key(*name))
            }) {
                return Err(RegistryError::Invalid(format!(
                    "{name} is already a secret of {app}: a variable and a secret may not share a name (unset the secret first)"
                )));
            }
            let record = match existing {
                Some(existing) => AppRecord {
                    manifest,
                    ..existing
                },
                None => AppRecord {
                    tenant: tenant.clone(),
                    name: app.clone(),
                    manifest,
                    secrets: BTreeMap::new(),
                    secrets_set_at: BTreeMap::new(),
                    active_version: None,
                    next_version: 1,
                },
            };
            r.store.put_app(&record)?;
            r.refresh(&record)?;
            Ok(record)
        })
        .await
    }

    /// A tenant's apps, or all apps for `None`.
    pub async fn apps(
        self: &Arc<Self>,
        tenant: Option<String>,
    ) -> Result<Vec<AppRecord>, RegistryError> {
        self.read(move |r| {
            if let Some(t) = &tenant {
                r.tenant_record(t)?;
            }
            Ok(r.store.apps(tenant.as_deref())?)
        })
        .await
    }

    /// One app.
    pub async fn app(
        self: &Arc<Self>,
        tenant: String,
        app: String,
    ) -> Result<AppRecord, RegistryError> {
        self.read(move |r| r.app_record(&tenant, &app)).await
    }

    /// Deletes an app and its versions; its routes stop serving.
    pub async fn delete_app(
        self: &Arc<Self>,
        tenant: String,
        app: String,
    ) -> Result<(), RegistryError> {
        self.write(move |r| {
            if !r.store.delete_app(&tenant, &app)? {
                return Err(RegistryError::NotFound(format!("app {app}")));
            }
            r.lock_live().remove(&key(&tenant, &app));
            r.rebuild_router()
        })
        .await
    }

    /// Sets (`Some`) or removes (`None`) a config variable or secret.
    pub async fn set_var(
        self: &Arc<Self>,
        tenant: String,
        app: String,
        kind: VarKind,
        name: String,
        value: Option<String>,
    ) -> Result<AppRecord, RegistryError> {
        self.write(move |r| {
            if name.is_empty()
                || name.len() > 63
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            {
                return Err(RegistryError::Invalid(format!(
                    "invalid variable name {name:?}: letters, digits, `_`, `.`, `-`, at most 63"
                )));
            }
            if value
                .as_ref()
                .is_some_and(|v| v.len() > MAX_VAR_VALUE_BYTES)
            {
                return Err(RegistryError::Invalid(format!(
                    "value over {MAX_VAR_VALUE_BYTES} bytes"
                )));
            }
            let mut record = r.app_record(&tenant, &app)?;
            let (other, other_kind) = match kind {
                VarKind::Config => (&record.secrets, "a secret"),
                VarKind::Secret => (&record.manifest.config, "a config variable"),
            };
            if value.is_some() && other.contains_key(&name) {
                return Err(RegistryError::Invalid(format!(
                    "{name} is already {other_kind} of {app}: a variable and a secret may not share a name (unset it first)"
                )));
            }
            if kind == VarKind::Secret {
                match value {
                    Some(_) => record
                        .secrets_set_at
                        .insert(name.clone(), crate::storage::records::now_secs()),
                    None => record.secrets_set_at.remove(&name),
                };
            }
            let vars = match kind {
                VarKind::Config => &mut record.manifest.config,
                VarKind::Secret => &mut record.secrets,
            };
            match value.clone() {
                Some(v) => {
                    let v = match kind {
                        VarKind::Config => v,
                        VarKind::Secret => r
                            .loader
                            .secrets
                            .seal(&super::loader::secret_place(&tenant, &app, &name), &v)?,
                    };
                    vars.insert(name.clone(), v);
                }
                None => {
                    if vars.remove(&name).is_none() {
                        return Err(RegistryError::NotFound(format!("variable {name}")));
                    }
                }
            }
            r.store.put_app(&record)?;
            r.refresh(&record)?;
            Ok(record)
        })
        .await
    }
}

/// Parses and normalises the routes and checks the names in a manifest.
fn normalise(mut manifest: AppManifest) -> Result<AppManifest, RegistryError> {
    let mut routes = Vec::new();
    let mut seen = HashSet::new();
    for route in &manifest.routes {
        let normal = Route::parse(route)?.to_string();
        if seen.insert(normal.clone()) {
            routes.push(normal);
        }
    }
    manifest.routes = routes;
    for store in &manifest.kv_stores {
        check_name("kv store", store)?;
    }
    let max_ttl = crate::capabilities::kv_cache::MAX_KV_CACHE_TTL_SECONDS;
    if manifest
        .kv_cache_ttl_seconds
        .is_some_and(|ttl| ttl > max_ttl)
    {
        return Err(RegistryError::Invalid(format!(
            "kv_cache_ttl_seconds is at most {max_ttl} (an hour): it bounds how long a node may serve a value after it changed"
        )));
    }
    crate::capabilities::fetch::AllowList::parse(&manifest.allowed_hosts)
        .map_err(|err| RegistryError::Invalid(err.to_string()))?;
    Ok(manifest)
}
