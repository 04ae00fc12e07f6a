//! The process-wide wasmtime engine: pooling allocator, fuel, epochs, and
//! the linker every component is instantiated against.

use super::error::LoadError;
use super::instance::Function;
use super::limits::{DEFAULT_MEMORY_BYTES, EPOCH_TICK, Limits};
use super::state::RequestState;
use crate::capabilities;
use std::sync::Arc;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig,
};

/// Concurrent instances the pool holds by default: one per in-flight
/// request. 1,000 × (4 GiB reservation + guards) ≈ 4 TiB of address space,
/// well inside x86_64's 128 TiB; requests past it wait for admission.
pub const DEFAULT_POOL_INSTANCES: u32 = 1_000;

/// Linear memory kept resident (reset in place instead of `madvise`d away)
/// when a pool slot is reused. With the kernel's `PAGEMAP_SCAN` (Linux 6.7+,
/// [`EngineSettings::pagemap_scan`]) this is a ceiling on the pages the
/// instance actually dirtied, wherever they are, so a guest with Rust's
/// default 1 MiB stack (dirty pages at the top of its first megabyte) or a
/// 13 MB JavaScript engine is reset by what it touched, not by its layout.
/// Without the scan it is the low range that is `memset`. 256 KiB covers a
/// Rust hello's dirty set; more bought nothing measurable for the JS hello
/// (docs/performance.md) and costs RSS in every warm slot.
pub const DEFAULT_KEEP_RESIDENT_BYTES: usize = 256 << 10;

/// Core instances one component may hold in the pool. A Rust `wasm32-wasip2`
/// component needs 1-4 (the module plus shims); a `wasi:http/proxy` component
/// built by other toolchains a few more.
const POOL_CORE_INSTANCES_PER_COMPONENT: u32 = 16;

/// Linear memories one component may hold in the pool.
const POOL_MEMORIES_PER_COMPONENT: u32 = 2;

/// Tables one component may hold in the pool.
const POOL_TABLES_PER_COMPONENT: u32 = 8;

/// How the engine is built. Every field has a documented default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineSettings {
    /// Instance slots in the pooling allocator (concurrent requests).
    pub pool_instances: u32,
    /// Largest linear memory any guest may have: the pool's slot size.
    pub max_memory_bytes: usize,
    /// Linear memory kept resident when a slot is reused.
    pub keep_resident_bytes: usize,
    /// Use the pooling allocator (falls back to on-demand when the address
    /// space cannot be reserved).
    pub pooling: bool,
    /// Meter fuel (the CPU limit). Off only for measuring what metering
    /// costs: without it a guest's CPU is bounded by the wall clock alone.
    pub metering: bool,
    /// Ask the kernel which pages an instance dirtied (`PAGEMAP_SCAN`) and
    /// reset only those; wasmtime falls back to the fixed low range where
    /// the kernel lacks it.
    #[serde(default = "default_pagemap_scan")]
    pub pagemap_scan: bool,
}

fn default_pagemap_scan() -> bool {
    true
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            pool_instances: DEFAULT_POOL_INSTANCES,
            max_memory_bytes: DEFAULT_MEMORY_BYTES,
            keep_resident_bytes: DEFAULT_KEEP_RESIDENT_BYTES,
            pooling: true,
            metering: true,
            pagemap_scan: true,
        }
    }
}

/// The engine, its linker and the epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<RequestState>>,
    pooling: bool,
    settings: EngineSettings,
    worker: Option<CompileWorker>,
}

impl Runtime {
    /// Instances the pool holds (the admission cap's size).
    pub fn pool_instances(&self) -> u32 {
        self.settings.pool_instances.max(1)
    }

