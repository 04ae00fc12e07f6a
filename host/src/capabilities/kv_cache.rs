//! The node-local KV read cache, for apps that ask for one with
//! `kv_cache_ttl_seconds` (like Workers KV's `cacheTtl`); off by default.
//!
//! - A read of a cached store is answered here when this node fetched the
//!   key (or learnt its value from its own write) less than the app's TTL
//!   ago; absent keys are cached too.
//! - Every write through this node to a store some app caches updates or
//!   drops its entry at once, so the writer reads its own writes
//!   ([`CachingKv`] wraps the backend, so admin writes count too); writes
//!   to other stores pass straight through.
//! - In a fleet, such a write is announced on the bus and every other
//!   node drops its entry; a lost announcement is bounded by the TTL.
//! - A value's own KV TTL may be overshot on a node by up to the cache
//!   TTL, as with Workers KV.

use crate::storage::kv::{KeyPage, KvBackend, KvError, Namespace, Outcome, WriteOp};
use arc_swap::ArcSwap;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Bytes of keys and values one node's read cache holds at most: enough
/// for the hot keys of many apps, small beside the instance pool.
pub const KV_READ_CACHE_BYTES: u64 = 64 << 20;

/// Longest `kv_cache_ttl_seconds` an app may set: one hour bounds how long
/// a node can serve a value after a lost invalidation.
pub const MAX_KV_CACHE_TTL_SECONDS: u32 = 3600;

/// Bytes each entry is charged beyond its key and value (the entry, the
/// map's slot).
const ENTRY_OVERHEAD: u64 = 64;

#[derive(Clone)]
struct Entry {
    value: Option<Arc<[u8]>>,
    at: Instant,
}

/// Sends an invalidation of (tenant data key, store, key) to the fleet.
pub type Announce = Arc<dyn Fn(&str, &str, &str) + Send + Sync>;

/// One node's KV read cache.
pub struct KvReadCache {
    entries: moka::sync::Cache<Vec<u8>, Entry>,
    /// Tenant data key → stores some app of the fleet caches: only writes
    /// to them update entries here and are announced (no other store's
    /// entries are ever read).
    cached_stores: ArcSwap<HashMap<String, HashSet<String>>>,
    announce: OnceLock<Announce>,
}

impl Default for KvReadCache {
    fn default() -> Self {
        Self::with_capacity(KV_READ_CACHE_BYTES)
    }
}

