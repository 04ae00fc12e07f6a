//! Packs the guest SDK (`sdk/`, `sdk/macros/`, `wit/`) into the binary, so
//! `verge new` writes a project that builds wherever it is made, with no
//! path back to the tree this binary was built from. The SDK's manifests
//! inherit from the workspace; they are written out resolved (versions,
//! features, package fields), without dev-dependencies or lints.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The crates packed, by their directory under the workspace root.
const CRATES: [&str; 2] = ["sdk", "sdk/macros"];

fn main() -> Result<()> {
    let host = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = host.join("..");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo::rerun-if-changed=../Cargo.toml");
    println!("cargo::rerun-if-changed=../sdk");
    println!("cargo::rerun-if-changed=../wit");
    let workspace: Table = std::fs::read_to_string(root.join("Cargo.toml"))?.parse()?;
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for krate in CRATES {
        let manifest: Table =
            std::fs::read_to_string(root.join(krate).join("Cargo.toml"))?.parse()?;
        let resolved = resolve(manifest, &workspace, krate)?;
        let name = format!("{}.Cargo.toml", krate.replace('/', "-"));
        std::fs::write(out.join(&name), toml::to_string(&resolved)?)?;
        files.push((format!("{krate}/Cargo.toml"), out.join(name)));
        sources(&root, &format!("{krate}/src"), "rs", &mut files)?;
    }
    sources(&root, "wit", "wit", &mut files)?;
    files.sort();
    let mut code = String::from(
        "/// The guest SDK's files: path and text.\npub const SDK_FILES: &[(&str, &str)] = &[\n",
    );
    for (path, file) in &files {
        writeln!(
            code,
            "    ({path:?}, include_str!({:?})),",
            file.canonicalize()?
        )?;
    }
    code.push_str("];\n");
    std::fs::write(out.join("sdk_files.rs"), code)?;
    Ok(())
}

/// Files ending in `.ext` under `root/dir`, recursively, by their path
/// under `root`.
fn sources(root: &Path, dir: &str, ext: &str, files: &mut Vec<(String, PathBuf)>) -> Result<()> {
    for entry in std::fs::read_dir(root.join(dir))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let rel = format!("{dir}/{name}");
        if path.is_dir() {
            sources(root, &rel, ext, files)?;
        } else if path.extension().is_some_and(|e| e == ext) {
            files.push((rel, path));
        }
    }
    Ok(())
}

/// `manifest` of the crate at `krate` with every `workspace = true`
/// replaced by the workspace's value.
fn resolve(mut manifest: Table, workspace: &Table, krate: &str) -> Result<Table> {
    let ws = workspace
        .get("workspace")
        .and_then(Value::as_table)
        .ok_or("the root Cargo.toml has no [workspace]")?;
    let empty = Table::new();
    let ws_package = ws
        .get("package")
        .and_then(Value::as_table)
        .unwrap_or(&empty);
    let ws_deps = ws
        .get("dependencies")
        .and_then(Value::as_table)
        .unwrap_or(&empty);
    manifest.remove("lints");
    manifest.remove("dev-dependencies");
    if let Some(Value::Table(package)) = manifest.get_mut("package") {
        for (key, value) in package.iter_mut() {
            if inherits(value) {
                *value = ws_package
                    .get(key)
                    .cloned()
                    .ok_or_else(|| format!("workspace.package.{key} is missing"))?;
            }
        }
        package.insert("publish".into(), Value::Boolean(false));
    }
    if let Some(Value::Table(deps)) = manifest.get_mut("dependencies") {
        for (name, dep) in deps.iter_mut() {
            if !inherits(dep) {
                continue;
            }
            let mut resolved = match ws_deps.get(name) {
                Some(Value::String(version)) => {
                    let mut t = Table::new();
                    t.insert("version".into(), Value::String(version.clone()));
                    t
                }
                Some(Value::Table(t)) => t.clone(),
                _ => return Err(format!("workspace.dependencies.{name} is missing").into()),
            };
            if let Some(Value::String(path)) = resolved.get("path").cloned() {
                // Packed crates keep their layout: a path under this crate.
                let under = path
                    .strip_prefix(&format!("{krate}/"))
                    .ok_or_else(|| format!("{name} at {path} is not under {krate}"))?;
                resolved.insert("path".into(), Value::String(under.to_owned()));
            }
            if let Value::Table(own) = dep {
                for (key, value) in own.iter() {
                    match (key.as_str(), resolved.get_mut(key), value) {
                        ("workspace", _, _) => {}
                        ("features", Some(Value::Array(have)), Value::Array(more)) => {
                            have.extend(more.iter().cloned());
                        }
                        _ => {
                            resolved.insert(key.clone(), value.clone());
                        }
                    }
                }
            }
            *dep = Value::Table(resolved);
        }
    }
    Ok(manifest)
}

/// `key.workspace = true` or `key = { workspace = true, ... }`.
fn inherits(value: &Value) -> bool {
    value
        .as_table()
        .and_then(|t| t.get("workspace"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}
