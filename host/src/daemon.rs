//! Wiring: build the runtime, load the app, bind the server, run it until
//! told to stop. `verge serve` and the end-to-end tests both start here.

use crate::capabilities::config::ConfigCtx;
use crate::runtime::{EngineSettings, Limits, Runtime};
use crate::server::{Dispatcher, HttpLimits, Server};
use crate::tenancy::{Deployment, SingleApp};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Everything `verge serve` needs to start.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Data-plane listen address.
    pub listen: SocketAddr,
    /// How the engine and its instance pool are built.
    pub engine: EngineSettings,
    /// Per-request guest limits.
    pub limits: Limits,
    /// HTTP caps.
    pub http: HttpLimits,
}

/// The single app of local-run mode.
#[derive(Debug, Clone)]
pub struct LocalApp {
    /// Name used in logs.
    pub name: String,
    /// The component file.
    pub wasm: PathBuf,
    /// Configuration variables.
    pub vars: BTreeMap<String, String>,
}

/// A started daemon.
pub struct RunningDaemon {
    /// The bound data-plane address.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningDaemon {
    /// Starts graceful shutdown and waits for in-flight requests to drain.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the server stops on its own (it only does on shutdown).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }

    /// A handle that triggers graceful shutdown when fired.
    pub fn take_stop(&mut self) -> Option<oneshot::Sender<()>> {
        self.stop.take()
    }
}

/// Loads `app` and starts serving it on `config.listen`.
pub async fn start(config: &DaemonConfig, app: &LocalApp) -> anyhow::Result<RunningDaemon> {
    let runtime = Runtime::new(config.engine)?;
    if !runtime.is_pooling() {
        tracing::warn!("instances are allocated on demand; expect higher per-request cost");
    }
    let bytes =
        std::fs::read(&app.wasm).with_context(|| format!("reading {}", app.wasm.display()))?;
    let function = runtime
        .load(&app.name, &bytes, config.limits)
        .with_context(|| format!("loading {}", app.wasm.display()))?;
    let deployment = Arc::new(Deployment {
        app: app.name.as_str().into(),
        function,
        config: ConfigCtx::new(app.vars.clone()),
    });
    let routes = Arc::new(SingleApp(deployment));
    let pool = usize::try_from(config.engine.pool_instances).unwrap_or(usize::MAX);
    let dispatcher = Arc::new(Dispatcher::new(routes, config.http, pool));
    let server = Server::bind(config.listen, dispatcher)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Keep the engine (and its epoch ticker) alive while serving.
        let _runtime = runtime;
        server
            .serve(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(RunningDaemon {
        addr,
        stop: Some(stop),
        task,
    })
}
