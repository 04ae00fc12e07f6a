//! The CLI as a wrangler, Fastly CLI or Spin user meets it, through the
//! real binary against a real daemon: where a deploy answers, secrets that
//! never touch argv, token mistakes that say what to do, saved profiles,
//! JSON errors, confirmations, completions, `logs` filters and messages
//! for people.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

mod common;

use common::{CliRun, Daemon, TOKEN, cli_env, cli_in, guests, http, json, start};

/// Shaped like acme's token, but not one the daemon issued.
const WRONG_TOKEN: &str =
    "verge_acme_0000000000000000000000000000000000000000000000000000000000000000";

/// A tenant `acme` and its token.
fn tenant(d: &Daemon) -> String {
    let run = cli_in(d, TOKEN, b"", &["tenants", "create", "acme", "--json"]);
    assert!(run.ok, "{}{}", run.out, run.err);
    json(&run.out)["token"].as_str().unwrap().to_owned()
}

fn deploy(d: &Daemon, token: &str, guest: &str, extra: &[&str]) -> CliRun {
    let wasm = guests()[guest].to_string_lossy().into_owned();
    let mut args = vec!["deploy", wasm.as_str(), "--app", "site"];
    args.extend_from_slice(extra);
    cli_in(d, token, b"", &args)
}

#[test]
fn deploy_prints_the_urls_and_limits_and_warns_without_a_route() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let t = tenant(&d);
    let run = deploy(&d, &t, "echo", &["--route", "site.test/api"]);
    assert!(run.ok, "{}{}", run.out, run.err);
    let url = format!("http://site.test:{}/api", d.data.port());
    assert!(run.out.contains(&url), "{}", run.out);
    assert!(run.out.contains("limits:"), "{}", run.out);
    assert!(run.out.contains("ms CPU"), "{}", run.out);
    assert!(!run.err.contains("warning"), "{}", run.err);
    // JSON carries the same.
    let run = deploy(&d, &t, "echo", &["--json"]);
    let answer = json(&run.out);
    assert_eq!(answer["urls"][0], url.as_str());
    assert!(answer["effective_limits"]["cpu_ms"].is_u64(), "{answer}");
    assert_eq!(answer["warnings"], serde_json::json!([]));
    // No route: it says it serves nothing and how to add one.
    let wasm = guests()["hello"].to_string_lossy().into_owned();
    let run = cli_in(&d, &t, b"", &["deploy", &wasm, "--app", "lonely"]);
    assert!(run.ok, "{}", run.err);
    assert!(run.err.contains("has no route"), "{}", run.err);
    assert!(run.err.contains("--route"), "{}", run.err);
}

#[test]
fn secrets_come_from_stdin_or_a_file_never_argv_and_are_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let t = tenant(&d);
    assert!(deploy(&d, &t, "echo", &["--route", "site.test"]).ok);
    // On argv: refused, nothing stored.
    let run = cli_in(
        &d,
        &t,
        b"",
        &["secret", "set", "site", "greeting", "hunter2"],
    );
    assert!(!run.ok);
    assert!(run.err.contains("shell history"), "{}", run.err);
    // Piped (with the newline `echo` adds): stored, and the guest reads it.
    let run = cli_in(
        &d,
        &t,
        b"s3cret-value\n",
        &["secret", "set", "site", "greeting"],
    );
    assert!(run.ok, "{}", run.err);
    assert!(!run.out.contains("s3cret-value") && !run.err.contains("s3cret-value"));
    let (status, body) = http(d.data, "GET", "/", "site.test", b"").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("greeting=s3cret-value\n"), "{body}");
    // Listed by name and age, never by value, in both formats.
    let list = cli_in(&d, &t, b"", &["secret", "list", "site"]);
    assert!(
        list.out.contains("greeting") && list.out.contains("ago"),
        "{}",
        list.out
    );
    let list = cli_in(&d, &t, b"", &["secret", "list", "site", "--json"]);
    assert!(json(&list.out)[0]["set_at"].is_u64(), "{}", list.out);
    let show = cli_in(&d, &t, b"", &["apps", "show", "site", "--json"]);
    assert!(!show.out.contains("s3cret"), "{}", show.out);
    // From a file; --value-on-argv insists, with a warning.
    let file = dir.path().join("value");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let f = file.to_string_lossy().into_owned();
    assert!(
        cli_in(
            &d,
            &t,
            b"",
            &["secret", "set", "site", "greeting", "--file", &f]
        )
        .ok
    );
    let (_, body) = http(d.data, "GET", "/", "site.test", b"").unwrap();
    assert!(body.contains("greeting=from-a-file\n"), "{body}");
    let run = cli_in(
        &d,
        &t,
        b"",
        &["secret", "set", "site", "other", "--value-on-argv", "x"],
    );
    assert!(run.ok && run.err.contains("warning"), "{}", run.err);
    // A config variable may not take a secret's name, nor the reverse.
    let run = cli_in(&d, &t, b"", &["config", "set", "site", "greeting", "plain"]);
    assert!(!run.ok);
    assert!(run.err.contains("may not share a name"), "{}", run.err);
    assert!(cli_in(&d, &t, b"", &["config", "set", "site", "colour", "blue"]).ok);
    let run = cli_in(&d, &t, b"v\n", &["secret", "set", "site", "colour"]);
    assert!(run.err.contains("may not share a name"), "{}", run.err);
    // Config reads back.
    let get = cli_in(&d, &t, b"", &["config", "get", "site", "colour"]);
    assert_eq!(get.out, "blue\n");
    let list = cli_in(&d, &t, b"", &["config", "list", "site"]);
    assert!(
        list.out.contains("colour") && list.out.contains("blue"),
        "{}",
        list.out
    );
}

