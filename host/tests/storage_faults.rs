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
    let err = common::refused_start(&data);
    assert!(err.contains("kv.redb") && err.contains("missing"), "{err}");
    assert!(err.contains("--start-empty"), "{err}");

    std::fs::File::create(data.join("kv.redb")).unwrap();
    let err = common::refused_start(&data);
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
    let err = common::refused_start(&data);
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
    common::deploy(&d, "acme", "echo", "echo", "echo.test");
    let path = "/v1/tenants/acme/apps/echo";
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

/// A tmpfs of `size` mounted on `dir` (the tests run as root); unmounted
/// on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs on {}", dir.display());
        Self(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn kv_recovers_after_a_full_disk_and_readiness_tells_the_truth_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("fs"), "24m");
    let filler = fs.0.join("filler");
    std::fs::write(&filler, vec![0u8; 8 << 20]).unwrap();
    let log = dir.path().join("stderr.log");
    let d = start_with(
        &fs.0.join("data"),
        &Options {
            stderr: Some(&log),
            json_logs: true,
            ..Options::default()
        },
    );
    assert_eq!(
        admin(&d, "POST", "/v1/tenants", br#"{"name":"acme"}"#).0,
        201
    );
    assert_eq!(admin(&d, "GET", "/readyz", b"").0, 200);
    let value = vec![b'v'; 256 << 10];
    let mut stored = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        let path = format!("/v1/tenants/acme/kv/main/keys/k{i}");
        match admin(&d, "PUT", &path, &value) {
            (200, _) => stored.push(path),
            (status, body) => {
                refused = Some((status, body));
                break;
            }
        }
    }
    let (status, body) = refused.expect("the disk never filled");
    assert_eq!(status, 500, "{body}");
    // The client learns it failed, not where: the data dir's path (and the
    // OS error) go to the operator's log.
    let data_dir = fs.0.to_string_lossy().into_owned();
    assert!(body.contains("storage failure"), "{body}");
    assert!(
        !body.contains(&data_dir) && !body.contains("kv.redb"),
        "{body}"
    );
    let (status, ready) = admin(&d, "GET", "/readyz", b"");
    assert_eq!(status, 503, "not ready while KV cannot write: {ready}");
    assert!(ready.contains("\"kv\""), "{ready}");
    assert!(
        !ready.contains(&data_dir) && !ready.contains("kv.redb"),
        "{ready}"
    );

    std::fs::remove_file(&filler).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = admin(&d, "PUT", "/v1/tenants/acme/kv/main/keys/after", b"ok");
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "KV did not recover: {status} {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(admin(&d, "GET", "/readyz", b"").0, 200, "ready again");
    for path in &stored {
        let (status, body) = admin(&d, "GET", path, b"");
        assert_eq!(
            (status, body.len()),
            (200, 256 << 10),
            "an acknowledged write was lost: {path}"
        );
    }
    assert!(!stored.is_empty());
    drop(d);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("kv database reopened"),
        "recovered by reopening: {log}"
    );
    assert!(log.contains("kv.redb"), "the operator's log names the file");
}

/// Overwrites `path` with garbage from its second half on (kv.redb) or
/// after its first page (the small control.redb), where its tables live.
fn corrupt_the_middle(path: &Path) {
    use std::io::{Seek as _, Write as _};
    let len = std::fs::metadata(path).unwrap().len();
    let start = if len > (1 << 20) { len / 2 } else { 4096 };
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(std::io::SeekFrom::Start(start)).unwrap();
    let garbage: Vec<u8> = (0..(len - start).min(65536) as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    file.write_all(&garbage).unwrap();
}

#[test]
fn garbage_in_a_store_is_refused_naming_the_file_without_a_panic_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = start(&data);
    assert_eq!(
        admin(&d, "POST", "/v1/tenants", br#"{"name":"acme"}"#).0,
        201
    );
    let value = vec![b'x'; 2000];
    for i in 0..300 {
        let path = format!("/v1/tenants/acme/kv/main/keys/k{i}");
        assert_eq!(admin(&d, "PUT", &path, &value).0, 200);
    }
    drop(d);
    std::fs::copy(data.join("kv.redb"), dir.path().join("kv.redb.good")).unwrap();
    for file in ["kv.redb", "control.redb"] {
        corrupt_the_middle(&data.join(file));
        let err = common::refused_start(&data);
        assert!(
            err.contains(file) && err.contains("corrupt"),
            "{file}: {err}"
        );
        assert!(!err.contains("stack backtrace"), "{err}");
        assert!(err.lines().count() <= 3, "{err}");
        if file == "kv.redb" {
            std::fs::copy(dir.path().join("kv.redb.good"), data.join("kv.redb")).unwrap();
        }
    }
}
