//! The CLI verbs that manage tenants, apps, versions and variables through
//! the admin API.

use super::client::Api;
use clap::Subcommand;
use http::Method;
use serde_json::json;

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
    /// Delete a tenant with all its apps.
    Delete {
        /// The tenant's name.
        name: String,
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
    /// Delete an app and its versions.
    Delete {
        /// The app.
        app: String,
    },
}

/// `verge config ...` and `verge secret ...`.
#[derive(Debug, Subcommand)]
pub enum VarCmd {
    /// Set a variable (takes effect for new requests at once).
    Set {
        /// The app.
        app: String,
        /// The variable's name.
        name: String,
        /// Its value.
        value: String,
    },
    /// Remove a variable.
    Unset {
        /// The app.
        app: String,
        /// The variable's name.
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
        TenantsCmd::Delete { name } => {
            api.call(Method::DELETE, &format!("/v1/tenants/{name}"), None)
                .await?;
            println!("deleted tenant {name}");
        }
    }
    Ok(())
}

pub(super) async fn apps(api: &Api, cmd: AppsCmd) -> anyhow::Result<()> {
    let base = format!("/v1/tenants/{}/apps", api.tenant()?);
    match cmd {
        AppsCmd::List => api.print(&api.call(Method::GET, &base, None).await?, APP_COLUMNS),
        AppsCmd::Show { app } => api.print(
            &api.call(Method::GET, &format!("{base}/{app}"), None)
                .await?,
            APP_COLUMNS,
        ),
        AppsCmd::Delete { app } => {
            api.call(Method::DELETE, &format!("{base}/{app}"), None)
                .await?;
            println!("deleted app {app}");
        }
    }
    Ok(())
}

pub(super) async fn versions(api: &Api, app: &str) -> anyhow::Result<()> {
    let path = format!("/v1/tenants/{}/apps/{app}/versions", api.tenant()?);
    api.print(
        &api.call(Method::GET, &path, None).await?,
        &["number", "sha256", "size", "created_at", "world"],
    );
    Ok(())
}

pub(super) async fn rollback(api: &Api, app: &str, to: Option<u32>) -> anyhow::Result<()> {
    let path = format!("/v1/tenants/{}/apps/{app}/rollback", api.tenant()?);
    let body = serde_json::to_vec(&json!({ "version": to }))?;
    let answer = api.call(Method::POST, &path, Some(body)).await?;
    if api.json {
        api.print(&answer, &[]);
    } else {
        println!("{app}: version {} is active", answer["active_version"]);
    }
    Ok(())
}

pub(super) async fn vars(api: &Api, kind: &str, cmd: VarCmd) -> anyhow::Result<()> {
    let tenant = api.tenant()?;
    let (method, app, name, body) = match cmd {
        VarCmd::Set { app, name, value } => (Method::PUT, app, name, Some(value.into_bytes())),
        VarCmd::Unset { app, name } => (Method::DELETE, app, name, None),
    };
    let path = format!("/v1/tenants/{tenant}/apps/{app}/{kind}/{name}");
    let answer = api.call(method.clone(), &path, body).await?;
    if api.json {
        api.print(&answer, &[]);
    } else {
        let did = if method == Method::PUT {
            "set"
        } else {
            "unset"
        };
        println!("{app}: {did} {name}");
    }
    Ok(())
}
