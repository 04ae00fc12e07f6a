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

pub mod geo_fixtures;
pub mod origin;
pub mod pki;
pub mod redis_server;

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

/// Where a test platform keeps its state: a single node on redb, or a
/// fleet node on a real Redis (control plane and KV), so the control-plane
/// and isolation suites hold on both.
#[derive(Clone)]
pub enum Backend {
    /// `control.redb` and `kv.redb`.
    Redb,
    /// A fleet node on this Redis.
    Redis(Arc<redis_server::RedisServer>),
}

impl Backend {
    /// A fleet backend on a fresh Redis.
    pub fn redis() -> Self {
        Self::Redis(Arc::new(redis_server::RedisServer::start()))
    }

    fn cluster(&self) -> Option<verge::daemon::ClusterConfig> {
        match self {
            Self::Redb => None,
            Self::Redis(server) => Some(verge::daemon::ClusterConfig {
                url: server.url(),
                node_name: "node".into(),
                region: "test".into(),
                ca_file: None,
            }),
        }
    }
}

/// Instantiates each named `async fn NAME(backend: Backend)` as two tests,
/// `NAME::on_redb` and `NAME::on_redis`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn on_redb() {
                super::$name($crate::Backend::Redb).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn on_redis() {
                super::$name($crate::Backend::redis()).await
            }
        }
    )*};
}

/// A multi-tenant daemon (data plane + admin API) on a temporary data dir.
pub struct Platform {
    /// The running daemon.
    pub daemon: verge::daemon::RunningDaemon,
    /// Its data dir (kept while the platform lives).
    pub data_dir: std::path::PathBuf,
    /// The operator token.
    pub operator: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The `verge serve` flags of fleet node `name` on the Redis at `url`,
/// its secrets key (the test fleets' shared one) written into `dir`.
pub fn fleet_serve_args(dir: &Path, url: &str, name: &str) -> Vec<String> {
    let key = Platform::fleet_key_file(dir);
    vec![
        "--cluster".into(),
        url.into(),
        "--node-name".into(),
        name.into(),
        "--secrets-key-file".into(),
        key.to_string_lossy().into_owned(),
    ]
}

/// The secrets key of test fleets (64 hex digits).
pub const TEST_FLEET_SECRETS_KEY: &str =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The operator token the test platforms use.
pub const TEST_OPERATOR_TOKEN: &str = "verge_op_test-operator-token";

impl Platform {
    /// Starts a platform on `data_dir` with `engine` settings.
    pub async fn start_in(data_dir: &Path, engine: EngineSettings) -> Self {
        Self::start_with(data_dir, engine, Default::default()).await
    }

    /// Starts a platform on `data_dir` with `engine` and `capabilities`.
    pub async fn start_with(
        data_dir: &Path,
        engine: EngineSettings,
        capabilities: verge::daemon::CapabilityConfig,
    ) -> Self {
        Self::start_capped(data_dir, engine, capabilities, Default::default()).await
    }

    /// Starts a fleet node on `data_dir`, its KV on the Redis at `url`
    /// (loopback origins allowed, as [`loopback_capabilities`]).
    pub async fn start_node(data_dir: &Path, url: &str, name: &str) -> Self {
        let cluster = verge::daemon::ClusterConfig {
            url: url.to_owned(),
            node_name: name.to_owned(),
            region: "test".into(),
            ca_file: None,
        };
        Self::start_node_with(data_dir, cluster).await
    }

    /// Starts a fleet node on `data_dir` with `cluster` settings.
    pub async fn start_node_with(data_dir: &Path, cluster: verge::daemon::ClusterConfig) -> Self {
        Self::start_full(
            data_dir,
            Setup::default().engine,
            loopback_capabilities(),
            Default::default(),
            Some(cluster),
        )
        .await
    }

    /// The secrets key every test fleet node shares, written into
    /// `data_dir` (fleet nodes refuse to start without one).
    pub fn fleet_key_file(data_dir: &Path) -> PathBuf {
        let path = data_dir.join("fleet-secrets.key");
        std::fs::write(&path, TEST_FLEET_SECRETS_KEY).unwrap();
        path
    }

    /// Starts a platform whose registry applies `caps`.
    pub async fn start_capped(
        data_dir: &Path,
        engine: EngineSettings,
        capabilities: verge::daemon::CapabilityConfig,
        caps: verge::tenancy::RegistryCaps,
    ) -> Self {
        Self::start_full(data_dir, engine, capabilities, caps, None).await
    }