    /// Builds the engine. With `settings.pooling`, tries the pooling
    /// allocator first and falls back to on-demand allocation with a warning
    /// when the address space cannot be reserved (e.g. under `ulimit -v`).
    pub fn new(mut settings: EngineSettings) -> Result<Self, LoadError> {
        // Decided once, here: the compile worker gets these settings as
        // they are, and builds its engine without looking again.
        if settings.pagemap_scan && swap_is_active() {
            settings.pagemap_scan = false;
        }
        let (engine, pooling) = if settings.pooling {
            match Engine::new(&engine_config(&settings, true)) {
                Ok(engine) => (engine, true),
                Err(err) => {
                    tracing::warn!(
                        error = %err,
                        "pooling allocator unavailable, falling back to on-demand instance allocation"
                    );
                    (
                        Engine::new(&engine_config(&settings, false)).map_err(LoadError::engine)?,
                        false,
                    )
                }
            }
        } else {
            (
                Engine::new(&engine_config(&settings, false)).map_err(LoadError::engine)?,
                false,
            )
        };
        spawn_epoch_ticker(engine.weak());
        let linker = build_linker(&engine).map_err(LoadError::engine)?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            pooling,
            settings,
            worker: None,
        })
    }

    /// Compiles uploads in `worker` processes (see [`super::compile`]).
    pub fn with_compile_worker(mut self, worker: Option<CompileWorker>) -> Self {
        self.worker = worker;
        self
    }

    /// Where uploads are compiled, if not in this process.
    pub fn compile_worker(&self) -> Option<&CompileWorker> {
        self.worker.as_ref()
    }

    /// The cheap checks before a compile: not empty, a component.
    pub fn check_component(&self, bytes: &[u8]) -> Result<(), LoadError> {
        if bytes.is_empty() {
            return Err(LoadError::Empty);
        }
        if !wasmparser_is_component(bytes) {
            return Err(LoadError::NotAComponent);
        }
        Ok(())
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether instances come from the pooling allocator.
    pub fn is_pooling(&self) -> bool {
        self.pooling
    }

    /// The settings the engine was built with.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Compiles and validates a component: it must be a component (not a
    /// core module), every import must be one this host provides, and it must
    /// export `verge:edge/handler`.
    pub fn load(&self, name: &str, bytes: &[u8], limits: Limits) -> Result<Function, LoadError> {
        let component = self.compile(bytes)?;
        self.prepare(name, component, limits)
    }

    /// Compiles component bytes (without linking them).
    pub fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        self.check_component(bytes)?;
        Component::new(&self.engine, bytes).map_err(LoadError::compile)
    }

    /// Loads an artifact written by `Component::serialize` on an engine with
    /// the same [`Runtime::engine_key`]. wasmtime checks the artifact's
    /// engine compatibility itself and refuses a mismatch.
    pub fn deserialize(&self, path: &std::path::Path) -> Result<Component, LoadError> {
        // SAFETY: the artifact was produced by `Component::serialize` in this
        // daemon's own data dir (mode 0700, written atomically) and is only
        // read back on an engine whose key matches its file name.
        #[allow(
            unsafe_code,
            reason = "loading our own AOT artifacts is wasmtime's unsafe API"
        )]
        let component = unsafe { Component::deserialize_file(&self.engine, path) };
        component.map_err(LoadError::compile)
    }

    /// Loads an artifact our own compile worker (or this process) wrote
    /// with `Component::serialize`; wasmtime refuses one of another engine.
    pub fn deserialize_bytes(&self, artifact: &[u8]) -> Result<Component, LoadError> {
        // SAFETY: the bytes come from `Component::serialize` in a
        // `verge compile-worker` child of this daemon (or this process),
        // over a pipe no one else can write to.
        #[allow(
            unsafe_code,
            reason = "loading our own AOT artifacts is wasmtime's unsafe API"
        )]
        let component = unsafe { Component::deserialize(&self.engine, artifact) };
        component.map_err(LoadError::compile)
    }

    /// Loads the artifact just written to `path` (its bytes are
    /// `artifact`) from the file, so its code and memory images are mapped
    /// from disk rather than held as private copies: a 13 MB JavaScript
    /// component's ~45 MB of compiled code stays out of the daemon's
    /// anonymous memory, exactly as on a restart. Falls back to the bytes if
    /// the file cannot be loaded.
    pub fn deserialize_kept(
        &self,
        path: &std::path::Path,
        artifact: &[u8],
    ) -> Result<Component, LoadError> {
        self.deserialize(path).or_else(|err| {
            tracing::warn!(error = %err, file = %path.display(), "could not map a freshly written artifact; loading it from memory");
            self.deserialize_bytes(artifact)
        })
    }

    /// A key that changes whenever compiled artifacts stop being loadable:
    /// the engine's compatibility hash (wasmtime version, target, settings).
    pub fn engine_key(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        self.settings.metering.hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    /// Links an already compiled component (see [`Runtime::load`]).
    pub fn prepare(
        &self,
        name: &str,
        component: Component,
        limits: Limits,
    ) -> Result<Function, LoadError> {
        if limits.memory_bytes > self.settings.max_memory_bytes {
            return Err(LoadError::LimitAbovePool {
                requested: limits.memory_bytes,
                pool: self.settings.max_memory_bytes,
            });
        }
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(LoadError::link)?;
        // A Verge function, else a standard `wasi:http/proxy` component.
        let pre = match super::instance::VergePre::new(&component, instance_pre.clone()) {
            Ok(pre) => super::instance::Pre::Verge(pre),
            Err(verge_err) => match wasmtime_wasi_http::p2::bindings::ProxyPre::new(instance_pre) {
                Ok(pre) => super::instance::Pre::Proxy(pre),
                Err(_) => return Err(LoadError::exports(verge_err)),
            },
        };
        Ok(Function::new(
            name,
            self.engine.clone(),
            pre,
            limits,
            self.settings.metering,
        ))
    }
}

