//! Test harness: builds the guests once per process, starts a real server
//! on 127.0.0.1:0 with several apps routed by path prefix, and talks to it
//! over real HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness"
)]

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tokio::sync::oneshot;
use verge::capabilities::AppCapabilities;
use verge::capabilities::fetch::AllowList;
use verge::runtime::{EngineSettings, Limits, Runtime};
use verge::server::TrustedProxies;
use verge::server::{Dispatcher, HttpLimits, Server};
use verge::storage::kv::redb::RedbKv;
use verge::storage::kv::{KvBackend, SystemClock};
use verge::tenancy::{Deployment, DeploymentSpec, RouteTable, local_capabilities};

pub mod fleet;
pub mod geo_fixtures;
pub mod kv;
pub mod origin;
pub mod pki;
pub mod platform;
pub mod redis_server;

pub use platform::{
    Backend, Platform, TEST_FLEET_SECRETS_KEY, TEST_OPERATOR_TOKEN, fleet_serve_args,
};

/// Fetch settings that let functions reach a test origin on 127.0.0.1.
pub fn loopback_capabilities() -> verge::daemon::CapabilityConfig {
    verge::daemon::CapabilityConfig {
        outbound_allow_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
        ..Default::default()
    }
}

/// Every guest in `tests/guests`, by package name. A guest added there
/// without a line here fails `every_test_guest_is_listed`.
pub const TEST_GUESTS: &[&str] = &[
    "cache-probe",
    "cpu-spin",
    "echo",
    "fallible",
    "fetch-async-probe",
    "fetch-probe",
    "fuel-burn",
    "geo-probe",
    "huge-response",
    "imports-unknown",
    "invalid-header",
    "invalid-status",
    "kv-probe",
    "leak-probe",
    "memory-bomb",
    "memory-grow",
    "panics",
    "proxy-probe",
    "sleeps-past-deadline",
    "stack-overflow",
    "stream-probe",
    "upload-probe",
    "wasi-hello",
    "wit-0-1-0",
];

/// `text` as one query parameter value: its own `%`, `&`, `?` and `=`
/// escaped (the stream-probe guest decodes its `url` parameter).
pub fn query_value(text: &str) -> String {
    text.replace('%', "%25")
        .replace('&', "%26")
        .replace('?', "%3F")
        .replace('=', "%3D")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `.wasm` of guest `name` (from `tests/guests` or `examples`), built
/// once per test process.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let target = repo_root().join("target/guests");
        let mut all = HashMap::new();
        for dir in ["examples", "tests/guests"] {
            let artifacts = verge::guest_build::build(&repo_root().join(dir), Some(&target))
                .unwrap_or_else(|err| panic!("building the guests in {dir}: {err}"));
            all.extend(artifacts.into_iter().map(|a| (a.package, a.path)));
        }
        all
    });
    built
        .get(name)
        .unwrap_or_else(|| panic!("no guest named {name}; built: {:?}", built.keys()))
        .clone()
}

/// Sends `req` with `client` and reads the whole response.
async fn fetch(client: &Client<HttpConnector, Full<Bytes>>, req: Request<Full<Bytes>>) -> Reply {
    let res = client.request(req).await.expect("request");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Routes by the first path segment: `/NAME/...` goes to app NAME.
struct PrefixRoutes(HashMap<String, Arc<Deployment>>);

impl RouteTable for PrefixRoutes {
    fn resolve(&self, _host: &str, path: &str) -> Option<Arc<Deployment>> {
        let first = path.trim_start_matches('/').split('/').next()?;
        self.0.get(first).cloned()
    }
}

/// How a test server is built.
#[derive(Clone)]
pub struct Setup {
    /// Per-request limits for every app.
    pub limits: Limits,
    /// HTTP caps.
    pub http: HttpLimits,
    /// Engine settings (a small pool by default).
    pub engine: EngineSettings,
    /// Config variables for every app.
    pub vars: Vec<(String, String)>,
    /// Outbound origins every app may fetch.
    pub allowed_hosts: Vec<String>,
    /// Fetch and geo settings (tests allow 127.0.0.1 here to reach a
    /// local origin).
    pub capabilities: verge::daemon::CapabilityConfig,
}

impl Setup {
    /// Default settings whose apps may fetch any port on 127.0.0.1, where
    /// tests run their origins.
    pub fn loopback() -> Self {
        Self {
            allowed_hosts: vec!["http://127.0.0.1:*".into()],
            capabilities: loopback_capabilities(),
            ..Self::default()
        }
    }
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            http: HttpLimits::default(),
            engine: EngineSettings {
                pool_instances: 64,
                ..EngineSettings::default()
            },
            vars: Vec::new(),
            allowed_hosts: Vec::new(),
            capabilities: Default::default(),
        }
    }
}

