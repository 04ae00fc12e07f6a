//! The `verge` binary as a child process: crash consistency under SIGKILL
//! during deploys, and restart time with many apps.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::{TOKEN, admin, cli, guests, http, json, start};

#[test]
fn sigkill_during_deploys_leaves_the_old_or_the_new_version_active() {
    let guests = guests();
    let (hello, echo) = (
        std::fs::read(&guests["hello"]).unwrap(),
        std::fs::read(&guests["echo"]).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path());
    assert_eq!(
        admin(&d, "POST", "/v1/tenants", br#"{"name":"acme"}"#).0,
        201
    );
    assert_eq!(
        admin(
            &d,
            "PUT",
            "/v1/tenants/acme/apps/site",
            br#"{"routes":["site.test"]}"#
        )
        .0,
        200
    );
    assert_eq!(
        admin(&d, "POST", "/v1/tenants/acme/apps/site/versions", &hello).0,
        201
    );
    let mut stored = 1usize;
    for round in 0..5u64 {
        let upload = if round % 2 == 0 {
            echo.clone()
        } else {
            hello.clone()
        };
        let admin_addr = d.admin;
        let uploader = std::thread::spawn(move || {
            http(
                admin_addr,
                "POST",
                "/v1/tenants/acme/apps/site/versions",
                "admin",
                &upload,
            )
            .map(|r| r.0)
        });
        std::thread::sleep(Duration::from_millis(3 + round * 11));
        d.child.kill().unwrap(); // SIGKILL
        d.child.wait().unwrap();
        let acknowledged = matches!(uploader.join().unwrap(), Ok(201));
        d = start(dir.path());
        let (status, body) = admin(&d, "GET", "/v1/tenants/acme/apps/site", b"");
        assert_eq!(status, 200, "round {round}: {body}");
        let active = json(&body)["active_version"].as_u64().unwrap();
        let (_, versions) = admin(&d, "GET", "/v1/tenants/acme/apps/site/versions", b"");
        let numbers: Vec<u64> = json(&versions)
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["number"].as_u64().unwrap())
            .collect();
        assert_eq!(
            active,
            *numbers.last().unwrap(),
            "round {round}: the newest stored version is the active one"
        );
        if acknowledged {
            assert_eq!(
                numbers.len(),
                stored + 1,
                "round {round}: an acknowledged deploy survived"
            );
        } else {
            assert!(
                (stored..=stored + 1).contains(&numbers.len()),
                "round {round}: {numbers:?}"
            );
        }
        stored = numbers.len();
        let (status, body) = http(d.data, "GET", "/", "site.test", b"").unwrap();
        assert_eq!(status, 200, "round {round}: {body}");
        assert!(
            body.starts_with("hello from verge") || body.starts_with("method="),
            "{body}"
        );
    }
    d.child.kill().unwrap();
    d.child.wait().unwrap();
}

