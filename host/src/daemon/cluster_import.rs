//! `verge cluster import --data-dir DIR`: copies a single node's data dir
//! into a fleet's Redis — its control plane (tenants, apps, versions,
//! config, sealed secrets), the component bytes its versions name, and its
//! live KV entries (with what remains of their TTLs).
//!
//! Idempotent: a record Redis already holds with the same value is left
//! alone, so a second run changes nothing; a record Redis holds with a
//! *different* value (the fleet changed it) stops the import before any
//! control-plane write, naming it. KV entries are written as the data dir
//! has them (a second run writes the same values).

use crate::storage::control::ControlStore;
use crate::storage::control_redis::{ControlOp, RedisControl, Table};
use crate::storage::kv::redb::RedbKv;
use crate::storage::kv::redis_backend::RedisKv;
use crate::storage::kv::{DEFAULT_TENANT_QUOTA_BYTES, KvBackend, Namespace, SystemClock, WriteOp};
use crate::storage::records::{TenantRecord, VersionRecord};
use anyhow::{Context as _, bail};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// KV entries written to Redis per batch (one script run each).
pub const IMPORT_KV_BATCH: usize = 500;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Control-plane records written (0 on a second run).
    pub records_written: usize,
    /// Records Redis already had with the same value.
    pub records_present: usize,
    /// Components stored (or already there), by hash.
    pub components: usize,
    /// KV entries written.
    pub kv_entries: usize,
    /// KV entries of tenants the data dir no longer has (left behind).
    pub kv_orphans: usize,
}

/// Imports `data_dir` into the Redis `client` reaches.
pub async fn import(data_dir: &Path, client: &redis::Client) -> anyhow::Result<ImportReport> {
    let control_path = data_dir.join("control.redb");
    anyhow::ensure!(
        control_path.exists(),
        "{} is not a verge data dir (no control.redb)",
        data_dir.display()
    );
    let local = {
        let path = control_path.clone();
        tokio::task::spawn_blocking(move || ControlStore::open(&path)?.snapshot())
            .await?
            .with_context(|| {
                format!(
                    "reading {} (stop the daemon using it first)",
                    control_path.display()
                )
            })?
    };
    let remote = RedisControl::with_client(client).await;
    let there = remote
        .snapshot()
        .await
        .context("reading the fleet's control plane")?;
    let mut report = ImportReport::default();
    let [tenant_rows, _, version_rows] = &local.tables;
    for (key, value) in version_rows {
        let version: VersionRecord =
            serde_json::from_slice(value).with_context(|| format!("version record {key}"))?;
        let path = data_dir
            .join("components")
            .join(format!("{}.wasm", version.sha256));
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        remote.put_component(&version.sha256, &bytes).await?;
        report.components += 1;
    }
    let mut ops = Vec::new();
    let mut differing = Vec::new();
    let tables = [Table::Tenants, Table::Apps, Table::Versions];
    for ((table, rows), theirs) in tables.into_iter().zip(&local.tables).zip(&there.tables) {
        let theirs: HashMap<&str, &[u8]> = theirs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        for (key, value) in rows {
            match theirs.get(key.as_str()) {
                None => ops.push(ControlOp::Put(table, key.clone(), value.clone())),
                Some(existing) if *existing == value.as_slice() => report.records_present += 1,
                Some(_) => differing.push(format!("{table:?} {key}")),
            }
        }
    }
    if !differing.is_empty() {
        bail!(
            "the fleet already holds these records with other values, so nothing was imported: {}",
            differing.join(", ")
        );
    }
    if !ops.is_empty() {
        remote.apply(there.revision, &ops).await?;
        report.records_written = ops.len();
    }
    let tenants: BTreeMap<String, TenantRecord> = tenant_rows
        .iter()
        .filter_map(|(_, v)| serde_json::from_slice::<TenantRecord>(v).ok())
        .map(|t| (t.data_key(), t))
        .collect();
    let kv_path = data_dir.join("kv.redb");
    if kv_path.exists() {
        let (written, orphans) = import_kv(&kv_path, client, &tenants).await?;
        report.kv_entries = written;
        report.kv_orphans = orphans;
    }
    Ok(report)
}

/// Copies every live entry of `kv.redb` whose tenant exists into Redis.
async fn import_kv(
    path: &Path,
    client: &redis::Client,
    tenants: &BTreeMap<String, TenantRecord>,
) -> anyhow::Result<(usize, usize)> {
    let local = RedbKv::open(path, Arc::new(SystemClock))
        .with_context(|| format!("opening {}", path.display()))?;
    let remote = RedisKv::with_client(client, Arc::new(SystemClock)).await;
    let now = crate::storage::records::now_secs().saturating_mul(1000);
    let (mut written, mut orphans) = (0, 0);
    let mut after = None;
    loop {
        let page = local.export_page(after.clone(), IMPORT_KV_BATCH).await?;
        let Some((last, _, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        let mut batches: BTreeMap<(String, String), Vec<WriteOp>> = BTreeMap::new();
        for (stored, expiry, value) in page {
            let mut parts = stored.splitn(3, |b| *b == 0);
            let (Some(tenant), Some(store), Some(key)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (tenant, store, key) = (
                String::from_utf8_lossy(tenant).into_owned(),
                String::from_utf8_lossy(store).into_owned(),
                String::from_utf8_lossy(key).into_owned(),
            );
            if !tenants.contains_key(&tenant) {
                orphans += 1;
                continue;
            }
            // What remains of the TTL, rounded up to a whole second.
            let ttl = (expiry > 0).then(|| {
                u32::try_from(expiry.saturating_sub(now).div_ceil(1000).max(1)).unwrap_or(u32::MAX)
            });
            batches
                .entry((tenant, store))
                .or_default()
                .push(WriteOp::Set { key, value, ttl });
        }
        for ((tenant, store), ops) in batches {
            let quota_bytes = tenants
                .get(&tenant)
                .and_then(|t| t.limits.kv_quota_mib)
                .map_or(DEFAULT_TENANT_QUOTA_BYTES, |mib| {
                    mib.saturating_mul(1 << 20)
                });
            let ns = Namespace {
                tenant: tenant.clone(),
                store: store.clone(),
                quota_bytes,
            };
            written += remote
                .write_all(&ns, ops)
                .await
                .with_context(|| format!("writing KV store {store} of {tenant}"))?;
        }
    }
    Ok((written, orphans))
}
