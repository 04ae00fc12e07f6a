//! The operator's settings for the fetch and geo capabilities, and the
//! host-wide services built from them.

use crate::capabilities::Services;
use crate::capabilities::fetch::{AddressPolicy, FetchClient};
use crate::capabilities::geo::{GEO_RELOAD_INTERVAL, GeoDb};
use crate::storage::kv::KvBackend;
use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::Arc;

/// Operator settings of the fetch and geo capabilities.
#[derive(Debug, Clone)]
pub struct CapabilityConfig {
    /// Private ranges fetch may reach anyway (e.g. `10.0.0.0/8` for an
    /// internal origin; tests allow `127.0.0.1/32`). Public addresses are
    /// always reachable when an app's allow-list names them.
    pub outbound_allow_cidrs: Vec<ipnet::IpNet>,
    /// PEM file of extra CA certificates trusted for outbound TLS, beside
    /// the webpki roots.
    pub outbound_ca_file: Option<PathBuf>,
    /// The `.mmdb` geo database; none = geo lookups answer none.
    pub geo_database: Option<PathBuf>,
    /// Peers whose `Forwarded` / `X-Forwarded-For` name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Bytes the edge cache may hold.
    pub cache_capacity_bytes: u64,
}

impl Default for CapabilityConfig {
    fn default() -> Self {
        Self {
            outbound_allow_cidrs: Vec::new(),
            outbound_ca_file: None,
            geo_database: None,
            trusted_proxies: Vec::new(),
            cache_capacity_bytes: crate::capabilities::cache::DEFAULT_CACHE_CAPACITY_BYTES,
        }
    }
}

impl CapabilityConfig {
    /// Builds the host-wide services over `kv`: fails with the file and the
    /// reason when the CA file or the geo database is unusable.
    pub fn services(&self, kv: Arc<dyn KvBackend>) -> anyhow::Result<Services> {
        use rustls::pki_types::{CertificateDer, pem::PemObject as _};
        let mut roots = Vec::new();
        if let Some(path) = &self.outbound_ca_file {
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading the outbound CA file {}", path.display()))?
            {
                roots.push(cert.with_context(|| format!("parsing {}", path.display()))?);
            }
        }
        let fetch = FetchClient::new(AddressPolicy::new(self.outbound_allow_cidrs.clone()), roots)
            .context("building the outbound TLS configuration")?;
        if let Some(open_files) = super::raise_open_file_limit() {
            fetch
                .sockets()
                .limit_to(crate::capabilities::fetch::origin_socket_cap(
                    open_files,
                    crate::server::limits::RESERVED_FDS,
                ));
        }
        let geo = match &self.geo_database {
            Some(path) => {
                let db = GeoDb::open(path)?;
                db.watch(GEO_RELOAD_INTERVAL);
                db
            }
            None => GeoDb::none(),
        };
        let kv_cache = Arc::new(crate::capabilities::kv_cache::KvReadCache::default());
        Ok(Services {
            kv: Arc::new(crate::capabilities::kv_cache::CachingKv::new(
                kv,
                kv_cache.clone(),
            )),
            kv_cache,
            fetch: Arc::new(fetch),
            geo,
            cache: crate::capabilities::cache::CacheStore::new(self.cache_capacity_bytes),
            metrics: Arc::default(),
            granted_fetch: Arc::default(),
        })
    }
}
