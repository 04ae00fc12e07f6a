//! `verge:edge/fetch`: outbound HTTP, deny by default. The app's
//! allow-list picks the origins; the host's address policy refuses private
//! destinations after DNS; every call and redirect counts against the
//! request's subrequest budget and ends by the request's deadline.

mod body;
mod cached;
mod client;
mod hops;
mod pending;
pub mod policy;
mod sockets;
mod wasi_http;
mod wit_host;

pub use body::{MAX_BODY_READ, OriginBody, StreamedBody};
pub use cached::{CACHE_STATUS_HEADER, CachePolicy, PASS_TTL, REVALIDATE_TIMEOUT, freshness};
pub use client::{FetchClient, Inbound, MAX_FETCH_RESPONSE_BYTES, Outbound};
pub use pending::{Budget, Fetched, MAX_IN_FLIGHT_SUBREQUESTS, PendingFetch};
pub use policy::{AddressPolicy, AllowList, AllowListError, OutboundGrant};
pub use sockets::{
    DEFAULT_MAX_ORIGIN_SOCKETS, MAX_OPEN_ORIGIN_BODIES_PER_REQUEST,
    MAX_OPEN_ORIGIN_EXCHANGES_PER_TENANT, OriginSockets, origin_socket_cap,
};
pub use wit_host::FetchView;

pub(crate) use hops::{strip_hop_by_hop, strip_inbound};

use super::bindings::http_types::Request as WitRequest;
use super::bindings::verge::edge::fetch as wit;
use super::view::WithTable;
use super::{PerRequest, RequestScope};
use crate::telemetry::metrics::Metrics;
use http::{Method, Uri};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use wasmtime::component::Linker;

/// Redirects followed per call when the guest asks for it, as browsers
/// and curl cap them: enough for real chains, short of a loop.
pub const MAX_REDIRECTS: u32 = 10;

/// Subrequests one request may make unless its limits say otherwise: the
/// 50 Workers allows on its free plan.
pub const DEFAULT_MAX_SUBREQUESTS: u32 = 50;

/// How long a call may take when its context was never scoped to a request
/// (a benchmark calling the host directly): the runtime's default wall
/// clock, so no call waits forever. Requests always carry their own.
pub const UNSCOPED_WALL_CLOCK: Duration = Duration::from_secs(30);

/// Why a fetch failed; mirrors the WIT `error` variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not on the allow-list, or a refused address.
    #[error("denied: {0}")]
    Denied(String),
    /// The deadline passed.
    #[error("timed out")]
    Timeout,
    /// The name did not resolve.
    #[error("dns: {0}")]
    Dns(String),
    /// Connect, TLS or protocol failure.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The request's subrequest budget is spent.
    #[error("more than {0} subrequests")]
    TooManySubrequests(u32),
    /// The response body is over the cap.
    #[error("response body over {0} bytes")]
    TooLarge(usize),
    /// A malformed request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl FetchError {
    /// The WIT variant's name, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Denied(_) => "denied",
            FetchError::Timeout => "timeout",
            FetchError::Dns(_) => "dns",
            FetchError::Connection(_) => "connection",
            FetchError::TooManySubrequests(_) => "too-many-subrequests",
            FetchError::TooLarge(_) => "too-large",
            FetchError::InvalidRequest(_) => "invalid-request",
        }
    }
}

/// How one fetch behaves (the WIT `options`).
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// The most it may take; never past the request's deadline.
    pub timeout: Option<Duration>,
    /// Follow up to [`MAX_REDIRECTS`] redirects.
    pub follow_redirects: bool,
    /// Go through the edge cache (GET only).
    pub cache: Option<CachePolicy>,
}

/// What one request may fetch: the shared client, the app's allow-list,
/// and this request's budget. Cheap to clone from the deployment's copy.
#[derive(Clone)]
pub struct FetchCtx {
    client: Option<Arc<FetchClient>>,
    allow: Arc<AllowList>,
    max_subrequests: u32,
    /// Made on the first fetch, so a request that fetches nothing pays
    /// for no budget.
    budget: Option<Arc<Budget>>,
    deadline: Option<Instant>,
    metrics: Option<(Arc<Metrics>, Arc<str>)>,
    cache: Option<(Arc<crate::capabilities::cache::CacheStore>, Arc<str>)>,
    /// The tenant's count of open origin exchanges.
    tenant_sockets: Option<Arc<tokio::sync::Semaphore>>,
}

