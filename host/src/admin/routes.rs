//! Admin API request handling: auth, routing, JSON in and out, and the one
//! mapping from control-plane errors to HTTP statuses.

use super::auth::authenticate;
use super::bodies::{discard_body, read_body, spool_body};
use super::error::{ApiError, status_of};
use crate::server::limits::BodyPolicy;
use crate::storage::records::{AppManifest, AppRecord, LimitOverrides, TenantRecord};
use crate::storage::spool::Spooled;
use crate::telemetry::metrics::Metrics;
use crate::tenancy::Registry;
use crate::tenancy::TenantSlots;
use crate::tenancy::registry::{MAX_COMPONENT_BYTES, VarKind};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Largest JSON body the admin API reads.
pub const MAX_ADMIN_JSON_BYTES: usize = 1 << 20;

/// Largest body of a KV admin request: one value at the KV cap, or an
/// import file of about that size.
const KV_BODY_CAP: usize = crate::storage::kv::MAX_VALUE_BYTES + 1;

/// The admin API's state.
pub struct AdminApi {
    registry: Arc<Registry>,
    operator_hash: String,
    metrics: Arc<Metrics>,
    body_policy: BodyPolicy,
    uploads: TenantSlots,
}

/// An app as the API shows it: secret names only, never their values.
#[derive(Debug, Serialize)]
struct AppView<'a> {
    tenant: &'a str,
    name: &'a str,
    routes: &'a [String],
    kv_stores: &'a [String],
    allowed_hosts: &'a [String],
    config: &'a BTreeMap<String, String>,
    secrets: Vec<&'a str>,
    limits: &'a LimitOverrides,
    /// What the app runs under: its limits within the tenant's ceiling
    /// and the host's.
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_limits: Option<&'a LimitOverrides>,
    active_version: Option<u32>,
}

impl<'a> AppView<'a> {
    fn with_effective(mut self, effective: &'a LimitOverrides) -> Self {
        self.effective_limits = Some(effective);
        self
    }
}

impl<'a> From<&'a AppRecord> for AppView<'a> {
    fn from(app: &'a AppRecord) -> Self {
        Self {
            tenant: &app.tenant,
            name: &app.name,
            routes: &app.manifest.routes,
            kv_stores: &app.manifest.kv_stores,
            allowed_hosts: &app.manifest.allowed_hosts,
            config: &app.manifest.config,
            secrets: app.secrets.keys().map(String::as_str).collect(),
            limits: &app.manifest.limits,
            effective_limits: None,
            active_version: app.active_version,
        }
    }
}

/// The body of a cache purge.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CachePurge {
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    all: bool,
}

fn tenant_view(t: &TenantRecord) -> serde_json::Value {
    json!({
        "name": t.name,
        "limits": t.limits,
        "route_grants": t.route_grants,
        "outbound_grants": t.outbound_grants,
        "created_at": t.created_at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    name: String,
    #[serde(default)]
    limits: LimitOverrides,
    /// Wildcard and catch-all route hosts the tenant may use.
    #[serde(default)]
    route_grants: Vec<String>,
    /// Private ranges (`CIDR` or `CIDR:PORT`) its fetches may reach.
    #[serde(default)]
    outbound_grants: Vec<String>,
}

/// The body of `PUT /v1/tenants/{t}/outbound-grants`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundGrants {
    outbound_grants: Vec<String>,
}

/// The body of `PUT /v1/tenants/{t}/route-grants`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteGrants {
    route_grants: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VersionChoice {
    #[serde(default)]
    version: Option<u32>,
}

/// What an app request sent: its body (read, or spooled for an upload)
/// and whether an upload is to be activated.
struct Sent {
    body: Bytes,
    spooled: Option<Spooled>,
    activate: bool,
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))
}

type Reply = Result<Response<Full<Bytes>>, ApiError>;

fn ok(value: &impl Serialize) -> Reply {
    Ok(json_response(StatusCode::OK, value))
}

