//! Who serves a request: deployments, the router and the registry that
//! deploys, activates and rolls back versions.

mod apps;
mod caps;
mod deployment;
mod deploys;
mod error;
mod fleet_sync;
mod http_caps;
mod limits;
mod loader;
mod ownership;
pub mod registry;
pub mod router;
mod tenants;
pub mod tokens;

pub use caps::{MAX_UPLOADS_IN_FLIGHT, RESERVED_TENANT_NAMES, RegistryCaps, TenantSlots};
pub use deployment::{Deployment, DeploymentSpec, LOCAL_TENANT, Slots, local_capabilities};
pub use error::RegistryError;
pub use fleet_sync::Synced;
pub use http_caps::{
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_REQUEST_BODY_BYTES, DEFAULT_MAX_RESPONSE_BODY_BYTES,
    DEFAULT_MAX_URI_BYTES, HttpLimits,
};
pub use limits::{effective_http_limits, effective_limits, effective_overrides};
pub use loader::{DEFAULT_TENANT_POOL_DIVISOR, default_tenant_max_concurrency};
pub use registry::Registry;

use std::sync::Arc;

/// Maps a request's host and path to the deployment that serves it.
pub trait RouteTable: Send + Sync + 'static {
    /// The deployment for `host` (without port, lower-case) and `path`.
    fn resolve(&self, host: &str, path: &str) -> Option<Arc<Deployment>>;
}
