//! A local origin server on 127.0.0.1 standing in for the internet in
//! fetch tests. It counts the requests it gets and answers:
//! - `/hello`: 200 `hello from origin`
//! - `/slow?ms=N`: the same after N ms
//! - `/headers`: the request's headers, one `name: value` line each
//! - `/redirect?to=URL`: 302 to URL
//! - `/bytes?n=N`: N bytes of `x`
//! - `/echo`: the method and body back
//! - `/count`: `N bytes`, the size of the request body, read as it arrives
//! - `/cc?cc=CACHE-CONTROL&etag=E`: `cacheable body` with those headers;
//!   304 when `If-None-Match` is E (counted in [`Origin::not_modified`])
//! - `/files/NAME`: the bytes given to [`Origin::start_with_files`]
//! - `/stream?chunks=N&size=S&ms=D`: N chunks of S bytes of `x`, D ms
//!   apart, streamed ([`Origin::streams_sent`] counts those sent to the
//!   end; [`Origin::max_streams_open`] the most being sent at once)
//! - anything else: 404 `origin: no such page PATH`
//!
//! It also tracks how many requests it is answering at once (the most at
//! any moment: [`Origin::max_active`]) and how many the client abandoned
//! before the answer was ready ([`Origin::abandoned`]).

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A running origin; stops when dropped.
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

/// What an origin counts.
#[derive(Default)]
struct Stats {
    hits: AtomicU64,
    active: AtomicU64,
    max_active: AtomicU64,
    abandoned: AtomicU64,
    streams_sent: AtomicU64,
    streams_open: AtomicU64,
    max_streams_open: AtomicU64,
}

/// A `/stream` being sent, counted in `streams_open` while it lives.
struct OpenStream(Arc<Stats>);

impl OpenStream {
    fn start(stats: Arc<Stats>) -> Self {
        let now = stats.streams_open.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_streams_open.fetch_max(now, Ordering::SeqCst);
        Self(stats)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.streams_open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An origin response body.
type OriginBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;

/// A body fed by a channel, without a declared length: the origin's
/// `/stream`, and a client's streamed request body in tests.
pub struct ChannelBody(pub tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(hyper::body::Frame::data(data))))
    }
}

