//! Fleet mode: keeping this node's control state and live deployments at
//! the revision in Redis. A sync reads the whole control plane in one
//! transaction, stores it as the node's snapshot (`control.redb`) and
//! brings up, replaces or takes down exactly the apps whose records (or
//! tenants) changed, plus any app whose active version is not live here
//! (a compile or a fetch that failed earlier is retried).

use super::Registry;
use super::RegistryError;
use super::registry::key;
use crate::storage::control_redis::{ControlSnapshot, RedisControl, block_on};
use crate::storage::records::{AppRecord, TenantRecord};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// The revision this node now serves.
    pub revision: u64,
    /// Apps brought up, replaced or taken down.
    pub apps_changed: usize,
}

fn decode<T: serde::de::DeserializeOwned>(
    rows: &[(String, Vec<u8>)],
) -> Result<BTreeMap<String, T>, RegistryError> {
    rows.iter()
        .map(|(key, value)| {
            serde_json::from_slice(value)
                .map(|record| (key.clone(), record))
                .map_err(|source| {
                    RegistryError::Storage(crate::storage::StorageError::Corrupt {
                        key: key.clone(),
                        source,
                    })
                })
        })
        .collect()
}

impl Registry {
    /// Makes this registry a fleet node's: its changes go to `remote`
    /// first, and components missing here are fetched from it.
    pub fn with_remote(mut self, remote: Arc<RedisControl>) -> Self {
        self.store = self.store.with_remote(remote.clone());
        self.loader.remote = Some(remote);
        self
    }

    /// Brings this node to the fleet's latest revision (a no-op on a single
    /// node, or when it is there already). Fails with the reason when Redis
    /// cannot be read; the node keeps serving what it has.
    pub async fn sync(self: &Arc<Self>) -> Result<Synced, RegistryError> {
        self.locked(|r| r.synced()).await
    }

    /// Seals again, through the fleet, every secret stored under a previous
    /// key.
    pub async fn reseal(self: &Arc<Self>) -> Result<(), RegistryError> {
        self.write(|r| r.reseal_secrets()).await
    }

