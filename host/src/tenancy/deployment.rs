//! One running version of one app, built one way for the registry's
//! loader, local-run mode and the tests: a [`DeploymentSpec`] says what
//! the app is and may use, [`Deployment::new`] makes its capability
//! contexts from the host's [`Services`].

use super::HttpLimits;
use crate::capabilities::fetch::AllowList;
use crate::capabilities::{AppCapabilities, Capabilities, Services};
use crate::runtime::{Function, RequestContext};
use crate::storage::kv::DEFAULT_TENANT_QUOTA_BYTES;
use crate::telemetry::log_ring::LogRing;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The tenant (and data key) of local-run mode's single app.
pub const LOCAL_TENANT: &str = "local";

/// One running version of one app: the compiled function and what it may use.
pub struct Deployment {
    /// The owning tenant (`local` in local-run mode).
    pub tenant: Arc<str>,
    /// The app's name, for logs and metrics.
    pub app: Arc<str>,
    /// The version number serving (0 in local-run mode).
    pub version: u32,
    /// The compiled function.
    pub function: Function,
    /// Concurrency caps this deployment's requests must also pass.
    pub slots: Slots,
    /// The HTTP caps for this app (at most the server's).
    pub http_limits: HttpLimits,
    /// Where the app's log lines are kept for `verge logs` (none in
    /// local-run mode, where they go to the terminal).
    pub logs: Option<Arc<LogRing>>,
    /// The app's request metrics, resolved once.
    pub meters: Arc<crate::telemetry::metrics::AppMeters>,
    /// The app's capability contexts, the template of each request's.
    capabilities: Capabilities,
}

/// What a deployment is made of: the function, its caps and slots, and
/// what its capabilities are built from. [`DeploymentSpec::local`] gives
/// the defaults of local-run mode; the loader sets every field from the
/// stored records.
pub struct DeploymentSpec {
    /// The version number.
    pub version: u32,
    /// The compiled function.
    pub function: Function,
    /// The HTTP caps.
    pub http_limits: HttpLimits,
    /// Concurrency caps.
    pub slots: Slots,
    /// Who the app is and what it may use.
    pub capabilities: AppCapabilities,
}

impl DeploymentSpec {
    /// `function` as local-run mode serves it, as `app`: tenant
    /// [`LOCAL_TENANT`], the default caps, and [`local_capabilities`].
    pub fn local(app: &str, function: Function) -> Self {
        Self {
            version: 0,
            function,
            http_limits: HttpLimits::default(),
            slots: Slots::default(),
            capabilities: local_capabilities(app),
        }
    }
}

/// What local-run mode's `app` may use: any KV store, no outbound origins,
/// no variables, logs to the terminal.
pub fn local_capabilities(app: &str) -> AppCapabilities {
    AppCapabilities {
        tenant: LOCAL_TENANT.into(),
        app: app.into(),
        data_key: LOCAL_TENANT.to_owned(),
        vars: BTreeMap::new(),
        allow: AllowList::default(),
        grants: Vec::new(),
        kv_stores: None,
        kv_quota_bytes: DEFAULT_TENANT_QUOTA_BYTES,
        logs: None,
        kv_cache_ttl: None,
    }
}

impl Deployment {
    /// The deployment `spec` describes, its capabilities made from
    /// `services`.
    pub fn new(services: &Services, spec: DeploymentSpec) -> Self {
        let DeploymentSpec {
            version,
            function,
            http_limits,
            slots,
            capabilities,
        } = spec;
        let (tenant, app, logs) = (
            capabilities.tenant.clone(),
            capabilities.app.clone(),
            capabilities.logs.clone(),
        );
        Self {
            meters: Arc::new(crate::telemetry::metrics::AppMeters::new(&tenant, &app)),
            tenant,
            app,
            version,
            function,
            slots,
            http_limits,
            logs,
            capabilities: Capabilities::for_app(services, capabilities),
        }
    }

    /// What one request of this deployment brings to the runtime: the
    /// app's capabilities, made per request when its store is built.
    pub fn request_context(
        &self,
        request_id: Arc<str>,
        client_ip: Option<IpAddr>,
    ) -> RequestContext {
        RequestContext {
            capabilities: self.capabilities.clone(),
            request_id,
            client_ip,
            heavy: Default::default(),
            request_body: None,
            admission: Vec::new(),
        }
    }
}

/// The tenant-wide and app-wide concurrency caps a request must pass, after
/// the global one. `None` means uncapped at that level.
#[derive(Debug, Clone, Default)]
pub struct Slots {
    /// Shared by every app of the tenant.
    pub tenant: Option<Arc<tokio::sync::Semaphore>>,
    /// How many permits `tenant` was made with (what it holds is this
    /// less those available).
    pub tenant_cap: usize,
    /// Shared by every version of the app.
    pub app: Option<Arc<tokio::sync::Semaphore>>,
    /// Whether the tenant's calls start on the background lane; shared by
    /// every app of the tenant.
    pub heavy: Arc<crate::runtime::lane::HeavyMark>,
}
