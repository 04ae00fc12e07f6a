//! A refused deploy changes nothing: `verge deploy` of a file that is not
//! a component leaves no app, route or version behind, and an existing
//! app keeps its manifest and active version.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

mod common;

use common::{TOKEN, admin, cli, guests, http, json, start};

#[test]
fn a_refused_deploy_leaves_no_app_route_or_version() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let (ok, out, err) = cli(&d, TOKEN, &["tenants", "create", "acme", "--json"]);
    assert!(ok, "{out}{err}");
    let token = json(&out)["token"].as_str().unwrap().to_owned();
    let garbage = dir.path().join("notwasm.wasm");
    std::fs::write(&garbage, b"this is not a component").unwrap();
    let garbage = garbage.to_str().unwrap();

    let (ok, _, err) = cli(&d, &token, &["deploy", garbage, "--route", "x.localhost"]);
    assert!(!ok, "a garbage upload must fail");
    assert!(!err.is_empty());
    let (status, apps) = admin(&d, "GET", "/v1/tenants/acme/apps", b"");
    assert_eq!(
        (status, json(&apps)),
        (200, serde_json::json!([])),
        "no app left behind"
    );

    // The route is free: a good deploy takes it.
    let hello = guests()["hello"].clone();
    let hello = hello.to_str().unwrap();
    let (ok, out, err) = cli(
        &d,
        &token,
        &["deploy", hello, "--app", "site", "--route", "x.localhost"],
    );
    assert!(ok, "{out}{err}");

    // A garbage upload to the existing app with a new route changes
    // neither its routes nor its active version.
    let (ok, _, _) = cli(
        &d,
        &token,
        &["deploy", garbage, "--app", "site", "--route", "y.localhost"],
    );
    assert!(!ok);
    let (_, app) = admin(&d, "GET", "/v1/tenants/acme/apps/site", b"");
    let app = json(&app);
    assert_eq!(app["routes"], serde_json::json!(["x.localhost"]), "{app}");
    assert_eq!(app["active_version"], 1, "{app}");
    let (status, body) = http(d.data, "GET", "/", "x.localhost", b"").unwrap();
    assert_eq!((status, body.as_str()), (200, "hello from verge /\n"));
}
