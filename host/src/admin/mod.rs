//! The admin API: JSON over HTTP on its own listener, for the operator and
//! for tenants. The `verge` CLI is its client. Requests parse into an
//! [`Endpoint`] (see `endpoint.rs`); errors map to statuses in one place
//! (`error.rs`). Routes:
//!
//! | method | path | who |
//! |---|---|---|
//! | GET | `/healthz`, `/readyz`, `/metrics` (OpenMetrics text) | anyone: keep the admin listener on a private address |
//! | GET, POST | `/v1/tenants` | operator |
//! | GET | `/v1/tenants/{t}` | t |
//! | DELETE | `/v1/tenants/{t}` | operator |
//! | PUT | `/v1/tenants/{t}/route-grants` `{"route_grants": [...]}` | operator |
//! | PUT | `/v1/tenants/{t}/outbound-grants` `{"outbound_grants": [...]}` | operator |
//! | POST | `/v1/cache/purge` `{"all": true}` | operator |
//! | POST | `/v1/tenants/{t}/cache/purge` `{"tag": T}`, `{"key": K}` or `{"all": true}` | t |
//! | GET | `/v1/tenants/{t}/apps` | t |
//! | GET, PUT, DELETE | `/v1/tenants/{t}/apps/{a}` (PUT body: the manifest) | t |
//! | GET, POST | `/v1/tenants/{t}/apps/{a}/versions` (POST body: the `.wasm`; `?activate=false` to only store) | t |
//! | POST | `/v1/tenants/{t}/apps/{a}/activate` `{"version": N}` | t |
//! | POST | `/v1/tenants/{t}/apps/{a}/rollback` `{"version": N?}` | t |
//! | PUT, DELETE | `/v1/tenants/{t}/apps/{a}/config/{name}` and `/secrets/{name}` (PUT body: the value) | t |
//! | GET | `/v1/tenants/{t}/apps/{a}/logs?after=SEQ&wait=SECONDS` | t |
//! | GET | `/v1/nodes`: the fleet's nodes, revision and lag | operator |
//! | GET | `/v1/tenants/{t}/apps/{a}/nodes`: the version each node serves | t |
//! | GET, PUT, DELETE, POST | `/v1/tenants/{t}/kv/{store}/...` (see [`kv`]) | t |
//!
//! "t" means the tenant's own token or the operator's.

mod auth;
mod bodies;
mod dto;
pub mod endpoint;
mod error;
mod fleet;
pub mod kv;
mod routes;
mod urls;

pub use auth::Principal;
pub use endpoint::Endpoint;
pub use error::{ApiError, status_of};
pub use routes::{AdminApi, MAX_ADMIN_JSON_BYTES};
pub use urls::PublicUrls;