#[test]
fn token_mistakes_say_where_the_token_comes_from_and_which_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let t = tenant(&d);
    let url = format!("http://{}", d.admin);
    // Missing.
    let run = cli_env(&[("VERGE_URL", &url)], b"", &["apps", "--tenant", "acme"]);
    assert!(!run.ok);
    assert!(
        run.err.contains("VERGE_TOKEN") && run.err.contains("verge login"),
        "{}",
        run.err
    );
    assert!(run.err.contains("admin-token"), "{}", run.err);
    // A trailing newline (from `cat`) is trimmed.
    let with_newline = format!("{t}\n");
    let run = cli_env(
        &[("VERGE_URL", &url), ("VERGE_TOKEN", &with_newline)],
        b"",
        &["apps"],
    );
    assert!(run.ok, "{}", run.err);
    // Malformed.
    let run = cli_env(
        &[("VERGE_URL", &url), ("VERGE_TOKEN", "not a token")],
        b"",
        &["apps"],
    );
    assert!(run.err.contains("malformed"), "{}", run.err);
    // Wrong: well-formed, unknown.
    let run = cli_env(
        &[("VERGE_URL", &url), ("VERGE_TOKEN", WRONG_TOKEN)],
        b"",
        &["apps"],
    );
    assert!(
        run.err.contains("refused the token from VERGE_TOKEN"),
        "{}",
        run.err
    );
    // A tenant token on an operator endpoint.
    let run = cli_in(&d, &t, b"", &["tenants", "list"]);
    assert!(run.err.contains("needs the operator token"), "{}", run.err);
    assert!(run.err.contains("tenant acme"), "{}", run.err);
    // A URL without a scheme is taken as http.
    let bare = d.admin.to_string();
    let run = cli_env(&[("VERGE_URL", &bare), ("VERGE_TOKEN", &t)], b"", &["apps"]);
    assert!(run.ok, "{}", run.err);
    // Nothing listening: says where it tried and how to point elsewhere.
    let run = cli_env(
        &[("VERGE_URL", "127.0.0.1:1"), ("VERGE_TOKEN", &t)],
        b"",
        &["apps"],
    );
    assert!(
        run.err
            .contains("cannot reach the admin API at http://127.0.0.1:1"),
        "{}",
        run.err
    );
}

#[test]
fn login_saves_a_private_profile_that_later_commands_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let t = tenant(&d);
    let config = dir.path().join("config");
    let c = config.to_string_lossy().into_owned();
    let url = d.admin.to_string();
    let run = cli_env(
        &[("VERGE_CONFIG_DIR", &c)],
        format!("{t}\n").as_bytes(),
        &["login", "--url", &url, "--profile", "work"],
    );
    assert!(run.ok, "{}", run.err);
    assert!(run.out.contains("as tenant acme"), "{}", run.out);
    let file = config.join("profiles.toml");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the token file is private");
    }
    // Used by name; env still overrides it.
    let run = cli_env(
        &[("VERGE_CONFIG_DIR", &c)],
        b"",
        &["apps", "--profile", "work"],
    );
    assert!(run.ok, "{}", run.err);
    let run = cli_env(
        &[("VERGE_CONFIG_DIR", &c), ("VERGE_TOKEN", WRONG_TOKEN)],
        b"",
        &["apps", "--profile", "work"],
    );
    assert!(!run.ok, "the environment's token wins over the profile's");
    let run = cli_env(
        &[("VERGE_CONFIG_DIR", &c)],
        b"",
        &["apps", "--profile", "nope"],
    );
    assert!(
        run.err.contains("no profile nope") && run.err.contains("work"),
        "{}",
        run.err
    );
    // A wrong token is not saved.
    let run = cli_env(
        &[("VERGE_CONFIG_DIR", &c)],
        WRONG_TOKEN.as_bytes(),
        &["login", "--url", &url],
    );
    assert!(!run.ok);
    assert!(
        !std::fs::read_to_string(&file)
            .unwrap()
            .contains("[profiles.default]")
    );
}

