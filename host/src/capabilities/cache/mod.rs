//! `verge:edge/cache`: a thin shim from WIT to [`CacheStore`]. The tenant
//! is fixed by the deployment, so a guest can only name its own entries;
//! the fill guards a request holds are released when it ends.

mod store;

pub use store::{
    Announcer, CacheEntry, CacheError, CacheStore, DEFAULT_CACHE_CAPACITY_BYTES, FILL_WAIT,
    FillGuard, GuestPurge, Lookup, MAX_CACHE_ENTRY_BYTES, MAX_CACHE_KEY_BYTES, MAX_CACHE_TAG_BYTES,
    MAX_CACHE_TAGS,
};

use super::bindings::verge::edge::cache as wit;
use super::{PerRequest, RequestScope};
use crate::telemetry::metrics::Metrics;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker};

/// One request's cache access.
#[derive(Default)]
pub struct CacheCtx {
    store: Option<Arc<CacheStore>>,
    tenant: Arc<str>,
    metrics: Option<Arc<Metrics>>,
    deadline: Option<tokio::time::Instant>,
    /// Fills and refreshes this request owes, released when the request's
    /// store is dropped. Made on the first lookup that needs one, so a
    /// request that never fills allocates nothing.
    guards: Option<HashMap<String, FillGuard>>,
    /// Purges this request has sent to the rest of the fleet.
    announced: u32,
}

/// Guest purges (`purge-tag`, `delete`) one request sends to the other
/// nodes of a fleet: each is a Redis `PUBLISH` every node applies, so a
/// guest looping over purges must not flood the shared Redis. Past it a
/// purge applies on this node only (the entries' TTLs bound the rest).
pub const MAX_FLEET_PURGES_PER_REQUEST: u32 = 16;

impl Clone for CacheCtx {
    /// The same access for another request: fills are never shared.
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            tenant: self.tenant.clone(),
            metrics: self.metrics.clone(),
            deadline: self.deadline,
            guards: None,
            announced: 0,
        }
    }
}

impl CacheCtx {
    /// Access to `store` as `tenant`.
    pub fn new(store: Arc<CacheStore>, tenant: &str) -> Self {
        Self {
            store: Some(store),
            tenant: tenant.into(),
            ..Self::default()
        }
    }

    /// Sends `purge` to the other nodes of a fleet, within
    /// [`MAX_FLEET_PURGES_PER_REQUEST`].
    fn announce(&mut self, purge: GuestPurge) {
        let Some(store) = &self.store else {
            return;
        };
        if self.announced >= MAX_FLEET_PURGES_PER_REQUEST {
            return;
        }
        self.announced += 1;
        store.announce(purge);
    }

    /// Counts lookups in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count(&self, result: &'static str) {
        if let Some(metrics) = &self.metrics {
            metrics.cache_lookup(crate::storage::records::tenant_label(&self.tenant), result);
        }
    }

    fn hold(&mut self, key: &str, guard: FillGuard) {
        self.guards
            .get_or_insert_with(HashMap::new)
            .insert(key.to_owned(), guard);
    }

    fn release(&mut self, key: &str) {
        if let Some(guards) = &mut self.guards {
            guards.remove(key);
        }
    }
}

impl PerRequest for CacheCtx {
    /// A fresh copy: no fill guards, waits end by the request's wall clock.
    fn for_request(mut self, scope: &RequestScope) -> Self {
        self.guards = None;
        self.announced = 0;
        self.deadline = Some(tokio::time::Instant::now() + scope.wall_clock);
        self
    }
}

impl From<&CacheEntry> for wit::Entry {
    fn from(entry: &CacheEntry) -> Self {
        let now = Instant::now();
        let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        Self {
            body: entry.body.to_vec(),
            headers: entry.headers.clone(),
            age_seconds: secs(now.saturating_duration_since(entry.stored)),
            fresh_seconds: secs((entry.stored + entry.ttl).saturating_duration_since(now)),
        }
    }
}

impl From<CacheError> for wit::Error {
    fn from(err: CacheError) -> Self {
        match err {
            CacheError::TooLarge => Self::TooLarge,
            CacheError::InvalidKey => Self::InvalidKey,
            CacheError::InvalidTag => Self::InvalidTag,
        }
    }
}

impl wit::Host for CacheCtx {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<wit::Entry>> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let found = store
            .get(&self.tenant, &key)
            .filter(|e| e.is_fresh(Instant::now()));
        self.count(if found.is_some() { "hit" } else { "miss" });
        Ok(found.as_deref().map(wit::Entry::from))
    }

    async fn put(
        &mut self,
        key: String,
        body: Vec<u8>,
        options: wit::PutOptions,
    ) -> wasmtime::Result<Result<(), wit::Error>> {
        let Some(store) = &self.store else {
            return Ok(Ok(()));
        };
        let entry = CacheEntry {
            body: Bytes::from(body),
            headers: options.headers,
            tags: options.tags,
            stored: Instant::now(),
            ttl: Duration::from_secs(options.ttl_seconds.max(1).into()),
            swr: Duration::from_secs(options.stale_while_revalidate_seconds.into()),
        };
        let result = store.put(&self.tenant, &key, entry);
        // Filled (or refused): either way this request no longer blocks others.
        self.release(&key);
        Ok(result.map_err(wit::Error::from))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        if let Some(store) = &self.store {
            store.delete(&self.tenant, &key);
            let tenant = self.tenant.to_string();
            self.announce(GuestPurge::Key { tenant, key });
        }
        Ok(())
    }

    async fn purge_tag(&mut self, tag: String) -> wasmtime::Result<u32> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let purged = store.purge_tag(&self.tenant, &tag);
        let tenant = self.tenant.to_string();
        self.announce(GuestPurge::Tag { tenant, tag });
        Ok(purged)
    }

    async fn lookup(&mut self, key: String) -> wasmtime::Result<wit::LookupResult> {
        let Some(store) = self.store.clone() else {
            return Ok(wit::LookupResult::Fill);
        };
        let deadline = self
            .deadline
            .unwrap_or_else(|| tokio::time::Instant::now() + FILL_WAIT);
        Ok(match store.lookup(&self.tenant, &key, deadline).await {
            Lookup::Hit(entry) => {
                self.count("hit");
                wit::LookupResult::Hit(wit::Entry::from(&*entry))
            }
            Lookup::Stale(entry, refresh) => {
                self.count("stale");
                let revalidate = refresh.is_some();
                if let Some(guard) = refresh {
                    self.hold(&key, guard);
                }
                wit::LookupResult::Stale(wit::StaleEntry {
                    entry: wit::Entry::from(&*entry),
                    revalidate,
                })
            }
            Lookup::Fill(guard) => {
                self.count("fill");
                self.hold(&key, guard);
                wit::LookupResult::Fill
            }
        })
    }
}

/// Links `verge:edge/cache` into `linker`, over the context `get` projects.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut CacheCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<CacheCtx>>(linker, get)
}

#[cfg(test)]
mod tests;
