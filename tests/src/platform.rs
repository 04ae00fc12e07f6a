//! The multi-tenant daemon under test: [`Platform`] (data plane and admin
//! API on a temporary data dir), on either [`Backend`], and the flags of
//! fleet nodes run as processes.

use crate::{Reply, Setup, fetch, guest, loopback_capabilities};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use verge::runtime::{EngineSettings, Limits};
use verge::server::HttpLimits;

/// Where a test platform keeps its state: a single node on redb, or a
/// fleet node on a real Redis (control plane and KV), so the control-plane
/// and isolation suites hold on both.
#[derive(Clone)]
pub enum Backend {
    /// `control.redb` and `kv.redb`.
    Redb,
    /// A fleet node on this Redis.
    Redis(Arc<crate::redis_server::RedisServer>),
}

impl Backend {
    /// A fleet backend on a fresh Redis.
    pub fn redis() -> Self {
        Self::Redis(Arc::new(crate::redis_server::RedisServer::start()))
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
        let manifest = serde_json::json!({ "routes": routes });
        self.deployed_manifest(token, tenant, app, manifest, guest_name)
            .await;
    }

    /// [`Platform::deploy_manifest`], which must answer 201 (the version is
    /// active).
    pub async fn deployed_manifest(
        &self,
        token: &str,
        tenant: &str,
        app: &str,
        manifest: serde_json::Value,
        guest_name: &str,
    ) {
        let reply = self
            .deploy_manifest(token, tenant, app, manifest, guest_name)
            .await;
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
