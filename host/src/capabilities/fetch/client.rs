//! The shared outbound HTTP client: hyper with connection pooling, rustls
//! (webpki roots plus any operator CAs), HTTP/1.1 and HTTP/2 by ALPN, and a
//! resolver that drops refused addresses before connecting.

use super::FetchError;
use super::policy::{AddressPolicy, OutboundGrant};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// Longest a TCP connect may take before the next address is tried; the
/// call's own deadline still bounds the whole exchange.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle pooled connections kept per origin: enough for a busy origin
/// without holding thousands of sockets for rarely used ones.
pub const POOL_MAX_IDLE_PER_HOST: usize = 32;

/// How long an idle pooled connection is kept.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest response body a function may fetch: 16 MiB, room for an image
/// original, while a 128 MiB guest can still hold it twice.
pub const MAX_FETCH_RESPONSE_BYTES: usize = 16 << 20;

/// A host-side request, already checked against the allow-list.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The method.
    pub method: Method,
    /// The absolute `http`/`https` URI.
    pub uri: Uri,
    /// Header fields, hop-by-hop ones already removed.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The status code.
    pub status: u16,
    /// Header fields, hop-by-hop ones already removed.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

type Connector = HttpsConnector<PeerChecked>;

/// A request body on its way to an origin: whole for `fetch`, streamed
/// from the guest for a proxy component's outgoing request.
pub type OutboundBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// One per daemon, shared by every app without outbound grants, and one
/// per tenant with grants (so a pooled connection to a granted private
/// origin is never reused by another tenant): connections are pooled by
/// origin.
pub struct FetchClient {
    client: Client<Connector, OutboundBody>,
    policy: Arc<AddressPolicy>,
    tls: rustls::ClientConfig,
    sockets: Arc<super::sockets::OriginSockets>,
}

