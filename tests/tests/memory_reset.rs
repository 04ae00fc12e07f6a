//! A reused pool slot holds nothing of the request before: each way the
//! pool can reset memory (the kernel's list of dirtied pages, the fixed low
//! range, nothing kept resident, a large keep-resident ceiling) gives every
//! request the answer a fresh instance gives. The `leak-probe` guest dirties
//! one byte in every page of a 2 MiB static array and a 1 MiB heap buffer,
//! past the 256 KiB ceiling, and reports what it finds first.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use verge::capabilities::{config::ConfigCtx, log::LogCtx};
use verge::runtime::{EngineSettings, GuestRequest, Limits, RequestContext, Runtime};
use verge_tests::guest;

fn request() -> GuestRequest {
    GuestRequest {
        method: "GET".into(),
        uri: "http://t/".into(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

fn ctx() -> RequestContext {
    RequestContext::new(ConfigCtx::default(), LogCtx::new("t".into(), "t".into()))
}

async fn answers(settings: EngineSettings, sequential: usize, concurrent: bool) -> Vec<String> {
    let runtime = Runtime::new(settings).unwrap();
    assert!(runtime.is_pooling(), "the pool is what reuses slots");
    let bytes = std::fs::read(guest("leak-probe")).unwrap();
    let probe = runtime
        .load("leak-probe", &bytes, Limits::default())
        .unwrap();
    let mut out = Vec::new();
    for _ in 0..sequential {
        let (result, _) = probe.handle(request(), ctx()).await;
        out.push(String::from_utf8(result.unwrap().body).unwrap());
    }
    if !concurrent {
        return out;
    }
    // Four at once, interleaving at their fuel yields over four slots.
    let (a, b, c, d) = tokio::join!(
        probe.handle(request(), ctx()),
        probe.handle(request(), ctx()),
        probe.handle(request(), ctx()),
        probe.handle(request(), ctx()),
    );
    for (result, _) in [a, b, c, d] {
        out.push(String::from_utf8(result.unwrap().body).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_reset_strategy_gives_each_request_a_fresh_instance() {
    let strategies = [
        ("dirtied pages, 256 KiB", true, 256 << 10),
        ("dirtied pages, 64 MiB", true, 64 << 20),
        ("low range, 256 KiB", false, 256 << 10),
        ("nothing kept", false, 0),
    ];
    for (name, pagemap_scan, keep_resident_bytes) in strategies {
        // One slot: every request reuses the one the previous one dirtied.
        let one_slot = EngineSettings {
            pool_instances: 1,
            pagemap_scan,
            keep_resident_bytes,
            ..EngineSettings::default()
        };
        let seen = answers(one_slot, 12, false).await;
        assert!(
            seen[0].starts_with("counter=1 dirty_static=0 "),
            "{name}: {}",
            seen[0]
        );
        assert!(seen.iter().all(|a| *a == seen[0]), "{name}: {seen:?}");
        let four_slots = EngineSettings {
            pool_instances: 4,
            ..one_slot
        };
        let seen = answers(four_slots, 4, true).await;
        assert!(seen.iter().all(|a| *a == seen[0]), "{name}: {seen:?}");
    }
}
