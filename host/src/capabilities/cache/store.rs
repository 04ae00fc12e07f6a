//! The cache's core, with no WIT in sight: a byte-bounded moka cache keyed
//! by (tenant, key), a tag index for purges, and the in-flight fills that
//! make concurrent misses wait for one filler.

use bytes::Bytes;
use moka::notification::RemovalCause;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Bytes the cache holds by default: 256 MiB, a few thousand rendered
/// pages or resized images per node.
pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 256 << 20;

/// Largest entry (body plus headers): 8 MiB, so one entry can never push
/// out more than a small share of the cache.
pub const MAX_CACHE_ENTRY_BYTES: usize = 8 << 20;

/// Longest key.
pub const MAX_CACHE_KEY_BYTES: usize = 1024;

/// Tags per entry, and the longest tag.
pub const MAX_CACHE_TAGS: usize = 16;
/// Longest tag.
pub const MAX_CACHE_TAG_BYTES: usize = 128;

/// Longest a waiter waits for another request's fill before filling
/// itself: long enough for a slow origin, short of stalling a page.
pub const FILL_WAIT: Duration = Duration::from_secs(5);

/// Why a put was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// Over [`MAX_CACHE_ENTRY_BYTES`].
    #[error("the entry is over {MAX_CACHE_ENTRY_BYTES} bytes")]
    TooLarge,
    /// Empty or over [`MAX_CACHE_KEY_BYTES`].
    #[error("the key must be 1-{MAX_CACHE_KEY_BYTES} bytes")]
    InvalidKey,
    /// Too many tags, or a bad one.
    #[error("at most {MAX_CACHE_TAGS} tags of 1-{MAX_CACHE_TAG_BYTES} bytes")]
    InvalidTag,
}

/// One stored value.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    /// The body.
    pub body: Bytes,
    /// Headers kept with it.
    pub headers: Vec<(String, String)>,
    /// Tags to purge it by.
    pub tags: Vec<String>,
    /// When it was stored.
    pub stored: Instant,
    /// Fresh for this long.
    pub ttl: Duration,
    /// Then stale-but-servable for this long.
    pub swr: Duration,
}

impl CacheEntry {
    /// Bytes it costs the cache.
    pub fn weight(&self, key: &str) -> usize {
        self.body.len()
            + key.len()
            + self
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>()
            + self.tags.iter().map(String::len).sum::<usize>()
            + 64
    }

    /// Whether it is still fresh at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.stored + self.ttl
    }
}

/// What a lookup found.
pub enum Lookup {
    /// Fresh.
    Hit(Arc<CacheEntry>),
    /// Stale; `refresh` is held by the one caller who should refresh it.
    Stale(Arc<CacheEntry>, Option<FillGuard>),
    /// Missing; the caller must fill it (the guard releases waiters when
    /// dropped, put or not).
    Fill(FillGuard),
}

struct Expiry;

impl moka::Expiry<String, Arc<CacheEntry>> for Expiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<CacheEntry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl + value.swr)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<CacheEntry>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl + value.swr)
    }
}

/// The node's cache, shared by every tenant (namespaced by key prefix).
pub struct CacheStore {
    entries: moka::sync::Cache<String, Arc<CacheEntry>>,
    tags: Arc<Mutex<HashMap<String, HashSet<String>>>>,
    pending: Mutex<HashMap<String, Arc<Notify>>>,
    me: Weak<CacheStore>,
    /// In a fleet: tells the other nodes of a guest's purge.
    announcer: std::sync::OnceLock<Announcer>,
}

/// A guest's purge, for the other nodes of a fleet to apply too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestPurge {
    /// `purge-tag` of `tag` by the tenant with this data key.
    Tag {
        /// The tenant's data key.
        tenant: String,
        /// The tag.
        tag: String,
    },
    /// `delete` of `key`.
    Key {
        /// The tenant's data key.
        tenant: String,
        /// The key.
        key: String,
    },
}

/// Sends a guest's purge to the other nodes (the daemon's cluster bus).
pub type Announcer = Arc<dyn Fn(GuestPurge) + Send + Sync>;

impl std::fmt::Debug for CacheStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheStore")
            .field("bytes", &self.entries.weighted_size())
            .finish_non_exhaustive()
    }
}

fn full_key(tenant: &str, key: &str) -> String {
    format!("{tenant}\0{key}")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Held by the request that must fill (or refresh) a key.
pub struct FillGuard {
    store: Weak<CacheStore>,
    key: String,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        if let Some(store) = self.store.upgrade()
            && let Some(notify) = lock(&store.pending).remove(&self.key)
        {
            notify.notify_waiters();
        }
    }
}

