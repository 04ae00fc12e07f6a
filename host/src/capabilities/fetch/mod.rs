//! `verge:edge/fetch`: outbound HTTP, deny by default. The app's
//! allow-list picks the origins; the host's address policy refuses private
//! destinations after DNS; every call and redirect counts against the
//! request's subrequest budget and ends by the request's deadline.

mod cached;
mod client;
pub mod policy;
mod wasi_http;

pub use cached::{CACHE_STATUS_HEADER, CachePolicy, PASS_TTL, REVALIDATE_TIMEOUT, freshness};
pub use client::{FetchClient, Inbound, MAX_FETCH_RESPONSE_BYTES, Outbound};
pub use policy::{AddressPolicy, AllowList, AllowListError, OutboundGrant};

use crate::runtime::bindings::http_types::{Request as WitRequest, Response as WitResponse};
use crate::runtime::{RequestState, RequestStateLinker, bindings::verge::edge::fetch as wit};
use crate::telemetry::metrics::Metrics;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONNECTION, COOKIE, HOST, LOCATION};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use wasmtime::component::HasSelf;

/// Redirects followed per call when the guest asks for it, as browsers
/// and curl cap them: enough for real chains, short of a loop.
pub const MAX_REDIRECTS: u32 = 10;

/// Subrequests one request may make unless its limits say otherwise: the
/// 50 Workers allows on its free plan.
pub const DEFAULT_MAX_SUBREQUESTS: u32 = 50;

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

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus
/// the framing and `Host` the client derives itself.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// What one request may fetch: the shared client, the app's allow-list,
/// and this request's budget. Cheap to clone from the deployment's copy.
#[derive(Clone)]
pub struct FetchCtx {
    client: Option<Arc<FetchClient>>,
    allow: Arc<AllowList>,
    max_subrequests: u32,
    used: u32,
    deadline: Option<Instant>,
    metrics: Option<(Arc<Metrics>, Arc<str>)>,
    cache: Option<(Arc<crate::capabilities::cache::CacheStore>, Arc<str>)>,
}

impl Default for FetchCtx {
    /// No outbound access at all.
    fn default() -> Self {
        Self {
            client: None,
            allow: Arc::default(),
            max_subrequests: DEFAULT_MAX_SUBREQUESTS,
            used: 0,
            deadline: None,
            metrics: None,
            cache: None,
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

    /// Lets fetches with a cache policy use `store` as `tenant`.
    pub fn with_cache(
        mut self,
        store: Arc<crate::capabilities::cache::CacheStore>,
        tenant: &str,
    ) -> Self {
        self.cache = Some((store, tenant.into()));
        self
    }

    /// Starts one request's budget: `max_subrequests` calls, all ending by
    /// `wall_clock` from now.
    pub fn begin(&mut self, max_subrequests: u32, wall_clock: Duration) {
        self.max_subrequests = max_subrequests;
        self.used = 0;
        self.deadline = Some(Instant::now() + wall_clock);
    }

    /// Subrequests made so far.
    pub fn used(&self) -> u32 {
        self.used
    }

    /// Sends `req`, following redirects when asked.
    pub async fn send(
        &mut self,
        req: WitRequest,
        timeout: Option<Duration>,
        follow_redirects: bool,
        cache: Option<CachePolicy>,
    ) -> Result<Inbound, FetchError> {
        let client = self.client()?;
        let deadline = self.deadline_within(timeout);
        let mut outbound = outbound_from_wit(req)?;
        if let (Some(policy), Some((store, tenant)), &Method::GET) =
            (cache, self.cache.clone(), &outbound.method)
        {
            self.check_allowed(&outbound.uri)?;
            let cached = cached::CachedFetch {
                client,
                store,
                tenant,
                policy,
            };
            return cached
                .get(outbound, deadline, || self.take_subrequest())
                .await;
        }
        let mut hops = 0;
        loop {
            self.check_allowed(&outbound.uri)?;
            self.take_subrequest()?;
            let inbound = client.send(outbound.clone(), deadline).await?;
            let next = match follow_redirects && hops < MAX_REDIRECTS {
                true => redirect(&outbound, &inbound)?,
                false => None,
            };
            match next {
                Some(next) => {
                    outbound = next;
                    hops += 1;
                }
                None => return Ok(strip_inbound(inbound)),
            }
        }
    }

    /// The shared client, unless this host offers no outbound fetch.
    fn client(&self) -> Result<Arc<FetchClient>, FetchError> {
        self.client
            .clone()
            .ok_or_else(|| FetchError::Denied("this host offers no outbound fetch".into()))
    }

    /// Counts one subrequest against the budget, or refuses it.
    fn take_subrequest(&mut self) -> Result<(), FetchError> {
        if self.used >= self.max_subrequests {
            return Err(FetchError::TooManySubrequests(self.max_subrequests));
        }
        self.used += 1;
        Ok(())
    }

    /// When a call with `timeout` must end: never past the request's
    /// deadline (the default wall clock from now if none was begun).
    fn deadline_within(&self, timeout: Option<Duration>) -> Instant {
        let now = Instant::now();
        let budget_end = self
            .deadline
            .unwrap_or(now + crate::runtime::DEFAULT_WALL_CLOCK);
        timeout.map_or(budget_end, |t| budget_end.min(now + t))
    }

    fn check_allowed(&self, uri: &Uri) -> Result<(), FetchError> {
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
        if self.allow.allows(https, &host, port) {
            Ok(())
        } else {
            Err(FetchError::Denied(format!(
                "{}://{host}:{port} is not in the app's allowed_hosts",
                if https { "https" } else { "http" }
            )))
        }
    }
}

fn outbound_from_wit(req: WitRequest) -> Result<Outbound, FetchError> {
    let method = Method::from_bytes(req.method.as_bytes())
        .map_err(|_| FetchError::InvalidRequest(format!("bad method {:?}", req.method)))?;
    let uri: Uri = req
        .uri
        .parse()
        .map_err(|err| FetchError::InvalidRequest(format!("bad URL {:?}: {err}", req.uri)))?;
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for (name, value) in req.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| FetchError::InvalidRequest(format!("bad header name {name:?}")))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| FetchError::InvalidRequest(format!("bad value for header {name}")))?;
        headers.append(name, value);
    }
    strip_hop_by_hop(&mut headers);
    headers.remove(HOST);
    Ok(Outbound {
        method,
        uri,
        headers,
        body: Bytes::from(req.body),
    })
}

