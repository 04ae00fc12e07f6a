//! Admin API request handling: authenticate, parse the [`Endpoint`], read
//! the body it takes, run its one handler, and answer JSON (errors through
//! the one mapping in [`super::error`]).

use super::auth::{Principal, authenticate};
use super::bodies::{discard_body, read_body, spool_body};
use super::dto::{
    AppView, CachePurge, FleetAccept, NewTenant, OutboundGrants, RouteGrants, VersionChoice,
    tenant_view,
};
use super::endpoint::{Access, AppRef, BodyKind, Endpoint};
use super::error::{ApiError, status_of};
use super::urls::PublicUrls;
use crate::server::limits::BodyPolicy;
use crate::storage::records::AppManifest;
use crate::storage::spool::Spooled;
use crate::telemetry::metrics::Metrics;
use crate::tenancy::Registry;
use crate::tenancy::TenantSlots;
use crate::tenancy::registry::{MAX_COMPONENT_BYTES, VarKind};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;

/// Largest JSON body (or variable value) the admin API reads.
pub const MAX_ADMIN_JSON_BYTES: usize = 1 << 20;

/// Largest body of a KV admin request: one value at the KV cap, or an
/// import file of about that size.
const KV_BODY_CAP: usize = crate::storage::kv::MAX_VALUE_BYTES + 1;

