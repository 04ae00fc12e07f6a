//! The registry's version operations: upload (spooled, compiled outside
//! the write lock under the compile slots and budget), list, activate and
//! roll back.

use super::RegistryError;
use super::registry::{MAX_COMPONENT_BYTES, Registry, key};
use crate::storage::records::{AppRecord, VersionRecord, now_secs};
use crate::storage::spool::Upload;
use std::sync::Arc;

impl Registry {
    /// Validates, stores and (optionally) activates a new version. A bad
    /// component changes nothing: it is refused before anything is written.
    pub async fn upload(
        self: &Arc<Self>,
        tenant: String,
        app: String,
        upload: impl Into<Upload>,
        activate: bool,
    ) -> Result<(VersionRecord, AppRecord), RegistryError> {
        let upload: Upload = upload.into();
        if upload.len() > MAX_COMPONENT_BYTES {
            return Err(RegistryError::TooLarge {
                size: upload.len(),
                max: MAX_COMPONENT_BYTES,
            });
        }
        // Compile outside the write lock, under the compile slots: a slow
        // compile holds no other tenant's admin writes.
        let permits = self.compiles.take(&tenant)?;
        self.read({
            let (tenant, app) = (tenant.clone(), app.clone());
            move |r| r.app_record(&tenant, &app).map(drop)
        })
        .await?;
        let (upload, sha256, cached) = self
            .read(move |r| {
                let sha256 = upload.sha256();
                // The same bytes deployed before (by any app) reuse their artifact.
                let cached = r.loader.cached(&sha256);
                Ok((upload, sha256, cached))
            })
            .await?;
        let size = upload.len();
        let (component, compiled) = match cached {
            Some(component) => (component, false),
            None => {
                // In a worker process under the compile budget (killed if
                // this upload's client goes away), counted to the tenant's
                // compile time whatever its outcome.
                let runtime = self.loader.runtime.clone();
                let allowance = runtime
                    .compile_worker()
                    .map_or(crate::runtime::compile::DEFAULT_COMPILE_BUDGET, |w| {
                        w.budget
                    });
                self.compile_time.check(&tenant, allowance)?;
                let clock = self.compile_time.clock(&tenant);
                let artifact = crate::runtime::compile::compile_artifact(runtime, &upload).await;
                drop(clock);
                let artifact = artifact?;
                let component = self
                    .read({
                        let sha256 = sha256.clone();
                        move |r| r.loader.keep_artifact(&sha256, &artifact)
                    })
                    .await?;
                (component, true)
            }
        };
        drop(permits);
        self.write_once(move |r| {
            let tenant_record = r.tenant_record(&tenant)?;
            let record = r.app_record(&tenant, &app)?;
            let number = record.next_version;
            let deployment =
                r.loader
                    .deployment(&record, &tenant_record, number, component.clone())?;
            r.loader.blobs.put_upload(&sha256, upload)?;
            r.loader.share_component(&sha256)?;
            if compiled {
                r.loader.note_compiled(&sha256, &component);
            }
            let version = VersionRecord {
                number,
                sha256,
                size: size as u64,
                created_at: now_secs(),
                world: deployment.function.world().to_owned(),
            };
            let updated = r.store.add_version(&record, &version, activate)?;
            if activate {
                r.lock_live().insert(key(&tenant, &app), deployment);
                r.rebuild_router()?;
            }
            tracing::info!(
                tenant,
                app,
                version = version.number,
                sha256 = version.sha256,
                active = activate,
                "deployed"
            );
            Ok((version, updated))
        })
        .await
    }

    /// An app's versions, oldest first.
    pub async fn versions(
        self: &Arc<Self>,
        tenant: String,
        app: String,
    ) -> Result<Vec<VersionRecord>, RegistryError> {
        self.read(move |r| {
            r.app_record(&tenant, &app)?;
            Ok(r.store.versions(&tenant, &app)?)
        })
        .await
    }

    /// Makes `version` the one serving; `None` rolls back to the newest
    /// version older than the active one.
    pub async fn activate(
        self: &Arc<Self>,
        tenant: String,
        app: String,
        version: Option<u32>,
    ) -> Result<AppRecord, RegistryError> {
        self.write(move |r| {
            let mut record = r.app_record(&tenant, &app)?;
            let number = match version {
                Some(n) => n,
                None => {
                    let active = record.active_version.unwrap_or(u32::MAX);
                    r.store
                        .versions(&tenant, &app)?
                        .iter()
                        .map(|v| v.number)
                        .filter(|&n| n < active)
                        .max()
                        .ok_or_else(|| {
                            RegistryError::NotFound(format!(
                                "a version of {app} older than the active one"
                            ))
                        })?
                }
            };
            if r.store.version(&tenant, &app, number)?.is_none() {
                return Err(RegistryError::NotFound(format!(
                    "version {number} of {app}"
                )));
            }
            record.active_version = Some(number);
            let tenant_record = r.tenant_record(&tenant)?;
            let deployment = r.bring_up(&record, &tenant_record, number)?;
            r.store.put_app(&record)?;
            r.lock_live().insert(key(&tenant, &app), deployment);
            r.rebuild_router()?;
            let how = if version.is_some() {
                "activated"
            } else {
                "rolled back"
            };
            tracing::info!(tenant, app, version = number, "{how}");
            Ok(record)
        })
        .await
    }
}
