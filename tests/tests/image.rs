//! The image example deployed on a platform: output dimensions and format
//! (decoded here), caching with ETag and 304, purge by image name,
//! validation before work, and the CPU limit on an oversized transform.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use http::Request;
use http_body_util::Full;
use image::{ImageFormat, Rgba, RgbaImage};
use serde_json::json;
use verge_tests::origin::Origin;
use verge_tests::{Platform, Reply, Setup, loopback_capabilities};

/// A 640×480 PNG with a gradient, so resizing has real work to do.
fn original_png() -> Vec<u8> {
    let img = RgbaImage::from_fn(640, 480, |x, y| {
        Rgba([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8, 255])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn platform(
    dir: &std::path::Path,
    origin: &Origin,
    cpu_ms: Option<u64>,
) -> (Platform, String) {
    let p = Platform::start_with(dir, Setup::default().engine, loopback_capabilities()).await;
    let limits = match cpu_ms {
        Some(ms) => json!({ "cpu_ms": ms }),
        None => json!({}),
    };
    let token = p.tenant_with_limits("acme", limits).await;
    let manifest = json!({
        "routes": ["img.test"],
        "allowed_hosts": [format!("http://{}", origin.addr)],
        "config": { "origin": origin.url("/files") },
    });
    let r = p
        .deploy_manifest(&token, "acme", "image", manifest, "image")
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    (p, token)
}

async fn get(p: &Platform, path: &str, if_none_match: Option<&str>) -> Reply {
    let mut req =
        Request::get(format!("http://{}{path}", p.daemon.addr)).header("host", "img.test");
    if let Some(etag) = if_none_match {
        req = req.header("if-none-match", etag);
    }
    p.request(req.body(Full::default()).unwrap()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn resizes_converts_caches_and_answers_304() {
    let origin = Origin::start_with_files(vec![("cat.png", original_png())]).await;
    let dir = tempfile::tempdir().unwrap();
    let (p, token) = platform(dir.path(), &origin, None).await;

    let r = get(&p, "/img/cat.png?w=320&fmt=jpeg", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), "image/jpeg");
    assert_eq!(r.header("x-cache"), "miss");
    let decoded = image::load_from_memory_with_format(&r.body, ImageFormat::Jpeg).unwrap();
    assert_eq!(
        (decoded.width(), decoded.height()),
        (320, 240),
        "aspect ratio kept"
    );
    let etag = r.header("etag").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");

    let again = get(&p, "/img/cat.png?w=320&fmt=jpeg", None).await;
    assert_eq!(again.header("x-cache"), "hit");
    assert_eq!(again.body, r.body);
    assert_eq!(origin.hits(), 1, "the cached size did not refetch");

    let not_modified = get(&p, "/img/cat.png?w=320&fmt=jpeg", Some(&etag)).await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());

    let png = get(&p, "/img/cat.png?h=100", None).await;
    assert_eq!(
        png.header("content-type"),
        "image/png",
        "the original's format"
    );
    let decoded = image::load_from_memory_with_format(&png.body, ImageFormat::Png).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (133, 100));

    // Purging the image's tag drops every size of it.
    let purge = json!({ "tag": "img:cat.png" }).to_string().into_bytes();
    let r = p
        .admin("POST", "/v1/tenants/acme/cache/purge", Some(&token), purge)
        .await;
    let answer: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(answer["purged"], 2);
    let refilled = get(&p, "/img/cat.png?w=320&fmt=jpeg", None).await;
    assert_eq!(refilled.header("x-cache"), "miss");
    assert_eq!(origin.hits(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_before_any_work() {
    let origin = Origin::start_with_files(vec![("cat.png", original_png())]).await;
    let dir = tempfile::tempdir().unwrap();
    let (p, _) = platform(dir.path(), &origin, None).await;
    let at_max = get(&p, "/img/cat.png?w=2048&h=2", None).await;
    assert_eq!(at_max.status, 200, "at the maximum: {}", at_max.text());
    for bad in [
        "/img/cat.png?w=2049",
        "/img/cat.png?w=0",
        "/img/cat.png?h=abc",
        "/img/cat.png?fmt=gif",
        "/img/../secret",
        "/nothing",
    ] {
        let r = get(&p, bad, None).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    assert_eq!(origin.hits(), 1, "only the valid request fetched");
    assert_eq!(get(&p, "/img/missing.png", None).await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transform_past_the_cpu_budget_is_a_503_not_a_hang() {
    let origin = Origin::start_with_files(vec![("cat.png", original_png())]).await;
    let dir = tempfile::tempdir().unwrap();
    let (p, _) = platform(dir.path(), &origin, Some(1)).await;
    let started = std::time::Instant::now();
    let r = get(&p, "/img/cat.png?w=2048&h=2048&fmt=png", None).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("verge-error"), "cpu-limit");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
