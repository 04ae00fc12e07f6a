//! The one `bindgen!` for the `verge:edge/function` world.
//!
//! Every import is async, so a host call that waits on I/O never blocks a
//! serving thread and a new interface needs no line here, and trappable: a
//! guest mistake comes back as a WIT value, a host failure traps. Exports
//! are async so a guest that waits on a host call yields its thread.

#![allow(missing_docs, reason = "generated code")]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "verge:edge/function",
    imports: { default: async | trappable },
    exports: { default: async },
    with: { "verge:edge/kv.store": crate::capabilities::kv::KvStore },
});

pub use self::verge::edge::http_types;
