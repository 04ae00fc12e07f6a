//! The `verge:edge` interfaces, one module each: a context type carried in
//! the request's store, the WIT `Host` impl over it, and `add_to_linker`.

pub mod cache;
pub mod config;
pub mod fetch;
pub mod geo;
pub mod kv;
pub mod log;

use crate::runtime::RequestStateLinker;
use crate::storage::kv::KvBackend;
use std::sync::Arc;

/// The host-wide backends behind the capabilities, one set per daemon and
/// shared by every app: the KV store, the outbound client and the geo
/// database.
#[derive(Clone)]
pub struct Services {
    /// Durable key-value storage.
    pub kv: Arc<dyn KvBackend>,
    /// The outbound HTTP client and its address policy.
    pub fetch: Arc<fetch::FetchClient>,
    /// The geo database (possibly none).
    pub geo: Arc<geo::GeoDb>,
    /// The edge cache.
    pub cache: Arc<cache::CacheStore>,
    /// Where requests and capability calls are counted.
    pub metrics: Arc<crate::telemetry::metrics::Metrics>,
}

/// Links every capability this host provides.
pub(crate) fn add_to_linker(linker: &mut RequestStateLinker) -> wasmtime::Result<()> {
    cache::add_to_linker(linker)?;
    config::add_to_linker(linker)?;
    fetch::add_to_linker(linker)?;
    geo::add_to_linker(linker)?;
    kv::add_to_linker(linker)?;
    log::add_to_linker(linker)?;
    Ok(())
}
