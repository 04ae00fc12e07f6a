//! Fleet-mode settings of `verge serve`: the Redis the nodes share, this
//! node's name and region. The password comes from the environment or a
//! file, never from a flag another user could read in `ps`.

use super::settings::ClusterSection;
use crate::daemon::ClusterConfig;
use anyhow::{Context as _, bail};
use clap::Args;

/// `--cluster` and friends.
#[derive(Debug, Args, Clone, Default)]
pub struct ClusterArgs {
    /// Fleet mode: share KV through this Redis, `redis://HOST:PORT[/DB]`
    /// (or `rediss://` for TLS). The password goes in VERGE_CLUSTER_PASSWORD
    /// or `[cluster] password_file`, not in this flag.
    #[arg(long = "cluster", env = "VERGE_CLUSTER_URL", value_name = "URL")]
    pub url: Option<String>,
    /// This node's name in a fleet [default: the host name].
    #[arg(long, env = "VERGE_NODE_NAME")]
    pub node_name: Option<String>,
    /// This node's region label (metrics, logs, `verge nodes`) [default: none].
    #[arg(long, env = "VERGE_REGION")]
    pub region: Option<String>,
    /// The CA bundle (PEM) a `rediss://` Redis's certificate must chain to
    /// [default: the system's roots].
    #[arg(long, env = "VERGE_CLUSTER_CA_FILE", value_name = "FILE")]
    pub cluster_ca_file: Option<std::path::PathBuf>,
}

/// `verge cluster ...`: fleet operations.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCmd {
    /// Copy a single node's data dir (control plane, components, KV) into a
    /// fleet's Redis, idempotently: run it with the node stopped, then
    /// start the nodes with --cluster and the data dir's secrets key.
    Import {
        /// The data dir to copy.
        #[arg(long)]
        data_dir: std::path::PathBuf,
        /// The fleet's Redis, `redis://HOST:PORT[/DB]` (password in
        /// VERGE_CLUSTER_PASSWORD).
        #[arg(long = "cluster", env = "VERGE_CLUSTER_URL", value_name = "URL")]
        url: String,
        /// The CA bundle (PEM) a `rediss://` Redis's certificate must
        /// chain to [default: the system's roots].
        #[arg(long, env = "VERGE_CLUSTER_CA_FILE", value_name = "FILE")]
        cluster_ca_file: Option<std::path::PathBuf>,
    },
    /// After the fleet's Redis went back in time (emptied, restored from
    /// an old backup, failed over to a lagging replica), write the control
    /// plane of the node at --url over it: every node then applies it.
    /// Run it against the node with the highest revision (`verge nodes`);
    /// refused unless Redis is behind that node. KV entries lost with
    /// Redis are not in any node's snapshot: restore them from a backup.
    Reseed {
        #[command(flatten)]
        api: super::client::ApiArgs,
    },
    /// After the fleet's Redis went back in time, make the node at --url
    /// take Redis's older control plane at exactly --revision (its later
    /// changes are dropped there): the other answer to a divergence.
    Accept {
        /// The revision Redis holds, as `verge nodes` or the node's error
        /// says.
        #[arg(long)]
        revision: u64,
        #[command(flatten)]
        api: super::client::ApiArgs,
    },
}

/// Runs a `verge cluster` command.
pub async fn run(cmd: ClusterCmd) -> anyhow::Result<()> {
    match cmd {
        ClusterCmd::Import {
            data_dir,
            url,
            cluster_ca_file,
        } => {
            let args = ClusterArgs {
                url: Some(url),
                cluster_ca_file,
                ..ClusterArgs::default()
            };
            let Some(config) = args.config(&ClusterSection::default())? else {
                bail!("--cluster is required");
            };
            let report =
                crate::daemon::cluster_import::import(&data_dir, &config.client()?).await?;
            println!(
                "imported {}: {} control-plane records written ({} already there), {} components, {} KV entries{}",
                data_dir.display(),
                report.records_written,
                report.records_present,
                report.components,
                report.kv_entries,
                if report.kv_orphans > 0 {
                    format!(" ({} of deleted tenants left behind)", report.kv_orphans)
                } else {
                    String::new()
                }
            );
            let key = data_dir.join(crate::storage::secrets::DEFAULT_KEY_FILE);
            if key.exists() {
                println!(
                    "its secrets are sealed with {}: start every node with --secrets-key-file pointing at a copy of it",
                    key.display()
                );
            }
            Ok(())
        }
        ClusterCmd::Reseed { api } => {
            let api = super::client::Api::new(&api)?;
            let answer = api
                .call(http::Method::POST, "/v1/fleet/reseed", None)
                .await?;
            api.say(
                &answer,
                &format!(
                    "the fleet's Redis holds this node's control plane at revision {}; every node applies it within seconds (`verge nodes`)",
                    answer["revision"]
                ),
            );
            Ok(())
        }
        ClusterCmd::Accept { revision, api } => {
            let api = super::client::Api::new(&api)?;
            let body = serde_json::json!({ "revision": revision }).to_string();
            let answer = api
                .call(
                    http::Method::POST,
                    "/v1/fleet/accept",
                    Some(body.into_bytes()),
                )
                .await?;
            api.say(
                &answer,
                &format!(
                    "this node took the fleet's control plane at revision {} ({} apps changed)",
                    answer["revision"], answer["apps_changed"]
                ),
            );
            Ok(())
        }
    }
}

