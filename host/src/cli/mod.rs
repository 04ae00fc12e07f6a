//! The `verge` command line. Help text comes from these doc comments.

mod admin;
mod cache;
mod client;
mod demo;
pub mod deploy;
mod dev;
mod kv;
mod logs;
pub mod manifest;
mod new;
mod serve;
mod settings;

use clap::{Parser, Subcommand};

/// Verge: a self-hosted, multi-tenant edge-function host.
#[derive(Debug, Parser)]
#[command(name = "verge", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "human",
        env = "VERGE_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per event.
    Json,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve(serve::ServeArgs),
    /// Build the example functions and serve them, printing the URLs to try.
    Demo(demo::DemoArgs),
    /// Build a function crate, serve it locally with production limits and
    /// capabilities, and rebuild and reload it on every change.
    Dev(dev::DevArgs),
    /// Create a function crate that builds and deploys as is.
    New(new::NewArgs),
    /// Internal: compile a component from stdin for the daemon (run by
    /// `verge serve`, killed past the compile budget).
    #[command(hide = true)]
    CompileWorker {
        /// The daemon's engine settings, as JSON.
        #[arg(long)]
        engine: String,
        /// The daemon's engine uses the pooling allocator.
        #[arg(long, conflicts_with = "on_demand")]
        pooling: bool,
        /// The daemon's engine allocates on demand.
        #[arg(long)]
        on_demand: bool,
    },
    /// Deploy a function: a `.wasm` component or a crate directory.
    Deploy {
        /// What to deploy.
        #[command(flatten)]
        args: deploy::DeployArgs,
        /// How to reach the admin API.
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// List, show or delete apps.
    Apps {
        /// What to do.
        #[command(subcommand)]
        cmd: admin::AppsCmd,
        /// How to reach the admin API.
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// List an app's versions.
    Versions {
        /// The app.
        app: String,
        /// How to reach the admin API.
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Activate an earlier version (the previous one by default).
    Rollback {
        /// The app.
        app: String,
        /// The version to activate.
        #[arg(long)]
        to: Option<u32>,
        /// How to reach the admin API.
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Create, list or delete tenants (operator token).
    Tenants {
        /// What to do.
        #[command(subcommand)]
        cmd: admin::TenantsCmd,
        /// How to reach the admin API.
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Set or unset an app's configuration variables.
    Config {
        /// What to do.
        #[command(subcommand)]
        cmd: admin::VarCmd,
        /// How to reach the admin API.
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Purge the edge cache by tag, key or entirely.
    Cache {
        /// What to purge.
        #[command(subcommand)]
        cmd: cache::CacheCmd,
        /// How to reach the admin API.
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Read, write, list and import a tenant's KV stores.
    Kv {
        /// What to do.
        #[command(subcommand)]
        cmd: kv::KvCmd,
        /// How to reach the admin API.
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Set or unset an app's secrets (never listed back).
    Secret {
        /// What to do.
        #[command(subcommand)]
        cmd: admin::VarCmd,
        /// How to reach the admin API.
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Print an app's recent guest log lines (log interface, stdout,
    /// stderr); with --follow, keep printing new ones.
    Logs {
        /// Which app, and whether to follow.
        #[command(flatten)]
        args: logs::LogsArgs,
        /// How to reach the admin API.
        #[command(flatten)]
        api: client::ApiArgs,
    },
}

impl Cli {
    /// Runs the chosen command to completion.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Dev(args) => dev::run(args).await,
            Command::New(args) => new::run(args),
            Command::CompileWorker {
                engine, pooling, ..
            } => {
                let settings: crate::runtime::EngineSettings = serde_json::from_str(&engine)?;
                crate::runtime::compile::run_worker(&settings, pooling)?;
                Ok(())
            }
            Command::Deploy { args, api } => deploy::run(&client::Api::new(&api), args).await,
            Command::Apps { cmd, api } => admin::apps(&client::Api::new(&api), cmd).await,
            Command::Versions { app, api } => admin::versions(&client::Api::new(&api), &app).await,
            Command::Rollback { app, to, api } => {
                admin::rollback(&client::Api::new(&api), &app, to).await
            }
            Command::Tenants { cmd, api } => admin::tenants(&client::Api::new(&api), cmd).await,
            Command::Config { cmd, api } => {
                admin::vars(&client::Api::new(&api), "config", cmd).await
            }
            Command::Kv { cmd, api } => kv::run(&client::Api::new(&api), cmd).await,
            Command::Cache { cmd, api } => cache::run(&client::Api::new(&api), cmd).await,
            Command::Logs { args, api } => logs::run(&client::Api::new(&api), args).await,
            Command::Secret { cmd, api } => {
                admin::vars(&client::Api::new(&api), "secrets", cmd).await
            }
        }
    }
}

/// Resolves when the process gets SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
