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
    /// Store a value: the argument, --file, or stdin (bytes as they are).
    Put {
        /// The key.
        key: String,
        /// The value (else --file, else stdin).
        #[arg(conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from this file, byte for byte.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The store.
        #[arg(long)]
        store: String,
        /// Expire after this many seconds.
        #[arg(long)]
        ttl: Option<u32>,
    },
    /// Remove a key, or with --prefix every key that starts with it (asks
    /// first on a terminal).
    Delete {
        /// The key (not with --prefix).
        #[arg(required_unless_present = "prefix", conflicts_with = "prefix")]
        key: Option<String>,
        /// The store.
        #[arg(long)]
        store: String,
        /// Delete every key starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Do not ask before deleting by prefix.
        #[arg(long)]
        yes: bool,
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

/// Every key of `store` starting with `prefix`, at most `limit`,
/// following cursors.
async fn list_keys(
    api: &Api,
    base: &str,
    prefix: &str,
    limit: usize,
) -> anyhow::Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    while keys.len() < limit {
        let mut path = format!("{base}/keys?prefix={}&limit=1000", encode(prefix));
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
    Ok(keys)
}

/// Whether any app of the tenant declares `store` in its `kv_stores`.
async fn declared(api: &Api, tenant: &str, store: &str) -> anyhow::Result<bool> {
    let apps = api
        .call(Method::GET, &format!("/v1/tenants/{tenant}/apps"), None)
        .await?;
    Ok(apps.as_array().into_iter().flatten().any(|app| {
        app["kv_stores"]
            .as_array()
            .is_some_and(|stores| stores.iter().any(|s| s.as_str() == Some(store)))
    }))
}

/// The value to put: the argument, the file, or stdin (not a terminal).
fn put_value(value: Option<String>, file: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    use std::io::{IsTerminal as _, Read as _};
    if let Some(value) = value {
        return Ok(value.into_bytes());
    }
    if let Some(path) = file {
        return std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    }
    if std::io::stdin().is_terminal() {
        anyhow::bail!("no value: give it as an argument, with --file FILE, or on stdin");
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(crate::storage::kv::MAX_VALUE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .context("reading the value from stdin")?;
    Ok(bytes)
}

pub(super) async fn run(api: &Api, cmd: KvCmd) -> anyhow::Result<()> {
    use std::io::{IsTerminal as _, Write as _};
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
            if api.json {
                let value = String::from_utf8_lossy(&bytes);
                api.print(
                    &serde_json::json!({ "key": key, "value": value, "bytes": bytes.len() }),
                    &[],
                );
            } else {
                // Byte for byte; a newline only for a person at a terminal.
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)?;
                if std::io::stdout().is_terminal() && !bytes.ends_with(b"\n") {
                    out.write_all(b"\n")?;
                }
            }
        }
        KvCmd::Put {
            key,
            value,
            file,
            store,
            ttl,
        } => {
            let value = put_value(value, file.as_deref())?;
            let query = ttl.map(|t| format!("?ttl={t}")).unwrap_or_default();
            let path = format!("{}/keys/{}{query}", base(&store), encode(&key));
            let size = value.len();
            let answer = api.call(Method::PUT, &path, Some(value)).await?;
            api.say(&answer, &format!("stored {key} ({size} bytes)"));
        }
        KvCmd::Delete {
            key: Some(key),
            store,
            ..
        } => {
            let answer = api
                .call(
                    Method::DELETE,
                    &format!("{}/keys/{}", base(&store), encode(&key)),
                    None,
                )
                .await?;
            api.say(&answer, &format!("deleted {key}"));
        }
        KvCmd::Delete {
            key: None,
            store,
            prefix,
            yes,
        } => {
            let prefix = prefix.unwrap_or_default();
            let keys = list_keys(api, &base(&store), &prefix, usize::MAX).await?;
            super::input::confirm(
                &format!(
                    "delete {} keys starting with {prefix:?} from {store}",
                    keys.len()
                ),
                yes,
            )?;
            for key in &keys {
                api.call(
                    Method::DELETE,
                    &format!("{}/keys/{}", base(&store), encode(key)),
                    None,
                )
                .await?;
            }
            api.say(
                &serde_json::json!({ "deleted": keys.len(), "prefix": prefix }),
                &format!("deleted {} keys starting with {prefix:?}", keys.len()),
            );
        }
        KvCmd::List {
            store,
            prefix,
            limit,
        } => {
            let keys = list_keys(api, &base(&store), &prefix, limit).await?;
            if keys.is_empty() && !declared(api, &tenant, &store).await? {
                eprintln!(
                    "verge: no app of tenant {tenant} declares the store {store} (kv_stores in verge.toml), so it holds nothing a function can read"
                );
            }
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
            api.say(
                &answer,
                &format!("imported {} keys into {store}", answer["imported"]),
            );
        }
    }
    Ok(())
}
