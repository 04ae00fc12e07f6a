//! The daemon's configuration file (`verge serve --config FILE`): every
//! setting optional, unknown keys refused. Flags and environment variables
//! override the file; the file overrides the built-in defaults
//! (docs/configuration.md lists them all).

use crate::server::tls::TlsCertificate;
use anyhow::Context as _;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonFile {
    /// Data-plane address.
    pub listen: Option<SocketAddr>,
    /// Admin API address.
    pub admin_listen: Option<SocketAddr>,
    /// How people reach the data plane (`https://edge.example.net`): the
    /// scheme and port `verge deploy` prints routes with.
    pub public_url: Option<String>,
    /// State directory.
    pub data_dir: Option<PathBuf>,
    /// The operator token (prefer the env var or the generated file).
    pub admin_token: Option<String>,
    /// One access-log line per request.
    pub access_log: Option<bool>,
    /// The instance pool.
    #[serde(default)]
    pub pool: PoolSection,
    /// Default per-request limits: the ceiling for every tenant.
    #[serde(default)]
    pub limits: LimitsSection,
    /// The HTTPS listener.
    pub tls: Option<TlsSection>,
    /// The geo database and trusted proxies.
    #[serde(default)]
    pub geo: GeoSection,
    /// Outbound fetch settings.
    #[serde(default)]
    pub outbound: OutboundSection,
    /// The edge cache.
    #[serde(default)]
    pub cache: CacheSection,
    /// Connection caps and timeouts for anonymous clients.
    #[serde(default)]
    pub connections: ConnectionsSection,
    /// Count caps on what tenants create.
    #[serde(default)]
    pub tenancy: TenancySection,
    /// How app secrets are sealed at rest.
    #[serde(default)]
    pub secrets: SecretsSection,
    /// Fleet mode: the Redis the nodes share.
    #[serde(default)]
    pub cluster: ClusterSection,
}

/// `[cluster]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// `redis://HOST:PORT[/DB]` or `rediss://...`.
    pub url: Option<String>,
    /// A file holding the Redis password.
    pub password_file: Option<PathBuf>,
    /// This node's name.
    pub node_name: Option<String>,
    /// This node's region label.
    pub region: Option<String>,
    /// The CA bundle a `rediss://` server's certificate must chain to.
    pub ca_file: Option<PathBuf>,
}

/// `[secrets]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsSection {
    /// The sealing key's file.
    pub key_file: Option<PathBuf>,
}

/// `[tenancy]`: how many tenants, apps and routes a node takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenancySection {
    /// Tenants on the node.
    pub max_tenants: Option<usize>,
    /// Apps per tenant.
    pub max_apps_per_tenant: Option<usize>,
    /// Routes per app.
    pub max_routes_per_app: Option<usize>,
    /// Longest a deploy's compile may take, in seconds.
    pub compile_budget_secs: Option<u64>,
    /// Every host a tenant routes needs an operator grant (`route_grants`
    /// with the exact host or a `*.suffix` covering it).
    pub hosts_need_grants: Option<bool>,
}

impl TenancySection {
    /// The caps this section sets on top of the defaults.
    pub fn caps(&self) -> crate::tenancy::RegistryCaps {
        let defaults = crate::tenancy::RegistryCaps::default();
        crate::tenancy::RegistryCaps {
            max_tenants: self.max_tenants.unwrap_or(defaults.max_tenants),
            max_apps_per_tenant: self
                .max_apps_per_tenant
                .unwrap_or(defaults.max_apps_per_tenant),
            max_routes_per_app: self
                .max_routes_per_app
                .unwrap_or(defaults.max_routes_per_app),
            hosts_need_grants: self.hosts_need_grants.unwrap_or(defaults.hosts_need_grants),
        }
    }
}

/// `[connections]`: what a client may hold before any guest runs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsSection {
    /// Open data-plane connections.
    pub max_connections: Option<usize>,
    /// Connections per client IP (0: no cap).
    pub max_per_ip: Option<usize>,
    /// Close a connection with no request in flight after this long, in ms.
    pub idle_timeout_ms: Option<u64>,
    /// Longest gap between two request-body frames, in ms.
    pub body_idle_timeout_ms: Option<u64>,
    /// Slowest average request-body rate, in bytes/s (0: none).
    pub min_body_bytes_per_sec: Option<u64>,
    /// Request-body bytes buffered across all requests, in MiB.
    pub buffered_body_mib: Option<usize>,
    /// Whole-response bytes held until their peers read them, across all
    /// requests, in MiB.
    pub buffered_response_mib: Option<usize>,
    /// Serving threads, one current-thread runtime each (default: one per
    /// core).
    pub serving_threads: Option<usize>,
}

impl ConnectionsSection {
    /// The limits this section sets on top of the defaults.
    pub fn limits(&self) -> anyhow::Result<crate::server::ConnectionLimits> {
        let mut limits = crate::server::ConnectionLimits::default();
        let ms = std::time::Duration::from_millis;
        if let Some(n) = self.max_connections {
            anyhow::ensure!(n > 0, "[connections] max_connections must be above 0");
            limits.max_connections = n;
        }
        if let Some(n) = self.max_per_ip {
            limits.max_per_ip = n;
        }
        if let Some(t) = self.idle_timeout_ms {
            anyhow::ensure!(t > 0, "[connections] idle_timeout_ms must be above 0");
            limits.idle_timeout = ms(t);
        }
        if let Some(t) = self.body_idle_timeout_ms {
            anyhow::ensure!(t > 0, "[connections] body_idle_timeout_ms must be above 0");
            limits.body.idle_timeout = ms(t);
        }
        if let Some(rate) = self.min_body_bytes_per_sec {
            limits.body.min_bytes_per_sec = rate;
        }
        if let Some(mib) = self.buffered_body_mib {
            anyhow::ensure!(mib > 0, "[connections] buffered_body_mib must be above 0");
            limits.buffered_body_bytes = mib.saturating_mul(1 << 20);
        }
        if let Some(mib) = self.buffered_response_mib {
            anyhow::ensure!(
                mib > 0,
                "[connections] buffered_response_mib must be above 0"
            );
            limits.buffered_response_bytes = mib.saturating_mul(1 << 20);
        }
        Ok(limits)
    }
}