    async fn start_full(
        data_dir: &Path,
        engine: EngineSettings,
        capabilities: verge::daemon::CapabilityConfig,
        caps: verge::tenancy::RegistryCaps,
        cluster: Option<verge::daemon::ClusterConfig>,
    ) -> Self {
        let config = verge::daemon::DaemonConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            engine,
            limits: Limits::default(),
            http: HttpLimits::default(),
            access_log: None,
            capabilities,
            tls: None,
            connections: Default::default(),
            compile_worker: None,
            serving_threads: None,
        };
        let platform = verge::daemon::PlatformConfig {
            data_dir: data_dir.to_owned(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            operator_token: Some(TEST_OPERATOR_TOKEN.to_owned()),
            caps,
            start_empty: false,
            secrets_key_file: cluster.as_ref().map(|_| Self::fleet_key_file(data_dir)),
            previous_secrets_key_file: None,
            public_url: None,
            cluster,
        };
        let daemon = verge::daemon::start_platform(&config, &platform)
            .await
            .expect("platform");
        Self {
            daemon,
            data_dir: data_dir.to_owned(),
            operator: TEST_OPERATOR_TOKEN.to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Starts a platform with a small pool on `data_dir`.
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_in(data_dir, Setup::default().engine).await
    }

    /// [`Platform::start`] on `backend`.
    pub async fn start_on(data_dir: &Path, backend: &Backend) -> Self {
        Self::start_in_on(data_dir, Setup::default().engine, backend).await
    }

    /// [`Platform::start_in`] on `backend`.
    pub async fn start_in_on(data_dir: &Path, engine: EngineSettings, backend: &Backend) -> Self {
        Self::start_capped_on(data_dir, engine, Default::default(), backend).await
    }

    /// [`Platform::start_capped`] (default capabilities) on `backend`.
    pub async fn start_capped_on(
        data_dir: &Path,
        engine: EngineSettings,
        caps: verge::tenancy::RegistryCaps,
        backend: &Backend,
    ) -> Self {
        Self::start_full(
            data_dir,
            engine,
            Default::default(),
            caps,
            backend.cluster(),
        )
        .await
    }

    /// Calls the admin API.
    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let addr = self.daemon.admin_addr.expect("admin address");
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        self.send(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
    }

    /// Creates a tenant with `limits` (JSON) and returns its token.
    pub async fn tenant_with_limits(&self, name: &str, limits: serde_json::Value) -> String {
        self.tenant_with(name, limits, &[]).await
    }

    /// Creates a tenant whose fetches may reach the private ranges
    /// `grants` (`CIDR` or `CIDR:PORT`); returns its token.
    pub async fn tenant_with_outbound(&self, name: &str, grants: &[&str]) -> String {
        self.create_tenant(serde_json::json!({ "name": name, "outbound_grants": grants }))
            .await
    }

    /// Creates a tenant with `limits` and the operator's wildcard route
    /// `grants`; returns its token.
    pub async fn tenant_with(
        &self,
        name: &str,
        limits: serde_json::Value,
        grants: &[&str],
    ) -> String {
        self.create_tenant(
            serde_json::json!({ "name": name, "limits": limits, "route_grants": grants }),
        )
        .await
    }

    /// `POST /v1/tenants` with `body` as the operator; returns the token.
    async fn create_tenant(&self, body: serde_json::Value) -> String {
        let reply = self
            .admin(
                "POST",
                "/v1/tenants",
                Some(&self.operator),
                body.to_string().into_bytes(),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
        let value: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        value["token"].as_str().unwrap().to_owned()
    }

    /// Creates a tenant and returns its token.
    pub async fn tenant(&self, name: &str) -> String {
        self.tenant_with_limits(name, serde_json::json!({})).await
    }

    /// Creates app `app` with `routes` and deploys guest `guest` to it.
    pub async fn deploy(
        &self,
        token: &str,
        tenant: &str,
        app: &str,
        routes: &[&str],
        guest_name: &str,
    ) -> Reply {
        let manifest = serde_json::json!({ "routes": routes });
        self.deploy_manifest(token, tenant, app, manifest, guest_name)
            .await
    }

    /// [`Platform::deploy`], which must answer 201 (the version is active).
    pub async fn deployed(
        &self,
        token: &str,
        tenant: &str,
        app: &str,
        routes: &[&str],
        guest_name: &str,
    ) {
        let reply = self.deploy(token, tenant, app, routes, guest_name).await;
        assert_eq!(
            reply.status,
            201,
            "deploying {guest_name} as {tenant}/{app}: {}",
            reply.text()
        );
    }

    /// Creates app `app` with `manifest` (JSON) and deploys guest `guest`.
    pub async fn deploy_manifest(
        &self,
        token: &str,
        tenant: &str,
        app: &str,
        manifest: serde_json::Value,
        guest_name: &str,
    ) -> Reply {
        let manifest = manifest.to_string().into_bytes();
        let path = format!("/v1/tenants/{tenant}/apps/{app}");
        let reply = self.admin("PUT", &path, Some(token), manifest).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let bytes = std::fs::read(guest(guest_name)).unwrap();
        self.admin("POST", &format!("{path}/versions"), Some(token), bytes)
            .await
    }

    /// GET `path` on the data plane with `Host: host`.
    pub async fn get(&self, host: &str, path: &str) -> Reply {
        let req = Request::get(format!("http://{}{}", self.daemon.addr, path))
            .header("host", host)
            .body(Full::default())
            .unwrap();
        self.send(req).await
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        fetch(&self.client, req).await
    }

    /// Sends any request (to the data plane or the admin API).
    pub async fn request(&self, req: Request<Full<Bytes>>) -> Reply {
        self.send(req).await
    }

    /// Graceful shutdown.
    pub async fn shutdown(self) {
        self.daemon.shutdown().await;
    }
}
