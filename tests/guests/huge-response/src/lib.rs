//! Returns a body of `?mib=N` MiB (default 40): past the host's response
//! cap it must become 502 `bad-guest-response`.

use verge_sdk::{Request, Response};

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let mib: usize = req
        .query_param("mib")
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    Response::new(200).with_body(vec![b'x'; mib << 20])
}