/// The binary header of a component is `\0asm` followed by a layer of 1;
/// a core module has layer 0. Checked up front for a clearer error.
fn wasmparser_is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[0..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

pub(super) fn engine_config(settings: &EngineSettings, pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.consume_fuel(settings.metering);
    config.epoch_interruption(true);
    if pooling {
        let mut pool = PoolingAllocationConfig::new();
        let instances = settings.pool_instances.max(1);
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(POOL_CORE_INSTANCES_PER_COMPONENT))
            .max_core_instances_per_component(POOL_CORE_INSTANCES_PER_COMPONENT)
            .total_memories(instances.saturating_mul(POOL_MEMORIES_PER_COMPONENT))
            .max_memories_per_component(POOL_MEMORIES_PER_COMPONENT)
            .total_tables(instances.saturating_mul(POOL_TABLES_PER_COMPONENT))
            .max_tables_per_component(POOL_TABLES_PER_COMPONENT)
            .total_stacks(instances)
            .max_memory_size(settings.max_memory_bytes)
            .table_elements(super::limits::DEFAULT_TABLE_ELEMENTS)
            .linear_memory_keep_resident(settings.keep_resident_bytes)
            .table_keep_resident(settings.keep_resident_bytes)
            .pagemap_scan(if settings.pagemap_scan {
                Enabled::Auto
            } else {
                Enabled::No
            });
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Whether the kernel may swap guest memory out. wasmtime 48.0.10's reset by
/// dirtied pages (`PAGEMAP_SCAN`) looks only at pages that are present, so a
/// dirty page swapped out would keep one request's data for the next
/// (fixed in 48.0.11, which the registry does not serve whole yet;
/// `docs/operating.md`). With swap on, the pool resets the fixed low range
/// and decommits the rest instead: slower, never stale.
fn swap_is_active() -> bool {
    let active = std::fs::read_to_string("/proc/swaps").is_ok_and(|swaps| swaps_listed(&swaps));
    if active {
        tracing::warn!(
            "swap is on: the pool resets slots without PAGEMAP_SCAN (wasmtime 48.0.10 skips swapped-out pages)"
        );
    }
    active
}

/// `/proc/swaps` lists a device or file below its header line.
fn swaps_listed(proc_swaps: &str) -> bool {
    proc_swaps
        .lines()
        .skip(1)
        .any(|line| !line.trim().is_empty())
}

/// Links WASI (nothing inherited: see [`RequestState::new`]) and every
/// `verge:edge` interface the host provides.
fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<RequestState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    capabilities::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is
/// dropped, so wall-clock deadlines fire inside running guest code.
fn spawn_epoch_ticker(engine: EngineWeak) {
    let spawned = std::thread::Builder::new()
        .name("verge-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(err) = spawned {
        tracing::error!(error = %err, "could not start the epoch ticker; wall-clock limits fall back to timers");
    }
}

/// Where compiles run.
#[derive(Debug, Clone)]
pub struct CompileWorker {
    /// The `verge` binary to run as `verge compile-worker`.
    pub binary: std::path::PathBuf,
    /// Past this the child is killed.
    pub budget: std::time::Duration,
}

#[cfg(test)]
mod tests {
    use super::swaps_listed;

    #[test]
    fn swap_is_seen_only_when_proc_swaps_lists_a_device() {
        let header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        assert!(!swaps_listed(header));
        assert!(!swaps_listed(""));
        assert!(swaps_listed(&format!(
            "{header}/swapfile                               file\t\t1048572\t\t0\t\t-2\n"
        )));
    }
}
