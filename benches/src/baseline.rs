//! The baseline: a plain hyper hello server with no Wasm, same listener
//! setup as Verge (http1 + http2 auto, nodelay).

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Binds 127.0.0.1:0 and serves "hello" until the runtime stops.
pub async fn serve_hello() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let body = format!("hello from verge {}\n", req.uri().path());
                    let mut res = hyper::Response::new(Full::new(Bytes::from(body)));
                    res.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    Ok::<_, std::convert::Infallible>(res)
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Binds 127.0.0.1:0 and forwards every request to `origin` with
/// hyper-util's pooled client, streaming the response body back: the
/// plain reverse proxy pass-through is measured against.
pub async fn serve_proxy(origin: SocketAddr) -> std::io::Result<SocketAddr> {
    use http_body_util::BodyExt as _;
    use hyper_util::client::legacy::Client;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let client = client.clone();
                    async move {
                        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
                        let uri: http::Uri =
                            format!("http://{origin}{path}").parse().unwrap_or_default();
                        let response = match client.get(uri).await {
                            Ok(response) => response.map(|body| {
                                body.map_err(|err| -> Box<dyn std::error::Error + Send + Sync> {
                                    Box::new(err)
                                })
                                .boxed_unsync()
                            }),
                            Err(_) => {
                                let mut failed = hyper::Response::new(
                                    Full::new(Bytes::from_static(b"bad gateway"))
                                        .map_err(|never| match never {})
                                        .boxed_unsync(),
                                );
                                *failed.status_mut() = http::StatusCode::BAD_GATEWAY;
                                failed
                            }
                        };
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}
