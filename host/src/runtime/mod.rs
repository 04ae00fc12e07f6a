//! The Wasm runtime: one engine per process, one compiled component and one
//! `InstancePre` per deployed version, one fresh `Store` per request.

/// The generated `verge:edge` bindings; public for benchmarks that call host
/// functions directly.
#[doc(hidden)]
pub mod bindings;
pub mod compile;
mod engine;
mod error;
mod instance;
pub mod lane;
mod limits;
mod proxy;
mod state;

pub use bindings::http_types::{Request as GuestRequest, Response as GuestResponse};
pub use engine::{EngineSettings, Runtime};
pub use error::{GuestError, LoadError};
pub use instance::{DEADLINE_SLACK, Function, PROXY_WORLD, RequestContext, Usage, VERGE_WORLD};
pub use limits::{
    DEFAULT_FUEL, DEFAULT_INSTANCES, DEFAULT_MEMORY_BYTES, DEFAULT_TABLE_ELEMENTS,
    DEFAULT_WALL_CLOCK, EPOCH_TICK, FUEL_PER_CPU_MS, FUEL_YIELD_INTERVAL, Limits,
};
pub use proxy::ProxyDone;
pub(crate) use state::RequestState;

/// The linker type every capability adds itself to.
pub(crate) type RequestStateLinker = wasmtime::component::Linker<RequestState>;
