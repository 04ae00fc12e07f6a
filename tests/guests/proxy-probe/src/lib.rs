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

use std::io::Write as _;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam,
    Scheme,
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

fn fetch(url: &str) -> String {
    let Some(rest) = url.strip_prefix("http://") else {
        return "error bad url".into();
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(&path));
    match outgoing_handler::handle(request, None) {
        Err(code) => format!("error {code:?}"),
        Ok(future) => {
            future.subscribe().block();
            match future.get() {
                Some(Ok(Ok(response))) => format!("status {}", response.status()),
                Some(Ok(Err(code))) => format!("error {code:?}"),
                _ => "error no response".into(),
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
            _ => respond(out, 404, |w| w(b"no such route")),
        }
    }
}
