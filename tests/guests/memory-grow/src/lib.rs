//! Grows linear memory to exactly `?pages=N` 64 KiB pages with
//! `memory.grow`, for tests at the memory limit. Answers the final size.

use verge_sdk::{Request, Response};

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let target: usize = req
        .query_param("pages")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let current = core::arch::wasm32::memory_size(0);
    if target > current {
        let previous = core::arch::wasm32::memory_grow(0, target - current);
        if previous == usize::MAX {
            // Refused by the host: give up the way an allocator would.
            std::process::abort();
        }
    }
    Response::text(format!("pages={}", core::arch::wasm32::memory_size(0)))
}