impl CacheStore {
    /// A cache holding at most `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> Arc<Self> {
        let tags: Arc<Mutex<HashMap<String, HashSet<String>>>> = Arc::default();
        let index = tags.clone();
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|key: &String, value: &Arc<CacheEntry>| {
                u32::try_from(value.weight(key)).unwrap_or(u32::MAX)
            })
            .expire_after(Expiry)
            .support_invalidation_closures()
            .eviction_listener(move |key: Arc<String>, value: Arc<CacheEntry>, cause| {
                // A replaced entry's tags are re-indexed by the put.
                if cause == RemovalCause::Replaced {
                    return;
                }
                let tenant = key.split('\0').next().unwrap_or_default();
                let mut index = lock(&index);
                for tag in &value.tags {
                    let tag_key = full_key(tenant, tag);
                    if let Some(keys) = index.get_mut(&tag_key) {
                        keys.remove(key.as_str());
                        if keys.is_empty() {
                            index.remove(&tag_key);
                        }
                    }
                }
            })
            .build();
        Arc::new_cyclic(|me| Self {
            entries,
            tags,
            pending: Mutex::default(),
            me: me.clone(),
            announcer: std::sync::OnceLock::new(),
        })
    }

    /// In a fleet: `announce` tells the other nodes of each guest purge.
    pub fn set_announcer(&self, announce: Announcer) {
        let _ = self.announcer.set(announce);
    }

    /// Tells the other nodes of `purge`, when this node is in a fleet.
    pub fn announce(&self, purge: GuestPurge) {
        if let Some(announce) = self.announcer.get() {
            announce(purge);
        }
    }

    /// Bytes held now (after pending evictions run).
    pub fn bytes(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
    }

    /// The entry, fresh or stale.
    pub fn get(&self, tenant: &str, key: &str) -> Option<Arc<CacheEntry>> {
        self.entries.get(&full_key(tenant, key))
    }

    /// Stores `entry` under `key`, replacing any; wakes waiters.
    pub fn put(&self, tenant: &str, key: &str, entry: CacheEntry) -> Result<(), CacheError> {
        if key.is_empty() || key.len() > MAX_CACHE_KEY_BYTES {
            return Err(CacheError::InvalidKey);
        }
        if entry.tags.len() > MAX_CACHE_TAGS
            || entry
                .tags
                .iter()
                .any(|t| t.is_empty() || t.len() > MAX_CACHE_TAG_BYTES)
        {
            return Err(CacheError::InvalidTag);
        }
        if entry.weight(key) > MAX_CACHE_ENTRY_BYTES {
            return Err(CacheError::TooLarge);
        }
        let full = full_key(tenant, key);
        {
            let mut index = lock(&self.tags);
            for tag in &entry.tags {
                index
                    .entry(full_key(tenant, tag))
                    .or_default()
                    .insert(full.clone());
            }
        }
        self.entries.insert(full.clone(), Arc::new(entry));
        if let Some(notify) = lock(&self.pending).get(&full) {
            notify.notify_waiters();
        }
        Ok(())
    }

    /// Removes one entry.
    pub fn delete(&self, tenant: &str, key: &str) {
        self.entries.invalidate(&full_key(tenant, key));
    }

    /// Removes every entry of `tenant` tagged `tag`; returns how many.
    pub fn purge_tag(&self, tenant: &str, tag: &str) -> u32 {
        let keys = lock(&self.tags)
            .remove(&full_key(tenant, tag))
            .unwrap_or_default();
        let mut removed = 0;
        for key in keys {
            if self.entries.remove(&key).is_some() {
                removed += 1;
            }
        }
        removed
    }

    /// Removes every entry of `tenant`, or of everyone; returns how many
    /// there were.
    pub fn purge_all(&self, tenant: Option<&str>) -> u64 {
        let prefix = tenant.map(|t| format!("{t}\0"));
        let count = self
            .entries
            .iter()
            .filter(|(key, _)| prefix.as_ref().is_none_or(|p| key.starts_with(p.as_str())))
            .count();
        match tenant {
            None => self.entries.invalidate_all(),
            Some(tenant) => {
                let prefix = format!("{tenant}\0");
                if let Err(err) = self
                    .entries
                    .invalidate_entries_if(move |key, _| key.starts_with(&prefix))
                {
                    tracing::error!(error = %err, "cache purge failed");
                }
            }
        }
        self.entries.run_pending_tasks();
        u64::try_from(count).unwrap_or(u64::MAX)
    }

    fn guard(&self, full: String) -> FillGuard {
        FillGuard {
            store: self.me.clone(),
            key: full,
        }
    }

    /// Hit, stale or fill. A cold key with a fill in flight waits (until
    /// `deadline`, at most [`FILL_WAIT`]) for that fill, then looks again;
    /// past the wait it fills itself.
    pub async fn lookup(&self, tenant: &str, key: &str, deadline: tokio::time::Instant) -> Lookup {
        let full = full_key(tenant, key);
        let deadline = deadline.min(tokio::time::Instant::now() + FILL_WAIT);
        loop {
            let now = Instant::now();
            if let Some(entry) = self.entries.get(&full) {
                if entry.is_fresh(now) {
                    return Lookup::Hit(entry);
                }
                let mut pending = lock(&self.pending);
                let refresh = match pending.contains_key(&full) {
                    true => None,
                    false => {
                        pending.insert(full.clone(), Arc::default());
                        Some(self.guard(full.clone()))
                    }
                };
                return Lookup::Stale(entry, refresh);
            }
            let notify = {
                let mut pending = lock(&self.pending);
                match pending.get(&full) {
                    Some(notify) => notify.clone(),
                    None => {
                        pending.insert(full.clone(), Arc::default());
                        return Lookup::Fill(self.guard(full));
                    }
                }
            };
            let woken = notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            // Filled or released between the checks above and `enable`?
            let still_pending = lock(&self.pending)
                .get(&full)
                .is_some_and(|n| Arc::ptr_eq(n, &notify));
            if !still_pending || self.entries.contains_key(&full) {
                continue;
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                // The filler is too slow: fill without it rather than fail.
                return Lookup::Fill(FillGuard {
                    store: Weak::new(),
                    key: full,
                });
            }
        }
    }
}
