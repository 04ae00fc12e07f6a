//! Responses that start before the handler returns, for end-to-end tests:
//! `/stream-probe?mode=MODE&...`.
//!
//! - `pass&url=URL`: passes URL's response through as it arrives.
//! - `head&url=URL&n=N`: reads only the first N bytes of URL's body and
//!   answers `status S first N bytes` (the rest is never downloaded).
//! - `ssr&n=N&ms=MS`: sends the head, then `chunk I\n` every MS ms, N times.
//! - `big&kb=N`: writes N KiB in 64 KiB chunks; answers the write error,
//!   if any, in the log.
//! - `trap`: writes `part`, then panics 50 ms later, mid-body.
//! - `plain`: returns `plain` without streaming.

use std::io::Read;
use std::time::Duration;
use verge_sdk::{Request, Response, fetch, log};

/// `value` with its `%XX` escapes decoded (the tests escape the `url`
/// parameter's own `?`, `&` and `=`).
fn decoded(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn number(req: &Request, name: &str, default: u64) -> u64 {
    req.query_param(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let url = decoded(req.query_param("url").unwrap_or_default());
    match req.query_param("mode").unwrap_or("plain") {
        "pass" => match fetch::get(url).start() {
            Ok(pending) => Response::from_stream(pending),
            Err(err) => Response::error(502, err.kind()),
        },
        "head" => {
            let n = number(&req, "n", 16) as usize;
            match fetch::get(url).start().and_then(fetch::Pending::wait_head) {
                Ok((head, mut body)) => {
                    let mut first = vec![0; n];
                    let mut got = 0;
                    while got < n {
                        match body.read(&mut first[got..]) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => got += k,
                        }
                    }
                    Response::text(format!("status {} first {got} bytes", head.status))
                }
                Err(err) => Response::error(502, err.kind()),
            }
        }
        "ssr" => {
            let (n, ms) = (number(&req, "n", 5), number(&req, "ms", 200));
            let Ok(mut page) = Response::text("").start_streaming() else {
                return Response::error(500, "could not stream");
            };
            for i in 0..n {
                if page.write_chunk(format!("chunk {i}\n").as_bytes()).is_err() {
                    break;
                }
                if i + 1 < n {
                    std::thread::sleep(Duration::from_millis(ms));
                }
            }
            Response::new(200)
        }
        "big" => {
            let kb = number(&req, "kb", 1024) as usize;
            let Ok(mut page) = Response::new(200).start_streaming() else {
                return Response::error(500, "could not stream");
            };
            let chunk = vec![b'x'; 64 << 10];
            let mut left = kb << 10;
            while left > 0 {
                let n = left.min(chunk.len());
                if let Err(err) = page.write_chunk(&chunk[..n]) {
                    log::warn(format!("write failed: {err}"));
                    break;
                }
                left -= n;
            }
            Response::new(200)
        }
        "trap" => {
            let Ok(mut page) = Response::text("").start_streaming() else {
                return Response::error(500, "could not stream");
            };
            let _ = page.write_chunk(b"part");
            // Long enough for the head and the first chunk to be on the wire.
            std::thread::sleep(Duration::from_millis(50));
            panic!("failed mid-body");
        }
        _ => Response::text("plain"),
    }
}