/// The environment variable a fleet's Redis password may come from.
pub const PASSWORD_ENV: &str = "VERGE_CLUSTER_PASSWORD";

impl ClusterArgs {
    /// The fleet settings from flags, then `[cluster]`; none without a URL.
    pub fn config(&self, file: &ClusterSection) -> anyhow::Result<Option<ClusterConfig>> {
        let from_flag = self.url.is_some() && std::env::var("VERGE_CLUSTER_URL").ok() != self.url;
        let Some(url) = self.url.clone().or_else(|| file.url.clone()) else {
            return Ok(None);
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            bail!("--cluster {url}: expected redis://HOST:PORT[/DB] or rediss://...");
        };
        if scheme != "redis" && scheme != "rediss" {
            bail!("--cluster {url}: the scheme must be redis or rediss");
        }
        if from_flag
            && rest
                .split('/')
                .next()
                .is_some_and(|auth| auth.contains('@'))
        {
            bail!(
                "--cluster: put the password in {PASSWORD_ENV} or [cluster] password_file, not on the command line where `ps` shows it"
            );
        }
        let password = match (std::env::var(PASSWORD_ENV).ok(), &file.password_file) {
            (Some(password), _) => Some(password),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading [cluster] password_file {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let url = match password.filter(|p| !p.is_empty()) {
            Some(password) => format!("{scheme}://:{}@{rest}", percent_encoded(&password)),
            None => url,
        };
        let node_name = self
            .node_name
            .clone()
            .or_else(|| file.node_name.clone())
            .unwrap_or_else(host_name);
        let region = self
            .region
            .clone()
            .or_else(|| file.region.clone())
            .unwrap_or_default();
        Ok(Some(ClusterConfig {
            url,
            node_name,
            region,
            ca_file: self
                .cluster_ca_file
                .clone()
                .or_else(|| file.ca_file.clone()),
        }))
    }
}

/// The machine's host name, or `verge` if it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "verge".into())
}

/// `text` with everything but unreserved URL characters `%XX`-escaped.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_on_the_command_line_is_refused_and_one_from_a_file_is_used() {
        let flag = ClusterArgs {
            url: Some("redis://:secret@127.0.0.1:6379/0".into()),
            ..ClusterArgs::default()
        };
        let err = flag
            .config(&ClusterSection::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("VERGE_CLUSTER_PASSWORD"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "p@ss word\n").unwrap();
        let section = ClusterSection {
            url: Some("redis://127.0.0.1:6379/2".into()),
            password_file: Some(file),
            node_name: Some("edge-1".into()),
            region: Some("eu-west".into()),
            ca_file: None,
        };
        let config = ClusterArgs::default().config(&section).unwrap().unwrap();
        assert_eq!(config.url, "redis://:p%40ss%20word@127.0.0.1:6379/2");
        assert_eq!(
            (config.node_name.as_str(), config.region.as_str()),
            ("edge-1", "eu-west")
        );
        let err = ClusterArgs {
            url: Some("http://127.0.0.1:6379".into()),
            ..ClusterArgs::default()
        }
        .config(&ClusterSection::default())
        .unwrap_err()
        .to_string();
        assert!(err.contains("scheme"), "{err}");
        assert!(
            ClusterArgs::default()
                .config(&ClusterSection::default())
                .unwrap()
                .is_none()
        );
    }
}
