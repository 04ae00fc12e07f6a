//! JWT authentication and rate limiting in front of an origin.
//!
//! - `Authorization: Bearer <JWT>` (HS256, key in the `jwt-secret` secret)
//!   is verified: signature, `exp` (required), `nbf`, `iss` and `aud` when
//!   configured. Failure → 401 with `WWW-Authenticate: Bearer ...`.
//! - Rate limits in fixed windows on KV counters (increment + TTL): per
//!   client IP before verification (so guessing tokens is throttled too)
//!   and per subject after. Over the limit → 429 with `Retry-After`.
//! - On success the request goes on to `origin` with `X-User-Id: <sub>`
//!   (the client's own `X-User-Id` and `Authorization` are not forwarded);
//!   without an origin, 200 with the subject as JSON.
//!
//! Config: `jwt-secret` (secret), `issuer`, `audience`, `origin`,
//! `rate-limit-subject`, `rate-limit-ip`, `window-seconds`.
//! Manifest: `kv_stores = ["ratelimits"]`, the origin in `allowed_hosts`.

mod jwt;

use std::time::{SystemTime, UNIX_EPOCH};
use verge_sdk::kv::Store;
use verge_sdk::{Request, Response, config, fetch, geo};

/// Requests per subject per window unless configured.
const DEFAULT_SUBJECT_LIMIT: i64 = 60;
/// Requests per client IP per window unless configured.
const DEFAULT_IP_LIMIT: i64 = 120;
/// Window length in seconds unless configured.
const DEFAULT_WINDOW_SECONDS: u64 = 60;

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    config::get(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn unauthorized(error: Option<&str>) -> Response {
    let challenge = match error {
        None => "Bearer realm=\"verge\"".to_owned(),
        Some(why) => {
            format!("Bearer realm=\"verge\", error=\"invalid_token\", error_description=\"{why}\"")
        }
    };
    Response::error(
        401,
        format!("{}\n", error.unwrap_or("a bearer token is required")),
    )
    .with_header("www-authenticate", challenge)
}

/// Counts one request for `key` in the current fixed window; `Err` holds
/// the response to send when the count is past `limit`.
fn rate_limit(store: &Store, key: &str, limit: i64, window: u64, now: u64) -> Result<(), Response> {
    let slot = now / window;
    let ttl = u32::try_from(window).unwrap_or(u32::MAX);
    match store.increment_with_ttl(format!("{key}:{slot}"), 1, ttl) {
        Ok(count) if count > limit => {
            let retry_after = window - now % window;
            Err(Response::error(429, "too many requests\n")
                .with_header("retry-after", retry_after.to_string()))
        }
        Ok(_) => Ok(()),
        Err(err) => {
            // Fail open: a storage hiccup should not lock every user out.
            verge_sdk::log::warn(format!("rate limit not counted: {err:?}"));
            Ok(())
        }
    }
}

fn proxy(req: &Request, subject: &str) -> Response {
    let Some(origin) = config::get("origin") else {
        return Response::json(&serde_json::json!({ "sub": subject }));
    };
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let mut call = fetch::request(
        req.method().as_str(),
        format!("{}{path}", origin.trim_end_matches('/')),
    )
    .body(req.body().to_vec());
    for (name, value) in req.headers() {
        if matches!(name.as_str(), "authorization" | "x-user-id" | "cookie") {
            continue;
        }
        if let Ok(value) = value.to_str() {
            call = call.header(name.as_str(), value);
        }
    }
    match call.header("x-user-id", subject).send() {
        Ok(res) => res,
        Err(err) => {
            verge_sdk::log::error(format!("origin: {err}"));
            Response::error(502, "the origin is unavailable\n")
        }
    }
}

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let window = setting("window-seconds", DEFAULT_WINDOW_SECONDS).max(1);
    let store = match Store::open("ratelimits") {
        Ok(store) => store,
        Err(err) => {
            verge_sdk::log::error(format!("kv: {err:?}"));
            return Response::error(503, "rate limiter unavailable\n");
        }
    };
    let ip = geo::client_ip().unwrap_or_else(|| "unknown".into());
    if let Err(res) = rate_limit(
        &store,
        &format!("ip:{ip}"),
        setting("rate-limit-ip", DEFAULT_IP_LIMIT),
        window,
        now,
    ) {
        return res;
    }
    let Some(secret) = config::get("jwt-secret") else {
        verge_sdk::log::error("the jwt-secret secret is not set");
        return Response::error(500, "authentication is not configured\n");
    };
    let Some(token) = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return unauthorized(None);
    };
    let issuer = config::get("issuer");
    let audience = config::get("audience");
    let expect = jwt::Expect {
        secret: secret.as_bytes(),
        issuer: issuer.as_deref(),
        audience: audience.as_deref(),
        now,
    };
    let subject = match jwt::verify(token.trim(), &expect) {
        Ok(subject) => subject,
        Err(rejection) => return unauthorized(Some(rejection.describe())),
    };
    let limit = setting("rate-limit-subject", DEFAULT_SUBJECT_LIMIT);
    if let Err(res) = rate_limit(&store, &format!("sub:{subject}"), limit, window, now) {
        return res;
    }
    proxy(&req, &subject)
}
