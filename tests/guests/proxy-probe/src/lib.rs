//! A standard `wasi:http/proxy` component built with the `wasi` crate, no
//! Verge handler: what Spin, componentize-js or TinyGo produce. By the last
//! path segment:
//! - `/hello`: 200 `hello from wasi:http PATH`
//! - `/stream`: `first` now, `last` 700 ms later (streaming)
//! - `/bytes?n=N`: N bytes of `x` in 64 KiB writes
//! - `/sleep`: waits 10 s in a host call (wall-clock limit)
//! - `/spin`: loops forever (CPU limit)
//! - `/bomb`: allocates until memory runs out
//! - `/fetch?url=http://HOST:PORT/PATH`: an outbound request; answers
//!   `status N` or `error CODE`
//! - `/verge`: Verge's own imports from a proxy component: the `greeting`
//!   config variable and a KV counter in store `data`
//! - `/fanout?url=URL&n=N`: N outbound requests started before any is
//!   waited for; one `status N` line each
//! - `/upload?url=URL&mb=M`: a POST whose M MiB body is written while the
//!   request is in flight; answers the origin's body
//! - `/download?url=URL`: reads the response body in chunks; answers
//!   `status N bytes B`

use std::io::Write as _;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, FutureIncomingResponse, IncomingRequest, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};

wasi::http::proxy::export!(Probe);

struct Probe;

fn respond(out: ResponseOutparam, status: u16, chunks: impl FnOnce(&mut dyn FnMut(&[u8]))) {
    let response = OutgoingResponse::new(Fields::new());
    let _ = response.set_status_code(status);
    let Ok(body) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    {
        let Ok(mut stream) = body.write() else { return };
        let mut write = |bytes: &[u8]| {
            let _ = stream.write_all(bytes);
            let _ = stream.flush();
        };
        chunks(&mut write);
    }
    let _ = OutgoingBody::finish(body, None);
}

fn query<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    path.split_once('?')?.1.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then_some(v)
    })
}

/// An outgoing request to `url` (plain `http://HOST:PORT/PATH`).
fn request_to(url: &str, method: &Method) -> Option<OutgoingRequest> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_method(method);
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(&path));
    Some(request)
}

/// Waits for `future`'s response.
fn response_of(future: &FutureIncomingResponse) -> Result<IncomingResponse, String> {
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(code))) => Err(format!("error {code:?}")),
        _ => Err("error no response".into()),
    }
}

fn fetch(url: &str) -> String {
    let Some(request) = request_to(url, &Method::Get) else {
        return "error bad url".into();
    };
    match outgoing_handler::handle(request, None) {
        Err(code) => format!("error {code:?}"),
        Ok(future) => match response_of(&future) {
            Ok(response) => format!("status {}", response.status()),
            Err(why) => why,
        },
    }
}

/// Every byte of `response`'s body, in chunks; `(count, text of the first
/// 4 KiB)`.
fn drain(response: IncomingResponse) -> (usize, String) {
    let Ok(body) = response.consume() else {
        return (0, String::new());
    };
    let Ok(stream) = body.stream() else {
        return (0, String::new());
    };
    let (mut count, mut text) = (0, Vec::new());
    while let Ok(chunk) = stream.blocking_read(64 << 10) {
        count += chunk.len();
        if text.len() < 4096 {
            text.extend_from_slice(&chunk);
        }
    }
    (count, String::from_utf8_lossy(&text).into_owned())
}

/// The `fanout`, `upload` and `download` routes.
fn outbound(route: &str, path: &str) -> String {
    let url = query(path, "url").unwrap_or_default();
    let number = |name: &str, default: usize| {
        query(path, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    match route {
        "fanout" => {
            let started: Vec<_> = (0..number("n", 3))
                .map(|_| request_to(url, &Method::Get).map(|r| outgoing_handler::handle(r, None)))
                .collect();
            let lines: Vec<String> = started
                .into_iter()
                .map(|started| match started {
                    Some(Ok(future)) => match response_of(&future) {
                        Ok(response) => format!("status {}", response.status()),
                        Err(why) => why,
                    },
                    Some(Err(code)) => format!("error {code:?}"),
                    None => "error bad url".into(),
                })
                .collect();
            lines.join("\n")
        }
        "upload" => {
            let Some(request) = request_to(url, &Method::Post) else {
                return "error bad url".into();
            };
            let Ok(body) = request.body() else {
                return "error no body".into();
            };
            let future = match outgoing_handler::handle(request, None) {
                Ok(future) => future,
                Err(code) => return format!("error {code:?}"),
            };
            {
                let Ok(mut stream) = body.write() else {
                    return "error no stream".into();
                };
                let chunk = vec![b'u'; 64 << 10];
                for _ in 0..number("mb", 1) * 16 {
                    if stream.write_all(&chunk).is_err() {
                        return "error writing the body".into();
                    }
                }
                let _ = stream.flush();
            }
            if OutgoingBody::finish(body, None).is_err() {
                return "error finishing the body".into();
            }
            match response_of(&future) {
                Ok(response) => drain(response).1,
                Err(why) => why,
            }
        }
        _ => {
            let Some(request) = request_to(url, &Method::Get) else {
                return "error bad url".into();
            };
            match outgoing_handler::handle(request, None).map(|f| response_of(&f)) {
                Ok(Ok(response)) => {
                    let status = response.status();
                    format!("status {status} bytes {}", drain(response).0)
                }
                Ok(Err(why)) => why,
                Err(code) => format!("error {code:?}"),
            }
        }
    }
}

impl wasi::exports::http::incoming_handler::Guest for Probe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        // The last path segment picks the route, whatever prefix routed here.
        let route = path.split('?').next().unwrap_or_default();
        let route = route.rsplit('/').next().unwrap_or_default().to_owned();
        match route.as_str() {
            "hello" => respond(out, 200, |w| {
                w(format!("hello from wasi:http {path}").as_bytes())
            }),
            "stream" => respond(out, 200, |w| {
                w(b"first\n");
                wasi::clocks::monotonic_clock::subscribe_duration(700_000_000).block();
                w(b"last\n");
            }),
            "bytes" => {
                let n: usize = query(&path, "n").and_then(|v| v.parse().ok()).unwrap_or(0);
                respond(out, 200, |w| {
                    let chunk = vec![b'x'; 64 << 10];
                    let mut left = n;
                    while left > 0 {
                        let take = left.min(chunk.len());
                        w(&chunk[..take]);
                        left -= take;
                    }
                })
            }
            "sleep" => {
                wasi::clocks::monotonic_clock::subscribe_duration(10_000_000_000).block();
                respond(out, 200, |w| w(b"woke"))
            }
            "spin" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "fetch" => {
                let url = query(&path, "url").unwrap_or_default().to_owned();
                let answer = fetch(&url);
                respond(out, 200, |w| w(answer.as_bytes()))
            }
            "verge" => {
                let greeting =
                    verge_sdk::config::get("greeting").unwrap_or_else(|| "<unset>".into());
                let count = verge_sdk::kv::Store::open("data")
                    .and_then(|store| store.increment("hits", 1))
                    .map_or_else(|err| format!("kv error {err:?}"), |n| n.to_string());
                respond(out, 200, |w| {
                    w(format!("greeting={greeting} hits={count}").as_bytes())
                })
            }
            "fanout" | "upload" | "download" => {
                let answer = outbound(&route, &path);
                respond(out, 200, |w| w(answer.as_bytes()))
            }
            _ => respond(out, 404, |w| w(b"no such route")),
        }
    }
}
