//! `control.redb`: tenants, apps and versions as JSON values in three
//! tables. Every mutation is one redb write transaction, committed durably,
//! so a crash leaves either the old or the new state. In fleet mode it is
//! the node's snapshot of the control plane in Redis (`control_redis`):
//! each mutation is made there first. Methods block: call them from
//! `spawn_blocking`.

use super::StorageError;
use super::control_redis::{ControlOp, ControlSnapshot, RedisControl, Table};
use super::records::{AppRecord, TenantRecord, VersionRecord};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Arc;

const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");
const VERSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("versions");
/// The tables in [`Table`] order.
const TABLES: [TableDefinition<&str, &[u8]>; 3] = [TENANTS, APPS, VERSIONS];
/// The revision of the fleet's control plane this snapshot holds.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";

/// The control-plane database.
pub struct ControlStore {
    db: Database,
    path: std::path::PathBuf,
    remote: Option<Arc<RedisControl>>,
}

fn app_key(tenant: &str, app: &str) -> String {
    format!("{tenant}/{app}")
}

fn version_key(tenant: &str, app: &str, number: u32) -> String {
    format!("{tenant}/{app}/{number:010}")
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(|source| StorageError::Corrupt {
        key: key.to_owned(),
        source,
    })
}

/// Reads every value whose key starts with `prefix`, in key order.
fn scan<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<T>, StorageError> {
    let mut out = Vec::new();
    for entry in table.range(prefix..)? {
        let (key, value) = entry?;
        if !key.value().starts_with(prefix) {
            break;
        }
        out.push(decode(key.value(), value.value())?);
    }
    Ok(out)
}

