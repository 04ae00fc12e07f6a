//! `verge serve --config FILE` as a child process: the file's settings
//! apply, flags override them, and a bad file stops the start with the key
//! and the reason.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

use std::process::{Command, Stdio};

mod common;

fn serve(config: &std::path::Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_verge"));
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .args(extra)
        .env_remove("VERGE_ADMIN_TOKEN")
        .env_remove("VERGE_LISTEN")
        .env("RUST_LOG", "warn");
    cmd
}

#[test]
fn a_bad_config_file_fails_with_the_key_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expect) in [
        ("[limits]\ncpu = 5\n", "unknown field `cpu`"),
        ("listen = 5\n", "listen"),
        ("[limits]\nmemory_mib = 0\n", "memory_mib"),
        (
            "[tls]\nlisten = \"127.0.0.1:0\"\ncertificates = []\n",
            "certificate",
        ),
        ("[geo]\ndatabase = \"missing.mmdb\"\n", "missing.mmdb"),
    ] {
        let path = dir.path().join("verge.toml");
        std::fs::write(&path, text).unwrap();
        let out = serve(
            &path,
            &["--data-dir", dir.path().join("d").to_str().unwrap()],
        )
        .output()
        .unwrap();
        assert!(!out.status.success(), "{text} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{text}: {stderr}");
    }
}

#[test]
fn the_config_file_sets_addresses_data_dir_and_token_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verge.toml");
    std::fs::write(
        &path,
        r#"
        listen = "127.0.0.1:1"
        admin_listen = "127.0.0.1:0"
        data_dir = "state"
        admin_token = "verge_op_from-the-file"
        access_log = false
        [limits]
        cpu_ms = 20
        "#,
    )
    .unwrap();
    // --listen overrides the file's (unusable) port 1.
    let mut child = serve(&path, &["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = common::first_line(&mut child);
    let admin = &line[line.find("admin API on http://").unwrap() + 20..];
    let admin = admin.split(')').next().unwrap().to_owned();
    let auth = "authorization: Bearer verge_op_from-the-file\r\n";
    let (status, reply) = common::request(&admin, "GET", "/v1/tenants", "a", auth, b"").unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{reply}");
    assert!(
        dir.path().join("state/control.redb").exists(),
        "data_dir is taken relative to the file"
    );
    assert!(line.contains("on http://127.0.0.1:"), "{line}");
    assert!(!line.contains("127.0.0.1:1 "), "{line}");
}
