//! What the binary benches need on a fresh machine, made by their own
//! set-up when missing: the `verge` binary, the guests, a hello built with
//! Rust's default 1 MiB stack, `wasmtime serve` 48.0.8, and the JavaScript
//! hello built with componentize-js from the npm registry.

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasmtime CLI the benches compare against: the version Verge embeds.
pub const WASMTIME_VERSION: &str = "48.0.8";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {what}"))?;
    anyhow::ensure!(status.success(), "{what} failed ({status})");
    Ok(())
}

/// `examples/hello` built the ordinary way: plain `cargo build --release`,
/// without the examples' 64 KiB stack flag, so Rust's default 1 MiB
/// shadow stack. Its own target dir keeps it apart from the usual build.
pub fn default_stack_hello() -> anyhow::Result<PathBuf> {
    verge::guest_build::ensure_target()?;
    let target = root().join("target/guests-default-stack");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(
        Command::new(cargo)
            .args(["build", "--release", "-p", "hello", "--target-dir"])
            .arg(&target)
            .current_dir(root().join("examples"))
            // RUSTFLAGS replaces the config file's rustflags (the stack flag).
            .env("RUSTFLAGS", "-Cdebuginfo=0"),
        "cargo build of hello with the default stack",
    )?;
    Ok(target.join("wasm32-wasip2/release/hello.wasm"))
}

/// `wasmtime` 48.0.8: from PATH or `~/.cargo/bin` when it is that version,
/// else installed with `cargo install wasmtime-cli --locked` (about 10
/// minutes on this machine kind, once).
pub fn wasmtime_cli() -> anyhow::Result<PathBuf> {
    let home_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|h| h.join("bin/wasmtime"));
    let candidates = [Some(PathBuf::from("wasmtime")), home_bin.clone()];
    for candidate in candidates.into_iter().flatten() {
        let out = Command::new(&candidate).arg("--version").output();
        if let Ok(out) = out
            && String::from_utf8_lossy(&out.stdout).contains(WASMTIME_VERSION)
        {
            return Ok(candidate);
        }
    }
    eprintln!("installing wasmtime-cli {WASMTIME_VERSION} (once)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(
        Command::new(cargo).args([
            "install",
            "wasmtime-cli",
            "--version",
            WASMTIME_VERSION,
            "--locked",
        ]),
        "cargo install wasmtime-cli",
    )?;
    home_bin.context("no CARGO_HOME or HOME to find the installed wasmtime in")
}

/// The JavaScript hello (`benches/js/src/hello.js`), built as users build
/// it: `npm ci` of `@bytecodealliance/componentize-js` (pinned in
/// `benches/js/package-lock.json`), then `componentize-js`. Rebuilt when the
/// source is newer than the component.
pub fn js_hello() -> anyhow::Result<PathBuf> {
    let js = root().join("benches/js");
    let out = root().join("target/js/hello.wasm");
    let source = js.join("src/hello.js");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(src)) = (modified(&out), modified(&source))
        && built >= src
    {
        return Ok(out);
    }
    if !js
        .join("node_modules/@bytecodealliance/componentize-js")
        .exists()
    {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&js),
            "npm ci in benches/js",
        )?;
    }
    std::fs::create_dir_all(root().join("target/js"))?;
    run(
        Command::new("npx")
            .args([
                "componentize-js",
                "--wit",
                "wit",
                "--world-name",
                "hello",
                "-o",
            ])
            .arg(&out)
            .arg("src/hello.js")
            .current_dir(&js),
        "componentize-js",
    )?;
    Ok(out)
}
