//! The CLI verbs that manage tenants, apps, versions and variables through
//! the admin API.

use super::client::Api;
use super::input::{ago, confirm, secret_value};
use anyhow::bail;
use clap::Subcommand;
use http::Method;
use serde_json::json;
use std::path::PathBuf;

/// `verge tenants ...` (operator token).
#[derive(Debug, Subcommand)]
pub enum TenantsCmd {
    /// Create a tenant and print its token (shown only once).
    Create {
        /// The tenant's name.
        name: String,
    },
    /// List tenants.
    List,
    /// Delete a tenant with all its apps (asks first on a terminal).
    Delete {
        /// The tenant's name.
        name: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

/// `verge apps ...`.
#[derive(Debug, Subcommand)]
pub enum AppsCmd {
    /// List the tenant's apps.
    List,
    /// Show one app.
    Show {
        /// The app.
        app: String,
    },
    /// Delete an app and its versions (asks first on a terminal).
    Delete {
        /// The app.
        app: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

/// `verge config ...`: plain variables, readable back.
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Set a variable (takes effect for new requests at once).
    Set {
        /// The app.
        app: String,
        /// The variable's name.
        name: String,
        /// Its value.
        value: String,
    },
    /// Print one variable's value.
    Get {
        /// The app.
        app: String,
        /// The variable's name.
        name: String,
    },
    /// List the app's variables.
    List {
        /// The app.
        app: String,
    },
    /// Remove a variable.
    Unset {
        /// The app.
        app: String,
        /// The variable's name.
        name: String,
    },
}

/// `verge secret ...`: values the guest reads like config, never shown.
#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// Set a secret. The value comes from a hidden prompt on a terminal,
    /// from stdin when piped (`printf %s VALUE | verge secret set APP
    /// NAME`), or from --file; never from the command line, where shell
    /// history and `ps` would keep it.
    Set {
        /// The app.
        app: String,
        /// The secret's name.
        name: String,
        /// Refused: a value on the command line (use stdin or --file).
        #[arg(hide = true)]
        value: Option<String>,
        /// Read the value from this file (one trailing newline dropped).
        #[arg(long, value_name = "FILE", conflicts_with = "value_on_argv")]
        file: Option<PathBuf>,
        /// Take the value from the command line anyway (it will be in your
        /// shell history).
        #[arg(long, value_name = "VALUE")]
        value_on_argv: Option<String>,
    },
    /// List the app's secrets: names and when each was set, never values.
    List {
        /// The app.
        app: String,
    },
    /// Remove a secret.
    Unset {
        /// The app.
        app: String,
        /// The secret's name.
        name: String,
    },
}

const APP_COLUMNS: &[&str] = &["name", "active_version", "routes", "config", "secrets"];

pub(super) async fn tenants(api: &Api, cmd: TenantsCmd) -> anyhow::Result<()> {
    match cmd {
        TenantsCmd::Create { name } => {
            let t = api
                .call(
                    Method::POST,
                    "/v1/tenants",
                    Some(serde_json::to_vec(&json!({ "name": name }))?),
                )
                .await?;
            if api.json {
                api.print(&t, &[]);
            } else {
                println!("created tenant {name}");
                println!("token (shown once): {}", t["token"].as_str().unwrap_or("?"));
            }
        }
        TenantsCmd::List => api.print(
            &api.call(Method::GET, "/v1/tenants", None).await?,
            &["name", "created_at", "limits"],
        ),
        TenantsCmd::Delete { name, yes } => {
            confirm(
                &format!("delete tenant {name} with all its apps and data"),
                yes,
            )?;
            let answer = api
                .call(Method::DELETE, &format!("/v1/tenants/{name}"), None)
                .await?;
            api.say(&answer, &format!("deleted tenant {name}"));
        }
    }
    Ok(())
}

pub(super) async fn apps(api: &Api, cmd: Option<AppsCmd>) -> anyhow::Result<()> {
    let base = format!("/v1/tenants/{}/apps", api.tenant()?);
    match cmd.unwrap_or(AppsCmd::List) {
        AppsCmd::List => api.print(&api.call(Method::GET, &base, None).await?, APP_COLUMNS),
        AppsCmd::Show { app } => api.print(
            &api.call(Method::GET, &format!("{base}/{app}"), None)
                .await?,
            APP_COLUMNS,
        ),
        AppsCmd::Delete { app, yes } => {
            confirm(&format!("delete app {app} and all its versions"), yes)?;
            let answer = api
                .call(Method::DELETE, &format!("{base}/{app}"), None)
                .await?;
            api.say(&answer, &format!("deleted app {app}"));
        }
    }
    Ok(())
}

pub(super) async fn versions(api: &Api, app: &str) -> anyhow::Result<()> {
    let base = format!("/v1/tenants/{}/apps/{app}", api.tenant()?);
    let mut versions = api
        .call(Method::GET, &format!("{base}/versions"), None)
        .await?;
    if api.json {
        api.print(&versions, &[]);
        return Ok(());
    }
    let active = api.call(Method::GET, &base, None).await?["active_version"].as_u64();
    let now = crate::storage::records::now_secs();
    for v in versions.as_array_mut().into_iter().flatten() {
        let number = v["number"].as_u64();
        v["active"] = json!(if number.is_some() && number == active {
            "*"
        } else {
            ""
        });
        let created = v["created_at"].as_u64().unwrap_or(0);
        v["created"] = json!(ago(created, now));
        if let Some(sha) = v["sha256"].as_str().and_then(|s| s.get(..12)) {
            v["sha256"] = json!(sha);
        }
    }
    api.print(
        &versions,
        &["active", "number", "created", "sha256", "size", "world"],
    );
    Ok(())
}

/// `verge nodes`: the fleet's live nodes (operator token).
pub(super) async fn nodes(api: &Api) -> anyhow::Result<()> {
    let mut answer = api.call(Method::GET, "/v1/nodes", None).await?;
    if api.json {
        api.print(&answer, &[]);
        return Ok(());
    }
    if answer["cluster"] != json!(true) {
        println!("this daemon runs alone (no --cluster): one node, itself");
        return Ok(());
    }
    let mut nodes = answer["nodes"].take();
    for node in nodes.as_array_mut().into_iter().flatten() {
        let age = node["heartbeat_age_ms"].as_u64().unwrap_or(0);
        node["last heartbeat"] = json!(format!("{age} ms ago"));
        node["state"] = json!(if node["up"] == json!(false) {
            "DOWN"
        } else if node["diverged"] == json!(true) {
            "DIVERGED"
        } else {
            "up"
        });
    }
    println!("control-plane revision {}", answer["revision"]);
    let diverged = nodes
        .as_array()
        .into_iter()
        .flatten()
        .filter(|node| node["diverged"] == json!(true))
        .count();
    if diverged > 0 {
        println!(
            "{diverged} node(s) refuse Redis's control plane, which is older than theirs (Redis emptied, restored or failed over): they serve their snapshots and refuse writes. Re-seed Redis from the node with the highest revision (`verge cluster reseed --url ITS_ADMIN_URL`), or accept Redis's state on each (`verge cluster accept --revision N`); docs/operating.md"
        );
    }
    api.print(
        &nodes,
        &[
            "name",
            "state",
            "region",
            "data",
            "admin",
            "last heartbeat",
            "revision",
            "lag",
            "apps",
        ],
    );
    Ok(())
}

pub(super) async fn rollback(api: &Api, app: &str, to: Option<u32>) -> anyhow::Result<()> {
    let base = format!("/v1/tenants/{}/apps/{app}", api.tenant()?);
    if to.is_none() {
        let current = api.call(Method::GET, &base, None).await?;
        let versions = api
            .call(Method::GET, &format!("{base}/versions"), None)
            .await?;
        let active = current["active_version"].as_u64();
        let earlier = versions
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["number"].as_u64())
            .any(|n| active.is_some_and(|a| n < a));
        if !earlier {
            match active {
                Some(a) => bail!(
                    "{app}: version {a} is the earliest stored version, so there is nothing to roll back to"
                ),
                None => bail!("{app} has no active version to roll back from"),
            }
        }
    }
    let body = serde_json::to_vec(&json!({ "version": to }))?;
    let answer = api
        .call(Method::POST, &format!("{base}/rollback"), Some(body))
        .await?;
    api.say(
        &answer,
        &format!("{app}: version {} is active", answer["active_version"]),
    );
    Ok(())
}

pub(super) async fn config(api: &Api, cmd: ConfigCmd) -> anyhow::Result<()> {
    let tenant = api.tenant()?;
    let app_path = |app: &str| format!("/v1/tenants/{tenant}/apps/{app}");
    match cmd {
        ConfigCmd::Set { app, name, value } => {
            let path = format!("{}/config/{name}", app_path(&app));
            let answer = api
                .call(Method::PUT, &path, Some(value.into_bytes()))
                .await?;
            api.say(&answer, &format!("{app}: set {name}"));
        }
        ConfigCmd::Unset { app, name } => {
            let path = format!("{}/config/{name}", app_path(&app));
            let answer = api.call(Method::DELETE, &path, None).await?;
            api.say(&answer, &format!("{app}: unset {name}"));
        }
        ConfigCmd::Get { app, name } => {
            let record = api.call(Method::GET, &app_path(&app), None).await?;
            let Some(value) = record["config"][&name].as_str() else {
                bail!("{app} has no config variable {name} (`verge config list {app}` shows them)");
            };
            if api.json {
                api.print(&json!({ "name": name, "value": value }), &[]);
            } else {
                println!("{value}");
            }
        }
        ConfigCmd::List { app } => {
            let record = api.call(Method::GET, &app_path(&app), None).await?;
            let rows: Vec<serde_json::Value> = record["config"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, value)| json!({ "name": name, "value": value }))
                .collect();
            api.print(&json!(rows), &["name", "value"]);
        }
    }
    Ok(())
}

