//! The smallest Verge function: says hello and echoes the path.

use verge_sdk::{Request, Response};

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    Response::text(format!("hello from verge {}\n", req.path()))
}