impl Default for FetchCtx {
    /// No outbound access at all.
    fn default() -> Self {
        Self {
            client: None,
            allow: Arc::default(),
            max_subrequests: DEFAULT_MAX_SUBREQUESTS,
            budget: None,
            deadline: None,
            metrics: None,
            cache: None,
            tenant_sockets: None,
        }
    }
}

impl FetchCtx {
    /// Fetch through `client`, to the origins of `allow`.
    pub fn new(client: Arc<FetchClient>, allow: AllowList) -> Self {
        Self {
            client: Some(client),
            allow: Arc::new(allow),
            ..Self::default()
        }
    }

    /// Counts every call of `tenant` in `metrics`
    /// (`verge_fetch_requests_total`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>, tenant: &str) -> Self {
        self.metrics = Some((metrics, tenant.into()));
        self
    }

    /// Counts this app's open origin exchanges against the tenant of
    /// `data_key`'s ([`MAX_OPEN_ORIGIN_EXCHANGES_PER_TENANT`]).
    pub fn with_tenant_sockets(mut self, data_key: &str) -> Self {
        self.tenant_sockets = self
            .client
            .as_ref()
            .map(|client| client.sockets().tenant(data_key));
        self
    }

    /// Lets fetches with a cache policy use `store` as `tenant`.
    pub fn with_cache(
        mut self,
        store: Arc<crate::capabilities::cache::CacheStore>,
        tenant: &str,
    ) -> Self {
        self.cache = Some((store, tenant.into()));
        self
    }

    /// The metrics and tenant label calls are counted under, if any.
    pub fn metered(&self) -> Option<(&Arc<Metrics>, &str)> {
        self.metrics
            .as_ref()
            .map(|(metrics, tenant)| (metrics, &**tenant))
    }

    /// Subrequests made so far.
    pub fn used(&self) -> u32 {
        self.budget.as_ref().map_or(0, |budget| budget.used())
    }

    /// Starts `req` as a task of its own, following redirects when asked.
    /// The allow-list and the subrequest budget are checked here, so a
    /// refused start fails at once; the started fetch then waits (by the
    /// deadline) for a place among the request's open exchanges
    /// ([`MAX_OPEN_ORIGIN_BODIES_PER_REQUEST`]) and for one of its
    /// [`MAX_IN_FLIGHT_SUBREQUESTS`] slots. Waiting for its
    /// [`PendingFetch::outcome`] is `fetch.send`.
    pub async fn start(
        &mut self,
        req: WitRequest,
        options: FetchOptions,
    ) -> Result<PendingFetch, FetchError> {
        let started = self.checked_start(req, options).await;
        if let Err(err) = &started {
            self.count(err.kind());
        }
        started
    }

    /// [`FetchCtx::start`] without counting a refusal.
    async fn checked_start(
        &mut self,
        req: WitRequest,
        options: FetchOptions,
    ) -> Result<PendingFetch, FetchError> {
        let FetchOptions {
            timeout,
            follow_redirects,
            cache,
        } = options;
        let client = self.client()?;
        let deadline = self.deadline_within(timeout);
        let outbound = Outbound::try_from(req)?;
        check_allowed(&self.allow, &outbound.uri)?;
        let budget = self.budget();
        let cached = match (cache, &self.cache, &outbound.method) {
            (Some(policy), Some((store, tenant)), &Method::GET) => Some(cached::CachedFetch {
                client: client.clone(),
                store: store.clone(),
                tenant: tenant.clone(),
                policy,
            }),
            _ => None,
        };
        // A cached GET counts only when it goes to the origin.
        if cached.is_none() {
            budget.take()?;
        }
        let exchange = Exchange {
            client,
            allow: self.allow.clone(),
            budget,
            deadline,
            follow_redirects,
        };
        let metrics = self.metrics.clone();
        Ok(PendingFetch::spawn(async move {
            let gauge = metrics.as_ref().map(|(m, _)| m.clone());
            let (open, held) = match exchange.budget.places(deadline, gauge).await {
                Ok(places) => places,
                Err(err) => {
                    if let Some((metrics, tenant)) = &metrics {
                        metrics.fetch(tenant, err.kind());
                    }
                    return Err(err);
                }
            };
            let budget = exchange.budget.clone();
            let result = match cached {
                Some(cached) => cached
                    .get(outbound, deadline, || budget.take())
                    .await
                    .map(Fetched::Whole),
                None => exchange.run(outbound, open).await,
            };
            // The slot and the gauge cover the request until its head.
            drop(held);
            if let Some((metrics, tenant)) = &metrics {
                metrics.fetch(
                    tenant,
                    result.as_ref().map_or_else(FetchError::kind, |_| "ok"),
                );
            }
            result
        }))
    }

    /// Counts one call that ended as `outcome`.
    fn count(&self, outcome: &'static str) {
        if let Some((metrics, tenant)) = &self.metrics {
            metrics.fetch(tenant, outcome);
        }
    }

    /// This request's budget, made on first use.
    fn budget(&mut self) -> Arc<Budget> {
        let counts = self
            .client
            .as_ref()
            .map(|client| client.sockets().counts(self.tenant_sockets.clone()));
        self.budget
            .get_or_insert_with(|| Budget::new(self.max_subrequests, counts))
            .clone()
    }

    /// The shared client, unless this host offers no outbound fetch.
    fn client(&self) -> Result<Arc<FetchClient>, FetchError> {
        self.client
            .clone()
            .ok_or_else(|| FetchError::Denied("this host offers no outbound fetch".into()))
    }

    /// When a call with `timeout` must end: never past the request's
    /// deadline ([`UNSCOPED_WALL_CLOCK`] from now outside a request).
    fn deadline_within(&self, timeout: Option<Duration>) -> Instant {
        let now = Instant::now();
        let budget_end = self.deadline.unwrap_or(now + UNSCOPED_WALL_CLOCK);
        timeout.map_or(budget_end, |t| budget_end.min(now + t))
    }
}

