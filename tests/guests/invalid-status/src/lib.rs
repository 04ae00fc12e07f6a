//! Returns status 42: must become 502 `bad-guest-response`.

use verge_sdk::{Request, Response};

#[verge_sdk::handler]
fn handle(_req: Request) -> Response {
    Response::new(42)
}
