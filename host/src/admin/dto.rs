//! What the admin API reads and writes as JSON: request bodies and the
//! views of stored records (secret names only, never their values).

use crate::storage::records::{AppRecord, LimitOverrides, TenantRecord};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// Most entries one KV import may carry.
pub const MAX_IMPORT_ENTRIES: usize = 10_000;

/// An app as the API shows it: secret names only, never their values.
#[derive(Debug, Serialize)]
pub(super) struct AppView<'a> {
    tenant: &'a str,
    name: &'a str,
    routes: &'a [String],
    kv_stores: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    kv_cache_ttl_seconds: Option<u32>,
    allowed_hosts: &'a [String],
    config: &'a BTreeMap<String, String>,
    secrets: Vec<&'a str>,
    /// When each secret was last set (Unix seconds); never a value.
    secrets_set_at: &'a BTreeMap<String, u64>,
    limits: &'a LimitOverrides,
    /// What the app runs under: its limits within the tenant's ceiling
    /// and the host's.
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_limits: Option<&'a LimitOverrides>,
    active_version: Option<u32>,
    /// Where it answers: each route as a URL.
    urls: Vec<String>,
}

impl<'a> AppView<'a> {
    pub(super) fn with_effective(mut self, effective: &'a LimitOverrides) -> Self {
        self.effective_limits = Some(effective);
        self
    }

    pub(super) fn with_urls(mut self, urls: &super::urls::PublicUrls) -> Self {
        self.urls = urls.for_routes(self.routes);
        self
    }
}

impl<'a> From<&'a AppRecord> for AppView<'a> {
    fn from(app: &'a AppRecord) -> Self {
        Self {
            tenant: &app.tenant,
            name: &app.name,
            routes: &app.manifest.routes,
            kv_stores: &app.manifest.kv_stores,
            kv_cache_ttl_seconds: app.manifest.kv_cache_ttl_seconds,
            allowed_hosts: &app.manifest.allowed_hosts,
            config: &app.manifest.config,
            secrets: app.secrets.keys().map(String::as_str).collect(),
            secrets_set_at: &app.secrets_set_at,
            limits: &app.manifest.limits,
            effective_limits: None,
            active_version: app.active_version,
            urls: Vec::new(),
        }
    }
}

/// The body of a cache purge.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CachePurge {
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub all: bool,
}

pub(super) fn tenant_view(t: &TenantRecord) -> serde_json::Value {
    json!({
        "name": t.name,
        "limits": t.limits,
        "route_grants": t.route_grants,
        "outbound_grants": t.outbound_grants,
        "created_at": t.created_at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewTenant {
    pub name: String,
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Wildcard and catch-all route hosts the tenant may use.
    #[serde(default)]
    pub route_grants: Vec<String>,
    /// Private ranges (`CIDR` or `CIDR:PORT`) its fetches may reach.
    #[serde(default)]
    pub outbound_grants: Vec<String>,
}

/// The body of `PUT /v1/tenants/{t}/outbound-grants`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OutboundGrants {
    pub outbound_grants: Vec<String>,
}

/// `POST /v1/fleet/accept`: the revision of Redis's control plane this
/// node accepts though it is older than its own.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FleetAccept {
    pub revision: u64,
}

/// The body of `PUT /v1/tenants/{t}/route-grants`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteGrants {
    pub route_grants: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct VersionChoice {
    #[serde(default)]
    pub version: Option<u32>,
}

/// An import body, `{"key": "value", ...}` or `[{"key", "value", "ttl"?}]`,
/// parsed entry by entry: past [`MAX_IMPORT_ENTRIES`] the parse stops
/// there, so a huge body costs no more than the entries it may hold.
pub(super) struct Import(pub Vec<ImportEntry>);

impl<'de> Deserialize<'de> for Import {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = Import;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of keys to values or a list of {key, value, ttl}")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Import, A::Error> {
                let mut entries = Vec::new();
                let entry = |n: usize, e: A::Error| {
                    <A::Error as serde::de::Error>::custom(format!(
                        "entry {n}: {e} (each entry is \"key\": \"text value\")"
                    ))
                };
                while let Some((key, value)) = map
                    .next_entry::<String, String>()
                    .map_err(|e| entry(entries.len() + 1, e))?
                {
                    push_capped(
                        &mut entries,
                        ImportEntry {
                            key,
                            value,
                            ttl: None,
                        },
                    )?;
                }
                Ok(Import(entries))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Import, A::Error> {
                let mut entries = Vec::new();
                let bad = |n: usize, e: A::Error| {
                    <A::Error as serde::de::Error>::custom(format!(
                        "entry {n}: {e} (each entry is {{\"key\": text, \"value\": text, \"ttl\": seconds?}})"
                    ))
                };
                while let Some(entry) = seq
                    .next_element::<ImportEntry>()
                    .map_err(|e| bad(entries.len() + 1, e))?
                {
                    push_capped(&mut entries, entry)?;
                }
                Ok(Import(entries))
            }
        }
        de.deserialize_any(Entries)
    }
}

fn push_capped<E: serde::de::Error>(
    entries: &mut Vec<ImportEntry>,
    entry: ImportEntry,
) -> Result<(), E> {
    if entries.len() == MAX_IMPORT_ENTRIES {
        return Err(E::custom(format!(
            "at most {MAX_IMPORT_ENTRIES} entries per import"
        )));
    }
    entries.push(entry);
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImportEntry {
    pub key: String,
    pub value: String,
    #[serde(default)]
    pub ttl: Option<u32>,
}
