//! The `verge:edge` interfaces the host offers guests, one module each, all
//! made the same way (the recipe in `docs/architecture.md`):
//!
//! - a context type (`ConfigCtx`, `KvCtx`, ...): what one app may use,
//!   built once per deployment and cheap to clone;
//! - its [`PerRequest`] step: the copy one request gets, with that
//!   request's id, client address and budgets;
//! - the WIT `Host` impl over the context, converting with `From`;
//! - `add_to_linker`, generic over the store data with a projection to the
//!   context, as wasmtime-wasi's interfaces are.
//!
//! [`Capabilities`] holds one of each; the runtime keeps it in every
//! request's store and links them all with [`add_to_linker`].

pub mod background;
pub mod bindings;
pub mod cache;
pub mod config;
pub mod fetch;
pub mod geo;
pub mod incoming;
pub mod kv;
pub mod kv_cache;
pub mod log;
pub mod respond;
mod services;
pub mod view;

pub use services::{GrantedClients, Services};

use crate::telemetry::log_ring::LogRing;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Linker, ResourceTable};

/// What varies from one request to the next, handed to every capability's
/// [`PerRequest`] step.
#[derive(Debug, Clone)]
pub struct RequestScope {
    /// The request's id, for log lines.
    pub request_id: Arc<str>,
    /// The client's address, as the server determined it.
    pub client_ip: Option<IpAddr>,
    /// Outbound fetches the request may make.
    pub max_subrequests: u32,
    /// How long the request may take: every wait ends by then.
    pub wall_clock: Duration,
}

/// A capability's per-request step: the deployment's context becomes one
/// request's (fresh budgets, that request's id and client).
pub trait PerRequest: Sized {
    /// The copy of `self` that one request uses.
    fn for_request(self, scope: &RequestScope) -> Self;
}

/// Every capability context of one app; one request's copy lives in its
/// store.
#[derive(Clone)]
pub struct Capabilities {
    /// Configuration variables and secrets.
    pub config: config::ConfigCtx,
    /// Where the guest's logs go.
    pub log: log::LogCtx,
    /// What the guest may reach in KV.
    pub kv: kv::KvCtx,
    /// Where the guest may fetch from.
    pub fetch: fetch::FetchCtx,
    /// The geo database and the client address.
    pub geo: geo::GeoCtx,
    /// The tenant's view of the edge cache.
    pub cache: cache::CacheCtx,
    /// Work left for after the response.
    pub background: background::BackgroundCtx,
    /// A response started before the handler returns.
    pub respond: respond::RespondCtx,
    /// The request body as a stream, for functions that read it so.
    pub incoming: incoming::IncomingCtx,
}

/// What one app's capabilities are made from: who it is and what its
/// manifest and its tenant's grants allow.
pub struct AppCapabilities {
    /// The tenant, as named in metrics.
    pub tenant: Arc<str>,
    /// The app, as named in log lines.
    pub app: Arc<str>,
    /// The tenant's key in KV and the cache.
    pub data_key: String,
    /// Configuration variables and opened secrets.
    pub vars: BTreeMap<String, String>,
    /// The origins the app may fetch from.
    pub allow: fetch::AllowList,
    /// The operator's outbound grants for the tenant.
    pub grants: Vec<fetch::OutboundGrant>,
    /// Declared KV stores; `None` allows any (local-run mode).
    pub kv_stores: Option<Vec<String>>,
    /// The tenant's KV quota.
    pub kv_quota_bytes: u64,
    /// How long this node may answer a KV read from its read cache
    /// (`kv_cache_ttl_seconds`); `None`: every read goes to the store.
    pub kv_cache_ttl: Option<std::time::Duration>,
    /// Where guest logs are kept for `verge logs` (none: the terminal).
    pub logs: Option<Arc<LogRing>>,
}

