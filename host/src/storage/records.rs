//! The control-plane records: tenants, apps and versions.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Limits a tenant or app may set; `None` means "inherit". An app's values
/// are capped by its tenant's, the tenant's by the host defaults' ceiling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// CPU budget per request in ms (converted to fuel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
    /// Wall-clock deadline per request in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_clock_ms: Option<u64>,
    /// Linear memory cap in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Requests of this tenant or app running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Largest request body in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_body_bytes: Option<u64>,
    /// Largest response body in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_body_bytes: Option<u64>,
    /// Largest request header section in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_header_bytes: Option<u64>,
    /// Elements per table (function-pointer tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_elements: Option<u64>,
    /// Core instances, tables and memories per component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u64>,
    /// Outbound fetches (redirects included) per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_subrequests: Option<u32>,
    /// KV storage quota in MiB (tenant level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_quota_mib: Option<u64>,
}

/// A tenant: who owns apps and routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// Unique name: `[a-z0-9][a-z0-9-]*`, at most 63 bytes.
    pub name: String,
    /// sha256 (hex) of the tenant's API token.
    pub token_sha256: String,
    /// The tenant's limits (ceilings for its apps).
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Wildcard and catch-all route hosts (`*.example.com`, `*`) the
    /// operator granted this tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route_grants: Vec<String>,
    /// Private ranges (`CIDR` or `CIDR:PORT`) the operator granted this
    /// tenant's fetches; never the daemon's own listeners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound_grants: Vec<String>,
    /// Random per creation: a tenant deleted and created again under the
    /// same name never reaches the old one's KV data or cache entries.
    /// Empty for tenants created before generations existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generation: String,
    /// Unix seconds.
    pub created_at: u64,
}

/// The tenant name of a data key (`name~generation`), for metric labels.
pub fn tenant_label(data_key: &str) -> &str {
    data_key.split('~').next().unwrap_or(data_key)
}

impl TenantRecord {
    /// The key its KV data and cache entries live under: the name, plus
    /// `~generation` (a character no name may hold, so no two tenants'
    /// keys can meet).
    pub fn data_key(&self) -> String {
        if self.generation.is_empty() {
            self.name.clone()
        } else {
            format!("{}~{}", self.name, self.generation)
        }
    }
}

/// What a deployer says about an app: its routes and what it may use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppManifest {
    /// `host[/path-prefix]` routes; hosts exact, `*.suffix` or `*`.
    #[serde(default)]
    pub routes: Vec<String>,
    /// KV stores the app may open.
    #[serde(default)]
    pub kv_stores: Vec<String>,
    /// Seconds a node may answer this app's KV reads from its read cache
    /// (like Workers KV's `cacheTtl`); none or 0: every read goes to the
    /// store, strongly consistent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_ttl_seconds: Option<u32>,
    /// Outbound `scheme://host[:port]` the app may fetch (`*.` wildcards).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Configuration variables.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Per-app limits, capped by the tenant's.
    #[serde(default)]
    pub limits: LimitOverrides,
}

/// An app and its deployment state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// Owning tenant.
    pub tenant: String,
    /// App name, unique within the tenant.
    pub name: String,
    /// The deployer's manifest.
    pub manifest: AppManifest,
    /// Secrets: readable by the guest through `config`, never listed back.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// When each secret was last set (Unix seconds), for `verge secret list`.
    #[serde(default)]
    pub secrets_set_at: BTreeMap<String, u64>,
    /// The version serving traffic, if any.
    pub active_version: Option<u32>,
    /// The number the next upload gets.
    pub next_version: u32,
}

/// One uploaded version of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// 1, 2, 3, ... per app.
    pub number: u32,
    /// sha256 (hex) of the component bytes.
    pub sha256: String,
    /// Component size in bytes.
    pub size: u64,
    /// Unix seconds.
    pub created_at: u64,
    /// The world it exports, e.g. `verge:edge/function`.
    pub world: String,
}

/// Longest tenant, app, store or variable name.
pub const MAX_NAME_LEN: usize = 63;

/// Whether `name` is a valid tenant or app name: lower-case letters,
/// digits and dashes, not starting with a dash, at most 63 bytes (so it
/// fits a DNS label and a file name).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert!(is_valid_name("acme-2"));
        assert!(is_valid_name(&"a".repeat(63)));
        assert!(!is_valid_name(&"a".repeat(64)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name("Acme"));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name("a_b"));
    }

    #[test]
    fn manifests_refuse_unknown_fields() {
        let err = serde_json::from_str::<AppManifest>(r#"{"routez": []}"#);
        assert!(err.is_err());
        let ok: AppManifest =
            serde_json::from_str(r#"{"routes": ["a.example"]}"#).unwrap_or_default();
        assert_eq!(ok.routes, vec!["a.example"]);
    }
}
