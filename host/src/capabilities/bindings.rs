//! The one `bindgen!` for the `verge:edge/function` world.
//!
//! Imports are trappable: a guest mistake comes back as a WIT value, a host
//! failure traps. Those that wait on I/O (kv, fetch, cache) are async, so
//! they never block a serving thread; the rest are sync, the default, so a
//! new interface that does not wait needs no line here. (All-async imports
//! cost the SDK hello 3% of its requests/s, measured against sync in one
//! `--bench load` run with `VERGE_BENCH_AGAINST`.) Exports are async so a
//! guest that waits on a host call yields its thread.

#![allow(missing_docs, reason = "generated code")]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "verge:edge/function",
    imports: {
        "verge:edge/kv": async | trappable,
        "verge:edge/fetch": async | trappable,
        "verge:edge/cache": async | trappable,
        "verge:edge/respond": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "verge:edge/kv.store": crate::capabilities::kv::KvStore,
        "verge:edge/fetch.pending": crate::capabilities::fetch::PendingFetch,
        "verge:edge/fetch.body": crate::capabilities::fetch::OriginBody,
        "verge:edge/respond.body-writer": crate::capabilities::respond::BodyWriter,
    },
});

pub use self::verge::edge::http_types;