impl AdminApi {
    /// An API over `registry` whose operator token hashes to `operator_hash`.
    pub fn new(registry: Arc<Registry>, operator_hash: String, metrics: Arc<Metrics>) -> Self {
        Self {
            registry,
            operator_hash,
            metrics,
            body_policy: BodyPolicy::default(),
            uploads: TenantSlots::uploads(),
        }
    }

    /// Reads request bodies under `policy` (the listener's).
    pub fn with_body_policy(mut self, policy: BodyPolicy) -> Self {
        self.body_policy = policy;
        self
    }

    /// Handles one admin request; never fails (errors become JSON).
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        match self.route(req).await {
            Ok(res) => res,
            Err(err) => {
                let (status, message) = status_of(&err);
                if status.is_server_error() {
                    tracing::error!(%method, path, error = message, "admin request failed");
                }
                json_response(status, &json!({ "error": message }))
            }
        }
    }

    async fn route(&self, req: Request<Incoming>) -> Reply {
        let path: Vec<String> = req
            .uri()
            .path()
            .trim_matches('/')
            .split('/')
            .map(str::to_owned)
            .collect();
        let segments: Vec<&str> = path.iter().map(String::as_str).collect();
        match segments.as_slice() {
            ["healthz"] => return ok(&json!({ "status": "ok" })),
            ["metrics"] => {
                let mut res = Response::new(Full::new(Bytes::from(self.metrics.encode())));
                res.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                return Ok(res);
            }
            ["readyz"] => {
                let r = &self.registry;
                // Not ready while a store cannot write (a full disk, say).
                if let Some(fault) = r.kv().fault() {
                    let state = json!({ "status": "not ready", "kv": fault });
                    return Ok(json_response(StatusCode::SERVICE_UNAVAILABLE, &state));
                }
                let state =
                    json!({ "status": "ready", "apps": r.live_apps(), "compiles": r.compiles() });
                return ok(&state);
            }
            _ => {}
        }
        let who = authenticate(req.headers(), &self.operator_hash, &self.registry).await?;
        if let ["v1", "tenants", t, "kv", store, ..] = segments.as_slice() {
            who.may_act_on(t)?;
            let prefix_len = format!("/v1/tenants/{t}/kv/{store}").len();
            let raw_path = req.uri().path().to_owned();
            let rest = raw_path.get(prefix_len..).unwrap_or("").to_owned();
            let (method, query) = (req.method().clone(), req.uri().query().map(str::to_owned));
            let body = read_body(req, KV_BODY_CAP, self.body_policy).await?;
            return super::kv::handle(
                &self.registry,
                t,
                store,
                &rest,
                &method,
                query.as_deref(),
                body,
            )
            .await
            .map_err(ApiError::Kv);
        }
        if let (["v1", "tenants", t, "apps", a, "logs"], &Method::GET) =
            (segments.as_slice(), req.method())
        {
            who.may_act_on(t)?;
            self.registry.app((*t).to_owned(), (*a).to_owned()).await?;
            let query = req.uri().query();
            let number = |name: &str| {
                query
                    .and_then(|q| {
                        q.split('&')
                            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
                    })
                    .and_then(|v| v.parse::<u64>().ok())
            };
            let after = number("after").unwrap_or(0);
            let wait = std::time::Duration::from_secs(number("wait").unwrap_or(0));
            let lines = self.registry.logs(t, a).wait_after(after, wait).await;
            let next = lines.last().map_or(after, |line| line.seq);
            return ok(&json!({ "lines": lines, "next": next }));
        }
        let method = req.method().clone();
        let activate = req
            .uri()
            .query()
            .is_none_or(|q| !q.split('&').any(|p| p == "activate=false"));
        let upload = segments.last() == Some(&"versions") && method == Method::POST;
        let cap = if upload {
            MAX_COMPONENT_BYTES + 1
        } else {
            MAX_ADMIN_JSON_BYTES
        };
        // An upload's body is read under an upload slot (429 when none is
        // free), so uploads buffer at most MAX_UPLOADS_IN_FLIGHT bodies.
        let _upload_slot = match (upload, segments.get(2)) {
            (true, Some(tenant)) => match self.uploads.take(tenant) {
                Ok(slot) => Some(slot),
                Err(busy) => {
                    // Read and drop the body (no memory held) so the
                    // client, still sending, gets the 429 rather than a
                    // reset.
                    discard_body(req, cap, self.body_policy).await;
                    return Err(busy.into());
                }
            },
            _ => None,
        };
        // An upload is spooled to a file as it arrives, never held whole.
        let (body, spooled) = if upload {
            let spooled =
                spool_body(req, cap, self.body_policy, self.registry.uploads_dir()).await?;
            (Bytes::new(), Some(spooled))
        } else {
            (read_body(req, cap, self.body_policy).await?, None)
        };
        let r = &self.registry;
        match (segments.as_slice(), &method) {
            (["v1", "tenants"], &Method::GET) => {
                who.must_be_operator()?;
                let tenants = r.tenants().await?;
                ok(&tenants.iter().map(tenant_view).collect::<Vec<_>>())
            }
            (["v1", "tenants"], &Method::POST) => {
                who.must_be_operator()?;
                let new: NewTenant = parse_json(&body)?;
                let (tenant, token) = r
                    .create_tenant(new.name, new.limits, new.route_grants, new.outbound_grants)
                    .await?;
                let mut view = tenant_view(&tenant);
                view["token"] = json!(token);
                Ok(json_response(StatusCode::CREATED, &view))
            }
            (["v1", "cache", "purge"], &Method::POST) => {
                who.must_be_operator()?;
                let purge: CachePurge = parse_json(&body)?;
                ok(&self.purge_cache(None, purge)?)
            }
            (["v1", "tenants", t, "cache", "purge"], &Method::POST) => {
                who.may_act_on(t)?;
                let tenant = r.tenant((*t).to_owned()).await?;
                let purge: CachePurge = parse_json(&body)?;
                ok(&self.purge_cache(Some(&tenant.data_key()), purge)?)
            }
            (["v1", "tenants", t], &Method::GET) => {
                who.may_act_on(t)?;
                ok(&tenant_view(&r.tenant((*t).to_owned()).await?))
            }
            (["v1", "tenants", t, "route-grants"], &Method::PUT) => {
                who.must_be_operator()?;
                let grants: RouteGrants = parse_json(&body)?;
                let tenant = r
                    .set_route_grants((*t).to_owned(), grants.route_grants)
                    .await?;
                ok(&tenant_view(&tenant))
            }
            (["v1", "tenants", t, "outbound-grants"], &Method::PUT) => {
                who.must_be_operator()?;
                let grants: OutboundGrants = parse_json(&body)?;
                let tenant = r
                    .set_outbound_grants((*t).to_owned(), grants.outbound_grants)
                    .await?;
                ok(&tenant_view(&tenant))
            }
            (["v1", "tenants", t], &Method::DELETE) => {
                who.must_be_operator()?;
                r.delete_tenant((*t).to_owned()).await?;
                ok(&json!({ "deleted": t }))
            }
            (["v1", "tenants", t, "apps"], &Method::GET) => {
                who.may_act_on(t)?;
                let apps = r.apps(Some((*t).to_owned())).await?;
                ok(&apps.iter().map(AppView::from).collect::<Vec<_>>())
            }
            (["v1", "tenants", t, "apps", a, rest @ ..], _) => {
                who.may_act_on(t)?;
                self.app_route(
                    (*t).to_owned(),
                    (*a).to_owned(),
                    rest,
                    &method,
                    Sent {
                        body,
                        spooled,
                        activate,
                    },
                )
                .await
            }
            (["v1", ..], _) => Err(ApiError::MethodNotAllowed),
            _ => Err(ApiError::NotFound),
        }
    }

    /// Purges by tag, key or everything, for one tenant or (operator,
    /// `all` only) the whole node.
    fn purge_cache(
        &self,
        tenant: Option<&str>,
        purge: CachePurge,
    ) -> Result<serde_json::Value, ApiError> {
        let cache = self.registry.cache();
        match (tenant, purge) {
            (Some(t), CachePurge { tag: Some(tag), key: None, all: false }) => {
                Ok(json!({ "purged": cache.purge_tag(t, &tag) }))
            }
            (Some(t), CachePurge { tag: None, key: Some(key), all: false }) => {
                let existed = cache.get(t, &key).is_some();
                cache.delete(t, &key);
                Ok(json!({ "purged": u32::from(existed) }))
            }
            (tenant, CachePurge { tag: None, key: None, all: true }) => {
                cache.purge_all(tenant);
                Ok(json!({ "purged": "all" }))
            }
            (None, _) => Err(ApiError::BadRequest(
                "across tenants only {\"all\": true}; purge a tag or key under /v1/tenants/T/cache/purge".into(),
            )),
            _ => Err(ApiError::BadRequest(
                "give exactly one of {\"tag\": T}, {\"key\": K} or {\"all\": true}".into(),
            )),
        }
    }

    async fn app_route(
        &self,
        t: String,
        a: String,
        rest: &[&str],
        method: &Method,
        sent: Sent,
    ) -> Reply {
        let Sent {
            body,
            spooled,
            activate,
        } = sent;
        let r = &self.registry;
        match (rest, method) {
            ([], &Method::GET) => {
                let app = r.app(t.clone(), a).await?;
                let effective = r.effective_limits(t, app.clone()).await?;
                ok(&AppView::from(&app).with_effective(&effective))
            }
            ([], &Method::PUT) => {
                let manifest: AppManifest = parse_json(&body)?;
                let app = r.put_app(t.clone(), a, manifest).await?;
                let effective = r.effective_limits(t, app.clone()).await?;
                ok(&AppView::from(&app).with_effective(&effective))
            }
            ([], &Method::DELETE) => {
                r.delete_app(t, a.clone()).await?;
                ok(&json!({ "deleted": a }))
            }
            (["versions"], &Method::GET) => ok(&r.versions(t, a).await?),
            (["versions"], &Method::POST) => {
                let upload = spooled.ok_or_else(|| ApiError::BadRequest("no upload".into()))?;
                let (version, app) = r.upload(t.clone(), a, upload, activate).await?;
                let effective = r.effective_limits(t, app.clone()).await?;
                Ok(json_response(
                    StatusCode::CREATED,
                    &json!({
                        "version": version,
                        "active_version": app.active_version,
                        "effective_limits": effective,
                    }),
                ))
            }
            (["activate"], &Method::POST) => {
                let choice: VersionChoice = parse_json(&body)?;
                let version = choice.version.ok_or_else(|| {
                    ApiError::BadRequest("activate needs {\"version\": N}".into())
                })?;
                ok(&AppView::from(&r.activate(t, a, Some(version)).await?))
            }
            (["rollback"], &Method::POST) => {
                let choice: VersionChoice = parse_json(&body)?;
                ok(&AppView::from(&r.activate(t, a, choice.version).await?))
            }
            ([kind @ ("config" | "secrets"), name], &Method::PUT | &Method::DELETE) => {
                let kind = if *kind == "config" {
                    VarKind::Config
                } else {
                    VarKind::Secret
                };
                let value = if method == Method::PUT {
                    Some(
                        String::from_utf8(body.to_vec())
                            .map_err(|_| ApiError::BadRequest("the value must be UTF-8".into()))?,
                    )
                } else {
                    None
                };
                ok(&AppView::from(
                    &r.set_var(t, a, kind, (*name).to_owned(), value).await?,
                ))
            }
            _ => Err(ApiError::MethodNotAllowed),
        }
    }
}
