//! Drives the cache interface, for end-to-end tests:
//! - `/cache-probe/fill?key=K&url=URL&ttl=S&swr=S&tag=T`: get_or_fill with
//!   a fetch of URL; answers the body with `x-cache: hit|stale|filled`.
//! - `/cache-probe/purge?tag=T`: purge-tag; answers the count.
//! - `/cache-probe/delete?key=K`, `/cache-probe/get?key=K`.

use verge_sdk::cache::{self, Options, Source};
use verge_sdk::{Request, Response, fetch};

fn number(req: &Request, name: &str) -> u32 {
    req.query_param(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let key = req.query_param("key").unwrap_or("k").to_owned();
    match req.path().rsplit('/').next().unwrap_or_default() {
        "fill" => {
            let url = req.query_param("url").unwrap_or_default().to_owned();
            let mut options =
                Options::ttl(number(&req, "ttl")).stale_while_revalidate(number(&req, "swr"));
            if let Some(tag) = req.query_param("tag") {
                options = options.tag(tag);
            }
            let result = cache::get_or_fill(&key, &options, || {
                let res = fetch::get(url).send()?;
                Ok::<_, fetch::Error>((
                    res.body().to_vec(),
                    vec![("x-origin-status".into(), res.status().to_string())],
                ))
            });
            match result {
                Ok(cached) => {
                    let source = match cached.source {
                        Source::Hit => "hit",
                        Source::Stale => "stale",
                        Source::Filled => "filled",
                    };
                    Response::new(200)
                        .with_header("x-cache", source)
                        .with_body(cached.body)
                }
                Err(err) => Response::error(502, format!("fill failed: {err}")),
            }
        }
        "purge" => {
            Response::text(cache::purge_tag(req.query_param("tag").unwrap_or_default()).to_string())
        }
        "delete" => {
            cache::delete(&key);
            Response::text("deleted")
        }
        "get" => match cache::get(&key) {
            Some(entry) => Response::new(200).with_body(entry.body),
            None => Response::error(404, "miss"),
        },
        _ => Response::error(404, "unknown op"),
    }
}
