//! The admin API's endpoints as a type: a request's method, path and query
//! parse into one [`Endpoint`] (or 404 / 405) before anything else runs, so
//! the handlers need no order among themselves. The table in
//! [`super`](crate::admin) lists them.

use super::error::ApiError;
use crate::tenancy::registry::VarKind;
use http::Method;

/// Where an endpoint's caller must stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// No token: health, readiness and metrics.
    Public,
    /// The operator token.
    Operator,
    /// The operator, or this tenant's token.
    Tenant(&'a str),
}

/// What an endpoint reads from the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// Nothing (the public endpoints do not read it).
    None,
    /// A JSON document or a variable's value, at most
    /// [`MAX_ADMIN_JSON_BYTES`](super::MAX_ADMIN_JSON_BYTES).
    Small,
    /// A KV value or import, at most one KV value.
    KvValue,
    /// A component upload, spooled to a file as it arrives.
    Upload,
}

/// One admin endpoint, with the names its path carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /healthz`
    Health,
    /// `GET /readyz`
    Ready,
    /// `GET /metrics`
    Metrics,
    /// `GET /v1/tenants`
    ListTenants,
    /// `POST /v1/tenants`
    CreateTenant,
    /// `GET /v1/tenants/{t}`
    GetTenant(String),
    /// `DELETE /v1/tenants/{t}`
    DeleteTenant(String),
    /// `PUT /v1/tenants/{t}/route-grants`
    SetRouteGrants(String),
    /// `PUT /v1/tenants/{t}/outbound-grants`
    SetOutboundGrants(String),
    /// `POST /v1/cache/purge`
    PurgeNode,
    /// `GET /v1/nodes`
    Nodes,
    /// `POST /v1/fleet/accept` `{"revision": N}`: this node accepts the
    /// fleet's older control plane.
    FleetAccept,
    /// `POST /v1/fleet/reseed`: this node writes its control plane over
    /// the fleet's Redis, which went back in time.
    FleetReseed,
    /// `POST /v1/tenants/{t}/cache/purge`
    PurgeTenant(String),
    /// `GET /v1/tenants/{t}/apps`
    ListApps(String),
    /// `GET /v1/tenants/{t}/apps/{a}`
    GetApp(AppRef),
    /// `PUT /v1/tenants/{t}/apps/{a}`
    PutApp(AppRef),
    /// `DELETE /v1/tenants/{t}/apps/{a}`
    DeleteApp(AppRef),
    /// `GET /v1/tenants/{t}/apps/{a}/versions`
    ListVersions(AppRef),
    /// `POST /v1/tenants/{t}/apps/{a}/versions[?activate=false]`
    Upload(AppRef, bool),
    /// `POST /v1/tenants/{t}/apps/{a}/activate`
    Activate(AppRef),
    /// `POST /v1/tenants/{t}/apps/{a}/rollback`
    Rollback(AppRef),
    /// `PUT /v1/tenants/{t}/apps/{a}/{config|secrets}/{name}`
    SetVar(AppRef, VarKind, String),
    /// `DELETE /v1/tenants/{t}/apps/{a}/{config|secrets}/{name}`
    UnsetVar(AppRef, VarKind, String),
    /// `GET /v1/tenants/{t}/apps/{a}/nodes`: the version each fleet node
    /// serves (what `verge deploy --wait` polls).
    AppNodes(AppRef),
    /// `GET /v1/tenants/{t}/apps/{a}/logs?after=N&wait=S`
    Logs(AppRef, u64, u64),
    /// `/v1/tenants/{t}/kv/{store}/...`
    Kv(String, String, KvEndpoint),
}

/// An app named by its tenant and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRef {
    /// The tenant.
    pub tenant: String,
    /// The app.
    pub app: String,
}

/// The KV endpoints under `/v1/tenants/{t}/kv/{store}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvEndpoint {
    /// `GET /keys?prefix=&cursor=&limit=`
    List {
        /// Keys starting with this.
        prefix: String,
        /// Keys after this.
        cursor: Option<String>,
        /// At most this many.
        limit: u32,
    },
    /// `GET /keys/{key}`
    Get(String),
    /// `PUT /keys/{key}?ttl=SECONDS`
    Put(String, Option<u32>),
    /// `DELETE /keys/{key}`
    Delete(String),
    /// `POST /import`
    Import,
}

