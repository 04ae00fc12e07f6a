//! A handler that uses `?` on the SDK's errors and on a std error; each
//! path fails a different way, `/ok` does not. It also has a route that
//! reads its body as a stream (so the host streams every body of this
//! component) beside routes that read the whole body:
//!
//! - `/custom`: the function's own 404 with its message;
//! - `/json`: `{"name": ...}` parsed with a `Deserialize` derived through
//!   the SDK's `serde` (no dependency of its own); bad JSON is a 400;
//! - `/query`: the decoded `q` and every `t`;
//! - `/stream`: counts the body's bytes as they arrive.

use std::io::Read;
use verge_sdk::serde::Deserialize;
use verge_sdk::{Request, Response, kv::Store};

#[derive(Deserialize)]
#[serde(crate = "verge_sdk::serde")]
struct Item {
    name: String,
}

#[verge_sdk::handler]
fn handle(req: Request) -> Result<Response, verge_sdk::Error> {
    match req.path().rsplit('/').next().unwrap_or("") {
        "kv" => {
            // An empty key: `key-too-large`.
            Store::open("data")?.set("", "v")?;
        }
        "fetch" => {
            // Not on the allow-list: `denied`.
            verge_sdk::fetch::get("https://denied.example/").send()?;
        }
        "parse" => {
            let _: u32 = "not a number".parse()?;
        }
        "custom" => return Err(verge_sdk::Error::new(404, "no such thing")),
        "json" => {
            let item: Item = req.json()?;
            return Ok(Response::text(format!("name={}\n", item.name)));
        }
        "query" => {
            let q = req.query_param("q").unwrap_or("-");
            let raw = req.query_param_raw("q").unwrap_or("-");
            let t = req.query_params("t").join(",");
            return Ok(Response::text(format!("q={q}|raw={raw}|t={t}\n")));
        }
        "stream" => {
            let Some(mut body) = req.body_stream() else {
                return Err(verge_sdk::Error::new(400, "no body stream"));
            };
            let (mut total, mut buf) = (0, vec![0; 16 << 10]);
            while let Ok(n @ 1..) = body.read(&mut buf) {
                total += n;
            }
            return Ok(Response::text(format!("streamed={total}\n")));
        }
        _ => {}
    }
    Ok(Response::text("ok\n"))
}