pub(super) async fn secrets(api: &Api, cmd: SecretCmd) -> anyhow::Result<()> {
    let tenant = api.tenant()?;
    let app_path = |app: &str| format!("/v1/tenants/{tenant}/apps/{app}");
    match cmd {
        SecretCmd::Set {
            app,
            name,
            value,
            file,
            value_on_argv,
        } => {
            if value.is_some() {
                bail!(
                    "a secret on the command line stays in your shell history and shows in `ps`: pipe it in (`printf %s VALUE | verge secret set {app} {name}`), type it at the prompt, or use --file FILE (--value-on-argv VALUE insists)"
                );
            }
            let value = match value_on_argv {
                Some(value) => {
                    eprintln!(
                        "verge: warning: the value of {name} is on the command line and in your shell history"
                    );
                    value
                }
                None => secret_value(&name, file.as_deref())?,
            };
            let path = format!("{}/secrets/{name}", app_path(&app));
            let answer = api
                .call(Method::PUT, &path, Some(value.into_bytes()))
                .await?;
            api.say(&answer, &format!("{app}: set secret {name}"));
        }
        SecretCmd::Unset { app, name } => {
            let path = format!("{}/secrets/{name}", app_path(&app));
            let answer = api.call(Method::DELETE, &path, None).await?;
            api.say(&answer, &format!("{app}: unset secret {name}"));
        }
        SecretCmd::List { app } => {
            let record = api.call(Method::GET, &app_path(&app), None).await?;
            let now = crate::storage::records::now_secs();
            let rows: Vec<serde_json::Value> = record["secrets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str())
                .map(|name| {
                    let at = record["secrets_set_at"][name].as_u64();
                    if api.json {
                        json!({ "name": name, "set_at": at })
                    } else {
                        json!({ "name": name, "set": at.map_or_else(|| "-".into(), |t| ago(t, now)) })
                    }
                })
                .collect();
            api.print(&json!(rows), &["name", "set"]);
        }
    }
    Ok(())
}
