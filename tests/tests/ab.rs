//! The A/B example deployed on a platform: sticky cookies, deterministic
//! buckets, the weight split over 10,000 visitors, country overrides.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use http::Request;
use http_body_util::Full;
use serde_json::json;
use sha2::{Digest, Sha256};
use verge::daemon::CapabilityConfig;
use verge_tests::geo_fixtures::city_db;
use verge_tests::{Platform, Reply, Setup};

const HOST: &str = "ab.test";

async fn platform(dir: &std::path::Path) -> Platform {
    let db = dir.join("city.mmdb");
    city_db(&db);
    let capabilities = CapabilityConfig {
        geo_database: Some(db),
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..CapabilityConfig::default()
    };
    let p = Platform::start_with(&dir.join("data"), Setup::default().engine, capabilities).await;
    let token = p.tenant("acme").await;
    let manifest = json!({
        "routes": [HOST],
        "config": {
            "experiment": "homepage",
            "variants": "control=30,treatment=70",
            "content-control": "the control page",
            "content-treatment": "the treatment page",
            "country-overrides": "JP=control",
        },
    });
    let r = p
        .deploy_manifest(&token, "acme", "ab", manifest, "ab")
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    p
}

async fn visit(p: &Platform, cookie: Option<&str>, forwarded_for: Option<&str>) -> Reply {
    let mut req = Request::get(format!("http://{}/", p.daemon.addr)).header("host", HOST);
    if let Some(id) = cookie {
        req = req.header("cookie", format!("theme=dark; ab_uid={id}"));
    }
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    let r = p.request(req.body(Full::default()).unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r
}

/// The example's rule, computed independently: sha256(experiment:id),
/// first 8 bytes scaled onto the total weight of 100.
fn expected_variant(id: &str) -> &'static str {
    let digest = Sha256::digest(format!("homepage:{id}").as_bytes());
    let first = u64::from_be_bytes(digest[..8].try_into().unwrap());
    let point = (u128::from(first) * 100) >> 64;
    if point < 30 { "control" } else { "treatment" }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_visitor_gets_a_sticky_cookie_and_a_deterministic_variant() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let first = visit(&p, None, None).await;
    let cookie = first.header("set-cookie").to_owned();
    assert!(cookie.starts_with("ab_uid="), "{cookie}");
    for attr in ["Max-Age=31536000", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let id = cookie["ab_uid=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 32);
    let variant = first.header("x-ab-variant").to_owned();
    assert_eq!(variant, expected_variant(&id));
    assert_eq!(first.text(), format!("the {variant} page"));
    for _ in 0..20 {
        let again = visit(&p, Some(&id), None).await;
        assert_eq!(again.header("x-ab-variant"), variant);
        assert_eq!(
            again.header("set-cookie"),
            "",
            "no new cookie for a known visitor"
        );
    }
    // A second new visitor gets a different id.
    let other = visit(&p, None, None).await;
    assert_ne!(other.header("set-cookie"), cookie);
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_visitors_split_within_two_percent_of_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let visitors = 10_000;
    let mut control = 0;
    for i in 0..visitors {
        // Ids as a browser would hold them: 128 random-looking bits in hex.
        let id = hex::encode(&Sha256::digest(format!("visitor {i}").as_bytes())[..16]);
        let r = visit(&p, Some(&id), None).await;
        let variant = r.header("x-ab-variant");
        assert_eq!(variant, expected_variant(&id), "visitor {id}");
        if variant == "control" {
            control += 1;
        }
    }
    let share = f64::from(control) / f64::from(visitors);
    assert!(
        (share - 0.30).abs() <= 0.02,
        "control got {share:.4} of visitors"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_country_override_wins_over_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    // Visitors bucketed into treatment, coming from Japan through a trusted
    // proxy, see control.
    let ids: Vec<String> = (0..50)
        .map(|i| format!("visitor-{i}"))
        .filter(|id| expected_variant(id) == "treatment")
        .take(5)
        .collect();
    assert!(!ids.is_empty());
    for id in &ids {
        let r = visit(&p, Some(id), Some("1.0.16.7")).await;
        assert_eq!(r.header("x-ab-variant"), "control");
        let r = visit(&p, Some(id), Some("81.2.3.4")).await;
        assert_eq!(
            r.header("x-ab-variant"),
            "treatment",
            "Germany has no override"
        );
    }
}
