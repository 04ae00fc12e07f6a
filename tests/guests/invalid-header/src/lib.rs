//! Returns a header whose name is not a token: must become 502.

use verge_sdk::{Request, Response};

#[verge_sdk::handler]
fn handle(_req: Request) -> Response {
    Response::text("bad").with_header("bad header", "x")
}
