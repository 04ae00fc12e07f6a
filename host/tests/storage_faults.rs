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
