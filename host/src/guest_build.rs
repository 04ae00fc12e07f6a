//! Builds guest crates for `wasm32-wasip2` with the machine's cargo, adding
//! the target first when it is missing. Used by `verge serve --app DIR`,
//! `verge demo` and the test suite, so no manual step precedes them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use thiserror::Error;

/// The Rust target every guest is built for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// Why a guest build failed.
#[derive(Debug, Error)]
pub enum BuildError {
    /// cargo or rustup could not be started.
    #[error("could not run {tool}: {source}")]
    Spawn {
        /// The program.
        tool: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// `rustup target add` failed.
    #[error("could not add the {GUEST_TARGET} target (rustup said: {0})")]
    Target(String),
    /// cargo reported errors (they were printed to stderr).
    #[error("cargo build failed in {} (its errors are above)", .0.display())]
    Cargo(PathBuf),
    /// The directory is not a crate.
    #[error(
        "{} has no Cargo.toml: pass a function crate directory (`verge new NAME` creates one) or a .wasm component",
        .0.display()
    )]
    NotACrate(PathBuf),
    /// The build succeeded but produced no component.
    #[error("the build in {0} produced no .wasm component (is the crate a cdylib?)")]
    NoArtifact(PathBuf),
}

/// One built component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The cargo package name.
    pub package: String,
    /// The `.wasm` component.
    pub path: PathBuf,
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Adds the guest target with rustup when the active toolchain lacks it.
/// One call at a time per machine: concurrent `rustup target add` runs
/// (tests and `verge` children building guests in parallel, on a fresh
/// machine) race on rustup's download folder and fail, so each takes a
/// lock file in the temp dir first (and a process-wide mutex, since a
/// file lock is per open file), then looks again.
pub fn ensure_target() -> Result<(), BuildError> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let lock = std::fs::File::create(std::env::temp_dir().join("verge-rustup-target.lock"));
    // Without a lock file (a read-only temp dir) go on unlocked.
    let _machine_turn = lock.ok().filter(|file| file.lock().is_ok());
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .map_err(|source| BuildError::Spawn {
            tool: "rustc".into(),
            source,
        })?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(GUEST_TARGET).exists() {
        return Ok(());
    }
    tracing::info!("adding the {GUEST_TARGET} target with rustup");
    let out = Command::new("rustup")
        .args(["target", "add", GUEST_TARGET])
        .output()
        .map_err(|source| BuildError::Spawn {
            tool: "rustup".into(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BuildError::Target(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// Builds every cdylib in the crate or workspace at `dir` in release mode,
/// into `target_dir` when given. cargo runs from `dir`, so the crate's own
/// `.cargo/config.toml` (stack size, target) applies. cargo's diagnostics go
/// to this process's stderr.
pub fn build(dir: &Path, target_dir: Option<&Path>) -> Result<Vec<Artifact>, BuildError> {
    if !dir.join("Cargo.toml").is_file() {
        return Err(BuildError::NotACrate(dir.to_owned()));
    }
    ensure_target()?;
    let mut cmd = Command::new(cargo());
    cmd.current_dir(dir)
        .args(["build", "--release", "--target", GUEST_TARGET])
        .args(["--message-format", "json-render-diagnostics"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(target_dir) = target_dir {
        cmd.arg("--target-dir").arg(target_dir);
    }
    // NO_COLOR (https://no-color.org) is not cargo's own switch.
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        cmd.env("CARGO_TERM_COLOR", "never");
    }
    // Settings of an outer cargo (tests, `cargo run`) meant for the host
    // target must not leak into the guest build. (A user's
    // CARGO_TARGET_DIR is respected: it only says where output goes.)
    for var in [
        "CARGO_BUILD_TARGET",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_MAKEFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().map_err(|source| BuildError::Spawn {
        tool: cargo(),
        source,
    })?;
    if !out.status.success() {
        return Err(BuildError::Cargo(dir.to_owned()));
    }
    let artifacts = parse_artifacts(&String::from_utf8_lossy(&out.stdout));
    if artifacts.is_empty() {
        return Err(BuildError::NoArtifact(dir.to_owned()));
    }
    Ok(artifacts)
}

/// Picks the `.wasm` files out of cargo's JSON messages.
fn parse_artifacts(json_lines: &str) -> Vec<Artifact> {
    let mut artifacts = Vec::new();
    for line in json_lines.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let package = msg["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let files = msg["filenames"].as_array().cloned().unwrap_or_default();
        for file in files.iter().filter_map(|f| f.as_str()) {
            if file.ends_with(".wasm") {
                artifacts.push(Artifact {
                    package: package.replace('_', "-"),
                    path: PathBuf::from(file),
                });
            }
        }
    }
    artifacts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_wasm_artifacts_in_cargo_json() {
        let json = r#"{"reason":"compiler-artifact","target":{"name":"cpu_spin"},"filenames":["/t/cpu_spin.wasm"]}
{"reason":"compiler-artifact","target":{"name":"serde"},"filenames":["/t/libserde.rlib"]}
not json
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            parse_artifacts(json),
            vec![Artifact {
                package: "cpu-spin".into(),
                path: "/t/cpu_spin.wasm".into()
            }]
        );
    }
}