impl Capabilities {
    /// Every context of the app `app` describes, over the host's `services`:
    /// the template each request's copy is made from.
    pub fn for_app(services: &Services, app: AppCapabilities) -> Self {
        Self {
            config: config::ConfigCtx::new(app.vars),
            log: log::LogCtx::with_ring(app.app, "".into(), app.logs),
            kv: services
                .kv_ctx(&app.data_key, app.kv_stores, app.kv_quota_bytes)
                .with_read_cache(app.kv_cache_ttl.map(|ttl| (services.kv_cache.clone(), ttl))),
            fetch: services.tenant_fetch_ctx(&app.tenant, &app.data_key, &app.grants, app.allow),
            geo: services.geo_ctx(),
            cache: services.cache_ctx(&app.data_key),
            background: background::BackgroundCtx::default(),
            respond: respond::RespondCtx::default(),
            incoming: incoming::IncomingCtx::default(),
        }
    }

    /// `config` and `log`, and no KV, fetch, geo or cache access.
    pub fn new(config: config::ConfigCtx, log: log::LogCtx) -> Self {
        Self {
            config,
            log,
            kv: kv::KvCtx::default(),
            fetch: fetch::FetchCtx::default(),
            geo: geo::GeoCtx::default(),
            cache: cache::CacheCtx::default(),
            background: background::BackgroundCtx::default(),
            respond: respond::RespondCtx::default(),
            incoming: incoming::IncomingCtx::default(),
        }
    }
}

impl PerRequest for Capabilities {
    fn for_request(self, scope: &RequestScope) -> Self {
        Self {
            config: self.config.for_request(scope),
            log: self.log.for_request(scope),
            kv: self.kv.for_request(scope),
            fetch: self.fetch.for_request(scope),
            geo: self.geo.for_request(scope),
            cache: self.cache.for_request(scope),
            background: self.background.for_request(scope),
            respond: self.respond.for_request(scope),
            incoming: self.incoming.for_request(scope),
        }
    }
}

/// Store data that carries [`Capabilities`] and a resource table.
pub trait CapabilityView: Send + 'static {
    /// The request's capability contexts.
    fn capabilities(&mut self) -> &mut Capabilities;
    /// The contexts and the resource table together (for resources such as
    /// KV stores).
    fn capabilities_and_table(&mut self) -> (&mut Capabilities, &mut ResourceTable);
}

/// Links every capability this host provides into `linker`.
pub fn add_to_linker<T: CapabilityView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    fn cache_of<T: CapabilityView>(t: &mut T) -> &mut cache::CacheCtx {
        &mut t.capabilities().cache
    }
    fn config_of<T: CapabilityView>(t: &mut T) -> &mut config::ConfigCtx {
        &mut t.capabilities().config
    }
    fn fetch_of<T: CapabilityView>(t: &mut T) -> fetch::FetchView<'_> {
        let (caps, table) = t.capabilities_and_table();
        view::TableView::new(&mut caps.fetch, table)
    }
    fn respond_of<T: CapabilityView>(t: &mut T) -> respond::RespondView<'_> {
        let (caps, table) = t.capabilities_and_table();
        view::TableView::new(&mut caps.respond, table)
    }
    fn incoming_of<T: CapabilityView>(t: &mut T) -> incoming::IncomingView<'_> {
        let (caps, table) = t.capabilities_and_table();
        view::TableView::new(&mut caps.incoming, table)
    }
    fn background_of<T: CapabilityView>(t: &mut T) -> background::BackgroundView<'_> {
        let (caps, table) = t.capabilities_and_table();
        view::TableView::new(&mut caps.background, table)
    }
    fn geo_of<T: CapabilityView>(t: &mut T) -> &mut geo::GeoCtx {
        &mut t.capabilities().geo
    }
    fn kv_of<T: CapabilityView>(t: &mut T) -> kv::KvView<'_> {
        let (caps, table) = t.capabilities_and_table();
        view::TableView::new(&mut caps.kv, table)
    }
    fn log_of<T: CapabilityView>(t: &mut T) -> &mut log::LogCtx {
        &mut t.capabilities().log
    }
    background::add_to_linker(linker, background_of::<T>)?;
    cache::add_to_linker(linker, cache_of::<T>)?;
    config::add_to_linker(linker, config_of::<T>)?;
    fetch::add_to_linker(linker, fetch_of::<T>)?;
    geo::add_to_linker(linker, geo_of::<T>)?;
    incoming::add_to_linker(linker, incoming_of::<T>)?;
    kv::add_to_linker(linker, kv_of::<T>)?;
    log::add_to_linker(linker, log_of::<T>)?;
    respond::add_to_linker(linker, respond_of::<T>)?;
    Ok(())
}
