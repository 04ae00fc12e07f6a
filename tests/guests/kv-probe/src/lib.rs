//! Drives the kv interface from query parameters, for end-to-end tests:
//! `/kv-probe/{op}?store=&key=&value=&ttl=&delta=&prefix=&cursor=&limit=&expected=&mib=`.
//! Answers 200 with the result, or 500 with the WIT error's name.

use verge_sdk::kv::Store;
use verge_sdk::{Request, Response};

/// The WIT name of an error, e.g. `no-such-store` or `other: reason`.
fn name(err: &verge_sdk::kv::Error) -> String {
    use verge_sdk::kv::Error;
    match err {
        Error::NoSuchStore => "no-such-store".into(),
        Error::AccessDenied => "access-denied".into(),
        Error::KeyTooLarge => "key-too-large".into(),
        Error::ValueTooLarge => "value-too-large".into(),
        Error::QuotaExceeded => "quota-exceeded".into(),
        Error::InvalidKey(reason) => format!("invalid-key: {reason}"),
        Error::Other(reason) => format!("other: {reason}"),
    }
}

fn param(req: &Request, name: &str) -> String {
    req.query_param(name).unwrap_or_default().to_owned()
}

fn number<T: std::str::FromStr>(req: &Request, name: &str) -> Option<T> {
    req.query_param(name).and_then(|v| v.parse().ok())
}

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let store_name = req.query_param("store").unwrap_or("data").to_owned();
    let store = match Store::open(&store_name) {
        Ok(store) => store,
        Err(err) => return Response::error(500, name(&err)),
    };
    let key = param(&req, "key");
    let op = req.path().rsplit('/').next().unwrap_or_default().to_owned();
    let result: Result<String, verge_sdk::kv::Error> = match op.as_str() {
        "get" => store
            .get_string(&key)
            .map(|v| v.unwrap_or_else(|| "<none>".into())),
        "set" => match number::<u32>(&req, "ttl") {
            Some(ttl) => store.set_with_ttl(&key, param(&req, "value"), ttl),
            None => store.set(&key, param(&req, "value")),
        }
        .map(|()| "ok".into()),
        "big" => store
            .set(
                &key,
                vec![b'x'; number::<usize>(&req, "bytes").unwrap_or(0)],
            )
            .map(|()| "ok".into()),
        "delete" => store.delete(&key).map(|()| "ok".into()),
        "incr" => store
            .increment(&key, number(&req, "delta").unwrap_or(1))
            .map(|n| n.to_string()),
        "cas" => {
            let expected = req.query_param("expected").map(str::as_bytes);
            store
                .compare_and_swap(&key, expected, param(&req, "value"))
                .map(|ok| ok.to_string())
        }
        "list" => {
            let cursor = req.query_param("cursor");
            store
                .list(
                    param(&req, "prefix"),
                    cursor,
                    number(&req, "limit").unwrap_or(10),
                )
                .map(|page| {
                    format!(
                        "{}|{}",
                        page.keys.join(","),
                        page.cursor.unwrap_or_default()
                    )
                })
        }
        other => return Response::error(400, format!("unknown op {other}")),
    };
    match result {
        Ok(text) => Response::text(text),
        Err(err) => Response::error(500, name(&err)),
    }
}
