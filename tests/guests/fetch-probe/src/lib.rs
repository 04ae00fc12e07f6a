//! Drives the fetch interface from query parameters, for end-to-end tests:
//! `/fetch-probe?url=URL&n=1&timeout_ms=&follow=1&method=GET&hop=1&cache_ttl=&swr=`.
//! Makes `n` calls to `url` one after another and answers 200 with one
//! line per call (`ok STATUS BYTES [CACHE]` or `error KIND: MESSAGE`), a blank
//! line, then the last successful response's body (unless `echo=0`).

use verge_sdk::{Request, Response, fetch};

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let url = req.query_param("url").unwrap_or_default().to_owned();
    let n: u32 = req
        .query_param("n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let method = req.query_param("method").unwrap_or("GET").to_owned();
    let mut lines = Vec::new();
    let mut last_body = Vec::new();
    for _ in 0..n {
        let mut call = fetch::request(&method, url.clone()).header("x-probe", "1");
        if let Some(ms) = req.query_param("timeout_ms").and_then(|v| v.parse().ok()) {
            call = call.timeout_ms(ms);
        }
        if req.query_param("follow") == Some("1") {
            call = call.follow_redirects(true);
        }
        if req.query_param("hop") == Some("1") {
            call = call
                .header("connection", "x-secret")
                .header("x-secret", "1")
                .header("keep-alive", "timeout=5")
                .header("host", "spoofed.example");
        }
        if let Some(ttl) = req.query_param("cache_ttl").and_then(|v| v.parse().ok()) {
            let swr = req.query_param("swr").and_then(|v| v.parse().ok());
            call = call.cache(ttl, swr, &[]);
        }
        if method == "POST" {
            call = call.body(req.body().to_vec());
        }
        match call.send() {
            Ok(res) => {
                match res.header("verge-cache") {
                    Some(cache) => {
                        lines.push(format!("ok {} {} {cache}", res.status(), res.body().len()))
                    }
                    None => lines.push(format!("ok {} {}", res.status(), res.body().len())),
                }
                last_body = res.into_body();
            }
            Err(err) => lines.push(format!("error {}: {err}", err.kind())),
        }
    }
    let mut body = lines.join("\n").into_bytes();
    body.extend_from_slice(b"\n\n");
    if req.query_param("echo") != Some("0") {
        body.extend_from_slice(&last_body);
    }
    Response::new(200).with_body(body)
}
