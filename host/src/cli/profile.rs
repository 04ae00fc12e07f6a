//! Saved connections: `verge login` writes a profile (URL and token) to
//! the user's config file, mode 0600, so no shell needs `VERGE_TOKEN`
//! exported. Flags and environment variables still win over a profile.

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

/// The whole file: named profiles.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    /// By name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One saved connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The admin API's URL.
    pub url: String,
    /// The bearer token.
    pub token: String,
}

/// Where profiles are kept: `$VERGE_CONFIG_DIR`, else
/// `$XDG_CONFIG_HOME/verge`, else `~/.config/verge`, then `profiles.toml`.
pub fn path() -> Option<PathBuf> {
    let dir = std::env::var_os("VERGE_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CONFIG_HOME").map(|d| PathBuf::from(d).join("verge")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config").join("verge"))
        })?;
    Some(dir.join("profiles.toml"))
}

impl ProfileFile {
    /// The file at `path`, empty if it does not exist.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the file with mode 0600 (its directory 0700), atomically.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write as _;
        #[cfg(unix)]
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let dir = path.parent().context("the profile path has no directory")?;
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        builder.mode(0o700);
        builder
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let tmp = path.with_extension("toml.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.write_all(toml::to_string(self)?.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// The profile `name` (or the default one), if saved. A named profile
/// that does not exist is an error; a missing default is not.
pub fn load(name: Option<&str>) -> anyhow::Result<Option<(String, Profile)>> {
    let Some(path) = path() else {
        return Ok(None);
    };
    let file = ProfileFile::read(&path)?;
    let wanted = name.unwrap_or(DEFAULT_PROFILE);
    match file.profiles.get(wanted) {
        Some(profile) => Ok(Some((wanted.to_owned(), profile.clone()))),
        None if name.is_some() => bail!(
            "no profile {wanted} in {} (saved: {}); `verge login --profile {wanted} --url URL` saves one",
            path.display(),
            if file.profiles.is_empty() {
                "none".to_owned()
            } else {
                file.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            }
        ),
        None => Ok(None),
    }
}
