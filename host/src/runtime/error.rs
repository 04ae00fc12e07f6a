//! What can go wrong loading a component or running a request.

use thiserror::Error;
use wasmtime::Trap;

/// Why a component was refused. The message is meant for the person who
/// deployed it.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The upload was empty.
    #[error("the file is empty")]
    Empty,
    /// A core module or something else that is not a component.
    #[error(
        "not a WebAssembly component (a core module or other bytes); build with `--target wasm32-wasip2`"
    )]
    NotAComponent,
    /// The component failed to parse or compile.
    #[error("the component does not compile: {0}")]
    Compile(String),
    /// An import this host does not provide.
    #[error("the component needs an import this host does not provide: {0}")]
    Link(String),
    /// It does not export `verge:edge/handler`.
    #[error("the component does not export verge:edge/handler: {0}")]
    Exports(String),
    /// A memory limit above the pool's slot size.
    #[error(
        "memory limit {requested} bytes is above the instance pool's slot size of {pool} bytes"
    )]
    LimitAbovePool {
        /// The limit asked for.
        requested: usize,
        /// The pool's slot size.
        pool: usize,
    },
    /// The compile ran past its budget and was stopped.
    #[error("the component took longer than the {0:?} compile budget and was stopped")]
    CompileBudget(std::time::Duration),
    /// The engine itself could not be built (a host problem).
    #[error("could not build the wasm engine: {0}")]
    Engine(String),
}

impl LoadError {
    pub(crate) fn compile(err: wasmtime::Error) -> Self {
        Self::Compile(format!("{err:#}"))
    }
    pub(crate) fn link(err: wasmtime::Error) -> Self {
        Self::Link(format!("{err:#}"))
    }
    pub(crate) fn exports(err: wasmtime::Error) -> Self {
        Self::Exports(format!("{err:#}"))
    }
    pub(crate) fn engine(err: wasmtime::Error) -> Self {
        Self::Engine(format!("{err:#}"))
    }
}

/// Why a request did not produce a guest response.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GuestError {
    /// The guest used up its fuel.
    #[error("the function used up its CPU budget")]
    CpuLimit,
    /// The guest asked for more memory than its cap and then failed.
    #[error("the function exceeded its memory limit")]
    MemoryLimit,
    /// The wall-clock deadline passed.
    #[error("the function exceeded its wall-clock deadline")]
    Timeout,
    /// The guest trapped (panic, unreachable, stack overflow, ...).
    #[error("the function failed: {0}")]
    Trap(String),
    /// Instantiation failed for a host-side reason (e.g. the pool is full).
    #[error("could not start the function: {0}")]
    Instantiate(String),
}

impl GuestError {
    /// A short stable name, for metrics: `cpu-limit`, `memory-limit`,
    /// `timeout`, `trap` or `instantiate`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::CpuLimit => "cpu-limit",
            Self::MemoryLimit => "memory-limit",
            Self::Timeout => "timeout",
            Self::Trap(_) => "trap",
            Self::Instantiate(_) => "instantiate",
        }
    }
}

/// How a guest call failed: instantiating it, or the call itself.
pub(super) enum CallError {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
}

/// Maps a failed call to what the client is told. A trap after a refused
/// memory growth is the memory limit (the guest's allocator gives up).
pub(super) fn classify(err: &CallError, memory_denied: bool) -> GuestError {
    let err = match err {
        CallError::Instantiate(err) => {
            if let Some(trap) = err.downcast_ref::<Trap>() {
                return classify_trap(*trap, memory_denied, err);
            }
            let message = format!("{err:#}");
            // Past the table-element or instance limit: a resource limit
            // like memory, and reported as one.
            if memory_denied || message.contains("resource limit exceeded") {
                return GuestError::MemoryLimit;
            }
            return GuestError::Instantiate(message);
        }
        CallError::Call(err) => err,
    };
    match err.downcast_ref::<Trap>() {
        Some(trap) => classify_trap(*trap, memory_denied, err),
        None if memory_denied => GuestError::MemoryLimit,
        None => GuestError::Trap(format!("{err:#}")),
    }
}

fn classify_trap(trap: Trap, memory_denied: bool, err: &wasmtime::Error) -> GuestError {
    match trap {
        Trap::OutOfFuel => GuestError::CpuLimit,
        Trap::Interrupt => GuestError::Timeout,
        _ if memory_denied => GuestError::MemoryLimit,
        _ => GuestError::Trap(format!("{err:#}")),
    }
}