/// A running server with some guests deployed under `/NAME/`.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    client: Client<HttpConnector, Full<Bytes>>,
    _kv_dir: tempfile::TempDir,
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// A header's value as text ("" if missing).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl TestServer {
    /// Starts a server with `apps` (guest names) on default settings.
    pub async fn start(apps: &[&str]) -> Self {
        Self::start_with(apps, Setup::default()).await
    }

    /// Starts a server with `apps` built as `setup` says.
    pub async fn start_with(apps: &[&str], setup: Setup) -> Self {
        let runtime = Runtime::new(setup.engine).expect("engine");
        let kv_dir = tempfile::tempdir().expect("tempdir");
        let kv: Arc<dyn KvBackend> = Arc::new(
            RedbKv::open(&kv_dir.path().join("kv.redb"), Arc::new(SystemClock)).expect("kv"),
        );
        let services = setup.capabilities.services(kv).expect("services");
        let allow = AllowList::parse(&setup.allowed_hosts).expect("allowed hosts");
        let mut table = HashMap::new();
        for app in apps {
            let bytes = std::fs::read(guest(app)).expect("reading guest");
            let function = runtime
                .load(app, &bytes, setup.limits)
                .expect("loading guest");
            let deployment = Deployment::new(
                &services,
                DeploymentSpec {
                    http_limits: setup.http,
                    capabilities: AppCapabilities {
                        vars: setup.vars.iter().cloned().collect(),
                        allow: allow.clone(),
                        ..local_capabilities(app)
                    },
                    ..DeploymentSpec::local(app, function)
                },
            );
            table.insert((*app).to_owned(), Arc::new(deployment));
        }
        let pool = usize::try_from(setup.engine.pool_instances).unwrap_or(1);
        let dispatcher = Arc::new(
            Dispatcher::new(
                Arc::new(PrefixRoutes(table)),
                setup.http,
                pool,
                services.metrics.clone(),
            )
            .with_trusted_proxies(TrustedProxies::new(
                setup.capabilities.trusted_proxies.clone(),
            )),
        );
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), dispatcher)
            .await
            .expect("bind");
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _runtime = runtime;
            server.serve(async { drop(stopped.await) }).await;
        });
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            addr,
            stop: Some(stop),
            task,
            client,
            _kv_dir: kv_dir,
        }
    }

    /// `http://ADDR/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Request::get(self.url(path)).body(Full::default()).unwrap())
            .await
    }

    /// Sends `req` and reads the whole response.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        fetch(&self.client, req).await
    }

    /// Writes `bytes` on a fresh connection and reads until the server
    /// closes it or 2 s pass: for requests a well-behaved client won't send.
    pub async fn raw(&self, bytes: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        stream.write_all(bytes).await.expect("write");
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.windows(4).any(|w| w == b"\r\n\r\n") && response_complete(&out) {
                break;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Graceful shutdown: stops accepting, waits for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("server task");
    }
}

/// Whether `out` holds a whole response with a content-length body.
fn response_complete(out: &[u8]) -> bool {
    let text = String::from_utf8_lossy(out);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|len| body.len() >= len)
}
