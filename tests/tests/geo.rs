//! The geo capability end to end: fixture databases of each schema, the
//! client address from the TCP peer or a trusted proxy's headers.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use http::Request;
use http_body_util::Full;
use verge::daemon::CapabilityConfig;
use verge_tests::geo_fixtures::{city_db, country_db, flat_db};
use verge_tests::{Setup, TestServer};

async fn server(db: Option<&std::path::Path>, trusted: &[&str]) -> TestServer {
    let setup = Setup {
        capabilities: CapabilityConfig {
            geo_database: db.map(std::path::Path::to_owned),
            trusted_proxies: trusted.iter().map(|s| s.parse().unwrap()).collect(),
            ..CapabilityConfig::default()
        },
        ..Setup::default()
    };
    TestServer::start_with(&["geo-probe"], setup).await
}

/// GET /geo-probe?ip=IP with optional forwarding headers; the lines back.
async fn probe(s: &TestServer, ip: &str, headers: &[(&str, &str)]) -> Vec<String> {
    let mut req = Request::get(s.url(&format!("/geo-probe?ip={ip}")));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let r = s.send(req.body(Full::default()).unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.text().lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn without_a_database_lookups_answer_none() {
    let s = server(None, &[]).await;
    let lines = probe(&s, "81.2.3.4", &[]).await;
    assert_eq!(lines, ["client_ip=127.0.0.1", "client=none", "lookup=none"]);
}

#[tokio::test]
async fn city_database_v4_and_v6() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("GeoLite2-City.mmdb");
    city_db(&db);
    let s = server(Some(&db), &[]).await;
    let lines = probe(&s, "81.2.3.4", &[]).await;
    assert_eq!(lines[2], "lookup=DE|Germany|Berlin|Berlin|EU|52.52");
    let lines = probe(&s, "2400:4000::1", &[]).await;
    assert_eq!(lines[2], "lookup=JP|Japan|Tokyo|Shinjuku|AS|35.69");
    let lines = probe(&s, "not-an-ip", &[]).await;
    assert_eq!(lines[2], "lookup=none");
    let lines = probe(&s, "9.9.9.9", &[]).await;
    assert_eq!(lines[2], "lookup=none");
    // The peer is loopback, which no database knows.
    assert_eq!(lines[1], "client=none");
}

#[tokio::test]
async fn country_and_flat_databases() {
    let dir = tempfile::tempdir().unwrap();
    let country = dir.path().join("GeoLite2-Country.mmdb");
    country_db(&country);
    let s = server(Some(&country), &[]).await;
    let lines = probe(&s, "8.8.8.8", &[]).await;
    assert_eq!(lines[2], "lookup=US|United States|||NA|");
    let flat = dir.path().join("ip-location-db.mmdb");
    flat_db(&flat);
    let s = server(Some(&flat), &[]).await;
    let lines = probe(&s, "1.0.16.9", &[]).await;
    assert_eq!(lines[2], "lookup=JP||Tokyo|Shinjuku||35.69");
    let lines = probe(&s, "2a01:4f8::1", &[]).await;
    assert_eq!(lines[2], "lookup=DE||Berlin|Berlin||52.52");
}

#[tokio::test]
async fn trusted_proxies_name_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("city.mmdb");
    city_db(&db);
    let s = server(Some(&db), &["127.0.0.1/32"]).await;
    let lines = probe(&s, "", &[("x-forwarded-for", "9.9.9.9, 81.2.3.4")]).await;
    assert_eq!(lines[0], "client_ip=81.2.3.4");
    assert_eq!(lines[1], "client=DE|Germany|Berlin|Berlin|EU|52.52");
    let forwarded = [("forwarded", "for=\"[2400:4000::5]:443\";proto=https")];
    let lines = probe(&s, "", &forwarded).await;
    assert_eq!(lines[0], "client_ip=2400:4000::5");
    assert!(lines[1].starts_with("client=JP|"), "{lines:?}");
}

#[tokio::test]
async fn spoofed_headers_from_untrusted_peers_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("city.mmdb");
    city_db(&db);
    let s = server(Some(&db), &["10.0.0.0/8"]).await;
    let spoofed = [
        ("x-forwarded-for", "81.2.3.4"),
        ("forwarded", "for=81.2.3.4"),
    ];
    let lines = probe(&s, "", &spoofed).await;
    assert_eq!(lines[0], "client_ip=127.0.0.1");
    assert_eq!(lines[1], "client=none");
}

#[tokio::test]
async fn an_invalid_database_fails_at_start_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("broken.mmdb");
    std::fs::write(&db, b"garbage").unwrap();
    let config = CapabilityConfig {
        geo_database: Some(db),
        ..CapabilityConfig::default()
    };
    let kv = std::sync::Arc::new(verge::storage::kv::memory::MemoryKv::new(
        std::sync::Arc::new(verge::storage::kv::SystemClock),
    ));
    let err = config.services(kv).err().unwrap().to_string();
    assert!(err.contains("broken.mmdb"), "{err}");
}