    /// Why this fleet node may be behind the control plane (its last sync
    /// failed), for `/readyz`.
    pub fn fleet_fault(&self) -> Option<String> {
        self.fleet_fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The revision whose deployments this node serves and, per live app,
    /// the version served.
    pub fn served(&self) -> (u64, BTreeMap<String, u32>) {
        let versions = self
            .lock_live()
            .iter()
            .map(|(app, deployment)| (app.clone(), deployment.version))
            .collect();
        (self.applied.load(Ordering::Acquire), versions)
    }

    /// The sync itself, under the write lock (every admin write in fleet
    /// mode starts with one, so it checks against the latest state).
    pub(super) fn synced(&self) -> Result<Synced, RegistryError> {
        let result = self.catch_up();
        if let Ok(synced) = &result {
            self.applied.store(synced.revision, Ordering::Release);
        }
        let fault = result.as_ref().err().map(ToString::to_string);
        self.diverged.store(
            matches!(result, Err(RegistryError::Diverged { .. })),
            Ordering::Release,
        );
        let mut held = self
            .fleet_fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(err @ RegistryError::Diverged { .. }) = &result
            && held.as_deref() != fault.as_deref()
        {
            // Once per divergence: the sync retries every second.
            tracing::error!(error = %err, "the fleet's control plane went back in time");
        }
        *held = fault;
        result
    }

    /// Accepts Redis's control plane at `revision`, older than this node's
    /// (what an emptied or restored Redis holds), and syncs to it: the
    /// operator's answer to [`RegistryError::Diverged`]. Refused unless
    /// Redis is at exactly that revision, so a later change is not taken
    /// blind.
    pub async fn accept_fleet_revision(
        self: &Arc<Self>,
        revision: u64,
    ) -> Result<Synced, RegistryError> {
        *self
            .accepted_rollback
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(revision);
        let synced = self.sync().await;
        *self
            .accepted_rollback
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        let synced = synced?;
        if synced.revision != revision {
            return Err(RegistryError::Invalid(format!(
                "the fleet's Redis is at revision {}, not {revision}",
                synced.revision
            )));
        }
        tracing::warn!(
            revision,
            "the operator accepted the fleet's older control plane"
        );
        Ok(synced)
    }

    /// Writes this node's control plane (after the components its versions
    /// name) over the fleet's Redis after Redis went back in time: the
    /// operator's other answer to [`RegistryError::Diverged`]. Refused
    /// unless Redis is behind this node, and unless no other node
    /// (`highest_elsewhere`, from the heartbeats) applied a later revision
    /// than this one, whose changes the re-seed would roll back there.
    /// Redis then holds a revision above every node's, so each applies it.
    pub async fn reseed_fleet(
        self: &Arc<Self>,
        highest_elsewhere: u64,
    ) -> Result<Synced, RegistryError> {
        // The components first, outside the write lock (up to 32 MiB each
        // to Redis; storing one Redis has is a no-op): the node refuses
        // writes while it diverged, so its versions do not change meanwhile.
        self.read(|r| {
            for (_, value) in &r.store.snapshot()?.tables[2] {
                if let Ok(version) =
                    serde_json::from_slice::<crate::storage::records::VersionRecord>(value)
                {
                    r.loader.share_component(&version.sha256)?;
                }
            }
            Ok(())
        })
        .await?;
        self.locked(move |r| {
            let Some(remote) = r.store.remote() else {
                return Err(RegistryError::Invalid("this daemon is not a fleet node".into()));
            };
            let here = r.store.revision()?;
            let there = block_on(remote.revision())?;
            if there >= here {
                return Err(RegistryError::Invalid(format!(
                    "the fleet's Redis is not behind this node (Redis at revision {there}, this node at {here}): nothing to re-seed"
                )));
            }
            if highest_elsewhere > here {
                return Err(RegistryError::Invalid(format!(
                    "another node applied revision {highest_elsewhere}, later than this node's {here}: re-seed from the node with the highest revision (`verge nodes`)"
                )));
            }
            let snapshot = r.store.snapshot()?;
            let revision = here.max(highest_elsewhere) + 1;
            let revision = block_on(remote.reseed(there, &snapshot, revision))?;
            r.store.replace_all(&ControlSnapshot {
                revision,
                ..snapshot
            })?;
            tracing::warn!(
                revision,
                was = there,
                "the operator re-seeded the fleet's Redis from this node"
            );
            r.synced()
        })
        .await
    }

    /// Whether this node refuses the fleet's control plane because Redis
    /// went back in time.
    pub fn diverged(&self) -> bool {
        self.diverged.load(Ordering::Acquire)
    }

    /// Marks the revision in the snapshot as served (after a write made
    /// here, whose deployments are already swapped in).
    pub(super) fn mark_applied(&self) {
        if self.store.remote().is_none() {
            return;
        }
        if let Ok(revision) = self.store.revision() {
            self.applied.store(revision, Ordering::Release);
        }
    }

    fn catch_up(&self) -> Result<Synced, RegistryError> {
        let Some(remote) = self.store.remote() else {
            return Ok(Synced::default());
        };
        let here = self.store.revision()?;
        let there = block_on(remote.revision())?;
        // Redis never goes back by itself: an older or empty control plane
        // (FLUSHALL, an old backup, a lagging replica) is not applied over
        // this node's unless the operator accepted that exact revision.
        let accepted = *self
            .accepted_rollback
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if there < here && accepted != Some(there) {
            return Err(RegistryError::Diverged { here, there });
        }
        if there == here && self.all_live()? {
            return Ok(Synced {
                revision: here,
                apps_changed: 0,
            });
        }
        let snapshot = block_on(remote.snapshot())?;
        self.apply_snapshot(&snapshot)
    }

    /// Whether every app with an active version is live at that version.
    fn all_live(&self) -> Result<bool, RegistryError> {
        let live = self.lock_live().clone();
        Ok(self.store.apps(None)?.iter().all(|app| {
            app.active_version
                == live
                    .get(&key(&app.tenant, &app.name))
                    .map(|deployment| deployment.version)
        }))
    }

    fn apply_snapshot(&self, snapshot: &ControlSnapshot) -> Result<Synced, RegistryError> {
        let [tenant_rows, app_rows, _] = &snapshot.tables;
        let tenants: BTreeMap<String, TenantRecord> = decode(tenant_rows)?;
        let apps: BTreeMap<String, AppRecord> = decode(app_rows)?;
        let old_tenants: BTreeMap<String, TenantRecord> = self
            .store
            .tenants()?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        let old_apps: BTreeMap<String, AppRecord> = self
            .store
            .apps(None)?
            .into_iter()
            .map(|a| (key(&a.tenant, &a.name), a))
            .collect();
        self.store.replace_all(snapshot)?;
        for (name, old) in &old_tenants {
            if tenants
                .get(name)
                .is_none_or(|new| new.generation != old.generation)
            {
                self.loader.services.cache.purge_all(Some(&old.data_key()));
                self.loader.forget_logs(name);
                self.loader.forget_kv(old.data_key());
            }
        }
        let live = self.lock_live().clone();
        let mut changed = 0;
        for gone in old_apps.keys().filter(|k| !apps.contains_key(*k)) {
            if self.lock_live().remove(gone).is_some() {
                changed += 1;
            }
        }
        for (app_key, app) in &apps {
            let tenant = tenants.get(&app.tenant);
            let same_record = old_apps.get(app_key) == Some(app)
                && tenant.is_some()
                && tenant == old_tenants.get(&app.tenant);
            let live_version = live.get(app_key).map(|d| d.version);
            if same_record && live_version == app.active_version {
                continue;
            }
            changed += 1;
            let (Some(version), Some(tenant)) = (app.active_version, tenant) else {
                self.lock_live().remove(app_key);
                continue;
            };
            match self.bring_up(app, tenant, version) {
                Ok(deployment) => {
                    self.lock_live().insert(app_key.clone(), deployment);
                }
                Err(err) => {
                    // The version it served stays live, if any: better the
                    // old version than none while this one cannot start.
                    tracing::error!(tenant = app.tenant, app = app.name, version, error = %err,
                        "could not bring up the fleet's active version on this node");
                }
            }
        }
        self.rebuild_router()?;
        if changed > 0 {
            tracing::info!(
                revision = snapshot.revision,
                apps_changed = changed,
                "applied the fleet's control plane"
            );
        }
        Ok(Synced {
            revision: snapshot.revision,
            apps_changed: changed,
        })
    }

    /// Tells the KV read cache which stores some app caches, so writes to
    /// them are announced to the fleet.
    pub(super) fn publish_cached_stores(&self) -> Result<(), RegistryError> {
        let tenants: BTreeMap<String, String> = self
            .store
            .tenants()?
            .into_iter()
            .map(|t| (t.name.clone(), t.data_key()))
            .collect();
        let mut cached = HashSet::new();
        for app in self.store.apps(None)? {
            let (Some(ttl), Some(data_key)) =
                (app.manifest.kv_cache_ttl_seconds, tenants.get(&app.tenant))
            else {
                continue;
            };
            if ttl > 0 {
                for store in app.manifest.kv_stores {
                    cached.insert((data_key.clone(), store));
                }
            }
        }
        self.loader.services.kv_cache.set_cached_stores(cached);
        Ok(())
    }
}
