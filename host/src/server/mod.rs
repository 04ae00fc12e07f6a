//! The data-plane HTTP server: accept loop, connection limits, graceful
//! shutdown. One request's path lives in `dispatch.rs`.

pub mod admission;
pub mod body;
mod client_ip;
pub mod connection;
pub mod cores;
mod dispatch;
mod error;
mod guest_io;
mod head;
pub mod limits;
mod proxy;
mod request_id;
mod streaming;
pub mod tls;

pub use dispatch::{Dispatcher, ERROR_HEADER, PeerAddr, REQUEST_ID_HEADER, error_page};

pub use client_ip::TrustedProxies;
pub use error::RequestError;
pub use limits::{ConnectionLimits, HttpLimits};

/// How long the accept loop waits after a failed accept (`EMFILE`, say)
/// before trying again, instead of spinning on the error.
const ACCEPT_ERROR_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// Errors a streamed response body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The data plane's response body: whole for Verge functions, streamed for
/// `wasi:http/proxy` components.
pub type DataBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A whole body as a [`DataBody`].
pub fn full_body(body: Full<Bytes>) -> DataBody {
    use http_body_util::BodyExt as _;
    body.map_err(|never| match never {}).boxed_unsync()
}

use bytes::Bytes;
use connection::{Activity, ConnectionGate};
use cores::ServingCores;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use limits::{
    DRAIN_TIMEOUT, H2_CONNECTION_WINDOW_BYTES, H2_KEEP_ALIVE_INTERVAL, H2_KEEP_ALIVE_TIMEOUT,
    H2_MAX_CONCURRENT_STREAMS, H2_STREAM_WINDOW_BYTES, HEADER_READ_TIMEOUT,
    HTTP1_READ_BUFFER_BYTES,
};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tls::TLS_HANDSHAKE_TIMEOUT;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A bound listener and the dispatcher that serves its requests.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    dispatcher: Arc<Dispatcher>,
    tls: Option<TlsAcceptor>,
    cores: Option<Arc<ServingCores>>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port; see [`Server::local_addr`]).
    pub async fn bind(addr: SocketAddr, dispatcher: Arc<Dispatcher>) -> std::io::Result<Self> {
        let listener = bind_listener(addr)?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            dispatcher,
            tls: None,
            cores: None,
        })
    }

    /// Serves each connection on one of `cores` (else on the runtime that
    /// runs [`Server::serve`]).
    pub fn on_cores(mut self, cores: Arc<ServingCores>) -> Self {
        self.cores = Some(cores);
        self
    }

    /// Serves HTTPS with `acceptor` instead of plain HTTP.
    pub fn with_tls(mut self, acceptor: TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then stops accepting and waits up
    /// to [`DRAIN_TIMEOUT`] for in-flight requests to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let dispatcher = self.dispatcher;
        let gate = dispatcher.connection_gate().clone();
        let local = self.local_addr;
        let handler = move |req| {
            let dispatcher = dispatcher.clone();
            async move { dispatcher.serve(req, local).await }
        };
        serve_http(self.listener, self.tls, self.cores, gate, handler, shutdown).await;
    }
}

/// Connections the kernel completes and queues for a listener before it
/// accepts them: while the connection cap pauses accepting, the next 1,024
/// clients wait in the queue rather than in SYN retries (tokio's default
/// queue is 128).
pub const LISTEN_BACKLOG: u32 = 1024;

/// Binds `addr` with [`LISTEN_BACKLOG`] and `SO_REUSEADDR` (a restart
/// rebinds at once).
pub fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Marks a request that arrived over TLS (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// The hyper connection builder every listener uses: HTTP/1.1 and HTTP/2
/// with the timeouts, buffer sizes, stream caps, flow-control windows and
/// keep-alive pings of [`limits`].
fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(HTTP1_READ_BUFFER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(HTTP1_READ_BUFFER_BYTES).unwrap_or(u32::MAX))
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .initial_stream_window_size(H2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(H2_CONNECTION_WINDOW_BYTES)
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
    builder
}

/// The accept loop shared by the data plane and the admin API: HTTP/1.1 and
/// HTTP/2 (by ALPN over TLS), a TLS-handshake timeout, the connection caps
/// and idle timeout of `gate`, `TCP_NODELAY`, and a graceful drain when
/// `shutdown` resolves. Each request carries its [`PeerAddr`] (and
/// [`OverTls`]).
pub async fn serve_http<F, Fut, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    cores: Option<Arc<ServingCores>>,
    gate: Arc<ConnectionGate>,
    handler: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + Unpin,
{
    let builder = Arc::new(connection_builder());
    let (drain, draining) = tokio::sync::watch::channel(false);
    let idle_timeout = gate.limits().idle_timeout;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = gate.total_permit() => match permit {
                Some(permit) => permit,
                None => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and friends: back off briefly instead of
                    // spinning; the fds kept back (RESERVED_FDS) let the
                    // admin listener answer meanwhile.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = gate.admit(peer.ip(), permit) else {
            tracing::debug!(%peer, "closed: this client IP is at its connection cap");
            continue;
        };
        // Responses are small and written whole: send them without
        // waiting for Nagle's algorithm to coalesce.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "set_nodelay failed");
        }
        let activity = Activity::new();
        let service = {
            let activity = activity.clone();
            let over_tls = tls.is_some();
            let handler = handler.clone();
            service_fn(move |mut req: Request<Incoming>| {
                let guard = activity.start();
                req.extensions_mut().insert(PeerAddr(peer));
                if over_tls {
                    req.extensions_mut().insert(OverTls);
                }
                let response = handler(req);
                async move {
                    let response = response.await;
                    Ok::<_, std::convert::Infallible>(
                        response.map(|body| connection::Tracked::new(body, guard)),
                    )
                }
            })
        };
        let builder = builder.clone();
        let tls = tls.clone();
        let draining = draining.clone();
        let connection = move |stream: tokio::net::TcpStream| async move {
            let result: Result<(), BoxError> = match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    connection::drive(
                        conn,
                        |c| c.graceful_shutdown(),
                        &activity,
                        idle_timeout,
                        draining,
                    )
                    .await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            connection::drive(
                                conn,
                                |c| c.graceful_shutdown(),
                                &activity,
                                idle_timeout,
                                draining,
                            )
                            .await
                        }
                        Ok(Err(err)) => Err(format!("TLS handshake: {err}").into()),
                        Err(_) => Err("TLS handshake timed out".into()),
                    }
                }
            };
            if let Err(err) = result {
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
            drop(slot);
        };
        match &cores {
            Some(cores) => cores.serve(stream, connection),
            None => drop(tokio::spawn(connection(stream))),
        }
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    let _ = drain.send(true);
    if !gate.drained(DRAIN_TIMEOUT).await {
        tracing::warn!("drain timeout passed; closing remaining connections");
    }
}