/// `[cache]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// Bytes the cache may hold, in MiB.
    pub capacity_mib: Option<u64>,
}

/// `[pool]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSection {
    /// Instance slots: requests running at once.
    pub instances: Option<u32>,
    /// Pre-allocated pooling (false = allocate on demand).
    pub pooling: Option<bool>,
    /// Linear memory a reused slot keeps resident, in KiB.
    pub keep_resident_kib: Option<usize>,
    /// Reset only the pages an instance dirtied (Linux `PAGEMAP_SCAN`).
    pub pagemap_scan: Option<bool>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// CPU budget per request in ms.
    pub cpu_ms: Option<u64>,
    /// Wall-clock deadline per request in ms.
    pub wall_clock_ms: Option<u64>,
    /// Linear memory cap in MiB.
    pub memory_mib: Option<usize>,
    /// Outbound fetches per request.
    pub max_subrequests: Option<u32>,
    /// Request body cap in MiB.
    pub max_request_body_mib: Option<usize>,
    /// Response body cap in MiB.
    pub max_response_body_mib: Option<usize>,
}

/// `[tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// HTTPS address.
    pub listen: SocketAddr,
    /// `[[tls.certificates]]` with `cert` and `key`.
    pub certificates: Vec<TlsCertificate>,
}

/// `[geo]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoSection {
    /// The `.mmdb` file.
    pub database: Option<PathBuf>,
    /// CIDRs whose forwarding headers are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// `[outbound]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundSection {
    /// Private CIDRs fetch may reach anyway.
    #[serde(default)]
    pub allow_cidrs: Vec<ipnet::IpNet>,
    /// Extra CA certificates (PEM) for outbound TLS.
    pub ca_file: Option<PathBuf>,
}

impl DaemonFile {
    /// Reads `path`; a syntax error, an unknown key or a bad value fails
    /// with the file, the key and the reason. Relative paths inside are
    /// taken from the file's directory.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        let mut file: Self = toml::from_str(&text)
            .map_err(|err| anyhow::anyhow!("{}: {}", path.display(), err.to_string().trim_end()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(dir) = &mut file.data_dir {
            rebase(dir);
        }
        if let Some(db) = &mut file.geo.database {
            rebase(db);
        }
        if let Some(ca) = &mut file.outbound.ca_file {
            rebase(ca);
        }
        if let Some(key) = &mut file.secrets.key_file {
            rebase(key);
        }
        if let Some(tls) = &mut file.tls {
            for pair in &mut tls.certificates {
                rebase(&mut pair.cert);
                rebase(&mut pair.key);
            }
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<DaemonFile> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("daemon.toml");
        std::fs::write(&path, text)?;
        DaemonFile::read(&path)
    }

    #[test]
    fn a_full_file_parses_and_relative_paths_follow_the_file() {
        let file = parse(
            r#"
            listen = "0.0.0.0:80"
            data_dir = "state"
            [pool]
            instances = 200
            [limits]
            cpu_ms = 20
            max_subrequests = 10
            max_response_body_mib = 256
            [tls]
            listen = "0.0.0.0:443"
            certificates = [{ cert = "a.pem", key = "a.key" }]
            [geo]
            database = "/srv/geo.mmdb"
            trusted_proxies = ["10.0.0.0/8"]
            [outbound]
            allow_cidrs = ["10.1.0.0/16"]
            [connections]
            max_per_ip = 32
            idle_timeout_ms = 1500
            buffered_body_mib = 64
            "#,
        )
        .unwrap();
        assert_eq!(file.pool.instances, Some(200));
        assert_eq!(file.limits.max_subrequests, Some(10));
        assert_eq!(file.limits.max_response_body_mib, Some(256));
        let connections = file.connections.limits().unwrap();
        assert_eq!(connections.max_per_ip, 32);
        assert_eq!(connections.idle_timeout.as_millis(), 1500);
        assert_eq!(connections.buffered_body_bytes, 64 << 20);
        assert_eq!(
            connections.body,
            crate::server::limits::BodyPolicy::default(),
            "unset keys keep their defaults"
        );
        assert!(file.data_dir.as_ref().unwrap().ends_with("state"));
        let tls = file.tls.unwrap();
        assert!(tls.certificates[0].cert.is_absolute());
        assert_eq!(file.geo.database.unwrap(), PathBuf::from("/srv/geo.mmdb"));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = parse("[limits]\ncpu = 5\n").unwrap_err().to_string();
        assert!(err.contains("cpu"), "{err}");
        assert!(err.contains("daemon.toml"), "{err}");
        let err = parse("listen = \"not an address\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen"), "{err}");
        let err = parse("[geo]\ntrusted_proxies = [\"10.0.0.0/99\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("trusted_proxies"), "{err}");
    }
}
