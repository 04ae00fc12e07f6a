//! `verge cache purge --tag T | --key K | --all`: empty the edge cache.

use super::client::Api;
use clap::Subcommand;
use http::Method;

/// `verge cache ...`.
#[derive(Debug, Subcommand)]
pub enum CacheCmd {
    /// Remove entries: every one with a tag, one key, or all of them.
    Purge {
        /// Remove every entry with this tag.
        #[arg(long, conflicts_with_all = ["key", "all"])]
        tag: Option<String>,
        /// Remove this one key.
        #[arg(long, conflicts_with = "all")]
        key: Option<String>,
        /// Remove everything: the tenant's entries, or with an operator
        /// token and no tenant, every tenant's.
        #[arg(long)]
        all: bool,
    },
}

pub(super) async fn run(api: &Api, cmd: CacheCmd) -> anyhow::Result<()> {
    let CacheCmd::Purge { tag, key, all } = cmd;
    if tag.is_none() && key.is_none() && !all {
        anyhow::bail!("say what to purge: --tag T, --key K or --all");
    }
    let body = serde_json::json!({ "tag": tag, "key": key, "all": all });
    let path = match (api.tenant(), all) {
        (Ok(tenant), _) => format!("/v1/tenants/{tenant}/cache/purge"),
        (Err(_), true) => "/v1/cache/purge".to_owned(),
        (Err(err), false) => return Err(err),
    };
    let answer = api
        .call(Method::POST, &path, Some(body.to_string().into_bytes()))
        .await?;
    let n = answer["purged"].as_u64().unwrap_or(0);
    let what = match (&tag, &key) {
        (Some(tag), _) => format!(" tagged {tag}"),
        (_, Some(key)) => format!(" under key {key}"),
        _ => String::new(),
    };
    let noun = if n == 1 { "entry" } else { "entries" };
    // In fleet mode the answer counts the nodes the purge reached.
    let nodes = match answer["nodes"].as_u64() {
        Some(1) => " on this node; 1 node reached".to_owned(),
        Some(nodes) => format!(" on this node; {nodes} nodes reached"),
        None => String::new(),
    };
    api.say(&answer, &format!("purged {n} {noun}{what}{nodes}"));
    Ok(())
}
