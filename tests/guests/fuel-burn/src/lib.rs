//! Does a fixed amount of representative CPU work, chosen by `?work=` and
//! sized by `?n=`: `hash` (FNV-1a over a buffer), `sort` (allocate and sort
//! integers), `text` (format and parse numbers). Used to calibrate fuel per
//! millisecond of CPU and to price fuel metering.

use verge_sdk::{Request, Response};

fn hash(n: u64) -> u64 {
    let buf: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
    let mut h: u64 = 0xcbf29ce484222325;
    for _ in 0..n {
        for &b in &buf {
            h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
    }
    h
}

fn sort(n: u64) -> u64 {
    let mut acc = 0;
    for round in 0..n {
        let mut v: Vec<u64> = (0..1000u64).map(|i| (i * 7919 + round) % 1009).collect();
        v.sort_unstable();
        acc ^= v[500];
    }
    acc
}

fn text(n: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..n * 100 {
        let s = format!("{}-{}", i, i * 3);
        let (a, b) = s.split_once('-').unwrap_or(("0", "0"));
        acc = acc.wrapping_add(a.parse::<u64>().unwrap_or(0) + b.parse::<u64>().unwrap_or(0));
    }
    acc
}

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    let n: u64 = req
        .query_param("n")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let result = match req.query_param("work").unwrap_or("hash") {
        "hash" => hash(n),
        "sort" => sort(n),
        "text" => text(n),
        other => return Response::error(400, format!("unknown work {other}")),
    };
    Response::text(format!("{}", std::hint::black_box(result)))
}
