//! `verge deploy`: build (for a crate dir), register the app's manifest,
//! upload the component, activate it.

use super::client::Api;
use super::manifest::{ManifestFile, manifest_beside, resolve_component};
use anyhow::{Context as _, bail};
use clap::Args;
use http::Method;
use std::path::PathBuf;

/// Options of `verge deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// A `.wasm` component, or a function crate directory (built first).
    pub path: PathBuf,
    /// The app's name; defaults to the manifest's `name`, else the crate or
    /// file name.
    #[arg(long)]
    pub app: Option<String>,
    /// A route (`host[/prefix]`, `*.suffix` hosts allowed); repeatable. Adds
    /// to the manifest's routes.
    #[arg(long = "route")]
    pub routes: Vec<String>,
    /// The app manifest; defaults to `verge.toml` beside the crate.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Store the version without making it serve.
    #[arg(long, conflicts_with = "wait")]
    pub no_activate: bool,
    /// Return only when every live node of the fleet serves the new
    /// version (or say which do not, after --wait-timeout).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub wait_timeout: u64,
}

/// How often `--wait` asks which version each node serves.
const ROLLOUT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Waits until every node `GET .../nodes` lists serves `version`; the
/// answer's nodes, or which nodes did not get there in time.
async fn rollout(
    api: &Api,
    app_path: &str,
    version: u64,
    timeout: std::time::Duration,
) -> anyhow::Result<serde_json::Value> {
    let started = std::time::Instant::now();
    loop {
        let answer = api
            .call(Method::GET, &format!("{app_path}/nodes"), None)
            .await?;
        // Down nodes (no heartbeat lately) are named after the rollout,
        // not waited for.
        let nodes: Vec<serde_json::Value> = answer["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| is_up(n))
            .cloned()
            .collect();
        let behind: Vec<String> = nodes
            .iter()
            .filter(|n| n["version"].as_u64() != Some(version))
            .map(|n| {
                let serves = n["version"]
                    .as_u64()
                    .map_or("nothing".to_owned(), |v| format!("version {v}"));
                format!("{} (serves {serves})", n["name"].as_str().unwrap_or("?"))
            })
            .collect();
        if behind.is_empty() && !nodes.is_empty() {
            return Ok(answer);
        }
        if started.elapsed() >= timeout {
            bail!(
                "version {version} is active, but after {} s these nodes do not serve it yet: {}",
                timeout.as_secs(),
                behind.join(", ")
            );
        }
        tokio::time::sleep(ROLLOUT_POLL).await;
    }
}

/// Whether a node `GET .../nodes` lists is up (older daemons say nothing:
/// up).
fn is_up(node: &serde_json::Value) -> bool {
    node["up"] != serde_json::json!(false)
}

pub(super) async fn run(api: &Api, args: DeployArgs) -> anyhow::Result<()> {
    let tenant = api.tenant()?.to_owned();
    let manifest_path = args.manifest.clone().or_else(|| {
        let beside = manifest_beside(&args.path);
        beside.exists().then_some(beside)
    });
    let file = match &manifest_path {
        Some(path) => Some(ManifestFile::read(path)?),
        None => None,
    };
    // Step lines on stderr for a person at a terminal; scripts (and
    // --json) keep stdout for the result and at most one line of reason on
    // failure. "building" always shows: cargo's own output follows it.
    let person = !api.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let step = |text: String| {
        if person {
            eprintln!("verge: {text}");
        }
    };
    if args.path.is_dir() && !api.json {
        eprintln!("verge: building {} ...", args.path.display());
    }
    let path = args.path.clone();
    let (built_name, wasm) =
        tokio::task::spawn_blocking(move || resolve_component(&path)).await??;
    let app = args
        .app
        .clone()
        .or_else(|| file.as_ref().and_then(|f| f.name.clone()))
        .unwrap_or(built_name);
    let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let app_path = format!("/v1/tenants/{tenant}/apps/{app}");
    let before = api.call(Method::GET, &app_path, None).await.ok();
    let wrote_manifest = file.is_some() || !args.routes.is_empty() || before.is_none();
    if wrote_manifest {
        let mut manifest = file.map(ManifestFile::into_manifest).unwrap_or_default();
        manifest.routes.extend(args.routes.iter().cloned());
        api.call(Method::PUT, &app_path, Some(serde_json::to_vec(&manifest)?))
            .await?;
    }
    step(format!(
        "uploading {app} ({} bytes) for tenant {tenant}; the daemon compiles it ...",
        bytes.len()
    ));
    let query = if args.no_activate {
        "?activate=false"
    } else {
        ""
    };
    let uploaded = api
        .call(
            Method::POST,
            &format!("{app_path}/versions{query}"),
            Some(bytes),
        )
        .await;
    let answer = match uploaded {
        Ok(answer) => answer,
        Err(err) => {
            // A refused deploy changes nothing: the app it created goes,
            // the manifest it replaced comes back.
            if wrote_manifest {
                undo_manifest(api, &app_path, before.as_ref()).await;
            }
            return Err(err);
        }
    };
    let no_route = answer["routes"].as_array().is_some_and(Vec::is_empty);
    let warning = no_route.then(|| {
        format!(
            "{app} has no route, so it serves nothing: add one with `--route HOST[/PREFIX]` or `routes = [\"HOST\"]` in verge.toml and deploy again"
        )
    });
    let rolled_out = match (args.wait, answer["version"]["number"].as_u64()) {
        (true, Some(number)) => {
            step(format!(
                "waiting for every node to serve version {number} ..."
            ));
            let timeout = std::time::Duration::from_secs(args.wait_timeout);
            Some(rollout(api, &app_path, number, timeout).await?)
        }
        _ => None,
    };
    if api.json {
        let mut answer = answer;
        answer["warnings"] = serde_json::json!(warning.iter().collect::<Vec<_>>());
        if let Some(rolled_out) = &rolled_out {
            answer["nodes"] = rolled_out["nodes"].clone();
        }
        api.print(&answer, &[]);
        return Ok(());
    }
    let version = &answer["version"];
    let Some(number) = version["number"].as_u64() else {
        bail!("unexpected answer from the admin API: {answer}");
    };
    let state = if args.no_activate {
        "stored (not active)"
    } else {
        "active"
    };
    println!(
        "deployed {tenant}/{app} version {number} ({} bytes, sha256 {}): {state}",
        version["size"],
        version["sha256"]
            .as_str()
            .unwrap_or("?")
            .get(..12)
            .unwrap_or("?")
    );
    for url in answer["urls"].as_array().into_iter().flatten() {
        println!("  {}", url.as_str().unwrap_or("?"));
    }
    println!("  limits: {}", limits_summary(&answer["effective_limits"]));
    if let Some(rolled_out) = rolled_out {
        let all = rolled_out["nodes"].as_array().cloned().unwrap_or_default();
        let (up, down): (Vec<_>, Vec<_>) = all.iter().partition(|n| is_up(n));
        if down.is_empty() {
            println!("  served by every node ({})", up.len());
        } else {
            let named: Vec<String> = down
                .iter()
                .map(|n| {
                    let secs = n["heartbeat_age_ms"].as_u64().unwrap_or(0) / 1000;
                    format!(
                        "{} (last seen {secs} s ago)",
                        n["name"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            println!(
                "  served by every live node ({}); down, not serving it: {}",
                up.len(),
                named.join(", ")
            );
        }
    }
    if let Some(warning) = warning {
        eprintln!("verge: warning: {warning}");
    }
    Ok(())
}

/// Puts the app back as it was before a refused upload: deleted if the
/// deploy created it, else its previous manifest restored. Failures are
/// reported, not fatal: the upload's error is the one the user needs.
async fn undo_manifest(api: &Api, app_path: &str, before: Option<&serde_json::Value>) {
    let undone = match before {
        None => api.call(Method::DELETE, app_path, None).await.map(drop),
        Some(app) => match serde_json::to_vec(&serde_json::json!({
            "routes": app["routes"],
            "kv_stores": app["kv_stores"],
            "kv_cache_ttl_seconds": app["kv_cache_ttl_seconds"],
            "allowed_hosts": app["allowed_hosts"],
            "config": app["config"],
            "limits": app["limits"],
        })) {
            Ok(manifest) => api
                .call(Method::PUT, app_path, Some(manifest))
                .await
                .map(drop),
            Err(err) => Err(err.into()),
        },
    };
    if let Err(err) = undone {
        eprintln!("verge: could not undo the app change after the refused upload: {err:#}");
    }
}

/// The effective limits in one line: `50 ms CPU, 30000 ms wall clock, ...`.
fn limits_summary(limits: &serde_json::Value) -> String {
    let parts: Vec<String> = [
        ("cpu_ms", "ms CPU"),
        ("wall_clock_ms", "ms wall clock"),
        ("memory_mib", "MiB memory"),
        ("max_subrequests", "subrequests"),
        ("max_concurrency", "concurrent requests"),
    ]
    .iter()
    .filter_map(|(key, unit)| limits[*key].as_u64().map(|v| format!("{v} {unit}")))
    .collect();
    if parts.is_empty() {
        "the host's defaults".into()
    } else {
        parts.join(", ")
    }
}
