//! The app manifest file (`verge.toml` beside a function) and the component
//! a path names, shared by `deploy`, `serve --app`, `dev` and `demo`.

use crate::storage::records::{AppManifest, LimitOverrides};
use anyhow::{Context as _, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The app manifest's file name, beside the crate or the `.wasm`.
pub const MANIFEST_FILE: &str = "verge.toml";

/// The `verge.toml` app manifest. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// The app's name.
    pub name: Option<String>,
    /// Routes, `host[/prefix]`.
    #[serde(default)]
    pub routes: Vec<String>,
    /// KV stores the app may open.
    #[serde(default)]
    pub kv_stores: Vec<String>,
    /// Seconds each node may answer KV reads from its read cache
    /// (Workers KV's `cacheTtl`); unset: every read goes to the store.
    #[serde(default)]
    pub kv_cache_ttl_seconds: Option<u32>,
    /// Outbound hosts the app may fetch.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Configuration variables.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Limits below the tenant's ceiling.
    #[serde(default)]
    pub limits: LimitOverrides,
}

impl ManifestFile {
    /// Reads and parses a manifest, naming the file in errors.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The manifest part the admin API takes.
    pub fn into_manifest(self) -> AppManifest {
        AppManifest {
            routes: self.routes,
            kv_stores: self.kv_stores,
            kv_cache_ttl_seconds: self.kv_cache_ttl_seconds,
            allowed_hosts: self.allowed_hosts,
            config: self.config,
            limits: self.limits,
        }
    }
}

/// Where the manifest of the function at `path` (a crate directory or a
/// `.wasm` file) lives.
pub fn manifest_beside(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(MANIFEST_FILE)
    } else {
        path.with_file_name(MANIFEST_FILE)
    }
}

/// The `.wasm` to serve for `path`: the file itself, or the component built
/// from the crate directory.
pub fn resolve_component(path: &Path) -> anyhow::Result<(String, PathBuf)> {
    if path.is_dir() {
        let artifacts = crate::guest_build::build(path, None)?;
        let [artifact] = artifacts.as_slice() else {
            bail!(
                "{} builds {} components; pass one .wasm file instead",
                path.display(),
                artifacts.len()
            );
        };
        return Ok((artifact.package.clone(), artifact.path.clone()));
    }
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("app")
        .replace('_', "-");
    Ok((name, path.to_owned()))
}
