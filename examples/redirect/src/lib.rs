//! A URL shortener on Verge KV.
//!
//! - `GET /{slug}` → 301 or 302 to the stored URL, with `Cache-Control`;
//!   every hit increments the link's click counter. An unknown slug goes on
//!   to the `origin` config URL when set (the site the short domain
//!   fronts, through fetch), else a 404 page.
//! - `POST /api/links` with `Authorization: Bearer <config admin-token>` and
//!   `{"slug": "docs", "url": "https://…", "permanent": true}` → 201; an
//!   existing slug → 409 (compare-and-swap, so two creators never both win).
//! - `GET /api/links/{slug}` → the link and its clicks as JSON.
//!
//! Manifest: `kv_stores = ["links"]`; secret `admin-token`; optional
//! config `origin` with the origin in `allowed_hosts`.

use serde::{Deserialize, Serialize};
use verge_sdk::kv::Store;
use verge_sdk::{Request, Response};

/// Longest slug: short links should be short.
const MAX_SLUG_LEN: usize = 64;
/// Longest target URL accepted.
const MAX_URL_LEN: usize = 2048;
/// How long clients and CDNs may cache a permanent redirect.
const PERMANENT_MAX_AGE: u32 = 86_400;

#[derive(Serialize, Deserialize)]
struct Link {
    url: String,
    permanent: bool,
}

#[derive(Deserialize)]
struct NewLink {
    slug: String,
    url: String,
    #[serde(default)]
    permanent: bool,
}

fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= MAX_SLUG_LEN
        && slug
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_url(url: &str) -> bool {
    url.len() <= MAX_URL_LEN
        && (url.starts_with("https://") || url.starts_with("http://"))
        && url
            .parse::<verge_sdk::http::Uri>()
            .is_ok_and(|u| u.host().is_some_and(|h| !h.is_empty()))
}

fn not_found(slug: &str) -> Response {
    let slug = slug.replace(['<', '>', '&', '"'], "");
    Response::html(format!(
        "<!doctype html><title>Not found</title><h1>No link named “{slug}”</h1>\n"
    ))
    .with_status(404)
}

fn store_error(err: verge_sdk::kv::Error) -> Response {
    verge_sdk::log::error(format!("kv: {err:?}"));
    Response::error(503, "storage unavailable, try again\n")
}

fn authorized(req: &Request) -> bool {
    match (
        verge_sdk::config::get("admin-token"),
        req.header("authorization"),
    ) {
        (Some(token), Some(header)) => header.strip_prefix("Bearer ") == Some(token.as_str()),
        _ => false,
    }
}

fn create(req: &Request, links: &Store) -> Response {
    if !authorized(req) {
        return Response::error(401, "a valid bearer token is required\n");
    }
    let Ok(new) = req.json::<NewLink>() else {
        return Response::error(400, "expected {\"slug\", \"url\", \"permanent\"?}\n");
    };
    if !valid_slug(&new.slug) {
        return Response::error(400, "slug: 1-64 letters, digits, '-' or '_'\n");
    }
    if !valid_url(&new.url) {
        return Response::error(400, "url: an absolute http(s) URL\n");
    }
    let link = Link {
        url: new.url,
        permanent: new.permanent,
    };
    let Ok(bytes) = serde_json::to_vec(&link) else {
        return Response::error(500, "could not encode the link\n");
    };
    match links.compare_and_swap(format!("link:{}", new.slug), None, bytes) {
        Ok(true) => Response::json(&serde_json::json!({ "slug": new.slug, "url": link.url }))
            .with_status(201)
            .with_header("location", format!("/api/links/{}", new.slug)),
        Ok(false) => Response::error(409, "that slug is taken\n"),
        Err(err) => store_error(err),
    }
}

fn show(slug: &str, links: &Store) -> Response {
    let link = match links.get_json::<Link>(format!("link:{slug}")) {
        Ok(Some(link)) => link,
        Ok(None) => return Response::error(404, "no such link\n"),
        Err(err) => return store_error(err),
    };
    let clicks = links
        .get_string(format!("clicks:{slug}"))
        .ok()
        .flatten()
        .and_then(|c| c.parse::<i64>().ok())
        .unwrap_or(0);
    Response::json(&serde_json::json!({
        "slug": slug, "url": link.url, "permanent": link.permanent, "clicks": clicks,
    }))
}

/// An unknown slug: the origin's answer for the same path, or a 404 page.
fn fallback(req: &Request, slug: &str) -> Response {
    let Some(origin) = verge_sdk::config::get("origin") else {
        return not_found(slug);
    };
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let url = format!("{}{path}", origin.trim_end_matches('/'));
    match verge_sdk::fetch::forward(req, url).send() {
        Ok(res) => res,
        Err(err) => {
            verge_sdk::log::error(format!("origin fallback: {err}"));
            Response::error(502, "the origin is unavailable\n")
        }
    }
}

fn follow(req: &Request, slug: &str, links: &Store) -> Response {
    let link = match links.get_json::<Link>(format!("link:{slug}")) {
        Ok(Some(link)) => link,
        Ok(None) => return fallback(req, slug),
        Err(err) => return store_error(err),
    };
    if let Err(err) = links.increment(format!("clicks:{slug}"), 1) {
        verge_sdk::log::warn(format!("click not counted: {err:?}"));
    }
    let (status, cache) = if link.permanent {
        (301, format!("public, max-age={PERMANENT_MAX_AGE}"))
    } else {
        (302, "no-cache".to_owned())
    };
    Response::redirect(link.url, status).with_header("cache-control", cache)
}

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let links = match Store::open("links") {
        Ok(store) => store,
        Err(err) => return store_error(err),
    };
    let path = req.path().to_owned();
    match (req.method().as_str(), path.as_str()) {
        ("POST", "/api/links") => create(&req, &links),
        ("GET", p) if p.starts_with("/api/links/") => show(&p["/api/links/".len()..], &links),
        ("GET" | "HEAD", "/") => Response::text("verge URL shortener: GET /{slug}\n"),
        ("GET" | "HEAD", p) => follow(&req, p.trim_start_matches('/'), &links),
        _ => Response::error(405, "method not allowed\n"),
    }
}
