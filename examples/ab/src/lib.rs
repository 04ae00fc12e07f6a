//! An A/B test at the edge.
//!
//! Every visitor gets a stable id in the `ab_uid` cookie (a new random one
//! on the first visit, set `HttpOnly; SameSite=Lax`, and `Secure` over
//! https). The variant is `sha256(experiment:id)` mapped onto the weights,
//! so the same visitor always lands in the same bucket, on every node,
//! without storing anything. A country override (through geo) wins over
//! the bucket. The variant is served from its origin through fetch, or as
//! inline content, with `X-AB-Variant` naming it.
//!
//! Config: `experiment`, `variants` (`name=weight,...`),
//! `origin-<variant>` (a base URL, on the allow-list) or
//! `content-<variant>` (inline HTML), `country-overrides` (`CC=variant,...`).

use sha2::{Digest, Sha256};
use verge_sdk::{Request, Response, config, fetch, geo};

/// The cookie holding the visitor id.
const COOKIE: &str = "ab_uid";
/// How long the id cookie lives: a year, so a visitor stays in their bucket.
const COOKIE_MAX_AGE: u32 = 365 * 24 * 3600;
/// Longest visitor id accepted from a cookie; longer ones are replaced.
const MAX_ID_LEN: usize = 64;

/// A variant and its relative weight.
struct Variant {
    name: String,
    weight: u64,
}

/// Parses `control=50,treatment=50`; entries with a zero or bad weight are
/// skipped.
fn parse_variants(spec: &str) -> Vec<Variant> {
    spec.split(',')
        .filter_map(|entry| {
            let (name, weight) = entry.trim().split_once('=')?;
            let weight = weight.trim().parse().ok().filter(|w| *w > 0)?;
            Some(Variant {
                name: name.trim().to_owned(),
                weight,
            })
        })
        .collect()
}

/// The bucket of `id`: the first 8 bytes of sha256(experiment:id) scaled
/// onto the total weight, so each variant gets its share.
fn assign<'a>(experiment: &str, id: &str, variants: &'a [Variant]) -> Option<&'a Variant> {
    let total: u64 = variants.iter().map(|v| v.weight).sum();
    if total == 0 {
        return None;
    }
    let digest = Sha256::digest(format!("{experiment}:{id}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let point = ((u128::from(u64::from_be_bytes(first)) * u128::from(total)) >> 64) as u64;
    let mut acc = 0;
    variants.iter().find(|v| {
        acc += v.weight;
        point < acc
    })
}

fn cookie(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn new_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn country_override(variants: &[Variant]) -> Option<String> {
    let overrides = config::get("country-overrides")?;
    let country = geo::client()?.country_code?;
    overrides.split(',').find_map(|entry| {
        let (cc, variant) = entry.trim().split_once('=')?;
        (cc.trim().eq_ignore_ascii_case(&country)
            && variants.iter().any(|v| v.name == variant.trim()))
        .then(|| variant.trim().to_owned())
    })
}

fn serve(req: &Request, variant: &str) -> Response {
    if let Some(origin) = config::get(&format!("origin-{variant}")) {
        let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let url = format!("{}{path}", origin.trim_end_matches('/'));
        return match fetch::forward(req, url).send() {
            Ok(res) => res,
            Err(err) => {
                verge_sdk::log::error(format!("variant {variant} origin: {err}"));
                Response::error(502, "the variant's origin is unavailable\n")
            }
        };
    }
    match config::get(&format!("content-{variant}")) {
        Some(html) => Response::html(html),
        None => Response::text(format!("variant {variant}\n")),
    }
}

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let experiment = config::get("experiment").unwrap_or_else(|| "experiment".into());
    let variants = parse_variants(&config::get("variants").unwrap_or_default());
    let known = cookie(&req, COOKIE).filter(|id| valid_id(id));
    let (id, is_new) = match known {
        Some(id) => (id, false),
        None => match new_id() {
            Some(id) => (id, true),
            None => return Response::error(500, "no randomness for a visitor id\n"),
        },
    };
    let variant = match country_override(&variants) {
        Some(name) => name,
        None => match assign(&experiment, &id, &variants) {
            Some(v) => v.name.clone(),
            None => return Response::error(500, "no variants configured\n"),
        },
    };
    let mut res = serve(&req, &variant)
        .with_header("x-ab-variant", variant.as_str())
        .with_header("vary", "cookie")
        .with_header("cache-control", "private, no-store");
    if is_new {
        let secure = if req.uri().scheme_str() == Some("https") {
            "; Secure"
        } else {
            ""
        };
        res = res.with_header(
            "set-cookie",
            format!(
                "{COOKIE}={id}; Max-Age={COOKIE_MAX_AGE}; Path=/; HttpOnly; SameSite=Lax{secure}"
            ),
        );
    }
    res
}
