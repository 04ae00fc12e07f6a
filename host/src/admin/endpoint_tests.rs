//! Endpoint parsing: every row of the admin table, the 404 / 405 split, and
//! the query parameters.

use super::*;

fn parse(method: Method, target: &str) -> Result<Endpoint, ApiError> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    Endpoint::parse(&method, path, query)
}

fn app(t: &str, a: &str) -> AppRef {
    AppRef {
        tenant: t.into(),
        app: a.into(),
    }
}

#[test]
fn every_endpoint_of_the_table_parses() {
    use Endpoint as E;
    let cases = [
        (Method::GET, "/healthz", E::Health),
        (Method::GET, "/readyz", E::Ready),
        (Method::GET, "/metrics", E::Metrics),
        (Method::GET, "/v1/tenants", E::ListTenants),
        (Method::POST, "/v1/tenants", E::CreateTenant),
        (Method::GET, "/v1/tenants/t", E::GetTenant("t".into())),
        (Method::DELETE, "/v1/tenants/t", E::DeleteTenant("t".into())),
        (
            Method::PUT,
            "/v1/tenants/t/route-grants",
            E::SetRouteGrants("t".into()),
        ),
        (
            Method::PUT,
            "/v1/tenants/t/outbound-grants",
            E::SetOutboundGrants("t".into()),
        ),
        (Method::POST, "/v1/cache/purge", E::PurgeNode),
        (
            Method::POST,
            "/v1/tenants/t/cache/purge",
            E::PurgeTenant("t".into()),
        ),
        (Method::GET, "/v1/tenants/t/apps", E::ListApps("t".into())),
        (
            Method::GET,
            "/v1/tenants/t/apps/a",
            E::GetApp(app("t", "a")),
        ),
        (
            Method::PUT,
            "/v1/tenants/t/apps/a",
            E::PutApp(app("t", "a")),
        ),
        (
            Method::DELETE,
            "/v1/tenants/t/apps/a",
            E::DeleteApp(app("t", "a")),
        ),
        (
            Method::GET,
            "/v1/tenants/t/apps/a/versions",
            E::ListVersions(app("t", "a")),
        ),
        (
            Method::POST,
            "/v1/tenants/t/apps/a/versions",
            E::Upload(app("t", "a"), true),
        ),
        (
            Method::POST,
            "/v1/tenants/t/apps/a/versions?activate=false",
            E::Upload(app("t", "a"), false),
        ),
        (
            Method::POST,
            "/v1/tenants/t/apps/a/activate",
            E::Activate(app("t", "a")),
        ),
        (
            Method::POST,
            "/v1/tenants/t/apps/a/rollback",
            E::Rollback(app("t", "a")),
        ),
        (
            Method::PUT,
            "/v1/tenants/t/apps/a/config/K",
            E::SetVar(app("t", "a"), VarKind::Config, "K".into()),
        ),
        (
            Method::DELETE,
            "/v1/tenants/t/apps/a/secrets/K",
            E::UnsetVar(app("t", "a"), VarKind::Secret, "K".into()),
        ),
        (
            Method::GET,
            "/v1/tenants/t/apps/a/logs?after=7&wait=3",
            E::Logs(app("t", "a"), 7, 3),
        ),
        (
            Method::GET,
            "/v1/tenants/t/apps/a/logs",
            E::Logs(app("t", "a"), 0, 0),
        ),
    ];
    for (method, target, want) in cases {
        assert_eq!(
            parse(method.clone(), target).ok(),
            Some(want),
            "{method} {target}"
        );
    }
}

