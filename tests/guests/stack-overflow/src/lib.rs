//! Recurses without bound: must become 500 `guest-error`.

use verge_sdk::{Request, Response};

fn depth(n: u64, pad: &mut [u8; 256]) -> u64 {
    if n == u64::MAX {
        return 0;
    }
    pad[(n % 256) as usize] = n as u8;
    1 + depth(std::hint::black_box(n + 1), &mut std::hint::black_box(*pad))
}

#[verge_sdk::handler]
fn handle(_req: Request) -> Response {
    let mut pad = [0u8; 256];
    Response::text(format!("{}", depth(0, &mut pad)))
}
