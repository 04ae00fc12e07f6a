//! The data each request's `Store` carries.

use super::instance::RequestContext;
use super::limits::{GuestLimiter, Limits};
use crate::capabilities::{
    cache::CacheCtx, config::ConfigCtx, fetch::FetchCtx, geo::GeoCtx, kv::KvCtx, log::LogCtx,
};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Maximum resources (streams, pollables, ...) a guest may hold in its
/// resource table at once: far above what a request needs, low enough that
/// a guest leaking handles cannot grow host memory without bound.
pub const MAX_RESOURCES_PER_REQUEST: usize = 10_000;

/// Per-request store data: WASI, the limiter and each capability's context.
pub struct RequestState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: GuestLimiter,
    pub(crate) config: ConfigCtx,
    pub(crate) log: LogCtx,
    pub(crate) kv: KvCtx,
    pub(crate) fetch: FetchCtx,
    pub(crate) geo: GeoCtx,
    pub(crate) cache: CacheCtx,
    pub(crate) http: wasmtime_wasi_http::WasiHttpCtx,
}

impl RequestState {
    /// Fresh state. WASI inherits nothing from the host: no environment,
    /// arguments, preopened directories or network; stdout and stderr go to
    /// the request's log. The fetch budget starts now.
    pub fn new(limits: &Limits, ctx: RequestContext) -> Self {
        let RequestContext {
            config,
            log,
            kv,
            mut fetch,
            geo,
            mut cache,
            heavy,
        } = ctx;
        fetch.begin(limits.max_subrequests, limits.wall_clock);
        cache.begin(limits.wall_clock);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(log.stdout())
            .stderr(log.stderr())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES_PER_REQUEST);
        Self {
            wasi: wasi.build(),
            table,
            limiter: GuestLimiter::new(limits, heavy),
            config,
            log,
            kv,
            fetch,
            geo,
            cache,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
        }
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for RequestState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.fetch,
        }
    }
}
