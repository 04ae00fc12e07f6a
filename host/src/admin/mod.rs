//! The admin API: JSON over HTTP on its own listener, for the operator and
//! for tenants. The `verge` CLI is its client. Routes (all under `/v1`):
//!
//! | method | path | who |
//! |---|---|---|
//! | GET, POST | `/tenants` | operator |
//! | GET, DELETE | `/tenants/{t}` | operator (GET: the tenant too) |
//! | GET | `/tenants/{t}/apps` | t |
//! | GET, PUT, DELETE | `/tenants/{t}/apps/{a}` | t |
//! | GET, POST | `/tenants/{t}/apps/{a}/versions` (POST body: the `.wasm`; `?activate=false` to only store) | t |
//! | POST | `/tenants/{t}/apps/{a}/activate` `{"version": N}` | t |
//! | POST | `/tenants/{t}/apps/{a}/rollback` `{"version": N?}` | t |
//! | PUT, DELETE | `/tenants/{t}/apps/{a}/config/{name}` and `/secrets/{name}` (PUT body: the value) | t |
//!
//! | any | `/tenants/{t}/kv/{store}/...` (see [`kv`]) | t |
//!
//! `/healthz`, `/readyz` and `/metrics` (Prometheus/OpenMetrics text) need
//! no token: keep the admin listener on a private address.

mod auth;
mod bodies;
mod dto;
pub mod endpoint;
mod error;
pub mod kv;
mod routes;

pub use auth::Principal;
pub use endpoint::Endpoint;
pub use error::{ApiError, status_of};
pub use routes::{AdminApi, MAX_ADMIN_JSON_BYTES};
