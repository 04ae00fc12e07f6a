//! Sleeps (a host call, not a CPU loop) for `?ms=N` ms (default 60 s): past
//! the wall-clock limit it must become 504 `timeout`.

use std::time::Duration;
use verge_sdk::{Request, Response};

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let ms: u64 = req
        .query_param("ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(60_000);
    std::thread::sleep(Duration::from_millis(ms));
    Response::text(format!("slept {ms} ms"))
}