/// Removes hop-by-hop headers, including any the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

pub(crate) fn strip_inbound(mut inbound: Inbound) -> Inbound {
    strip_hop_by_hop(&mut inbound.headers);
    inbound
}

/// The next hop of a redirect, if `inbound` is one: 303 (and 301/302 after
/// a POST) turn into a GET without body, as browsers do; 307/308 repeat the
/// request. Credentials do not follow to another origin.
fn redirect(prev: &Outbound, inbound: &Inbound) -> Result<Option<Outbound>, FetchError> {
    let status = inbound.status;
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return Ok(None);
    }
    let Some(location) = inbound.headers.get(LOCATION).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let uri = resolve_location(&prev.uri, location)?;
    let mut next = prev.clone();
    if status == 303 || (matches!(status, 301 | 302) && prev.method == Method::POST) {
        next.method = Method::GET;
        next.body = Bytes::new();
        next.headers.remove(http::header::CONTENT_TYPE);
    }
    if uri.authority() != prev.uri.authority() || uri.scheme() != prev.uri.scheme() {
        next.headers.remove(AUTHORIZATION);
        next.headers.remove(COOKIE);
    }
    next.uri = uri;
    Ok(Some(next))
}

fn resolve_location(base: &Uri, location: &str) -> Result<Uri, FetchError> {
    let bad = |err: String| FetchError::InvalidRequest(format!("redirect to {location:?}: {err}"));
    let target: Uri = location
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
    if target.scheme().is_some() {
        return Ok(target);
    }
    let mut parts = base.clone().into_parts();
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(dir, _)| dir);
        format!("{dir}/{location}")
    };
    parts.path_and_query = Some(
        path.parse()
            .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?,
    );
    Uri::from_parts(parts).map_err(|e| bad(e.to_string()))
}

fn to_wit_error(err: FetchError) -> wit::Error {
    match err {
        FetchError::Denied(why) => wit::Error::Denied(why),
        FetchError::Timeout => wit::Error::Timeout,
        FetchError::Dns(why) => wit::Error::Dns(why),
        FetchError::Connection(why) => wit::Error::Connection(why),
        FetchError::TooManySubrequests(_) => wit::Error::TooManySubrequests,
        FetchError::TooLarge(_) => wit::Error::TooLarge,
        FetchError::InvalidRequest(why) => wit::Error::InvalidRequest(why),
    }
}