/// One uncached exchange of a started fetch, redirect hops included.
struct Exchange {
    client: Arc<FetchClient>,
    allow: Arc<AllowList>,
    budget: Arc<Budget>,
    deadline: Instant,
    follow_redirects: bool,
}

impl Exchange {
    /// Sends `outbound` (its first hop already counted), following
    /// redirects when asked: each hop is checked and counted again. Returns
    /// the final head; its body is left to read.
    async fn run(
        self,
        mut outbound: Outbound,
        open: Option<sockets::OpenExchange>,
    ) -> Result<Fetched, FetchError> {
        let mut hops = 0;
        loop {
            let response = self.client.open(outbound.clone(), self.deadline).await?;
            let (mut parts, body) = response.into_parts();
            let status = parts.status.as_u16();
            let next = match self.follow_redirects && hops < MAX_REDIRECTS {
                true => hops::redirect(&outbound, status, &parts.headers)?,
                false => None,
            };
            match next {
                Some(next) => {
                    check_allowed(&self.allow, &next.uri)?;
                    self.budget.take()?;
                    outbound = next;
                    hops += 1;
                }
                None => {
                    strip_hop_by_hop(&mut parts.headers);
                    return Ok(Fetched::Open {
                        status,
                        headers: parts.headers,
                        body: OriginBody::streaming(body, self.deadline).holding(open),
                    });
                }
            }
        }
    }
}

/// Whether `allow` lets a fetch reach `uri`.
fn check_allowed(allow: &AllowList, uri: &Uri) -> Result<(), FetchError> {
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(FetchError::InvalidRequest(format!(
                "{uri}: the URL must be absolute http or https"
            )));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| FetchError::InvalidRequest(format!("{uri}: no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    if allow.allows(https, &host, port) {
        Ok(())
    } else {
        Err(FetchError::Denied(format!(
            "{}://{host}:{port} is not in the app's allowed_hosts",
            if https { "https" } else { "http" }
        )))
    }
}

impl PerRequest for FetchCtx {
    /// One request's budget: its subrequests, every call ending by its
    /// wall clock from now.
    fn for_request(mut self, scope: &RequestScope) -> Self {
        self.max_subrequests = scope.max_subrequests;
        self.budget = None;
        self.deadline = Some(Instant::now() + scope.wall_clock);
        self
    }
}

/// Links `verge:edge/fetch` into `linker`, over the view `get` projects.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> FetchView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, WithTable<FetchCtx>>(linker, get)
}