#[test]
fn restart_with_fifty_apps_is_ready_without_recompiling() {
    let guests = guests();
    let kinds = ["hello", "echo", "fuel-burn", "panics", "cpu-spin"];
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path());
    assert_eq!(
        admin(&d, "POST", "/v1/tenants", br#"{"name":"many"}"#).0,
        201
    );
    for i in 0..50 {
        let manifest = format!(r#"{{"routes":["app{i}.test"]}}"#);
        assert_eq!(
            admin(
                &d,
                "PUT",
                &format!("/v1/tenants/many/apps/app{i}"),
                manifest.as_bytes()
            )
            .0,
            200
        );
        let bytes = std::fs::read(&guests[kinds[i % kinds.len()]]).unwrap();
        let (status, body) = admin(
            &d,
            "POST",
            &format!("/v1/tenants/many/apps/app{i}/versions"),
            &bytes,
        );
        assert_eq!(status, 201, "{body}");
    }
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let started = Instant::now();
    let mut d = start(dir.path());
    let (_, ready) = admin(&d, "GET", "/readyz", b"");
    let ready = json(&ready);
    assert_eq!(ready["apps"], 50);
    assert_eq!(
        ready["compiles"], 0,
        "every app came back from its compiled artifact"
    );
    for i in [0, 10, 21, 46] {
        let (status, body) = http(d.data, "GET", "/", &format!("app{i}.test"), b"").unwrap();
        assert_eq!(status, 200, "app{i}: {body}");
    }
    println!(
        "restart with 50 apps: ready in {} ms (daemon's own figure), {} ms to the first answer",
        d.ready_ms,
        started.elapsed().as_millis()
    );
    d.child.kill().unwrap();
    d.child.wait().unwrap();
}

#[test]
fn the_cli_manages_tenants_apps_versions_and_variables() {
    let guests = guests();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path());

    let (ok, out, _) = cli(&d, TOKEN, &["tenants", "create", "acme", "--json"]);
    assert!(ok, "{out}");
    let token = json(&out)["token"].as_str().unwrap().to_owned();
    let (ok, out, _) = cli(&d, TOKEN, &["tenants", "list"]);
    assert!(
        ok && out.starts_with("NAME") && out.contains("acme"),
        "{out}"
    );

    // A crate directory is built for wasm32-wasip2 first; the tenant comes from the token.
    let crate_dir = root.join("examples/hello");
    let (ok, out, err) = cli(
        &d,
        &token,
        &[
            "deploy",
            crate_dir.to_str().unwrap(),
            "--route",
            "hello.test",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("deployed acme/hello version 1"), "{out}");
    assert_eq!(
        http(d.data, "GET", "/a", "hello.test", b"").unwrap().1,
        "hello from verge /a\n"
    );

    let echo = guests["echo"].to_str().unwrap().to_owned();
    let (ok, out, err) = cli(&d, &token, &["deploy", &echo, "--app", "hello"]);
    assert!(ok && out.contains("version 2"), "{out}{err}");
    assert!(
        http(d.data, "GET", "/", "hello.test", b"")
            .unwrap()
            .1
            .starts_with("method=")
    );

    let (ok, out, _) = cli(&d, &token, &["versions", "hello", "--json"]);
    assert!(ok);
    assert_eq!(json(&out).as_array().map(Vec::len), Some(2));
    let (ok, out, _) = cli(&d, &token, &["rollback", "hello"]);
    assert!(ok && out.contains("version 1 is active"), "{out}");
    assert!(
        http(d.data, "GET", "/", "hello.test", b"")
            .unwrap()
            .1
            .starts_with("hello from verge")
    );

    let (ok, _, _) = cli(&d, &token, &["config", "set", "hello", "greeting", "hej"]);
    assert!(ok);
    // Secrets come from stdin, never argv (see cli_usability.rs).
    let run = common::cli_in(
        &d,
        &token,
        b"s3cret\n",
        &["secret", "set", "hello", "api-key"],
    );
    assert!(run.ok, "{}", run.err);
    let (ok, out, _) = cli(&d, &token, &["apps", "list"]);
    assert!(
        ok && out.contains("greeting=hej") && out.contains("api-key") && !out.contains("s3cret"),
        "{out}"
    );

    // Failures: non-zero exit and a one-line reason.
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"nope").unwrap();
    let (ok, _, err) = cli(
        &d,
        &token,
        &["deploy", garbage.to_str().unwrap(), "--app", "hello"],
    );
    assert!(
        !ok && err.contains("400 not a WebAssembly component") && err.trim().lines().count() == 1,
        "{err}"
    );
    let (ok, _, err) = cli(&d, &token, &["tenants", "list"]);
    assert!(!ok && err.contains("403"), "{err}");
    let forged = format!("verge_acme_{}", "0".repeat(64));
    let (ok, _, err) = cli(&d, &forged, &["apps", "list"]);
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = cli(&d, &token, &["apps", "delete", "nope", "--yes"]);
    assert!(!ok && err.contains("404"), "{err}");
    let (ok, out, _) = cli(&d, &token, &["apps", "delete", "hello", "--yes"]);
    assert!(ok, "{out}");
    assert_eq!(http(d.data, "GET", "/", "hello.test", b"").unwrap().0, 404);
    d.child.kill().unwrap();
    d.child.wait().unwrap();
}