impl KvReadCache {
    /// A cache of at most `bytes`.
    pub fn with_capacity(bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(bytes)
            .weigher(|key: &Vec<u8>, entry: &Entry| {
                let size = key.len() as u64
                    + entry.value.as_ref().map_or(0, |v| v.len() as u64)
                    + ENTRY_OVERHEAD;
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .time_to_live(Duration::from_secs(u64::from(MAX_KV_CACHE_TTL_SECONDS)))
            .build();
        Self {
            entries,
            cached_stores: ArcSwap::default(),
            announce: OnceLock::new(),
        }
    }

    /// The value of `key` if this node learnt it less than `ttl` ago
    /// (`Some(None)`: known absent); `None` on a miss.
    pub fn lookup(&self, ns: &Namespace, key: &str, ttl: Duration) -> Option<Option<Vec<u8>>> {
        let entry = self.entries.get(&ns.key(key))?;
        (entry.at.elapsed() < ttl).then(|| entry.value.map(|v| v.to_vec()))
    }

    /// Remembers what the backend answered for `key`.
    pub fn fill(&self, ns: &Namespace, key: &str, value: Option<&[u8]>) {
        let entry = Entry {
            value: value.map(Arc::from),
            at: Instant::now(),
        };
        self.entries.insert(ns.key(key), entry);
    }

    /// Drops `key` of the namespace of data key `tenant` and `store`.
    pub fn invalidate(&self, tenant: &str, store: &str, key: &str) {
        let ns = Namespace {
            tenant: tenant.to_owned(),
            store: store.to_owned(),
            quota_bytes: 0,
        };
        self.entries.invalidate(&ns.key(key));
    }

    /// Whether some app of the fleet caches reads of `ns`.
    fn caches(&self, ns: &Namespace) -> bool {
        self.cached_stores
            .load()
            .get(&ns.tenant)
            .is_some_and(|stores| stores.contains(&ns.store))
    }

    /// Updates this node's entry after a write it made to a cached store,
    /// and tells the fleet.
    fn wrote(&self, ns: &Namespace, op: &WriteOp, outcome: Option<Outcome>) {
        let key = op_key(op);
        match (op, outcome) {
            // A value with its own TTL is not cached past it: read again.
            (
                WriteOp::Set {
                    value, ttl: None, ..
                },
                Some(_),
            ) => self.fill(ns, key, Some(value)),
            (WriteOp::Delete { .. }, Some(_)) => self.fill(ns, key, None),
            (WriteOp::Increment { ttl: None, .. }, Some(Outcome::Counter(n))) => {
                self.fill(ns, key, Some(n.to_string().as_bytes()));
            }
            (WriteOp::CompareAndSwap { new, ttl: None, .. }, Some(Outcome::Swapped(true))) => {
                self.fill(ns, key, Some(new));
            }
            _ => self.entries.invalidate(&ns.key(key)),
        }
        if let Some(announce) = self.announce.get() {
            announce(&ns.tenant, &ns.store, key);
        }
    }

    /// The stores some app of the fleet caches (the registry keeps this
    /// current with the control plane).
    pub fn set_cached_stores(&self, stores: HashSet<(String, String)>) {
        let mut by_tenant: HashMap<String, HashSet<String>> = HashMap::new();
        for (tenant, store) in stores {
            by_tenant.entry(tenant).or_default().insert(store);
        }
        self.cached_stores.store(Arc::new(by_tenant));
    }

    /// How writes are announced to the fleet (fleet mode; once).
    pub fn announce_with(&self, announce: Announce) {
        let _ = self.announce.set(announce);
    }

    /// Entries held now (for tests and metrics).
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn op_key(op: &WriteOp) -> &str {
    match op {
        WriteOp::Set { key, .. }
        | WriteOp::Delete { key }
        | WriteOp::Increment { key, .. }
        | WriteOp::CompareAndSwap { key, .. } => key,
    }
}

/// The KV backend with every write kept in step with the read cache.
pub struct CachingKv {
    inner: Arc<dyn KvBackend>,
    cache: Arc<KvReadCache>,
}

impl CachingKv {
    /// `inner`, its writes reflected in `cache`.
    pub fn new(inner: Arc<dyn KvBackend>, cache: Arc<KvReadCache>) -> Self {
        Self { inner, cache }
    }
}

#[wasmtime_wasi::async_trait]
impl KvBackend for CachingKv {
    fn fault(&self) -> Option<String> {
        self.inner.fault()
    }

    async fn recheck(&self) -> Option<String> {
        self.inner.recheck().await
    }

    async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(ns, key).await
    }

    async fn write(&self, ns: &Namespace, op: WriteOp) -> Result<Outcome, KvError> {
        // Uncached stores (the default) pay nothing: no copy of the value.
        if !self.cache.caches(ns) {
            return self.inner.write(ns, op).await;
        }
        let result = self.inner.write(ns, op.clone()).await;
        self.cache.wrote(ns, &op, result.as_ref().ok().copied());
        result
    }

    async fn write_all(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<usize, KvError> {
        if !self.cache.caches(ns) {
            return self.inner.write_all(ns, ops).await;
        }
        let result = self.inner.write_all(ns, ops.clone()).await;
        for op in &ops {
            self.cache.wrote(ns, op, None);
        }
        result
    }

    async fn sweep_expired(&self) -> Result<(), KvError> {
        self.inner.sweep_expired().await
    }

    async fn forget_tenant(&self, tenant: &str) -> Result<(), KvError> {
        self.inner.forget_tenant(tenant).await
    }

    async fn list(
        &self,
        ns: &Namespace,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KeyPage, KvError> {
        self.inner.list(ns, prefix, cursor, limit).await
    }
}

#[cfg(test)]
#[path = "kv_cache_tests.rs"]
mod tests;