fn to_wit_response(inbound: Inbound) -> WitResponse {
    WitResponse {
        status: inbound.status,
        headers: inbound
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: inbound.body.to_vec(),
    }
}

impl wit::Host for FetchCtx {
    async fn send(
        &mut self,
        req: WitRequest,
        options: wit::Options,
    ) -> wasmtime::Result<Result<WitResponse, wit::Error>> {
        let timeout = options
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()));
        let policy = options.cache.map(|c| CachePolicy {
            default_ttl: Duration::from_secs(c.default_ttl_seconds.into()),
            stale_while_revalidate: c
                .stale_while_revalidate_seconds
                .map(|s| Duration::from_secs(s.into())),
            tags: c.tags,
        });
        let result = self
            .send(req, timeout, options.follow_redirects, policy)
            .await;
        if let Some((metrics, tenant)) = &self.metrics {
            metrics.fetch(
                tenant,
                result.as_ref().map_or_else(FetchError::kind, |_| "ok"),
            );
        }
        Ok(result.map(to_wit_response).map_err(to_wit_error))
    }
}

pub(super) fn add_to_linker(linker: &mut RequestStateLinker) -> wasmtime::Result<()> {
    wit::add_to_linker::<RequestState, HasSelf<FetchCtx>>(linker, |state| &mut state.fetch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(method: Method, uri: &str) -> Outbound {
        Outbound {
            method,
            uri: uri.parse().unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"data"),
        }
    }

    fn redirect_to(status: u16, location: &str) -> Inbound {
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, HeaderValue::from_str(location).unwrap());
        Inbound {
            status,
            headers,
            body: Bytes::new(),
        }
    }

    #[test]
    fn redirects_resolve_relative_locations_and_change_method_like_browsers() {
        let post = outbound(Method::POST, "http://a.example/x/y?q=1");
        let next = redirect(&post, &redirect_to(303, "/z")).unwrap().unwrap();
        assert_eq!(next.uri, "http://a.example/z");
        assert_eq!(next.method, Method::GET);
        assert!(next.body.is_empty());
        let next = redirect(&post, &redirect_to(307, "w")).unwrap().unwrap();
        assert_eq!(next.uri, "http://a.example/x/w");
        assert_eq!(next.method, Method::POST);
        assert_eq!(next.body, "data");
        assert!(redirect(&post, &redirect_to(200, "/z")).unwrap().is_none());
    }

    #[test]
    fn credentials_do_not_follow_to_another_origin() {
        let mut get = outbound(Method::GET, "https://a.example/");
        get.headers
            .insert(AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        let same = redirect(&get, &redirect_to(302, "/b")).unwrap().unwrap();
        assert!(same.headers.contains_key(AUTHORIZATION));
        let other = redirect(&get, &redirect_to(302, "https://b.example/"))
            .unwrap()
            .unwrap();
        assert!(!other.headers.contains_key(AUTHORIZATION));
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let req = WitRequest {
            method: "GET".into(),
            uri: "http://a.example/".into(),
            headers: vec![
                ("connection".into(), "x-private, keep-alive".into()),
                ("x-private".into(), "1".into()),
                ("transfer-encoding".into(), "chunked".into()),
                ("host".into(), "evil.example".into()),
                ("x-kept".into(), "1".into()),
            ],
            body: Vec::new(),
        };
        let out = outbound_from_wit(req).unwrap();
        let names: Vec<&str> = out.headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn malformed_requests_are_invalid() {
        let bad = |method: &str, uri: &str, header: (&str, &str)| WitRequest {
            method: method.into(),
            uri: uri.into(),
            headers: vec![(header.0.into(), header.1.into())],
            body: Vec::new(),
        };
        for req in [
            bad("GE T", "http://a.example/", ("a", "b")),
            bad("GET", "http://a example/", ("a", "b")),
            bad("GET", "http://a.example/", ("bad name", "b")),
            bad("GET", "http://a.example/", ("a", "line\nbreak")),
        ] {
            assert!(matches!(
                outbound_from_wit(req),
                Err(FetchError::InvalidRequest(_))
            ));
        }
    }
}