#[test]
fn acknowledged_kv_writes_survive_sigkill() {
    let guests = guests();
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path());
    assert_eq!(
        admin(&d, "POST", "/v1/tenants", br#"{"name":"acme"}"#).0,
        201
    );
    let manifest = br#"{"routes":["kv.test"],"kv_stores":["data"]}"#;
    assert_eq!(
        admin(&d, "PUT", "/v1/tenants/acme/apps/kv", manifest).0,
        200
    );
    let probe = std::fs::read(&guests["kv-probe"]).unwrap();
    assert_eq!(
        admin(&d, "POST", "/v1/tenants/acme/apps/kv/versions", &probe).0,
        201
    );
    // Four writers, each acknowledging its own keys, until the daemon dies
    // (or 2,000 writes each, whichever comes first).
    let data = d.data;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..2000 {
                    match http(
                        data,
                        "GET",
                        &format!("/kv-probe/set?key=w{w}-{i}&value={i}"),
                        "kv.test",
                        b"",
                    ) {
                        Ok((200, _)) => acked.push(format!("w{w}-{i}")),
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    d.child.kill().unwrap(); // SIGKILL mid-stream
    d.child.wait().unwrap();
    let acked: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        acked.len() > 10,
        "the writers got going before the kill: {}",
        acked.len()
    );
    let mut d = start(dir.path());
    for key in &acked {
        let value = key.rsplit('-').next().unwrap();
        let (status, body) = http(
            d.data,
            "GET",
            &format!("/kv-probe/get?key={key}"),
            "kv.test",
            b"",
        )
        .unwrap();
        assert_eq!(
            (status, body.as_str()),
            (200, value),
            "acknowledged write {key} was lost"
        );
    }
    println!(
        "{} acknowledged writes, all present after SIGKILL and restart",
        acked.len()
    );
    d.child.kill().unwrap();
    d.child.wait().unwrap();
}

#[test]
fn the_cli_reads_writes_lists_and_imports_kv() {
    let guests = guests();
    let dir = tempfile::tempdir().unwrap();
    let mut d = start(dir.path());
    let (ok, out, _) = cli(&d, TOKEN, &["tenants", "create", "acme", "--json"]);
    assert!(ok);
    let token = json(&out)["token"].as_str().unwrap().to_owned();
    let manifest = dir.path().join("verge.toml");
    std::fs::write(
        &manifest,
        "routes = [\"go.test\"]\nkv_stores = [\"links\"]\n",
    )
    .unwrap();
    let wasm = guests["redirect"].to_str().unwrap().to_owned();
    let (ok, out, err) = cli(
        &d,
        &token,
        &["deploy", &wasm, "--manifest", manifest.to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");

    let seed = dir.path().join("links.json");
    std::fs::write(&seed, r#"{"link:docs": "{\"url\":\"https://example.com/docs\",\"permanent\":false}", "link:a b/c": "{\"url\":\"https://example.com/x\",\"permanent\":true}"}"#).unwrap();
    let (ok, out, err) = cli(
        &d,
        &token,
        &["kv", "import", seed.to_str().unwrap(), "--store", "links"],
    );
    assert!(ok && out.contains("imported 2"), "{out}{err}");
    let (status, _) = http(d.data, "GET", "/docs", "go.test", b"").unwrap();
    assert_eq!(status, 302, "the guest sees imported links");

    let (ok, out, _) = cli(
        &d,
        &token,
        &["kv", "list", "--store", "links", "--prefix", "link:"],
    );
    assert!(ok);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["link:a b/c", "link:docs"]
    );
    let (ok, out, _) = cli(&d, &token, &["kv", "get", "link:a b/c", "--store", "links"]);
    assert!(ok && out.contains("https://example.com/x"), "{out}");
    assert!(
        cli(
            &d,
            &token,
            &[
                "kv", "put", "note", "hello", "--store", "links", "--ttl", "60"
            ]
        )
        .0
    );
    assert_eq!(
        cli(&d, &token, &["kv", "get", "note", "--store", "links"])
            .1
            .trim(),
        "hello"
    );
    assert!(cli(&d, &token, &["kv", "delete", "note", "--store", "links"]).0);
    let (ok, _, err) = cli(&d, &token, &["kv", "get", "note", "--store", "links"]);
    assert!(!ok && err.contains("404"), "{err}");
    let (ok, _, err) = cli(&d, &token, &["kv", "get", "x", "--store", "Bad_Store"]);
    assert!(!ok && err.contains("400"), "{err}");
    d.child.kill().unwrap();
    d.child.wait().unwrap();
}