#[test]
fn json_errors_confirmations_completions_and_messages_for_people() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let t = tenant(&d);
    assert!(deploy(&d, &t, "echo", &["--route", "site.test"]).ok);
    // --json errors are one JSON object on stderr with the API's status.
    let run = cli_in(&d, &t, b"", &["apps", "show", "nope", "--json"]);
    let err = json(run.err.trim());
    assert_eq!(err["status"], 404);
    assert!(err["error"].as_str().unwrap().contains("not found"));
    // Destructive verbs: refused without a terminal, done with --yes.
    let run = cli_in(&d, &t, b"", &["apps", "delete", "site"]);
    assert!(!run.ok && run.err.contains("--yes"), "{}", run.err);
    assert!(
        cli_in(&d, &t, b"", &["apps", "show", "site"]).ok,
        "still there"
    );
    // Rollback from the only version says why it cannot.
    let run = cli_in(&d, &t, b"", &["rollback", "site"]);
    assert!(run.err.contains("nothing to roll back to"), "{}", run.err);
    // Versions: the active one marked, human times.
    assert!(deploy(&d, &t, "hello", &[]).ok);
    let run = cli_in(&d, &t, b"", &["versions", "site"]);
    assert!(run.out.contains("ago"), "{}", run.out);
    let active: Vec<&str> = run.out.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(active.len(), 1, "{}", run.out);
    assert!(active[0].contains(" 2 "), "{}", run.out);
    // Purges count entries.
    let run = cli_in(&d, &t, b"", &["cache", "purge", "--all"]);
    assert!(run.out.starts_with("purged 0 entries"), "{}", run.out);
    assert!(cli_in(&d, &t, b"", &["apps", "delete", "site", "--yes"]).ok);
    // Bare `verge apps` lists.
    let run = cli_in(&d, &t, b"", &["apps"]);
    assert!(run.ok && run.out.starts_with("NAME"), "{}", run.out);
    // Completions for three shells.
    for shell in ["bash", "zsh", "fish"] {
        let run = cli_env(&[], b"", &["completions", shell]);
        assert!(
            run.ok && run.out.contains("verge") && run.out.contains("deploy"),
            "{shell}"
        );
    }
    // Names Cargo would refuse, and a directory that is not a crate.
    let run = cli_env(
        &[],
        b"",
        &[
            "new",
            "1abc",
            "--dir",
            &dir.path().join("x").to_string_lossy(),
        ],
    );
    assert!(
        !run.ok && run.err.contains("start with a lower-case letter"),
        "{}",
        run.err
    );
    let empty = tempfile::tempdir().unwrap();
    let run = cli_env(
        &[],
        b"",
        &[
            "dev",
            &empty.path().to_string_lossy(),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert!(
        !run.ok && run.err.contains("has no Cargo.toml"),
        "{}",
        run.err
    );
    // A component given to `verge dev`: what to run instead.
    let wasm = empty.path().join("app.wasm");
    std::fs::write(&wasm, b"\0asm").unwrap();
    let run = cli_env(&[], b"", &["dev", &wasm.to_string_lossy()]);
    assert!(
        !run.ok && run.err.contains("verge serve --app"),
        "{}",
        run.err
    );
}

#[test]
fn flags_that_would_do_nothing_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("app.wasm");
    std::fs::write(&wasm, b"\0asm").unwrap();
    // A local run has no admin API: --admin-listen would open nothing.
    let run = cli_env(
        &[],
        b"",
        &[
            "serve",
            "--app",
            &wasm.to_string_lossy(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
    );
    assert!(!run.ok, "{}", run.out);
    assert!(
        run.err.contains("--admin-listen") && run.err.contains("no admin API"),
        "{}",
        run.err
    );
}

#[test]
fn kv_put_takes_bytes_from_stdin_and_get_gives_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let t = tenant(&d);
    let bytes: Vec<u8> = (0..=255u8).chain([b'\n', 0, 0xff]).collect();
    let run = cli_in(&d, &t, &bytes, &["kv", "put", "blob", "--store", "data"]);
    assert!(run.ok, "{}", run.err);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verge"))
        .args(["kv", "get", "blob", "--store", "data"])
        .env("VERGE_URL", format!("http://{}", d.admin))
        .env("VERGE_TOKEN", &t)
        .output()
        .unwrap();
    assert_eq!(out.stdout, bytes, "byte for byte");
    // Listing a store no app declares says so.
    let run = cli_in(&d, &t, b"", &["kv", "list", "--store", "nothing"]);
    assert!(
        run.err
            .contains("no app of tenant acme declares the store nothing"),
        "{}",
        run.err
    );
    // Deleting by prefix asks first.
    let run = cli_in(
        &d,
        &t,
        b"",
        &["kv", "delete", "--prefix", "bl", "--store", "data"],
    );
    assert!(!run.ok && run.err.contains("--yes"), "{}", run.err);
    let run = cli_in(
        &d,
        &t,
        b"",
        &["kv", "delete", "--prefix", "bl", "--store", "data", "--yes"],
    );
    assert!(run.out.contains("deleted 1 keys"), "{}", run.out);
}

#[test]
fn logs_show_each_request_with_its_lines_and_filter_by_status() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let t = tenant(&d);
    assert!(deploy(&d, &t, "echo", &["--route", "site.test"]).ok);
    let wasm = guests()["panics"].to_string_lossy().into_owned();
    let run = cli_in(
        &d,
        &t,
        b"",
        &["deploy", &wasm, "--app", "boom", "--route", "boom.test"],
    );
    assert!(run.ok, "{}", run.err);
    for _ in 0..2 {
        assert_eq!(
            http(d.data, "GET", "/fine", "site.test", b"").unwrap().0,
            200
        );
        assert_eq!(
            http(d.data, "GET", "/bad", "boom.test", b"").unwrap().0,
            500
        );
    }
    let run = cli_in(&d, &t, b"", &["logs", "site"]);
    assert!(run.out.contains("GET /fine 200"), "{}", run.out);
    assert!(
        run.out.contains("echo /fine"),
        "the guest's own line: {}",
        run.out
    );
    assert!(
        run.out.contains('T') && run.out.contains('Z'),
        "RFC 3339 times: {}",
        run.out
    );
    let run = cli_in(&d, &t, b"", &["logs", "site", "--status", "500"]);
    assert!(!run.out.contains("GET /fine"), "{}", run.out);
    let run = cli_in(&d, &t, b"", &["logs", "boom", "--status", "500"]);
    assert!(run.out.contains("GET /bad 500"), "{}", run.out);
    assert!(run.out.contains("verge-error=guest-error"), "{}", run.out);
    let run = cli_in(&d, &t, b"", &["logs", "boom", "--status", "ok"]);
    assert_eq!(run.out, "", "no successes");
    let run = cli_in(
        &d,
        &t,
        b"",
        &["logs", "site", "--search", "nothing-like-it"],
    );
    assert_eq!(run.out, "");
    let run = cli_in(&d, &t, b"", &["logs", "site", "--json"]);
    let lines: Vec<serde_json::Value> = run.out.lines().map(json).collect();
    assert!(
        lines.iter().any(|l| l["request"]["status"] == 200),
        "{}",
        run.out
    );
}

