//! Allocates 1 MiB at a time forever, touching one byte per page (so the
//! allocation is real but cheap in CPU): must end in 503 `memory-limit`,
//! not `cpu-limit`.

use verge_sdk::{Request, Response};

#[verge_sdk::handler]
fn handle(_req: Request) -> Response {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk: Vec<u8> = Vec::with_capacity(1 << 20);
        for offset in (0..1 << 20).step_by(4096) {
            chunk.push(std::hint::black_box(offset as u8));
        }
        hoard.push(chunk);
        std::hint::black_box(&hoard);
    }
}