/// The admin API's state.
pub struct AdminApi {
    pub(super) registry: Arc<Registry>,
    operator_hash: String,
    metrics: Arc<Metrics>,
    body_policy: BodyPolicy,
    uploads: TenantSlots,
    urls: PublicUrls,
    pub(super) bus: Option<Arc<crate::storage::bus::ClusterBus>>,
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

pub(super) type Reply = Result<Response<Full<Bytes>>, ApiError>;

pub(super) fn ok(value: &impl Serialize) -> Reply {
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
            urls: PublicUrls::default(),
            bus: None,
        }
    }

    /// In fleet mode: sends cache purges to every node through `bus`.
    pub fn with_bus(mut self, bus: Option<Arc<crate::storage::bus::ClusterBus>>) -> Self {
        self.bus = bus;
        self
    }

    /// Shows apps' routes as URLs on `urls` (the data plane as people
    /// reach it).
    pub fn with_public_urls(mut self, urls: PublicUrls) -> Self {
        self.urls = urls;
        self
    }

    /// An app as the API shows it, with its URLs.
    fn view<'a>(&self, app: &'a crate::storage::records::AppRecord) -> AppView<'a> {
        AppView::from(app).with_urls(&self.urls)
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
        match self.serve(req).await {
            Ok(res) => res,
            Err(err) => {
                let (status, message) = status_of(&err);
                if status.is_server_error() {
                    // The whole error (paths included) for the operator;
                    // the client gets `message`, which names none.
                    tracing::error!(%method, path, error = ?err, "admin request failed");
                }
                // `retry: true` where nothing was written and running the
                // same request again is safe (another node changed the same
                // records first): the CLI does so.
                let body = match super::error::is_retryable(&err) {
                    true => json!({ "error": message, "retry": true }),
                    false => json!({ "error": message }),
                };
                json_response(status, &body)
            }
        }
    }

    /// Parse, authenticate (before an unknown path is told apart, so a
    /// caller without a token learns nothing), check access, read the body.
    async fn serve(&self, req: Request<Incoming>) -> Reply {
        let parsed = Endpoint::parse(req.method(), req.uri().path(), req.uri().query());
        if let Ok(endpoint @ (Endpoint::Health | Endpoint::Ready | Endpoint::Metrics)) = parsed {
            return self.public(&endpoint).await;
        }
        let who = authenticate(req.headers(), &self.operator_hash, &self.registry).await?;
        let endpoint = parsed?;
        allowed(&who, endpoint.access())?;
        let body = match endpoint.body() {
            BodyKind::None => Bytes::new(),
            BodyKind::Small => read_body(req, MAX_ADMIN_JSON_BYTES, self.body_policy).await?,
            BodyKind::KvValue => read_body(req, KV_BODY_CAP, self.body_policy).await?,
            BodyKind::Upload => {
                let Endpoint::Upload(app, _) = &endpoint else {
                    return Err(ApiError::NotFound);
                };
                let cap = MAX_COMPONENT_BYTES + 1;
                // Read under an upload slot (429 when none is free), so
                // uploads buffer at most MAX_UPLOADS_IN_FLIGHT bodies.
                let _slot = match self.uploads.take(&app.tenant) {
                    Ok(slot) => slot,
                    Err(busy) => {
                        // Read and drop the body (no memory held) so the
                        // client, still sending, gets the 429 rather than a
                        // reset.
                        discard_body(req, cap, self.body_policy).await;
                        return Err(busy.into());
                    }
                };
                // Spooled to a file as it arrives, never held whole.
                let dir = self.registry.uploads_dir();
                let spooled = spool_body(req, cap, self.body_policy, dir).await?;
                return self.upload(app, spooled, &endpoint).await;
            }
        };
        self.dispatch(endpoint, body).await
    }

    /// The endpoints that need no token.
    async fn public(&self, endpoint: &Endpoint) -> Reply {
        match endpoint {
            Endpoint::Health => ok(&json!({ "status": "ok" })),
            Endpoint::Metrics => {
                let mut res = Response::new(Full::new(Bytes::from(self.metrics.encode())));
                res.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                Ok(res)
            }
            _ => {
                let r = &self.registry;
                // Not ready while a store cannot write (a full disk, say),
                // asked again so a store that came back is seen at once.
                // Anyone may read this page: it says which part failed,
                // and the details (paths, errors) go to the log.
                if let Some(fault) = r.kv().recheck().await {
                    tracing::warn!(fault, "not ready: KV");
                    let state = json!({ "status": "not ready", "kv": "failing" });
                    return Ok(json_response(StatusCode::SERVICE_UNAVAILABLE, &state));
                }
                // A fleet node that cannot reach the control plane serves
                // its snapshot, but says it may be behind.
                if let Some(fault) = r.fleet_fault() {
                    tracing::warn!(fault, "not ready: control plane");
                    let state = json!({ "status": "not ready", "control_plane": "unreachable" });
                    return Ok(json_response(StatusCode::SERVICE_UNAVAILABLE, &state));
                }
                ok(&json!({ "status": "ready", "apps": r.live_apps(), "compiles": r.compiles() }))
            }
        }
    }

    /// One handler per endpoint.
    async fn dispatch(&self, endpoint: Endpoint, body: Bytes) -> Reply {
        let r = &self.registry;
        match endpoint {
            Endpoint::Health | Endpoint::Ready | Endpoint::Metrics => self.public(&endpoint).await,
            Endpoint::Upload(..) => Err(ApiError::BadRequest("no upload".into())),
            Endpoint::ListTenants => {
                let tenants = r.tenants().await?;
                ok(&tenants.iter().map(tenant_view).collect::<Vec<_>>())
            }
            Endpoint::CreateTenant => {
                let new: NewTenant = parse_json(&body)?;
                let (tenant, token) = r
                    .create_tenant(new.name, new.limits, new.route_grants, new.outbound_grants)
                    .await?;
                let mut view = tenant_view(&tenant);
                view["token"] = json!(token);
                Ok(json_response(StatusCode::CREATED, &view))
            }
            Endpoint::GetTenant(t) => ok(&tenant_view(&r.tenant(t).await?)),
            Endpoint::DeleteTenant(t) => {
                r.delete_tenant(t.clone()).await?;
                ok(&json!({ "deleted": t }))
            }
            Endpoint::SetRouteGrants(t) => {
                let grants: RouteGrants = parse_json(&body)?;
                ok(&tenant_view(
                    &r.set_route_grants(t, grants.route_grants).await?,
                ))
            }
            Endpoint::SetOutboundGrants(t) => {
                let grants: OutboundGrants = parse_json(&body)?;
                let tenant = r.set_outbound_grants(t, grants.outbound_grants).await?;
                ok(&tenant_view(&tenant))
            }
            Endpoint::PurgeNode => ok(&self.purge_everywhere(None, parse_json(&body)?).await?),
            Endpoint::Nodes => self.nodes().await,
            Endpoint::FleetAccept => {
                let accept: FleetAccept = parse_json(&body)?;
                let synced = r.accept_fleet_revision(accept.revision).await?;
                ok(&json!({ "revision": synced.revision, "apps_changed": synced.apps_changed }))
            }
            Endpoint::FleetReseed => {
                // The highest revision any other node applied, from the
                // heartbeats (a node down for under an hour included).
                let highest = match &self.bus {
                    Some(bus) => bus
                        .nodes()
                        .await
                        .map_err(ApiError::Bus)?
                        .iter()
                        .filter(|node| node.name != bus.node())
                        .map(|node| node.revision)
                        .max()
                        .unwrap_or(0),
                    None => 0,
                };
                let synced = r.reseed_fleet(highest).await?;
                ok(&json!({ "revision": synced.revision, "apps_changed": synced.apps_changed }))
            }
            Endpoint::AppNodes(app) => self.app_nodes(app).await,
            Endpoint::PurgeTenant(t) => {
                let tenant = r.tenant(t).await?;
                let purge = parse_json(&body)?;
                ok(&self
                    .purge_everywhere(Some(&tenant.data_key()), purge)
                    .await?)
            }
            Endpoint::ListApps(t) => {
                let apps = r.apps(Some(t)).await?;
                ok(&apps.iter().map(|a| self.view(a)).collect::<Vec<_>>())
            }
            Endpoint::GetApp(AppRef { tenant, app }) => {
                let app = r.app(tenant.clone(), app).await?;
                let effective = r.effective_limits(tenant, app.clone()).await?;
                ok(&self.view(&app).with_effective(&effective))
            }
            Endpoint::PutApp(AppRef { tenant, app }) => {
                let manifest: AppManifest = parse_json(&body)?;
                let app = r.put_app(tenant.clone(), app, manifest).await?;
                let effective = r.effective_limits(tenant, app.clone()).await?;
                ok(&self.view(&app).with_effective(&effective))
            }
            Endpoint::DeleteApp(AppRef { tenant, app }) => {
                r.delete_app(tenant, app.clone()).await?;
                ok(&json!({ "deleted": app }))
            }
            Endpoint::ListVersions(AppRef { tenant, app }) => ok(&r.versions(tenant, app).await?),
            Endpoint::Activate(AppRef { tenant, app }) => {
                let choice: VersionChoice = parse_json(&body)?;
                let version = choice.version.ok_or_else(|| {
                    ApiError::BadRequest("activate needs {\"version\": N}".into())
                })?;
                ok(&self.view(&r.activate(tenant, app, Some(version)).await?))
            }
            Endpoint::Rollback(AppRef { tenant, app }) => {
                let choice: VersionChoice = parse_json(&body)?;
                ok(&self.view(&r.activate(tenant, app, choice.version).await?))
            }
            Endpoint::SetVar(app, kind, name) => {
                let value = String::from_utf8(body.to_vec())
                    .map_err(|_| ApiError::BadRequest("the value must be UTF-8".into()))?;
                self.set_var(app, kind, name, Some(value)).await
            }
            Endpoint::UnsetVar(app, kind, name) => self.set_var(app, kind, name, None).await,
            Endpoint::Logs(AppRef { tenant, app }, after, wait) => {
                r.app(tenant.clone(), app.clone()).await?;
                let wait = std::time::Duration::from_secs(wait);
                let lines = r.logs(&tenant, &app).wait_after(after, wait).await;
                let next = lines.last().map_or(after, |line| line.seq);
                ok(&json!({ "lines": lines, "next": next }))
            }
            Endpoint::Kv(tenant, store, kv) => {
                super::kv::handle(r, &tenant, &store, kv, body).await
            }
        }
    }

    /// `POST .../versions`: stores the spooled upload, activating it
    /// unless `?activate=false`.
    async fn upload(&self, app: &AppRef, spooled: Spooled, endpoint: &Endpoint) -> Reply {
        let activate = matches!(endpoint, Endpoint::Upload(_, true));
        let r = &self.registry;
        let (version, record) = r
            .upload(app.tenant.clone(), app.app.clone(), spooled, activate)
            .await?;
        let effective = r
            .effective_limits(app.tenant.clone(), record.clone())
            .await?;
        Ok(json_response(
            StatusCode::CREATED,
            &json!({
                "version": version,
                "active_version": record.active_version,
                "effective_limits": effective,
                "routes": record.manifest.routes,
                "urls": self.urls.for_routes(&record.manifest.routes),
            }),
        ))
    }

    async fn set_var(
        &self,
        app: AppRef,
        kind: VarKind,
        name: String,
        value: Option<String>,
    ) -> Reply {
        let record = self
            .registry
            .set_var(app.tenant, app.app, kind, name, value)
            .await?;
        ok(&self.view(&record))
    }

    /// Purges on this node, then, in fleet mode, on every other: the
    /// answer says how many nodes received it (`nodes`), this one included.
    async fn purge_everywhere(
        &self,
        tenant: Option<&str>,
        purge: CachePurge,
    ) -> Result<serde_json::Value, ApiError> {
        let mut answer = self.purge_cache(tenant, purge.clone())?;
        if let Some(bus) = &self.bus {
            let message = crate::storage::bus::PurgeMessage {
                origin: bus.node().to_owned(),
                tenant: tenant.map(str::to_owned),
                tag: purge.tag,
                key: purge.key,
                all: purge.all,
            };
            let reached = bus.publish(&message).await.map_err(ApiError::Bus)?;
            // This node's own subscriber counts among the receivers.
            answer["nodes"] = json!(reached.max(1));
        }
        Ok(answer)
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
                Ok(json!({ "purged": cache.purge_all(tenant) }))
            }
            (None, _) => Err(ApiError::BadRequest(
                "across tenants only {\"all\": true}; purge a tag or key under /v1/tenants/T/cache/purge".into(),
            )),
            _ => Err(ApiError::BadRequest(
                "give exactly one of {\"tag\": T}, {\"key\": K} or {\"all\": true}".into(),
            )),
        }
    }
}

/// Whether `who` may call an endpoint needing `access`.
fn allowed(who: &Principal, access: Access<'_>) -> Result<(), ApiError> {
    match access {
        Access::Public => Ok(()),
        Access::Operator => Ok(who.must_be_operator()?),
        Access::Tenant(t) => Ok(who.may_act_on(t)?),
    }
}
