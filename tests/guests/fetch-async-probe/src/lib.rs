//! Drives parallel fetches and work after the response from query
//! parameters, for end-to-end tests:
//! `/fetch-async-probe?mode=MODE&url=URL&n=N&url2=URL2`.
//!
//! - `all`: starts `n` fetches of `url`, then waits for them all; one line
//!   per fetch (`ok STATUS BYTES` or `error KIND`), in start order.
//! - `select`: starts `url` then `url2` and answers `first INDEX`, then
//!   the winner's line; the other is dropped (aborted).
//! - `ready`: starts `url` and answers `ready BOOL` at once, then after
//!   waiting `ready BOOL` again and the fetch's line.
//! - `drop`: starts `url`, waits for a fetch of `url2` (so the first has
//!   reached its origin), drops the first, answers `dropped`.
//! - `background`: starts `url`, hands it to `wait_until`, answers `sent`.
//! - `defer`: answers `deferred`; after the response a closure fetches
//!   `url` and logs `deferred fetch STATUS` (or the error). With `spin=1`
//!   the closure loops until its CPU budget runs out; with `sleep=MS` it
//!   first sleeps that long (a host wait, holding its instance); with
//!   `pre=1` the handler fetches `url` itself first (the budget is
//!   shared).
//! - `hold`: starts `n` fetches of `url` (each with a `t` ms timeout,
//!   default 300), waits for each head and keeps its body unread; answers
//!   `held K` then one `error KIND` line per failed start or head. With
//!   `bg=1` the bodies go to `wait_until`, read to their end after the
//!   response; else they are dropped unread.
//! - `reuse`: waits twice on one pending handle through the raw bindings
//!   (the second use must trap, never reach the host as a live handle).

use verge_sdk::{Request, Response, fetch, log};

fn line(result: &Result<Response, fetch::Error>) -> String {
    match result {
        Ok(res) => format!("ok {} {}", res.status(), res.body().len()),
        Err(err) => format!("error {}", err.kind()),
    }
}

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let url = req.query_param("url").unwrap_or_default().to_owned();
    let n: usize = req
        .query_param("n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let get = |url: &str| fetch::get(url.to_owned()).start();
    let lines: Vec<String> = match req.query_param("mode").unwrap_or("all") {
        "all" => {
            let mut started = Vec::new();
            let mut lines = vec![String::new(); n];
            for slot in lines.iter_mut() {
                match get(&url) {
                    Ok(pending) => started.push(Some(pending)),
                    Err(err) => {
                        started.push(None);
                        *slot = format!("error {}", err.kind());
                    }
                }
            }
            for (slot, pending) in lines.iter_mut().zip(started) {
                if let Some(pending) = pending {
                    *slot = line(&pending.wait());
                }
            }
            lines
        }
        "select" => {
            let url2 = req.query_param("url2").unwrap_or_default().to_owned();
            let racing: Result<Vec<_>, _> = [url.as_str(), url2.as_str()]
                .into_iter()
                .map(get)
                .collect();
            match racing {
                Ok(mut racing) => match fetch::select(&racing) {
                    Some(first) => {
                        let winner = racing.swap_remove(first).wait();
                        vec![format!("first {first}"), line(&winner)]
                    }
                    None => vec!["none".into()],
                },
                Err(err) => vec![format!("error {}", err.kind())],
            }
        }
        "ready" => match get(&url) {
            Ok(pending) => {
                let before = pending.is_ready();
                let result = pending.wait();
                vec![format!("ready {before}"), line(&result)]
            }
            Err(err) => vec![format!("error {}", err.kind())],
        },
        "drop" => {
            let abandoned = get(&url);
            let url2 = req.query_param("url2").unwrap_or_default();
            let waited = get(url2).and_then(fetch::Pending::wait);
            drop(abandoned);
            vec!["dropped".into(), line(&waited)]
        }
        "background" => match get(&url) {
            Ok(pending) => {
                verge_sdk::wait_until(pending);
                vec!["sent".into()]
            }
            Err(err) => vec![format!("error {}", err.kind())],
        },
        "defer" => {
            let spin = req.query_param("spin") == Some("1");
            let sleep: u64 = req
                .query_param("sleep")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let pre = match req.query_param("pre") {
                Some("1") => Some(line(&fetch::get(url.clone()).send())),
                _ => None,
            };
            verge_sdk::wait_until(move || {
                if sleep > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(sleep));
                }
                if spin {
                    let mut x: u64 = 1;
                    loop {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                }
                match fetch::get(url).send() {
                    Ok(res) => log::info(format!("deferred fetch {}", res.status())),
                    Err(err) => log::warn(format!("deferred fetch error {}", err.kind())),
                }
            });
            match pre {
                Some(pre) => vec![pre, "deferred".into()],
                None => vec!["deferred".into()],
            }
        }
        "hold" => {
            let t: u32 = req.query_param("t").and_then(|v| v.parse().ok()).unwrap_or(300);
            let mut bodies = Vec::new();
            let mut errors = Vec::new();
            for _ in 0..n {
                let head = fetch::get(url.clone())
                    .timeout_ms(t)
                    .start()
                    .and_then(fetch::Pending::wait_head);
                match head {
                    Ok((_, body)) => bodies.push(body),
                    Err(err) => errors.push(format!("error {}", err.kind())),
                }
            }
            let mut lines = vec![format!("held {}", bodies.len())];
            lines.extend(errors);
            if req.query_param("bg") == Some("1") {
                verge_sdk::wait_until(move || {
                    for mut body in bodies {
                        while let Ok(Some(_)) = body.read_chunk(64 << 10) {}
                    }
                });
            }
            lines
        }
        "reuse" => {
            use verge_sdk::wit::verge::edge::fetch as raw;
            use verge_sdk::wit::verge::edge::http_types::Request as RawRequest;
            let out = RawRequest {
                method: "GET".into(),
                uri: url,
                headers: Vec::new(),
                body: Vec::new(),
            };
            let options = raw::Options {
                timeout_ms: None,
                follow_redirects: false,
                cache: None,
            };
            match raw::start(&out, &options) {
                Ok(pending) => {
                    // Forge a second owner of one handle: the component
                    // model must refuse the second `wait` (a trap).
                    let handle = pending.take_handle();
                    let first = unsafe { raw::Pending::from_handle(handle) };
                    let second = unsafe { raw::Pending::from_handle(handle) };
                    let _ = raw::Pending::wait(first);
                    let _ = raw::Pending::wait(second);
                    vec!["unreachable".into()]
                }
                Err(err) => vec![format!("error {err:?}")],
            }
        }
        other => vec![format!("unknown mode {other}")],
    };
    Response::text(lines.join("\n"))
}