#[test]
fn kv_endpoints_parse_keys_and_parameters() {
    let kv = |method, target| match parse(method, target) {
        Ok(Endpoint::Kv(t, store, op)) => {
            assert_eq!((t.as_str(), store.as_str()), ("t", "s"));
            Some(op)
        }
        _ => None,
    };
    assert_eq!(
        kv(
            Method::GET,
            "/v1/tenants/t/kv/s/keys?prefix=a%2F&cursor=a%2Fb&limit=5"
        ),
        Some(KvEndpoint::List {
            prefix: "a/".into(),
            cursor: Some("a/b".into()),
            limit: 5
        })
    );
    assert_eq!(
        kv(Method::GET, "/v1/tenants/t/kv/s/keys"),
        Some(KvEndpoint::List {
            prefix: String::new(),
            cursor: None,
            limit: DEFAULT_KV_LIST_LIMIT
        })
    );
    assert_eq!(
        kv(Method::GET, "/v1/tenants/t/kv/s/keys/a%20b/c"),
        Some(KvEndpoint::Get("a b/c".into()))
    );
    assert_eq!(
        kv(Method::PUT, "/v1/tenants/t/kv/s/keys/k?ttl=60"),
        Some(KvEndpoint::Put("k".into(), Some(60)))
    );
    assert_eq!(
        kv(Method::DELETE, "/v1/tenants/t/kv/s/keys/k"),
        Some(KvEndpoint::Delete("k".into()))
    );
    assert_eq!(
        kv(Method::POST, "/v1/tenants/t/kv/s/import"),
        Some(KvEndpoint::Import)
    );
    assert!(matches!(
        parse(Method::GET, "/v1/tenants/t/kv/s/keys/%zz"),
        Err(ApiError::BadRequest(_))
    ));
    assert!(matches!(
        parse(Method::POST, "/v1/tenants/t/kv/s/keys/k"),
        Err(ApiError::MethodNotAllowed)
    ));
    assert!(matches!(
        parse(Method::GET, "/v1/tenants/t/kv/s/elsewhere"),
        Err(ApiError::NotFound)
    ));
}

#[test]
fn a_known_path_with_another_method_is_405_an_unknown_path_404() {
    for (method, target) in [
        (Method::PATCH, "/v1/tenants"),
        (Method::POST, "/v1/tenants/t"),
        (Method::GET, "/v1/cache/purge"),
        (Method::POST, "/v1/tenants/t/apps/a"),
        (Method::DELETE, "/v1/tenants/t/apps/a/versions"),
        (Method::GET, "/v1/tenants/t/apps/a/config/K"),
        (Method::POST, "/v1/tenants/t/apps/a/logs"),
    ] {
        assert!(
            matches!(
                parse(method.clone(), target),
                Err(ApiError::MethodNotAllowed)
            ),
            "{method} {target}"
        );
    }
    for target in [
        "/",
        "/v2/tenants",
        "/v1/nothing",
        "/v1/tenants/t/apps/a/other",
        "/v1/tenants/t/apps/a/config",
    ] {
        assert!(
            matches!(parse(Method::GET, target), Err(ApiError::NotFound)),
            "{target}"
        );
    }
}

#[test]
fn each_endpoint_names_who_may_call_it_and_what_body_it_reads() {
    let access =
        |method, target| parse(method, target).map(|e| (format!("{:?}", e.access()), e.body()));
    assert_eq!(
        access(Method::GET, "/metrics").ok(),
        Some(("Public".into(), BodyKind::None))
    );
    assert_eq!(
        access(Method::POST, "/v1/tenants").ok(),
        Some(("Operator".into(), BodyKind::Small))
    );
    assert_eq!(
        access(Method::POST, "/v1/cache/purge").ok(),
        Some(("Operator".into(), BodyKind::Small))
    );
    assert_eq!(
        access(Method::PUT, "/v1/tenants/t/route-grants").ok(),
        Some(("Operator".into(), BodyKind::Small))
    );
    assert_eq!(
        access(Method::POST, "/v1/tenants/t/apps/a/versions").ok(),
        Some(("Tenant(\"t\")".into(), BodyKind::Upload))
    );
    assert_eq!(
        access(Method::PUT, "/v1/tenants/t/kv/s/keys/k").ok(),
        Some(("Tenant(\"t\")".into(), BodyKind::KvValue))
    );
    assert_eq!(
        access(Method::GET, "/v1/tenants/t").ok(),
        Some(("Tenant(\"t\")".into(), BodyKind::Small))
    );
}

#[test]
fn percent_escapes_decode_or_are_refused() {
    assert_eq!(percent_decode("a%2Fb%20c").ok(), Some("a/b c".to_owned()));
    assert!(percent_decode("a%2").is_err());
    assert!(percent_decode("%zz").is_err());
    assert!(percent_decode("%ff").is_err(), "not UTF-8");
}
