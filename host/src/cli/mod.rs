//! The `verge` command line. Help text comes from these doc comments.

mod admin;
mod cache;
mod client;
mod cluster;
mod demo;
pub mod deploy;
mod dev;
mod input;
mod kv;
mod login;
mod logs;
pub mod manifest;
mod new;
mod profile;
mod serve;
mod settings;
mod templates;

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
    Serve(Box<serve::ServeArgs>),
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
    /// List (the default), show or delete apps.
    Apps {
        /// What to do.
        #[command(subcommand)]
        cmd: Option<admin::AppsCmd>,
        /// How to reach the admin API.
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// List an app's versions, the active one marked.
    Versions {
        /// The app.
        app: String,
        /// How to reach the admin API.
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// List the nodes of a fleet, their regions and last heartbeats
    /// (operator token).
    Nodes {
        /// How to reach the admin API.
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Fleet operations: import a single node's data dir into Redis.
    Cluster {
        /// What to do.
        #[command(subcommand)]
        cmd: cluster::ClusterCmd,
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
    /// Set, get, list or unset an app's configuration variables.
    Config {
        /// What to do.
        #[command(subcommand)]
        cmd: admin::ConfigCmd,
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
    /// Set, list or unset an app's secrets (values never shown, never on
    /// the command line).
    Secret {
        /// What to do.
        #[command(subcommand)]
        cmd: admin::SecretCmd,
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
    /// Check a token against an admin API and save it with the URL as a
    /// profile (the token from a hidden prompt, or stdin when piped).
    Login {
        /// Where and as what.
        #[command(flatten)]
        args: login::LoginArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script: `verge completions bash >
    /// /etc/bash_completion.d/verge`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl Cli {
    /// Runs the chosen command to completion.
    pub async fn run(self) -> anyhow::Result<()> {
        use client::Api;
        match self.command {
            Command::Serve(args) => serve::run(*args).await,
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
            Command::Deploy { args, api } => deploy::run(&Api::new(&api)?, args).await,
            Command::Apps { cmd, api } => admin::apps(&Api::new(&api)?, cmd).await,
            Command::Versions { app, api } => admin::versions(&Api::new(&api)?, &app).await,
            Command::Nodes { api } => admin::nodes(&Api::new(&api)?).await,
            Command::Cluster { cmd } => cluster::run(cmd).await,
            Command::Rollback { app, to, api } => admin::rollback(&Api::new(&api)?, &app, to).await,
            Command::Tenants { cmd, api } => admin::tenants(&Api::new(&api)?, cmd).await,
            Command::Config { cmd, api } => admin::config(&Api::new(&api)?, cmd).await,
            Command::Kv { cmd, api } => kv::run(&Api::new(&api)?, cmd).await,
            Command::Cache { cmd, api } => cache::run(&Api::new(&api)?, cmd).await,
            Command::Logs { args, api } => logs::run(&Api::new(&api)?, args).await,
            Command::Secret { cmd, api } => admin::secrets(&Api::new(&api)?, cmd).await,
            Command::Login { args, json } => login::run(args, json).await,
            Command::Completions { shell } => {
                let mut command = <Self as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut command, "verge", &mut std::io::stdout());
                Ok(())
            }
        }
    }

    /// Whether errors are to be printed as JSON (`--json` on a verb that
    /// takes it).
    pub fn json_errors(&self) -> bool {
        match &self.command {
            Command::Deploy { api, .. }
            | Command::Apps { api, .. }
            | Command::Versions { api, .. }
            | Command::Nodes { api }
            | Command::Rollback { api, .. }
            | Command::Tenants { api, .. }
            | Command::Config { api, .. }
            | Command::Kv { api, .. }
            | Command::Cache { api, .. }
            | Command::Logs { api, .. }
            | Command::Secret { api, .. } => api.json,
            Command::Login { json, .. } => *json,
            Command::Serve(_)
            | Command::Demo(_)
            | Command::Dev(_)
            | Command::New(_)
            | Command::CompileWorker { .. }
            | Command::Cluster { .. }
            | Command::Completions { .. } => false,
        }
    }
}

/// How a failed command is reported: one `verge: ...` line, or with
/// `--json` one `{"error": ..., "status": ...}` object (status: the admin
/// API's HTTP status, when it answered).
pub fn report_error(err: &anyhow::Error, json: bool) -> String {
    if !json {
        return format!("verge: {err:#}");
    }
    let status = err
        .downcast_ref::<client::ApiCallError>()
        .and_then(|e| e.status);
    serde_json::json!({ "error": format!("{err:#}"), "status": status }).to_string()
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