impl std::fmt::Debug for FetchClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchClient")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl FetchClient {
    /// A client that connects only where `policy` permits and trusts the
    /// webpki roots plus `extra_roots`.
    pub fn new(
        policy: AddressPolicy,
        extra_roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, rustls::Error> {
        let policy = Arc::new(policy);
        let mut roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra_roots {
            roots.add(cert)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self::build(policy, tls, Arc::default()))
    }

    /// The daemon's count of open origin exchanges, shared by every
    /// client made from this one.
    pub fn sockets(&self) -> &Arc<super::sockets::OriginSockets> {
        &self.sockets
    }

    /// The same client for a tenant with `grants`: its own policy and
    /// connection pool, the same TLS roots and the same refused listeners.
    pub fn for_grants(&self, grants: &[OutboundGrant]) -> Self {
        Self::build(
            Arc::new(self.policy.with_grants(grants)),
            self.tls.clone(),
            self.sockets.clone(),
        )
    }

    /// Refuses every fetch to the daemon's own `listeners`, in this client
    /// and every one made from it.
    pub fn set_own_listeners(&self, listeners: Vec<SocketAddr>) {
        self.policy.set_own_listeners(listeners);
    }

    fn build(
        policy: Arc<AddressPolicy>,
        tls: rustls::ClientConfig,
        sockets: Arc<super::sockets::OriginSockets>,
    ) -> Self {
        let mut http = HttpConnector::new_with_resolver(PolicyResolver {
            policy: policy.clone(),
        });
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let checked = PeerChecked {
            inner: http,
            policy: policy.clone(),
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(checked);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self {
            client,
            policy,
            tls,
            sockets,
        }
    }

    /// Whether the host's address policy lets `ip` be reached.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.policy.permits(ip)
    }

    /// Sends `req` and reads the whole response by `deadline`.
    pub async fn send(&self, req: Outbound, deadline: Instant) -> Result<Inbound, FetchError> {
        let response = self.open(req, deadline).await?;
        let (parts, body) = response.into_parts();
        let body = read_whole(body, deadline).await?;
        Ok(Inbound {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// Sends `req` and waits for the response head by `deadline`; the body
    /// is left to the caller.
    pub async fn open(
        &self,
        req: Outbound,
        deadline: Instant,
    ) -> Result<http::Response<Incoming>, FetchError> {
        let mut request = Request::new(
            Full::new(req.body)
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        *request.method_mut() = req.method;
        *request.uri_mut() = req.uri;
        *request.headers_mut() = req.headers;
        self.open_streaming(request, deadline).await
    }

    /// [`FetchClient::open`] with a body that streams as the origin reads
    /// it (a proxy component's outgoing request).
    pub async fn open_streaming(
        &self,
        request: Request<OutboundBody>,
        deadline: Instant,
    ) -> Result<http::Response<Incoming>, FetchError> {
        if let Some(host) = request.uri().host() {
            let literal = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = literal.parse::<IpAddr>()
                && !self.policy.permits(ip)
            {
                return Err(FetchError::Denied(format!(
                    "{ip} is a private, loopback or link-local address"
                )));
            }
        }
        match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Ok(response) => response.map_err(classify),
            Err(_elapsed) => Err(FetchError::Timeout),
        }
    }
}

/// Reads `body` whole by `deadline`, refusing one over
/// [`MAX_FETCH_RESPONSE_BYTES`].
pub async fn read_whole<B>(body: B, deadline: Instant) -> Result<Bytes, FetchError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let collect = Limited::new(body, MAX_FETCH_RESPONSE_BYTES).collect();
    match tokio::time::timeout_at(deadline, collect).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => {
            Err(FetchError::TooLarge(MAX_FETCH_RESPONSE_BYTES))
        }
        Ok(Err(err)) => Err(FetchError::Connection(format!("reading the body: {err}"))),
        Err(_elapsed) => Err(FetchError::Timeout),
    }
}

/// Maps a client error to the guest's error by walking its causes.
fn classify(err: hyper_util::client::legacy::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(cause) = source {
        // The resolver's errors travel inside an io::Error, whose
        // `source()` skips the wrapped error itself: look inside.
        let inner = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        for candidate in [Some(cause), inner].into_iter().flatten() {
            if let Some(refused) = candidate.downcast_ref::<Refused>() {
                return FetchError::Denied(refused.to_string());
            }
            if let Some(dns) = candidate.downcast_ref::<DnsFailure>() {
                return FetchError::Dns(dns.to_string());
            }
        }
        source = cause.source();
    }
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    FetchError::Connection(message)
}

/// Every address of a name was refused by the policy.
#[derive(Debug, thiserror::Error)]
#[error("{name} resolves only to private, loopback or link-local addresses")]
struct Refused {
    name: String,
}

/// The name did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {reason}")]
struct DnsFailure {
    name: String,
    reason: String,
}

/// The TCP connector, with the policy checked once more on the peer it
/// actually reached (address and port): the port of a per-port grant, and
/// the daemon's own listeners, are only known here.
#[derive(Clone)]
struct PeerChecked {
    inner: HttpConnector<PolicyResolver>,
    policy: Arc<AddressPolicy>,
}

impl tower_service::Service<http::Uri> for PeerChecked {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let policy = self.policy.clone();
        Box::pin(async move {
            let io = connecting.await?;
            let peer = io.inner().peer_addr()?;
            if !policy.permits_socket(peer) {
                return Err(Box::new(std::io::Error::other(Refused {
                    name: peer.to_string(),
                })) as Self::Error);
            }
            Ok(io)
        })
    }
}

/// Resolves with the system resolver, then keeps only permitted addresses,
/// so a public name pointing at 10.0.0.1 (DNS rebinding included: the
/// check runs on the addresses actually connected to) never connects.
#[derive(Clone)]
struct PolicyResolver {
    policy: Arc<AddressPolicy>,
}

impl tower_service::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let name = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|err| {
                    std::io::Error::other(DnsFailure {
                        name: name.clone(),
                        reason: err.to_string(),
                    })
                })?
                .collect();
            if found.is_empty() {
                return Err(std::io::Error::other(DnsFailure {
                    name,
                    reason: "no addresses".into(),
                }));
            }
            let permitted: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| policy.permits(addr.ip()))
                .collect();
            if permitted.is_empty() {
                return Err(std::io::Error::other(Refused { name }));
            }
            Ok(permitted.into_iter())
        })
    }
}
