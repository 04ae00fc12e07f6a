//! Panics on every request: must become 500 `guest-error`, and the next
//! request to any app must still succeed.

use verge_sdk::{Request, Response};

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    panic!("the panics guest panicked on {}", req.path());
}
