//! The README's first command, as written, on this checkout: it must resolve
//! to the `verge` binary. It once broke for a week unseen when the benches'
//! baseline servers became binaries of a default member ("`cargo run` could
//! not determine which binary to run").
//!
//! The command is taken from the README itself (the first line of its first
//! `sh` block), with `--version` in place of its argument, so the test
//! follows the README if the command changes.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::Path;
use std::process::Command;

/// The README's first command as words, its trailing comment dropped.
fn first_command(readme: &str) -> Vec<String> {
    let block = readme
        .split("```sh\n")
        .nth(1)
        .expect("the README has a sh block");
    let line = block.lines().next().expect("the block has a line");
    let line = line.split('#').next().unwrap_or(line);
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_readme_first_command_is_cargo_run_demo() {
    let readme = include_str!("../../README.md");
    let words = first_command(readme);
    assert_eq!(
        words.first().map(String::as_str),
        Some("cargo"),
        "{words:?}"
    );
    assert_eq!(words.get(1).map(String::as_str), Some("run"), "{words:?}");
    assert_eq!(words.last().map(String::as_str), Some("demo"), "{words:?}");
}

#[test]
fn the_readme_first_command_runs_the_verge_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut words = first_command(&readme);
    // `demo` serves until stopped; `--version` takes the same way through
    // cargo's choice of binary and exits.
    *words.last_mut().unwrap() = "--version".to_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(&words[1..])
        .current_dir(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "`{}` failed ({}):\n{stderr}",
        words.join(" "),
        out.status
    );
    assert_eq!(
        stdout.trim(),
        format!("verge {}", env!("CARGO_PKG_VERSION")),
        "{stderr}"
    );
}

/// The JavaScript bench's lockfile is what `npm ci` installs exactly: an
/// entry npm marks `extraneous` (installed but required by nothing) makes
/// `npm ci` refuse the lockfile with some npm versions, and dropping it
/// breaks componentize-js, which needs it.
#[test]
fn the_js_bench_lockfile_has_no_extraneous_packages() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("benches/js/package-lock.json")).unwrap();
    let lock: serde_json::Value = serde_json::from_str(&text).unwrap();
    let packages = lock["packages"].as_object().expect("lockfile v3 packages");
    assert!(packages.len() > 10, "{} packages", packages.len());
    let extraneous: Vec<&String> = packages
        .iter()
        .filter(|(_, p)| p["extraneous"].as_bool() == Some(true))
        .map(|(name, _)| name)
        .collect();
    assert!(extraneous.is_empty(), "extraneous: {extraneous:?}");
    assert_eq!(
        packages["node_modules/@bytecodealliance/componentize-js"]["version"],
        "0.23.0"
    );
    // componentize-js imports preview2-shim when it runs, yet declares it
    // only as an optional peer: the bench declares it itself, so `npm ci`
    // installs it as a dependency rather than leaving it extraneous.
    assert!(
        packages[""]["dependencies"]["@bytecodealliance/preview2-shim"].is_string(),
        "{}",
        packages[""]
    );
    assert_eq!(
        packages["node_modules/@bytecodealliance/preview2-shim"]["version"],
        "0.25.0"
    );
}
