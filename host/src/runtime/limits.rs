//! Per-request resource limits and the store limiter that enforces memory.

use std::time::Duration;
use wasmtime::{ResourceLimiter, ResourceLimiterAsync, StoreLimits, StoreLimitsBuilder};

/// Fuel a guest burns per millisecond of CPU. Measured by
/// `cargo bench --bench fuel` on the reference machine (2-core x86_64 VM,
/// wasmtime 48): 8.9 M/ms hashing, 11.2 M/ms formatting and parsing text,
/// 18.9 M/ms sorting integers. 12 M is their geometric mean, so a 50 ms
/// budget buys 68 ms of hashing, 53 ms of text work or 32 ms of sorting.
/// See docs/performance.md.
pub const FUEL_PER_CPU_MS: u64 = 12_000_000;

/// CPU budget per request: 50 ms of CPU, the figure Workers and Fastly users
/// know. Past it the request ends with 503 `cpu-limit`.
pub const DEFAULT_FUEL: u64 = 50 * FUEL_PER_CPU_MS;

/// Wall-clock budget per request, including time spent waiting on host
/// calls. 30 s matches the platforms' default; past it → 504 `timeout`.
pub const DEFAULT_WALL_CLOCK: Duration = Duration::from_secs(30);

/// Linear memory cap per request: 128 MiB, as on Workers. Growth past it
/// fails inside the guest (which usually traps) → 503 `memory-limit`.
pub const DEFAULT_MEMORY_BYTES: usize = 128 << 20;

/// Table elements per table: generous for Rust guests (a few hundred
/// function-pointer entries) while bounding host memory per instance.
pub const DEFAULT_TABLE_ELEMENTS: usize = 20_000;

/// Core instances, tables and memories one component may create. A Rust
/// `wasm32-wasip2` component uses 1 memory and a handful of instances.
pub const DEFAULT_INSTANCES: usize = 32;

/// Fuel between cooperative yields to the async executor: ~0.1 ms of CPU,
/// so a CPU-bound guest cannot hold a worker thread for longer than that.
pub const FUEL_YIELD_INTERVAL: u64 = FUEL_PER_CPU_MS / 10;

/// How often the epoch ticker advances the engine epoch; the wall-clock
/// deadline is enforced to this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The limits one request runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel for the whole request.
    pub fuel: u64,
    /// Wall-clock deadline for the whole request.
    pub wall_clock: Duration,
    /// Linear memory cap in bytes.
    pub memory_bytes: usize,
    /// Elements per table.
    pub table_elements: usize,
    /// Core instances, tables and memories per component.
    pub instances: usize,
    /// Outbound fetches (redirects included) per request.
    pub max_subrequests: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: DEFAULT_FUEL,
            wall_clock: DEFAULT_WALL_CLOCK,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            table_elements: DEFAULT_TABLE_ELEMENTS,
            instances: DEFAULT_INSTANCES,
            max_subrequests: crate::capabilities::fetch::DEFAULT_MAX_SUBREQUESTS,
        }
    }
}

impl Limits {
    /// Epoch ticks until the wall-clock deadline, at least one.
    pub fn epoch_ticks(&self) -> u64 {
        let ticks = self.wall_clock.as_millis() / EPOCH_TICK.as_millis().max(1);
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }
}

/// Enforces [`Limits`] on one store and remembers whether it ever refused a
/// memory growth, so a later trap can be reported as `memory-limit`.
pub struct GuestLimiter {
    inner: StoreLimits,
    memory_cap: usize,
    /// Set when a memory growth past the cap was refused.
    pub memory_denied: bool,
    /// The largest linear memory size this store reached, in bytes.
    pub peak_memory: usize,
    grown_since_yield: usize,
    heavy: super::lane::HeavySignal,
}

/// Memory growth between two cooperative yields. Touching 1 MiB of fresh
/// pages costs ~0.1–0.3 ms of page faults that fuel does not see; small
/// guests (hello grows < 256 KiB) never pay for a yield.
pub const GROWTH_PER_YIELD: usize = 1 << 20;

impl GuestLimiter {
    /// A limiter for `limits` that fires `heavy` when linear memory grows
    /// past [`super::lane::HEAVY_MEMORY_BYTES`].
    pub fn new(limits: &Limits, heavy: super::lane::HeavySignal) -> Self {
        let inner = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .table_elements(limits.table_elements)
            .instances(limits.instances)
            .tables(limits.instances)
            .memories(limits.instances)
            .build();
        Self {
            inner,
            memory_cap: limits.memory_bytes,
            memory_denied: false,
            peak_memory: 0,
            grown_since_yield: 0,
            heavy,
        }
    }
}

/// Async so that memory growth is also a yield point (every
/// [`GROWTH_PER_YIELD`] bytes): the page faults that follow a growth cost CPU
/// that fuel does not meter, so a guest growing memory in a tight loop must
/// still let other requests run.
#[wasmtime_wasi::async_trait]
impl ResourceLimiterAsync for GuestLimiter {
    async fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grown_since_yield += desired.saturating_sub(current);
        if desired >= super::lane::HEAVY_MEMORY_BYTES && !self.heavy.fired() {
            // Yield at once, so the call moves to the background lane
            // before it touches that memory.
            self.heavy.fire();
            self.grown_since_yield = 0;
            tokio::task::yield_now().await;
        } else if self.grown_since_yield >= GROWTH_PER_YIELD {
            self.grown_since_yield = 0;
            tokio::task::yield_now().await;
        }
        let allowed =
            desired <= self.memory_cap && self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.peak_memory = self.peak_memory.max(desired);
        } else {
            self.memory_denied = true;
        }
        Ok(allowed)
    }

    async fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.table_growing(current, desired, maximum)?;
        if !allowed {
            self.memory_denied = true;
        }
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_growth_at_the_cap_is_allowed_and_past_it_is_refused() -> wasmtime::Result<()> {
        let limits = Limits {
            memory_bytes: 1 << 20,
            ..Limits::default()
        };
        let mut limiter = GuestLimiter::new(&limits, Default::default());
        assert!(limiter.memory_growing(0, 1 << 20, None).await?);
        assert!(!limiter.memory_denied);
        assert_eq!(limiter.peak_memory, 1 << 20);
        assert!(
            !limiter
                .memory_growing(1 << 20, (1 << 20) + 65536, None)
                .await?
        );
        assert!(limiter.memory_denied);
        Ok(())
    }

    #[test]
    fn wall_clock_maps_to_at_least_one_epoch_tick() {
        let mut limits = Limits::default();
        assert_eq!(limits.epoch_ticks(), 3000);
        limits.wall_clock = Duration::from_millis(1);
        assert_eq!(limits.epoch_ticks(), 1);
    }
}