/// Keys one KV listing returns unless `limit` says otherwise.
pub const DEFAULT_KV_LIST_LIMIT: u32 = 100;

impl Endpoint {
    /// The endpoint `method` on `path` (with `query`) names.
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Self, ApiError> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let m = method.clone();
        let name = |s: &&str| (*s).to_owned();
        let app = |t: &&str, a: &&str| AppRef {
            tenant: name(t),
            app: name(a),
        };
        let endpoint = match (segments.as_slice(), m) {
            (["healthz"], _) => Self::Health,
            (["readyz"], _) => Self::Ready,
            (["metrics"], _) => Self::Metrics,
            (["v1", "tenants", t, "kv", store, ..], _) => {
                let prefix_len = format!("/v1/tenants/{t}/kv/{store}").len();
                let rest = path.get(prefix_len..).unwrap_or("");
                Self::Kv(
                    name(t),
                    name(store),
                    KvEndpoint::parse(method, rest, query)?,
                )
            }
            (["v1", "tenants"], Method::GET) => Self::ListTenants,
            (["v1", "tenants"], Method::POST) => Self::CreateTenant,
            (["v1", "tenants", t], Method::GET) => Self::GetTenant(name(t)),
            (["v1", "tenants", t], Method::DELETE) => Self::DeleteTenant(name(t)),
            (["v1", "tenants", t, "route-grants"], Method::PUT) => Self::SetRouteGrants(name(t)),
            (["v1", "tenants", t, "outbound-grants"], Method::PUT) => {
                Self::SetOutboundGrants(name(t))
            }
            (["v1", "cache", "purge"], Method::POST) => Self::PurgeNode,
            (["v1", "nodes"], Method::GET) => Self::Nodes,
            (["v1", "fleet", "accept"], Method::POST) => Self::FleetAccept,
            (["v1", "fleet", "reseed"], Method::POST) => Self::FleetReseed,
            (["v1", "tenants", t, "cache", "purge"], Method::POST) => Self::PurgeTenant(name(t)),
            (["v1", "tenants", t, "apps"], Method::GET) => Self::ListApps(name(t)),
            (["v1", "tenants", t, "apps", a], Method::GET) => Self::GetApp(app(t, a)),
            (["v1", "tenants", t, "apps", a], Method::PUT) => Self::PutApp(app(t, a)),
            (["v1", "tenants", t, "apps", a], Method::DELETE) => Self::DeleteApp(app(t, a)),
            (["v1", "tenants", t, "apps", a, "versions"], Method::GET) => {
                Self::ListVersions(app(t, a))
            }
            (["v1", "tenants", t, "apps", a, "versions"], Method::POST) => {
                let store_only = query.is_some_and(|q| q.split('&').any(|p| p == "activate=false"));
                Self::Upload(app(t, a), !store_only)
            }
            (["v1", "tenants", t, "apps", a, "activate"], Method::POST) => {
                Self::Activate(app(t, a))
            }
            (["v1", "tenants", t, "apps", a, "rollback"], Method::POST) => {
                Self::Rollback(app(t, a))
            }
            (
                [
                    "v1",
                    "tenants",
                    t,
                    "apps",
                    a,
                    kind @ ("config" | "secrets"),
                    var,
                ],
                m,
            ) if m == Method::PUT || m == Method::DELETE => {
                let kind = if *kind == "config" {
                    VarKind::Config
                } else {
                    VarKind::Secret
                };
                match m {
                    Method::PUT => Self::SetVar(app(t, a), kind, name(var)),
                    _ => Self::UnsetVar(app(t, a), kind, name(var)),
                }
            }
            (["v1", "tenants", t, "apps", a, "nodes"], Method::GET) => Self::AppNodes(app(t, a)),
            (["v1", "tenants", t, "apps", a, "logs"], Method::GET) => Self::Logs(
                app(t, a),
                number(query, "after").unwrap_or(0),
                number(query, "wait").unwrap_or(0),
            ),
            (["v1", ..], _) if known(&segments) => {
                return Err(ApiError::MethodNotAllowed);
            }
            _ => return Err(ApiError::NotFound),
        };
        Ok(endpoint)
    }

    /// Who may call it.
    pub fn access(&self) -> Access<'_> {
        match self {
            Self::Health | Self::Ready | Self::Metrics => Access::Public,
            Self::ListTenants
            | Self::CreateTenant
            | Self::DeleteTenant(_)
            | Self::SetRouteGrants(_)
            | Self::SetOutboundGrants(_)
            | Self::PurgeNode
            | Self::Nodes
            | Self::FleetAccept
            | Self::FleetReseed => Access::Operator,
            Self::GetTenant(t) | Self::PurgeTenant(t) | Self::ListApps(t) | Self::Kv(t, _, _) => {
                Access::Tenant(t)
            }
            Self::GetApp(a)
            | Self::PutApp(a)
            | Self::DeleteApp(a)
            | Self::ListVersions(a)
            | Self::Upload(a, _)
            | Self::Activate(a)
            | Self::Rollback(a)
            | Self::SetVar(a, _, _)
            | Self::UnsetVar(a, _, _)
            | Self::AppNodes(a)
            | Self::Logs(a, _, _) => Access::Tenant(&a.tenant),
        }
    }

    /// What it reads from the body.
    pub fn body(&self) -> BodyKind {
        match self {
            Self::Health | Self::Ready | Self::Metrics => BodyKind::None,
            Self::Upload(..) => BodyKind::Upload,
            Self::Kv(..) => BodyKind::KvValue,
            _ => BodyKind::Small,
        }
    }
}