impl ControlStore {
    /// Opens (or creates) the database at `path` and its tables.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let opened = super::guard_corruption(
            path,
            || {
                let db = Database::create(path)
                    .map_err(|e| StorageError::Corrupted(super::open_failure(path, e)))?;
                let tx = db.begin_write()?;
                for table in TABLES {
                    tx.open_table(table)?;
                }
                tx.open_table(META)?;
                tx.commit()?;
                Ok::<_, StorageError>(db)
            },
            StorageError::Corrupted,
        );
        let db = opened.map_err(|err| match err {
            StorageError::Corrupted(_) => err,
            other => StorageError::Io {
                what: format!("opening {}", path.display()),
                source: std::io::Error::other(other.to_string()),
            },
        })?;
        Ok(Self {
            db,
            path: path.to_owned(),
            remote: None,
        })
    }

    /// Makes this store the snapshot of the fleet's control plane in
    /// Redis: every change is made there first, then here.
    pub fn with_remote(mut self, remote: Arc<RedisControl>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// The fleet's control plane, in fleet mode.
    pub fn remote(&self) -> Option<&Arc<RedisControl>> {
        self.remote.as_ref()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fleet revision this snapshot holds (0 on a single node).
    pub fn revision(&self) -> Result<u64, StorageError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(META)?;
        Ok(table.get(REVISION)?.map_or(0, |v| v.value()))
    }

    /// Makes `ops`: in the fleet's Redis first (refused there if another
    /// node changed a record they read since this snapshot), then here in
    /// one durable transaction. The snapshot takes the revision Redis gave
    /// only when no other change came between; else it keeps its own, so
    /// the next catch-up reads the whole control plane.
    fn commit(&self, ops: Vec<ControlOp>) -> Result<(), StorageError> {
        let revision = match &self.remote {
            Some(remote) => {
                let expected = self.revision()?;
                let revision = super::control_redis::block_on(remote.apply_scoped(expected, &ops))?;
                (revision == expected + 1).then_some(revision)
            }
            None => None,
        };
        let tx = self.db.begin_write()?;
        for op in &ops {
            apply_op(&tx, op)?;
        }
        if let Some(revision) = revision {
            tx.open_table(META)?.insert(REVISION, revision)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces everything with `snapshot` (a node catching up with the
    /// fleet), in one durable transaction.
    pub fn replace_all(&self, snapshot: &ControlSnapshot) -> Result<(), StorageError> {
        let tx = self.db.begin_write()?;
        for (definition, rows) in TABLES.into_iter().zip(&snapshot.tables) {
            let mut table = tx.open_table(definition)?;
            for key in scan_keys(&table, "")? {
                table.remove(key.as_str())?;
            }
            for (key, value) in rows {
                table.insert(key.as_str(), value.as_slice())?;
            }
        }
        tx.open_table(META)?.insert(REVISION, snapshot.revision)?;
        tx.commit()?;
        Ok(())
    }

    /// Everything in this store, as [`replace_all`](Self::replace_all)
    /// takes it (for `verge cluster import`).
    pub fn snapshot(&self) -> Result<ControlSnapshot, StorageError> {
        let tx = self.db.begin_read()?;
        // Tables and revision from one read transaction: one state.
        let revision = tx.open_table(META)?.get(REVISION)?.map_or(0, |v| v.value());
        let mut snapshot = ControlSnapshot {
            revision,
            ..ControlSnapshot::default()
        };
        for (definition, rows) in TABLES.into_iter().zip(&mut snapshot.tables) {
            let table = tx.open_table(definition)?;
            for entry in table.iter()? {
                let (key, value) = entry?;
                rows.push((key.value().to_owned(), value.value().to_vec()));
            }
        }
        Ok(snapshot)
    }

    /// Inserts or replaces a tenant.
    pub fn put_tenant(&self, tenant: &TenantRecord) -> Result<(), StorageError> {
        self.commit(vec![ControlOp::Put(
            Table::Tenants,
            tenant.name.clone(),
            encode(tenant),
        )])
    }

    /// The tenant named `name`.
    pub fn tenant(&self, name: &str) -> Result<Option<TenantRecord>, StorageError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(TENANTS)?;
        let value = table.get(name)?;
        value.map(|v| decode(name, v.value())).transpose()
    }

    /// Every tenant, by name.
    pub fn tenants(&self) -> Result<Vec<TenantRecord>, StorageError> {
        let tx = self.db.begin_read()?;
        scan(&tx.open_table(TENANTS)?, "")
    }

    /// Deletes a tenant with all its apps and versions; false if unknown.
    pub fn delete_tenant(&self, name: &str) -> Result<bool, StorageError> {
        if self.tenant(name)?.is_none() {
            return Ok(false);
        }
        let prefix = format!("{name}/");
        self.commit(vec![
            ControlOp::Delete(Table::Tenants, name.to_owned()),
            ControlOp::DeletePrefix(Table::Apps, prefix.clone()),
            ControlOp::DeletePrefix(Table::Versions, prefix),
        ])?;
        Ok(true)
    }

    /// Inserts or replaces an app.
    pub fn put_app(&self, app: &AppRecord) -> Result<(), StorageError> {
        self.commit(vec![ControlOp::Put(
            Table::Apps,
            app_key(&app.tenant, &app.name),
            encode(app),
        )])
    }

    /// One app.
    pub fn app(&self, tenant: &str, app: &str) -> Result<Option<AppRecord>, StorageError> {
        let tx = self.db.begin_read()?;
        let key = app_key(tenant, app);
        let table = tx.open_table(APPS)?;
        let value = table.get(key.as_str())?;
        value.map(|v| decode(&key, v.value())).transpose()
    }

    /// A tenant's apps, or every app when `tenant` is `None`.
    pub fn apps(&self, tenant: Option<&str>) -> Result<Vec<AppRecord>, StorageError> {
        let tx = self.db.begin_read()?;
        let prefix = tenant.map(|t| format!("{t}/")).unwrap_or_default();
        scan(&tx.open_table(APPS)?, &prefix)
    }

    /// Deletes an app and its versions; false if unknown.
    pub fn delete_app(&self, tenant: &str, app: &str) -> Result<bool, StorageError> {
        if self.app(tenant, app)?.is_none() {
            return Ok(false);
        }
        self.commit(vec![
            ControlOp::Delete(Table::Apps, app_key(tenant, app)),
            ControlOp::DeletePrefix(Table::Versions, format!("{tenant}/{app}/")),
        ])?;
        Ok(true)
    }

    /// Records a new version and, in the same transaction, the app's next
    /// version number and (if `activate`) its active version.
    pub fn add_version(
        &self,
        app: &AppRecord,
        version: &VersionRecord,
        activate: bool,
    ) -> Result<AppRecord, StorageError> {
        let mut updated = app.clone();
        updated.next_version = version.number.saturating_add(1);
        if activate {
            updated.active_version = Some(version.number);
        }
        self.commit(vec![
            ControlOp::Put(
                Table::Versions,
                version_key(&app.tenant, &app.name, version.number),
                encode(version),
            ),
            ControlOp::Put(
                Table::Apps,
                app_key(&app.tenant, &app.name),
                encode(&updated),
            ),
        ])?;
        Ok(updated)
    }

    /// An app's versions, oldest first.
    pub fn versions(&self, tenant: &str, app: &str) -> Result<Vec<VersionRecord>, StorageError> {
        let tx = self.db.begin_read()?;
        scan(&tx.open_table(VERSIONS)?, &format!("{tenant}/{app}/"))
    }

    /// One version.
    pub fn version(
        &self,
        tenant: &str,
        app: &str,
        number: u32,
    ) -> Result<Option<VersionRecord>, StorageError> {
        let tx = self.db.begin_read()?;
        let key = version_key(tenant, app, number);
        let table = tx.open_table(VERSIONS)?;
        let value = table.get(key.as_str())?;
        value.map(|v| decode(&key, v.value())).transpose()
    }
}

/// Applies one change inside a write transaction.
fn apply_op(tx: &redb::WriteTransaction, op: &ControlOp) -> Result<(), StorageError> {
    let definition = |table: &Table| TABLES[*table as usize];
    match op {
        ControlOp::Put(table, key, value) => {
            tx.open_table(definition(table))?
                .insert(key.as_str(), value.as_slice())?;
        }
        ControlOp::Delete(table, key) => {
            tx.open_table(definition(table))?.remove(key.as_str())?;
        }
        ControlOp::DeletePrefix(table, prefix) => {
            let mut table = tx.open_table(definition(table))?;
            for key in scan_keys(&table, prefix)? {
                table.remove(key.as_str())?;
            }
        }
    }
    Ok(())
}

fn scan_keys(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<String>, StorageError> {
    let mut keys = Vec::new();
    for entry in table.range(prefix..)? {
        let (key, _) = entry?;
        if !key.value().starts_with(prefix) {
            break;
        }
        keys.push(key.value().to_owned());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::records::{AppManifest, LimitOverrides};

    fn app(tenant: &str, name: &str) -> AppRecord {
        AppRecord {
            secrets_set_at: Default::default(),
            tenant: tenant.into(),
            name: name.into(),
            manifest: AppManifest::default(),
            secrets: Default::default(),
            active_version: None,
            next_version: 1,
        }
    }

    #[test]
    fn records_round_trip_and_cascade_on_delete() -> Result<(), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageError::io("tempdir", e))?;
        let store = ControlStore::open(&dir.path().join("control.redb"))?;
        let tenant = TenantRecord {
            name: "acme".into(),
            token_sha256: "00".into(),
            limits: LimitOverrides::default(),
            route_grants: vec!["*.acme.test".into()],
            outbound_grants: vec!["10.0.0.0/8".into()],
            generation: "0123456789abcdef".into(),
            created_at: 1,
        };
        store.put_tenant(&tenant)?;
        store.put_app(&app("acme", "web"))?;
        store.put_app(&app("acme-two", "web"))?;
        let version = VersionRecord {
            number: 1,
            sha256: "ab".into(),
            size: 3,
            created_at: 2,
            world: "verge:edge/function".into(),
        };
        let updated = store.add_version(&app("acme", "web"), &version, true)?;
        assert_eq!((updated.active_version, updated.next_version), (Some(1), 2));
        assert_eq!(store.app("acme", "web")?, Some(updated));
        assert_eq!(store.versions("acme", "web")?, vec![version]);
        // "acme/" must not match "acme-two/".
        assert_eq!(store.apps(Some("acme"))?.len(), 1);
        assert!(store.delete_tenant("acme")?);
        assert_eq!(store.apps(None)?.len(), 1);
        assert!(store.versions("acme", "web")?.is_empty());
        assert_eq!(store.tenant("acme")?, None);
        drop(store);
        // Reopening sees the same state.
        let store = ControlStore::open(&dir.path().join("control.redb"))?;
        assert_eq!(store.apps(None)?.len(), 1);
        Ok(())
    }
}
