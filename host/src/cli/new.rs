//! `verge new NAME`: a function crate that builds and deploys as is.

use anyhow::{Context as _, bail};
use clap::Args;
use std::path::{Path, PathBuf};

/// Options of `verge new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The function's name: a lower-case letter, then lower-case letters,
    /// digits and dashes.
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,
    /// What to start from (`verge new --list` shows them).
    #[arg(long, short, default_value = "http")]
    pub template: String,
    /// List the templates.
    #[arg(long)]
    pub list: bool,
    /// Where to create it [default: ./NAME].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The verge-sdk crate to depend on [default: a copy of this verge's
    /// SDK written into the project, under `.verge/`].
    #[arg(long, value_name = "DIR")]
    pub sdk: Option<PathBuf>,
}

/// The guest SDK this binary was built with, packed by `build.rs`.
mod packed {
    include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));
}

/// Where in a new project the packed SDK goes: versioned, so a later
/// verge's SDK can sit beside it.
fn packed_sdk_dir() -> String {
    format!(".verge/sdk-{}", env!("CARGO_PKG_VERSION"))
}

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
{dependencies}

# A crate of its own, even when created inside another workspace.
[workspace]

# Small, fast guests: a fresh instance per request pays for every page it
# touches.
[profile.release]
opt-level = 3
codegen-units = 16
panic = "abort"
strip = "debuginfo"
"#;

const CARGO_CONFIG: &str = r#"# `cargo build` in this crate builds the Wasm component.
[build]
target = "wasm32-wasip2"

[target.wasm32-wasip2]
# A 64 KiB stack: every page a guest touches is reset between requests.
rustflags = ["-C", "link-arg=-zstack-size=65536"]
"#;

const README: &str = r#"# {name}

A [Verge](https://example.invalid/verge) edge function.

    verge dev                # serve on http://127.0.0.1:8080, rebuild on change
    curl http://127.0.0.1:8080/

    verge deploy .           # to a daemon (VERGE_URL, VERGE_TOKEN)

`src/lib.rs` is the handler; `verge.toml` holds its routes, KV stores,
allowed outbound hosts and configuration.
{template_readme}"#;

/// An app name (the registry's rule) that is also a Cargo package name:
/// Cargo refuses names that start with a digit.
fn valid_name(name: &str) -> bool {
    crate::storage::records::is_valid_name(name)
        && name.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Writes the packed SDK under `dir`; returns the `verge-sdk` crate's path
/// relative to `dir`.
fn write_packed_sdk(dir: &Path) -> anyhow::Result<String> {
    let base = packed_sdk_dir();
    for (path, text) in packed::SDK_FILES {
        let path = dir.join(&base).join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(format!("{base}/sdk"))
}

pub(super) fn run(args: NewArgs) -> anyhow::Result<()> {
    if args.list {
        for t in super::templates::TEMPLATES {
            println!("{:<11} {}", t.name, t.about);
        }
        return Ok(());
    }
    let Some(name) = args.name.clone() else {
        bail!("give the function a name: `verge new NAME`");
    };
    let Some(template) = super::templates::find(&args.template) else {
        bail!(
            "no template {:?}; there are: {}",
            args.template,
            super::templates::TEMPLATES
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    if !valid_name(&name) {
        bail!(
            "{name:?} is not a valid function name: start with a lower-case letter, then lower-case letters, digits and dashes (at most 63); it names the crate and the app"
        );
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&name));
    if dir.exists() && dir.read_dir().map_or(true, |mut d| d.next().is_some()) {
        bail!("{} already exists and is not empty", dir.display());
    }
    let sdk_text = match &args.sdk {
        Some(sdk) => std::fs::canonicalize(sdk)
            .with_context(|| format!("the verge-sdk crate is not at {}", sdk.display()))?
            .to_string_lossy()
            .replace('\\', "/"),
        None if template.dependencies.contains("{sdk}") => write_packed_sdk(&dir)?,
        None => String::new(),
    };
    let fill = |text: &str| {
        text.replace("{dependencies}", template.dependencies)
            .replace("{template_readme}", template.readme)
            .replace("{name}", &name)
            .replace("{sdk}", &sdk_text)
    };
    let files = [
        ("Cargo.toml", fill(CARGO_TOML)),
        (".cargo/config.toml", CARGO_CONFIG.to_owned()),
        ("src/lib.rs", fill(template.lib_rs)),
        ("verge.toml", fill(template.manifest)),
        ("README.md", fill(README)),
        (".gitignore", "/target\n".to_owned()),
    ];
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "verge: created {name} from the {} template in {}",
        template.name,
        dir.display()
    );
    println!("  cd {} && verge dev", dir.display());
    Ok(())
}
