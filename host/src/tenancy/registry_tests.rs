//! The registry's own rules, without a component: names, caps, route
//! ownership, variables and secrets, deletes. (Deploying components is
//! tested end to end in `host/tests` and `tests/tests`.)

use super::*;
use crate::runtime::EngineSettings;
use crate::storage::kv::SystemClock;
use crate::storage::kv::memory::MemoryKv;
use crate::storage::records::AppManifest;
use crate::storage::secrets::SecretBox;

struct Fixture {
    registry: Arc<Registry>,
    _dir: tempfile::TempDir,
}

fn registry(caps: RegistryCaps) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(
        Runtime::new(EngineSettings {
            pool_instances: 2,
            ..EngineSettings::default()
        })
        .unwrap(),
    );
    let kv = Arc::new(MemoryKv::new(Arc::new(SystemClock)));
    let services = crate::daemon::CapabilityConfig::default()
        .services(kv)
        .unwrap();
    let secrets = SecretBox::open_key_file(&dir.path().join("secrets.key"), true).unwrap();
    let registry = Registry::open(
        runtime,
        dir.path(),
        Limits::default(),
        HttpLimits::default(),
        services,
        secrets,
    )
    .unwrap()
    .with_caps(caps);
    Fixture {
        registry: Arc::new(registry),
        _dir: dir,
    }
}

fn routes(routes: &[&str]) -> AppManifest {
    AppManifest {
        routes: routes.iter().map(|r| (*r).to_owned()).collect(),
        ..AppManifest::default()
    }
}

async fn tenant(r: &Arc<Registry>, name: &str) {
    r.create_tenant(name.into(), Default::default(), Vec::new(), Vec::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn apps_need_valid_names_a_known_tenant_and_room_for_their_routes() {
    let f = registry(RegistryCaps {
        max_routes_per_app: 2,
        max_apps_per_tenant: 2,
        ..RegistryCaps::default()
    });
    let r = &f.registry;
    let err = r.put_app("nobody".into(), "a".into(), routes(&[])).await;
    assert!(matches!(err, Err(RegistryError::NotFound(_))), "{err:?}");
    tenant(r, "t").await;
    let err = r.put_app("t".into(), "Bad_Name".into(), routes(&[])).await;
    assert!(
        matches!(err, Err(RegistryError::InvalidName { .. })),
        "{err:?}"
    );
    // At the route cap, and one past it.
    r.put_app("t".into(), "a".into(), routes(&["a.test", "a.test/x"]))
        .await
        .unwrap();
    let err = r
        .put_app(
            "t".into(),
            "a".into(),
            routes(&["a.test", "a.test/x", "a.test/y"]),
        )
        .await;
    assert!(
        matches!(err, Err(RegistryError::TooMany { max: 2, .. })),
        "{err:?}"
    );
    // At the app cap (re-putting an app does not count twice), then past it.
    r.put_app("t".into(), "b".into(), routes(&[]))
        .await
        .unwrap();
    r.put_app("t".into(), "b".into(), routes(&[]))
        .await
        .unwrap();
    let err = r.put_app("t".into(), "c".into(), routes(&[])).await;
    assert!(
        matches!(err, Err(RegistryError::TooMany { max: 2, .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn routes_are_normalised_and_owned_by_one_app_until_it_is_deleted() {
    let f = registry(RegistryCaps::default());
    let r = &f.registry;
    tenant(r, "t").await;
    let app = r
        .put_app("t".into(), "a".into(), routes(&["A.test/", "a.test"]))
        .await
        .unwrap();
    assert_eq!(app.manifest.routes, ["a.test"], "lower-cased, deduplicated");
    let err = r.put_app("t".into(), "b".into(), routes(&["a.test"])).await;
    assert!(
        matches!(err, Err(RegistryError::RouteConflict { .. })),
        "{err:?}"
    );
    r.delete_app("t".into(), "a".into()).await.unwrap();
    let err = r.delete_app("t".into(), "a".into()).await;
    assert!(matches!(err, Err(RegistryError::NotFound(_))), "{err:?}");
    r.put_app("t".into(), "b".into(), routes(&["a.test"]))
        .await
        .unwrap();
}

#[tokio::test]
async fn variables_are_checked_and_secrets_sealed_at_rest() {
    let f = registry(RegistryCaps::default());
    let r = &f.registry;
    tenant(r, "t").await;
    r.put_app("t".into(), "a".into(), routes(&[]))
        .await
        .unwrap();
    let set = |kind, name: &str, value: Option<&str>| {
        r.set_var(
            "t".into(),
            "a".into(),
            kind,
            name.into(),
            value.map(str::to_owned),
        )
    };
    let err = set(VarKind::Config, "has space", Some("v")).await;
    assert!(matches!(err, Err(RegistryError::Invalid(_))), "{err:?}");
    let at_cap = "v".repeat(MAX_VAR_VALUE_BYTES);
    set(VarKind::Config, "AT", Some(&at_cap)).await.unwrap();
    let past = "v".repeat(MAX_VAR_VALUE_BYTES + 1);
    let err = set(VarKind::Config, "PAST", Some(&past)).await;
    assert!(matches!(err, Err(RegistryError::Invalid(_))), "{err:?}");
    let app = set(VarKind::Secret, "TOKEN", Some("hunter2"))
        .await
        .unwrap();
    let stored = &app.secrets["TOKEN"];
    assert!(!stored.contains("hunter2"), "sealed at rest: {stored}");
    assert!(!app.manifest.config.contains_key("TOKEN"));
    let err = set(VarKind::Secret, "MISSING", None).await;
    assert!(matches!(err, Err(RegistryError::NotFound(_))), "{err:?}");
    let app = set(VarKind::Secret, "TOKEN", None).await.unwrap();
    assert!(app.secrets.is_empty());
}

#[tokio::test]
async fn tenants_are_unique_and_listing_an_unknown_tenant_is_not_found() {
    let f = registry(RegistryCaps {
        max_tenants: 1,
        ..RegistryCaps::default()
    });
    let r = &f.registry;
    tenant(r, "t").await;
    let again = r
        .create_tenant("t".into(), Default::default(), Vec::new(), Vec::new())
        .await;
    assert!(
        matches!(again, Err(RegistryError::AlreadyExists(_))),
        "{again:?}"
    );
    let past = r
        .create_tenant("u".into(), Default::default(), Vec::new(), Vec::new())
        .await;
    assert!(
        matches!(past, Err(RegistryError::TooMany { max: 1, .. })),
        "{past:?}"
    );
    let err = r.apps(Some("u".into())).await;
    assert!(matches!(err, Err(RegistryError::NotFound(_))), "{err:?}");
    assert!(r.apps(Some("t".into())).await.unwrap().is_empty());
}
