//! The data-plane HTTP server: accept loop, connection limits, graceful
//! shutdown. One request's path lives in [`dispatch`].

mod dispatch;
mod error;
pub mod limits;
mod proxy;
mod request_id;
pub mod tls;

pub use dispatch::{Dispatcher, ERROR_HEADER, PeerAddr, REQUEST_ID_HEADER, error_page};

pub use error::RequestError;
pub use limits::HttpLimits;

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
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use limits::{
    DEFAULT_MAX_CONNECTIONS, DRAIN_TIMEOUT, HEADER_READ_TIMEOUT, HTTP1_READ_BUFFER_BYTES,
};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tls::TLS_HANDSHAKE_TIMEOUT;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// A bound listener and the dispatcher that serves its requests.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    dispatcher: Arc<Dispatcher>,
    tls: Option<TlsAcceptor>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port; see [`Server::local_addr`]).
    pub async fn bind(addr: SocketAddr, dispatcher: Arc<Dispatcher>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            dispatcher,
            tls: None,
        })
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
        let local = self.local_addr;
        let handler = move |req| {
            let dispatcher = dispatcher.clone();
            async move { dispatcher.serve(req, local).await }
        };
        serve_http(self.listener, self.tls, handler, shutdown).await;
    }
}

/// Marks a request that arrived over TLS (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// The accept loop shared by the data plane and the admin API: HTTP/1.1 and
/// HTTP/2 (by ALPN over TLS), a header-read and TLS-handshake timeout, a
/// connection cap, `TCP_NODELAY`, and a graceful drain when `shutdown`
/// resolves. Each request carries its [`PeerAddr`] (and [`OverTls`]).
pub async fn serve_http<F, Fut, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(HTTP1_READ_BUFFER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(HTTP1_READ_BUFFER_BYTES).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let connections = Arc::new(Semaphore::new(DEFAULT_MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Responses are small and written whole: send them without
        // waiting for Nagle's algorithm to coalesce.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "set_nodelay failed");
        }
        let over_tls = tls.is_some();
        let handler = handler.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            if over_tls {
                req.extensions_mut().insert(OverTls);
            }
            let response = handler(req);
            async move { Ok::<_, std::convert::Infallible>(response.await) }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            watcher.watch(conn.into_owned()).await
                        }
                        Ok(Err(err)) => Err(format!("TLS handshake: {err}").into()),
                        Err(_) => Err("TLS handshake timed out".into()),
                    }
                }
            };
            if let Err(err) = result {
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout passed; closing remaining connections");
    }
}