/// `/stream`: chunks produced over time by a task of their own.
fn stream(req: &Request<Incoming>, stats: Arc<Stats>) -> Response<OriginBody> {
    let number = |name: &str, default: u64| {
        query(req, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (chunks, size, ms) = (number("chunks", 4), number("size", 1024), number("ms", 0));
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let open = OpenStream::start(stats.clone());
    tokio::spawn(async move {
        let _open = open;
        let chunk = Bytes::from(vec![b'x'; usize::try_from(size).unwrap()]);
        for i in 0..chunks {
            if tx.send(chunk.clone()).await.is_err() {
                return;
            }
            if ms > 0 && i + 1 < chunks {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        stats.streams_sent.fetch_add(1, Ordering::SeqCst);
    });
    Response::new(ChannelBody(rx).boxed_unsync())
}

/// One request being answered; counted as abandoned if dropped before the
/// answer is ready (the client went away).
struct Answering<'a> {
    stats: &'a Stats,
    done: bool,
}

impl<'a> Answering<'a> {
    fn start(stats: &'a Stats) -> Self {
        stats.hits.fetch_add(1, Ordering::SeqCst);
        let now = stats.active.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_active.fetch_max(now, Ordering::SeqCst);
        Self { stats, done: false }
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.stats.active.fetch_sub(1, Ordering::SeqCst);
        if !self.done {
            self.stats.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn query<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// 304s answered by every origin in this process (tests that read it use
/// their own URL, so a shared counter is enough).
static NOT_MODIFIED: AtomicU64 = AtomicU64::new(0);

/// Files served under `/files/`.
type Files = Arc<std::collections::HashMap<String, Bytes>>;

async fn answer(req: Request<Incoming>, files: Files) -> Response<Full<Bytes>> {
    if let Some(file) = req
        .uri()
        .path()
        .strip_prefix("/files/")
        .and_then(|name| files.get(name))
    {
        return Response::new(Full::new(file.clone()));
    }
    let text = |status: u16, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    match req.uri().path() {
        "/hello" => text(200, "hello from origin".into()),
        "/slow" => {
            let ms = query(&req, "ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            text(200, "slow hello".into())
        }
        "/headers" => {
            let lines: Vec<String> = req
                .headers()
                .iter()
                .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
                .collect();
            text(
                200,
                format!("version: {:?}\n{}", req.version(), lines.join("\n")),
            )
        }
        "/redirect" => Response::builder()
            .status(302)
            .header("location", query(&req, "to").unwrap_or("/hello"))
            .body(Full::default())
            .unwrap(),
        "/bytes" => {
            let n = query(&req, "n").and_then(|v| v.parse().ok()).unwrap_or(0);
            text(200, "x".repeat(n))
        }
        "/cc" => {
            let etag = format!("\"{}\"", query(&req, "etag").unwrap_or("v1"));
            let cc = query(&req, "cc")
                .unwrap_or("max-age=60")
                .replace("%20", " ");
            let matches = req
                .headers()
                .get("if-none-match")
                .is_some_and(|v| v.as_bytes() == etag.as_bytes());
            let builder = Response::builder()
                .header("cache-control", cc)
                .header("etag", etag);
            if matches {
                NOT_MODIFIED.fetch_add(1, Ordering::SeqCst);
                return builder.status(304).body(Full::default()).unwrap();
            }
            builder
                .status(200)
                .body(Full::new(Bytes::from_static(b"cacheable body")))
                .unwrap()
        }
        "/count" => {
            let mut body = req.into_body();
            let mut n = 0;
            while let Some(Ok(frame)) = body.frame().await {
                n += frame.data_ref().map_or(0, Bytes::len);
            }
            text(200, format!("{n} bytes"))
        }
        "/echo" => {
            let method = req.method().to_string();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            text(200, format!("{method} {}", String::from_utf8_lossy(&body)))
        }
        path => text(404, format!("origin: no such page {path}")),
    }
}

/// Serves one connection, counting its requests.
async fn serve_connection<IO>(io: IO, stats: Arc<Stats>, files: Files)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let stats = stats.clone();
        let files = files.clone();
        async move {
            let mut answering = Answering::start(&stats);
            let response = if req.uri().path() == "/stream" {
                stream(&req, stats.clone())
            } else {
                answer(req, files).await.map(BodyExt::boxed_unsync)
            };
            answering.done = true;
            drop(answering);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), service)
        .await;
}

impl Origin {
    /// Starts an origin on 127.0.0.1 with a free port.
    pub async fn start() -> Self {
        Self::start_with(None, Files::default()).await
    }

    /// Starts an origin that also serves `files` under `/files/NAME`.
    pub async fn start_with_files(files: Vec<(&str, Vec<u8>)>) -> Self {
        let files = files
            .into_iter()
            .map(|(name, bytes)| (name.to_owned(), Bytes::from(bytes)))
            .collect();
        Self::start_with(None, Arc::new(files)).await
    }

    /// Starts an HTTPS origin on 127.0.0.1 serving `cert`/`key`, offering
    /// h2 and http/1.1 by ALPN.
    pub async fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Self {
        let acceptor = verge::server::tls::acceptor(&[verge::server::tls::TlsCertificate {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }])
        .unwrap();
        Self::start_with(Some(acceptor), Files::default()).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>, files: Files) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let counter = stats.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                let tls = tls.clone();
                let files = files.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve_connection(stream, counter, files).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_connection(stream, counter, files).await;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, stats, task }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// 304s answered so far by every origin of this test process.
    pub fn not_modified() -> u64 {
        NOT_MODIFIED.load(Ordering::SeqCst)
    }

    /// Requests served so far.
    pub fn hits(&self) -> u64 {
        self.stats.hits.load(Ordering::SeqCst)
    }

    /// The most requests it was answering at one moment.
    pub fn max_active(&self) -> u64 {
        self.stats.max_active.load(Ordering::SeqCst)
    }

    /// Requests it is answering now.
    pub fn active(&self) -> u64 {
        self.stats.active.load(Ordering::SeqCst)
    }

    /// `/stream` bodies sent to their last chunk.
    pub fn streams_sent(&self) -> u64 {
        self.stats.streams_sent.load(Ordering::SeqCst)
    }

    /// The most `/stream` bodies it was sending at one moment.
    pub fn max_streams_open(&self) -> u64 {
        self.stats.max_streams_open.load(Ordering::SeqCst)
    }

    /// Requests whose client went away before the answer was ready.
    pub fn abandoned(&self) -> u64 {
        self.stats.abandoned.load(Ordering::SeqCst)
    }
}
