//! The host-wide backends behind the capabilities and the per-app contexts
//! made from them.

use super::{cache, fetch, geo, kv};
use crate::storage::kv::KvBackend;
use std::sync::Arc;

/// The host-wide backends behind the capabilities, one set per daemon and
/// shared by every app: the KV store, the outbound client and the geo
/// database.
#[derive(Clone)]
pub struct Services {
    /// Durable key-value storage (its writes kept in step with
    /// `kv_cache`).
    pub kv: Arc<dyn KvBackend>,
    /// This node's KV read cache, for apps that set a cache TTL.
    pub kv_cache: Arc<super::kv_cache::KvReadCache>,
    /// The outbound HTTP client and its address policy.
    pub fetch: Arc<fetch::FetchClient>,
    /// The geo database (possibly none).
    pub geo: Arc<geo::GeoDb>,
    /// The edge cache.
    pub cache: Arc<cache::CacheStore>,
    /// Where requests and capability calls are counted.
    pub metrics: Arc<crate::telemetry::metrics::Metrics>,
    /// The outbound clients of tenants with grants, by data key, with the
    /// grants each was built for.
    pub granted_fetch: Arc<std::sync::Mutex<GrantedClients>>,
}

/// Outbound clients by tenant data key, with the grants each was built for.
pub type GrantedClients =
    std::collections::HashMap<String, (Vec<fetch::OutboundGrant>, Arc<fetch::FetchClient>)>;

impl Services {
    /// Fetch for the tenant of `data_key` (named `tenant` in metrics) with
    /// the operator's outbound `grants`: through the shared client when it
    /// has none, else through its own (its own policy and pool).
    pub fn tenant_fetch_ctx(
        &self,
        tenant: &str,
        data_key: &str,
        grants: &[fetch::OutboundGrant],
        allow: fetch::AllowList,
    ) -> fetch::FetchCtx {
        let client = if grants.is_empty() {
            self.fetch.clone()
        } else {
            let mut clients = self
                .granted_fetch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match clients.get(data_key) {
                Some((built_for, client)) if built_for == grants => client.clone(),
                _ => {
                    let client = Arc::new(self.fetch.for_grants(grants));
                    clients.insert(data_key.to_owned(), (grants.to_vec(), client.clone()));
                    client
                }
            }
        };
        fetch::FetchCtx::new(client, allow)
            .with_metrics(self.metrics.clone(), tenant)
            .with_cache(self.cache.clone(), data_key)
            .with_tenant_sockets(data_key)
    }

    /// `tenant`'s view of the edge cache, counted in the metrics.
    pub fn cache_ctx(&self, tenant: &str) -> cache::CacheCtx {
        cache::CacheCtx::new(self.cache.clone(), tenant).with_metrics(self.metrics.clone())
    }

    /// KV for `tenant`, limited to `stores` (`None`: any), counted in the
    /// metrics.
    pub fn kv_ctx(&self, tenant: &str, stores: Option<Vec<String>>, quota_bytes: u64) -> kv::KvCtx {
        kv::KvCtx::new(self.kv.clone(), tenant, stores, quota_bytes)
            .with_metrics(self.metrics.clone())
    }

    /// Lookups in the geo database.
    pub fn geo_ctx(&self) -> geo::GeoCtx {
        geo::GeoCtx::new(self.geo.clone())
    }
}
