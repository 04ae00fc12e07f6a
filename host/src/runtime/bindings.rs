//! The one `bindgen!` for the `verge:edge/function` world.
//!
//! Imports are synchronous and trappable: a guest mistake comes back as a WIT
//! value, a host failure traps. Exports are async so a guest that waits on a
//! host call never blocks a runtime thread.

#![allow(missing_docs, reason = "generated code")]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "verge:edge/function",
    imports: { default: trappable },
    exports: { default: async },
});

pub use self::verge::edge::http_types;