#[test]
fn deploying_a_crate_shows_its_steps_without_colour_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let t = tenant(&d);
    let hello = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello");
    let hello = hello.to_string_lossy().into_owned();
    let url = format!("http://{}", d.admin);
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests");
    let target = target.to_string_lossy().into_owned();
    let run = cli_env(
        &[
            ("VERGE_URL", &url),
            ("VERGE_TOKEN", &t),
            ("NO_COLOR", "1"),
            ("CARGO_TARGET_DIR", &target),
        ],
        b"",
        &["deploy", &hello, "--route", "hello.test"],
    );
    assert!(run.ok, "{}", run.err);
    assert!(run.err.contains("verge: building"), "{}", run.err);
    // Off a terminal no more step lines: a failure stays one line.
    assert!(!run.err.contains("verge: uploading"), "{}", run.err);
    assert!(
        !run.err.contains('\u{1b}') && !run.out.contains('\u{1b}'),
        "no ANSI: {}",
        run.err
    );
    assert!(run.out.contains("http://hello.test:"), "{}", run.out);
}

#[test]
fn a_second_daemon_on_the_same_data_dir_names_the_locked_file() {
    let dir = tempfile::tempdir().unwrap();
    let _first = start(dir.path());
    let err = common::refused_start(dir.path());
    assert!(err.contains(".redb is locked by another process"), "{err}");
    assert!(err.contains("--data-dir"), "{err}");
}
