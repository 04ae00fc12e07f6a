//! A data dir that lost a store refuses to start and names the file,
//! instead of starting empty without a word; `--start-empty` is the
//! explicit way to begin again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

mod common;

use common::{Options, admin, start, start_with};
use std::path::Path;
use std::process::Command;

/// Runs `verge serve` on `dir` expecting it to refuse; returns stderr.
fn refused_start(dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_verge"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("VERGE_ADMIN_TOKEN", common::TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the start was not refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_lost_or_emptied_store_is_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = start(&data);
    assert_eq!(
        admin(&d, "POST", "/v1/tenants", br#"{"name":"acme"}"#).0,
        201
    );
    drop(d);

    std::fs::remove_file(data.join("kv.redb")).unwrap();
    let err = refused_start(&data);
    assert!(err.contains("kv.redb") && err.contains("missing"), "{err}");
    assert!(err.contains("--start-empty"), "{err}");

    std::fs::File::create(data.join("kv.redb")).unwrap();
    let err = refused_start(&data);
    assert!(err.contains("kv.redb") && err.contains("empty"), "{err}");

    let d = start_with(
        &data,
        &Options {
            args: &["--start-empty"],
            ..Options::default()
        },
    );
    let (status, tenants) = admin(&d, "GET", "/v1/tenants", b"");
    assert_eq!(status, 200);
    assert!(tenants.contains("acme"), "control.redb was kept: {tenants}");
    drop(d);

    std::fs::write(data.join("control.redb"), b"").unwrap();
    let err = refused_start(&data);
    assert!(
        err.contains("control.redb") && err.contains("empty"),
        "{err}"
    );
}

/// Whether `needle` appears anywhere in the file's bytes.
fn file_contains(path: &Path, needle: &[u8]) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn secrets_are_sealed_at_rest_and_a_key_rotation_reseals_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secret = b"correct-horse-battery-staple";
    let d = start(&data);
    assert_eq!(
        admin(&d, "POST", "/v1/tenants", br#"{"name":"acme"}"#).0,
        201
    );
    let path = "/v1/tenants/acme/apps/echo";
    assert_eq!(
        admin(&d, "PUT", path, br#"{"routes":["echo.test"]}"#).0,
        200
    );
    let wasm = std::fs::read(&common::guests()["echo"]).unwrap();
    assert_eq!(admin(&d, "POST", &format!("{path}/versions"), &wasm).0, 201);
    let (status, _) = admin(&d, "PUT", &format!("{path}/secrets/greeting"), secret);
    assert_eq!(status, 200);
    let (_, body) = common::http(d.data, "GET", "/", "echo.test", b"").unwrap();
    assert!(body.contains("greeting=correct-horse"), "{body}");
    drop(d);
    let control = data.join("control.redb");
    assert!(
        !file_contains(&control, secret),
        "the secret is in clear in control.redb"
    );
    let generated = data.join("secrets.key");
    assert!(generated.exists(), "a key was generated into the data dir");

    // Rotation: a new key, with the old one to open what it sealed.
    let new_key = dir.path().join("new.key");
    std::fs::write(&new_key, format!("{}\n", "ab".repeat(32))).unwrap();
    let (new, old) = (new_key.to_str().unwrap(), generated.to_str().unwrap());
    let d = start_with(
        &data,
        &Options {
            args: &[
                "--secrets-key-file",
                new,
                "--previous-secrets-key-file",
                old,
            ],
            ..Options::default()
        },
    );
    let (_, body) = common::http(d.data, "GET", "/", "echo.test", b"").unwrap();
    assert!(
        body.contains("greeting=correct-horse"),
        "after rotation: {body}"
    );
    drop(d);
    // Resealed: the new key alone opens it now.
    std::fs::remove_file(&generated).unwrap();
    let d = start_with(
        &data,
        &Options {
            args: &["--secrets-key-file", new],
            ..Options::default()
        },
    );
    let (_, body) = common::http(d.data, "GET", "/", "echo.test", b"").unwrap();
    assert!(
        body.contains("greeting=correct-horse"),
        "new key only: {body}"
    );
    assert!(!file_contains(&control, secret));
}
