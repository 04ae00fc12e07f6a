//! Spins forever: must end in 503 `cpu-limit`, never hang the host.

use verge_sdk::{Request, Response};

#[verge_sdk::handler]
fn handle(_req: Request) -> Response {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        if x == 0 {
            break;
        }
    }
    Response::text(format!("{x}"))
}