/// Whether some endpoint lives at this path (for 405 rather than 404).
fn known(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["v1", "tenants"]
            | ["v1", "tenants", _]
            | [
                "v1",
                "tenants",
                _,
                "route-grants" | "outbound-grants" | "apps"
            ]
            | ["v1", "cache", "purge"]
            | ["v1", "nodes"]
            | ["v1", "fleet", "accept"]
            | ["v1", "tenants", _, "cache", "purge"]
            | ["v1", "tenants", _, "apps", _]
            | [
                "v1",
                "tenants",
                _,
                "apps",
                _,
                "versions" | "activate" | "rollback" | "logs" | "nodes"
            ]
            | ["v1", "tenants", _, "apps", _, "config" | "secrets", _]
    )
}

impl KvEndpoint {
    /// The KV endpoint `method` on `rest` (the path after
    /// `/kv/{store}`) names.
    fn parse(method: &Method, rest: &str, query: Option<&str>) -> Result<Self, ApiError> {
        match (rest, method) {
            ("/keys", &Method::GET) => Ok(Self::List {
                prefix: percent_decode(param(query, "prefix").unwrap_or(""))?,
                cursor: param(query, "cursor").map(percent_decode).transpose()?,
                limit: number(query, "limit")
                    .and_then(|l| u32::try_from(l).ok())
                    .unwrap_or(DEFAULT_KV_LIST_LIMIT),
            }),
            ("/import", &Method::POST) => Ok(Self::Import),
            ("/keys" | "/import", _) => Err(ApiError::MethodNotAllowed),
            (path, method) => {
                let key = path.strip_prefix("/keys/").ok_or(ApiError::NotFound)?;
                let key = percent_decode(key)?;
                match *method {
                    Method::GET => Ok(Self::Get(key)),
                    Method::PUT => Ok(Self::Put(
                        key,
                        number(query, "ttl").and_then(|t| u32::try_from(t).ok()),
                    )),
                    Method::DELETE => Ok(Self::Delete(key)),
                    _ => Err(ApiError::MethodNotAllowed),
                }
            }
        }
    }
}

/// The value of `name` in a query string.
fn param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}

/// The number `name` carries in a query string (none if absent or not one).
fn number(query: Option<&str>, name: &str) -> Option<u64> {
    param(query, name).and_then(|v| v.parse().ok())
}

/// Decodes `%XX` escapes in a path segment (keys may contain `/`, spaces...).
pub fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::BadRequest(why.into());
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| bad("bad %-escape in the key"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad("bad %-escape in the key"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad("the key is not UTF-8"))
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
