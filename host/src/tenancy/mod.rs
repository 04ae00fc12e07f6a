//! Who serves a request: deployments, the router and the registry that
//! deploys, activates and rolls back versions.

mod caps;
mod deploys;
mod error;
mod limits;
mod loader;
mod ownership;
pub mod registry;
pub mod router;
mod tenants;
pub mod tokens;

pub use caps::{MAX_UPLOADS_IN_FLIGHT, RESERVED_TENANT_NAMES, RegistryCaps, TenantSlots};
pub use error::RegistryError;
pub use limits::{effective_http_limits, effective_limits, effective_overrides};
pub use loader::DEFAULT_TENANT_MAX_CONCURRENCY;
pub use registry::Registry;

use crate::capabilities::config::ConfigCtx;
use crate::capabilities::fetch::FetchCtx;
use crate::capabilities::geo::GeoCtx;
use crate::capabilities::kv::KvCtx;
use crate::runtime::Function;
use crate::server::HttpLimits;
use std::sync::Arc;

/// One running version of one app: the compiled function and what it may use.
pub struct Deployment {
    /// The owning tenant (empty in local-run mode).
    pub tenant: Arc<str>,
    /// The app's name, for logs and metrics.
    pub app: Arc<str>,
    /// The version number serving (0 in local-run mode).
    pub version: u32,
    /// The compiled function.
    pub function: Function,
    /// The app's configuration variables and secrets.
    pub config: ConfigCtx,
    /// Concurrency caps this deployment's requests must also pass.
    pub slots: Slots,
    /// What the app may reach in KV.
    pub kv: KvCtx,
    /// Where the app may fetch from.
    pub fetch: FetchCtx,
    /// The geo database.
    pub geo: GeoCtx,
    /// The tenant's view of the edge cache.
    pub cache: crate::capabilities::cache::CacheCtx,
    /// Where the app's guest logs are kept for `verge logs` (none in
    /// local-run mode, where they go to the terminal).
    pub logs: Option<Arc<crate::telemetry::log_ring::LogRing>>,
    /// The HTTP caps for this app (at most the server's).
    pub http_limits: HttpLimits,
}

/// The tenant-wide and app-wide concurrency caps a request must pass, after
/// the global one. `None` means uncapped at that level.
#[derive(Debug, Clone, Default)]
pub struct Slots {
    /// Shared by every app of the tenant.
    pub tenant: Option<Arc<tokio::sync::Semaphore>>,
    /// Shared by every version of the app.
    pub app: Option<Arc<tokio::sync::Semaphore>>,
    /// Whether the tenant's calls start on the background lane; shared by
    /// every app of the tenant.
    pub heavy: Arc<crate::runtime::lane::HeavyMark>,
}

/// Maps a request's host and path to the deployment that serves it.
pub trait RouteTable: Send + Sync + 'static {
    /// The deployment for `host` (without port, lower-case) and `path`.
    fn resolve(&self, host: &str, path: &str) -> Option<Arc<Deployment>>;
}
