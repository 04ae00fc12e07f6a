//! The Wasm runtime: one engine per process, one compiled component and one
//! `InstancePre` per deployed version, one fresh `Store` per request.

mod after_response;
pub mod compile;
mod engine;
mod error;
mod instance;
pub mod lane;
mod limits;
mod proxy;
mod state;
mod streaming;

pub use crate::capabilities::bindings::http_types::{
    Request as GuestRequest, Response as GuestResponse,
};
pub use engine::{EngineSettings, Runtime};
pub use error::{GuestError, LoadError};
pub use instance::{DEADLINE_SLACK, Function, PROXY_WORLD, Usage, VERGE_WORLD};
pub use limits::{
    DEFAULT_FUEL, DEFAULT_INSTANCES, DEFAULT_MEMORY_BYTES, DEFAULT_TABLE_ELEMENTS,
    DEFAULT_WALL_CLOCK, EPOCH_TICK, FUEL_PER_CPU_MS, FUEL_YIELD_INTERVAL, Limits,
};
pub use proxy::ProxyDone;
pub use state::RequestContext;
