//! `verge kv ...`: read and write a tenant's KV stores through the admin API.

use super::client::Api;
use anyhow::Context as _;
use clap::Subcommand;
use http::Method;
use std::path::PathBuf;

/// `verge kv ...`.
#[derive(Debug, Subcommand)]
pub enum KvCmd {
    /// Print a value.
    Get {
        /// The key.
        key: String,
        /// The store.
        #[arg(long)]
        store: String,
    },
    /// Store a value.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// The store.
        #[arg(long)]
        store: String,
        /// Expire after this many seconds.
        #[arg(long)]
        ttl: Option<u32>,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: String,
        /// The store.
        #[arg(long)]
        store: String,
    },
    /// List keys (follows cursors up to --limit keys).
    List {
        /// The store.
        #[arg(long)]
        store: String,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Most keys to print.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Bulk-import a JSON file: `{"key": "value", ...}` or
    /// `[{"key": ..., "value": ..., "ttl": ...}]`.
    Import {
        /// The JSON file.
        file: PathBuf,
        /// The store.
        #[arg(long)]
        store: String,
    },
}

/// Percent-encodes everything but unreserved characters, for a key in a path.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub(super) async fn run(api: &Api, cmd: KvCmd) -> anyhow::Result<()> {
    let tenant = api.tenant()?.to_owned();
    let base = |store: &str| format!("/v1/tenants/{tenant}/kv/{}", encode(store));
    match cmd {
        KvCmd::Get { key, store } => {
            let bytes = api
                .call_raw(
                    Method::GET,
                    &format!("{}/keys/{}", base(&store), encode(&key)),
                    None,
                )
                .await?;
            println!("{}", String::from_utf8_lossy(&bytes));
        }
        KvCmd::Put {
            key,
            value,
            store,
            ttl,
        } => {
            let query = ttl.map(|t| format!("?ttl={t}")).unwrap_or_default();
            let path = format!("{}/keys/{}{query}", base(&store), encode(&key));
            api.call(Method::PUT, &path, Some(value.into_bytes()))
                .await?;
            println!("stored {key}");
        }
        KvCmd::Delete { key, store } => {
            api.call(
                Method::DELETE,
                &format!("{}/keys/{}", base(&store), encode(&key)),
                None,
            )
            .await?;
            println!("deleted {key}");
        }
        KvCmd::List {
            store,
            prefix,
            limit,
        } => {
            let mut keys = Vec::new();
            let mut cursor: Option<String> = None;
            while keys.len() < limit {
                let mut path = format!(
                    "{}/keys?prefix={}&limit=1000",
                    base(&store),
                    encode(&prefix)
                );
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={}", encode(c)));
                }
                let page = api.call(Method::GET, &path, None).await?;
                keys.extend(
                    page["keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|k| k.as_str().map(str::to_owned)),
                );
                match page["cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
            }
            keys.truncate(limit);
            if api.json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                keys.iter().for_each(|k| println!("{k}"));
            }
        }
        KvCmd::Import { file, store } => {
            let body =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let answer = api
                .call(
                    Method::POST,
                    &format!("{}/import", base(&store)),
                    Some(body),
                )
                .await?;
            println!("imported {} keys into {store}", answer["imported"]);
        }
    }
    Ok(())
}
