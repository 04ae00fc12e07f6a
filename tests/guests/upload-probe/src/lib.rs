//! Reads its request body as a stream (`Request::body_stream`), for
//! end-to-end tests: `/upload-probe?mode=MODE`.
//!
//! - `count`: reads every chunk; answers `N bytes` and whether the
//!   buffered body was empty (`buffered 0`), or `error KIND after N bytes`.
//! - `first`: reads one chunk and answers `first N bytes` at once, without
//!   waiting for the rest.

use verge_sdk::{Request, Response};

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let Some(mut body) = req.body_stream() else {
        return Response::error(500, "no body stream");
    };
    // What the host buffered: nothing (`body()` after the stream was taken
    // reads nothing more).
    let buffered = req.body().len();
    if req.body_stream().is_some() {
        return Response::error(500, "the body was handed out twice");
    }
    match req.query_param("mode").unwrap_or("count") {
        "first" => match body.read_chunk(64 << 10) {
            Ok(Some(chunk)) => Response::text(format!("first {} bytes", chunk.len())),
            Ok(None) => Response::text("empty"),
            Err(err) => Response::text(format!("error {}", err.kind())),
        },
        _ => {
            let mut total = 0;
            loop {
                match body.read_chunk(64 << 10) {
                    Ok(Some(chunk)) => total += chunk.len(),
                    Ok(None) => {
                        return Response::text(format!("{total} bytes buffered {buffered}"));
                    }
                    Err(err) => {
                        return Response::text(format!("error {} after {total} bytes", err.kind()));
                    }
                }
            }
        }
    }
}
