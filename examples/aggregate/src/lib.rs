//! Request aggregation: `GET /users/{id}` fans out to three origins
//! (profile, posts, stats) at once and merges their answers into one JSON
//! document. The answer takes as long as the slowest part, not the sum. A
//! part that fails or takes longer than `part-timeout-ms` is left out: the
//! document then says `"partial": true` and lists it under `"missing"`.
//! Each part goes through the edge cache with its own TTL.

use verge_sdk::serde_json::{Map, Value, json};
use verge_sdk::{Request, Response, config, fetch};

/// The parts of a user's page, in the document's order.
const PARTS: [&str; 3] = ["profile", "posts", "stats"];

/// A part's timeout when `part-timeout-ms` is unset or not a number.
const DEFAULT_PART_TIMEOUT_MS: u32 = 250;

/// A part's cache TTL when its `*-ttl-seconds` is unset.
const DEFAULT_TTL_SECONDS: u32 = 30;

fn setting(name: &str) -> Option<String> {
    config::get(name).filter(|v| !v.is_empty())
}

fn number(name: &str, default: u32) -> u32 {
    setting(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What a part's answer contributes: its JSON, else its text.
fn part_value(res: &Response) -> Value {
    res.json_body::<Value>()
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(res.body()).into_owned()))
}

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let Some(id) = req.path().strip_prefix("/users/").filter(|id| {
        !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }) else {
        return Response::text("try GET /users/{id}\n").with_status(404);
    };
    let timeout = number("part-timeout-ms", DEFAULT_PART_TIMEOUT_MS);
    // Start all three, then wait: they run at the same time.
    let started = PARTS.map(|part| {
        let url = setting(&format!("{part}-url"))
            .ok_or_else(|| format!("{part}-url is not configured"))?
            .replace("{id}", id);
        let ttl = number(&format!("{part}-ttl-seconds"), DEFAULT_TTL_SECONDS);
        fetch::get(url)
            .header("accept", "application/json")
            .timeout_ms(timeout)
            .cache(ttl, None, &["aggregate", part])
            .start()
            .map_err(|err| err.kind().to_owned())
    });
    let mut document = Map::new();
    let mut missing = Vec::new();
    for (part, started) in PARTS.into_iter().zip(started) {
        let answer = started.and_then(|pending| pending.wait().map_err(|err| err.kind().to_owned()));
        match answer {
            Ok(res) if res.is_success() => {
                document.insert(part.into(), part_value(&res));
            }
            Ok(res) => missing.push(json!({ "part": part, "reason": format!("status {}", res.status()) })),
            Err(reason) => missing.push(json!({ "part": part, "reason": reason })),
        }
    }
    document.insert("id".into(), Value::String(id.into()));
    document.insert("partial".into(), Value::Bool(!missing.is_empty()));
    if !missing.is_empty() {
        document.insert("missing".into(), Value::Array(missing));
    }
    Response::json(&Value::Object(document)).with_header("cache-control", "no-store")
}
