//! Tests at each guest limit: exactly at it succeeds, just past it fails
//! with the documented error.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use verge::capabilities::{config::ConfigCtx, log::LogCtx};
use verge::runtime::{
    EngineSettings, FUEL_PER_CPU_MS, GuestError, GuestRequest, Limits, RequestContext, Runtime,
};
use verge_tests::{Setup, TestServer, guest};

fn request(uri: &str) -> GuestRequest {
    GuestRequest {
        method: "GET".into(),
        uri: uri.into(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

fn ctx() -> RequestContext {
    RequestContext::new(ConfigCtx::default(), LogCtx::new("t".into(), "t".into()))
}

#[tokio::test(flavor = "multi_thread")]
async fn fuel_exactly_at_the_need_succeeds_and_a_block_less_is_cpu_limit() {
    let settings = EngineSettings {
        pool_instances: 4,
        ..EngineSettings::default()
    };
    let runtime = Runtime::new(settings).unwrap();
    let bytes = std::fs::read(guest("fuel-burn")).unwrap();
    let uri = "http://t/fuel-burn?work=hash&n=20";
    let generous = Limits {
        fuel: 1_000 * FUEL_PER_CPU_MS,
        ..Limits::default()
    };
    let probe = runtime.load("fuel-burn", &bytes, generous).unwrap();
    let (result, usage) = probe.handle(request(uri), ctx()).await;
    assert_eq!(result.unwrap().status, 200);
    let need = usage.fuel;
    assert!(
        need > 20 * 4096,
        "the hash loop burns at least one unit per byte: {need}"
    );

    let exact = runtime
        .load(
            "fuel-burn",
            &bytes,
            Limits {
                fuel: need,
                ..generous
            },
        )
        .unwrap();
    let (result, usage) = exact.handle(request(uri), ctx()).await;
    assert_eq!(result.unwrap().status, 200, "exactly the fuel it needs");
    assert_eq!(usage.fuel, need, "fuel use is deterministic");

    // Fuel is checked at function entries and loop back-edges, so the last
    // straight-line block may overrun by its length: "just past" the need is
    // one loop iteration's worth short, not a single unit.
    let short = runtime
        .load(
            "fuel-burn",
            &bytes,
            Limits {
                fuel: need - 1_000,
                ..generous
            },
        )
        .unwrap();
    let (result, _) = short.handle(request(uri), ctx()).await;
    assert_eq!(
        result.unwrap_err(),
        GuestError::CpuLimit,
        "1,000 units short"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_metering_the_same_work_succeeds_and_reports_no_fuel() {
    let settings = EngineSettings {
        pool_instances: 4,
        metering: false,
        ..EngineSettings::default()
    };
    let runtime = Runtime::new(settings).unwrap();
    let bytes = std::fs::read(guest("fuel-burn")).unwrap();
    let function = runtime
        .load(
            "fuel-burn",
            &bytes,
            Limits {
                fuel: 1,
                ..Limits::default()
            },
        )
        .unwrap();
    let (result, usage) = function
        .handle(request("http://t/?work=sort&n=5"), ctx())
        .await;
    assert_eq!(result.unwrap().status, 200);
    assert_eq!(usage.fuel, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn fuel_burn_serves_every_work_kind_over_http() {
    let server = TestServer::start_with(&["fuel-burn"], Setup::default()).await;
    for work in ["hash", "sort", "text"] {
        let reply = server.get(&format!("/fuel-burn?work={work}&n=2")).await;
        assert_eq!(reply.status, 200, "{work}: {}", reply.text());
    }
    let reply = server.get("/fuel-burn?work=nope").await;
    assert_eq!(reply.status, 400);
    server.shutdown().await;
}

#[test]
fn a_memory_limit_above_the_pool_slot_is_refused_at_load() {
    let settings = EngineSettings {
        pool_instances: 2,
        max_memory_bytes: 64 << 20,
        ..EngineSettings::default()
    };
    let runtime = Runtime::new(settings).unwrap();
    let bytes = std::fs::read(guest("hello")).unwrap();
    let at = Limits {
        memory_bytes: 64 << 20,
        ..Limits::default()
    };
    assert!(runtime.load("hello", &bytes, at).is_ok());
    let past = Limits {
        memory_bytes: (64 << 20) + 65536,
        ..Limits::default()
    };
    let err = runtime.load("hello", &bytes, past).err().unwrap();
    assert!(err.to_string().contains("slot size"), "{err}");
}

#[test]
fn garbage_empty_and_core_modules_are_refused_with_the_reason() {
    let runtime = Runtime::new(EngineSettings {
        pool_instances: 2,
        ..EngineSettings::default()
    })
    .unwrap();
    let cases: [(&[u8], &str); 3] = [
        (b"", "empty"),
        (b"not wasm at all", "not a WebAssembly component"),
        (b"\0asm\x01\0\0\0", "not a WebAssembly component"),
    ];
    for (bytes, reason) in cases {
        let err = runtime.load("x", bytes, Limits::default()).err().unwrap();
        assert!(err.to_string().contains(reason), "{err}");
    }
    // A component header with a broken body fails to compile, with the reason.
    let err = runtime
        .load("x", b"\0asm\x0d\0\x01\0\xff\xff", Limits::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("does not compile"), "{err}");
}

/// The smallest value of a limit the hello function runs under, found by
/// bisection, and what one less gives.
async fn edge_of(set: impl Fn(&mut Limits, usize)) -> (usize, Result<u16, GuestError>) {
    let runtime = Runtime::new(EngineSettings {
        pool_instances: 4,
        ..EngineSettings::default()
    })
    .unwrap();
    let component = runtime
        .compile(&std::fs::read(guest("hello")).unwrap())
        .unwrap();
    let run = |value: usize| {
        let mut limits = Limits::default();
        set(&mut limits, value);
        let function = runtime.prepare("hello", component.clone(), limits).unwrap();
        async move {
            let (result, _) = function.handle(request("http://t/"), ctx()).await;
            result.map(|r| r.status)
        }
    };
    let (mut low, mut high) = (0, 20_000);
    assert_eq!(run(high).await.unwrap(), 200);
    while low + 1 < high {
        let mid = (low + high) / 2;
        if run(mid).await.is_ok() {
            high = mid;
        } else {
            low = mid;
        }
    }
    (high, run(high - 1).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn table_elements_at_the_need_succeed_and_one_less_is_memory_limit() {
    let (need, past) = edge_of(|l, v| l.table_elements = v).await;
    assert!(need > 0 && need < verge::runtime::DEFAULT_TABLE_ELEMENTS);
    assert!(matches!(past, Err(GuestError::MemoryLimit)), "{past:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_at_the_need_succeed_and_one_less_is_memory_limit() {
    let (need, past) = edge_of(|l, v| l.instances = v).await;
    assert!(
        need > 0 && need <= verge::runtime::DEFAULT_INSTANCES,
        "{need}"
    );
    assert!(matches!(past, Err(GuestError::MemoryLimit)), "{past:?}");
}
