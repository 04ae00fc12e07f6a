//! What a request brings to the runtime, and the data each request's
//! `Store` carries.

use super::limits::{GuestLimiter, Limits};
use crate::capabilities::{
    Capabilities, CapabilityView, PerRequest, RequestScope, config::ConfigCtx,
    incoming::IncomingCtx, log::LogCtx,
};
use std::net::IpAddr;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Maximum resources (streams, pollables, ...) a guest may hold in its
/// resource table at once: far above what a request needs, low enough that
/// a guest leaking handles cannot grow host memory without bound.
pub const MAX_RESOURCES_PER_REQUEST: usize = 10_000;

/// What a request brings besides its buffered body: the app's capabilities
/// (the deployment's template, made per request in one step when the store
/// is built), who sent it, its log tag, and its body as a stream when the
/// function reads it that way.
pub struct RequestContext {
    /// The app's capability contexts, before the per-request step.
    pub capabilities: Capabilities,
    /// The request's id.
    pub request_id: Arc<str>,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// Fired when the call turns heavy (see [`super::lane`]).
    pub heavy: super::lane::HeavySignal,
    /// The request body, unread, for a function that imports
    /// `verge:edge/incoming`.
    pub request_body: Option<Box<crate::capabilities::fetch::OriginBody>>,
    /// What the server admitted this call with (its global, tenant and app
    /// slots): let go when the call ends, or, when the guest left work for
    /// after the response, when that work ends, so background work counts
    /// against the same caps as requests.
    pub admission: Vec<tokio::sync::OwnedSemaphorePermit>,
}

impl RequestContext {
    /// A context with `config` and `log` and no KV, fetch, geo or cache
    /// access; the request id is the log's.
    pub fn new(config: ConfigCtx, log: LogCtx) -> Self {
        Self {
            request_id: log.request_id().clone(),
            capabilities: Capabilities::new(config, log),
            client_ip: None,
            heavy: Default::default(),
            request_body: None,
            admission: Vec::new(),
        }
    }
}

/// Per-request store data: WASI, the limiter and the capabilities.
pub struct RequestState {
    /// Built on the guest's first WASI call (see [`WasiView::ctx`]): a
    /// request that makes none, as a Verge-SDK hello, skips seeding WASI's
    /// two random generators and its clocks.
    pub(crate) wasi: Option<WasiCtx>,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: GuestLimiter,
    pub(crate) capabilities: Capabilities,
    pub(crate) http: wasmtime_wasi_http::WasiHttpCtx,
}

impl RequestState {
    /// Fresh state, the request's one preparation step: each capability's
    /// per-request copy (budgets start now). WASI comes on first use, built
    /// by `request_wasi`.
    pub fn new(limits: &Limits, ctx: RequestContext) -> Self {
        let scope = RequestScope {
            request_id: ctx.request_id,
            client_ip: ctx.client_ip,
            max_subrequests: limits.max_subrequests,
            wall_clock: limits.wall_clock,
        };
        let mut capabilities = ctx.capabilities.for_request(&scope);
        capabilities.incoming = IncomingCtx::new(ctx.request_body);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES_PER_REQUEST);
        Self {
            wasi: None,
            table,
            limiter: GuestLimiter::new(limits, ctx.heavy),
            capabilities,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
        }
    }
}

impl CapabilityView for RequestState {
    fn capabilities(&mut self) -> &mut Capabilities {
        &mut self.capabilities
    }

    fn capabilities_and_table(&mut self) -> (&mut Capabilities, &mut ResourceTable) {
        (&mut self.capabilities, &mut self.table)
    }
}

/// WASI as a request sees it: nothing inherited from the host (no
/// environment, arguments, preopened directories or network); stdout and
/// stderr go to the request's log.
fn request_wasi(log: &LogCtx) -> WasiCtx {
    let mut wasi = WasiCtx::builder();
    wasi.stdout(log.stdout())
        .stderr(log.stderr())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    wasi.build()
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let log = &self.capabilities.log;
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| request_wasi(log)),
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for RequestState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.capabilities.fetch,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::capabilities::config::ConfigCtx;

    #[test]
    fn wasi_is_built_on_the_first_wasi_call_and_only_once() {
        let ctx = RequestContext::new(ConfigCtx::default(), LogCtx::new("a".into(), "r".into()));
        let mut state = RequestState::new(&Limits::default(), ctx);
        assert!(state.wasi.is_none(), "no WASI before the guest asks");
        let first: *const WasiCtx = WasiView::ctx(&mut state).ctx;
        assert!(state.wasi.is_some());
        let second: *const WasiCtx = WasiView::ctx(&mut state).ctx;
        assert_eq!(first, second, "built once per request");
    }
}
