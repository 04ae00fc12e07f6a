//! `verge new NAME`: a function crate that builds and deploys as is.

use anyhow::{Context as _, bail};
use clap::Args;
use std::path::{Path, PathBuf};

/// Options of `verge new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The function's name: lower-case letters, digits and dashes.
    pub name: String,
    /// Where to create it [default: ./NAME].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The verge-sdk crate to depend on [default: the SDK beside this verge's sources].
    #[arg(long, value_name = "DIR")]
    pub sdk: Option<PathBuf>,
}

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
verge-sdk = { path = "{sdk}" }

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

const LIB_RS: &str = r#"//! {name}: a Verge function.

use verge_sdk::{Request, Response};

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    match (req.method().as_str(), req.path()) {
        ("GET", "/") => {
            let greeting = verge_sdk::config::get("greeting").unwrap_or_else(|| "hello".into());
            Response::text(format!("{greeting} from {name}\n"))
        }
        ("GET", "/json") => Response::json(&verge_sdk::serde_json::json!({ "app": "{name}", "path": req.path() })),
        _ => Response::error(404, "not found\n"),
    }
}
"#;

const VERGE_TOML: &str = r#"# The app manifest `verge deploy` and `verge dev` read.
name = "{name}"
routes = ["{name}.localhost"]
# KV stores the function may open, e.g. ["data"].
kv_stores = []
# Origins it may fetch, e.g. ["https://api.example.com"].
allowed_hosts = []

[config]
greeting = "hello"
"#;

const README: &str = r#"# {name}

A [Verge](https://example.invalid/verge) edge function.

    verge dev                # serve on http://127.0.0.1:8080, rebuild on change
    curl http://127.0.0.1:8080/

    verge deploy .           # to a daemon (VERGE_URL, VERGE_TOKEN)

`src/lib.rs` is the handler; `verge.toml` holds its routes, KV stores,
allowed outbound hosts and configuration.
"#;

/// An app name (the registry's rule) that is also a Cargo package name:
/// Cargo refuses names that start with a digit.
fn valid_name(name: &str) -> bool {
    crate::storage::records::is_valid_name(name)
        && name.starts_with(|c: char| c.is_ascii_lowercase())
}

fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk")
}

pub(super) fn run(args: NewArgs) -> anyhow::Result<()> {
    if !valid_name(&args.name) {
        bail!(
            "{:?} is not a valid function name: start with a lower-case letter, then lower-case letters, digits and dashes (at most 63); it names the crate and the app",
            args.name
        );
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && dir.read_dir().map_or(true, |mut d| d.next().is_some()) {
        bail!("{} already exists and is not empty", dir.display());
    }
    let sdk = args.sdk.clone().unwrap_or_else(default_sdk);
    let sdk = std::fs::canonicalize(&sdk).with_context(|| {
        format!(
            "the verge-sdk crate is not at {}; pass --sdk DIR",
            sdk.display()
        )
    })?;
    let sdk_text = sdk.to_string_lossy().replace('\\', "/");
    let fill = |template: &str| {
        template
            .replace("{name}", &args.name)
            .replace("{sdk}", &sdk_text)
    };
    let files = [
        ("Cargo.toml", fill(CARGO_TOML)),
        (".cargo/config.toml", CARGO_CONFIG.to_owned()),
        ("src/lib.rs", fill(LIB_RS)),
        ("verge.toml", fill(VERGE_TOML)),
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
    println!("verge: created {} in {}", args.name, dir.display());
    println!("  cd {} && verge dev", dir.display());
    Ok(())
}
