//! The pace at which a tenant may use the shared Redis, per node: a token
//! bucket per tenant, for the bytes it writes and for the index entries
//! its `list` calls examine. Redis runs one command at a time, so a tenant
//! writing 25 MiB values back to back (each copied into the script, the
//! hash and, with `appendfsync always`, fsynced before Redis answers)
//! holds every other tenant's calls and the control plane's behind it:
//! four such writers made a neighbour's reads fail 35 times in 44.

use super::super::KvError;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Bytes per second one tenant may write to Redis through one node: a
/// 25 MiB value every ~3 s, far above what a function's counters and
/// sessions need, far below what stalls the shared Redis (a 25 MiB write
/// holds it for tens of milliseconds). A fleet of N nodes allows N times
/// this.
pub const REDIS_TENANT_WRITE_BYTES_PER_SECOND: u64 = 8 << 20;

/// Bytes a tenant may write at once before the pace applies: two of the
/// largest values, so an import or a large value is never refused on its
/// own.
pub const REDIS_TENANT_WRITE_BURST_BYTES: u64 = 2 * super::super::MAX_VALUE_BYTES as u64;

/// Index entries one tenant's `list` calls may examine per second through
/// one node (after a burst of as many): ten full pages a second. Each entry
/// costs about a microsecond of Redis's one thread, so five callers
/// listing over a million expired entries back to back held a neighbour's
/// gets at a p99 of 14 ms; paced, a tenant's lists take about 1 % of
/// Redis per node.
pub const REDIS_TENANT_LIST_ENTRIES_PER_SECOND: u64 = 10_000;

/// Tenants whose buckets one node remembers; the idlest are forgotten
/// first (a forgotten bucket starts full again, which only forgives).
const MAX_PACED_TENANTS: u64 = 100_000;

/// A bucket idle this long is full again anyway, so it can go.
const BUCKET_IDLE: Duration =
    Duration::from_secs(REDIS_TENANT_WRITE_BURST_BYTES / REDIS_TENANT_WRITE_BYTES_PER_SECOND + 1);

/// One tenant's allowance (bytes or entries).
#[derive(Debug)]
struct Bucket {
    allowance: f64,
    at: Instant,
}

/// Every tenant's allowance of one kind of work on this node.
pub struct Pace {
    buckets: moka::sync::Cache<String, Arc<Mutex<Bucket>>>,
    rate: f64,
    burst: f64,
    /// What is paced, for refusals ("bytes written", "entries listed").
    what: &'static str,
}

impl Default for Pace {
    fn default() -> Self {
        Self::new(
            REDIS_TENANT_WRITE_BYTES_PER_SECOND,
            REDIS_TENANT_WRITE_BURST_BYTES,
        )
    }
}

impl Pace {
    /// `rate` bytes per second, `burst` at once.
    pub fn new(rate: u64, burst: u64) -> Self {
        Self {
            buckets: moka::sync::Cache::builder()
                .max_capacity(MAX_PACED_TENANTS)
                .time_to_idle(BUCKET_IDLE)
                .build(),
            rate: rate as f64,
            burst: burst as f64,
            what: "bytes written",
        }
    }

    /// The pace of `list` work: [`REDIS_TENANT_LIST_ENTRIES_PER_SECOND`].
    pub fn lists() -> Self {
        Self {
            what: "index entries listed",
            ..Self::new(
                REDIS_TENANT_LIST_ENTRIES_PER_SECOND,
                REDIS_TENANT_LIST_ENTRIES_PER_SECOND,
            )
        }
    }

    /// Gives `amount` back to `tenant`'s allowance (taken for work that
    /// turned out smaller), up to its burst.
    pub fn give_back(&self, tenant: &str, amount: usize) {
        if let Some(bucket) = self.buckets.get(tenant) {
            let mut bucket = bucket.lock().unwrap_or_else(PoisonError::into_inner);
            bucket.allowance = (bucket.allowance + amount as f64).min(self.burst);
        }
    }

    /// Takes `bytes` from `tenant`'s allowance at `now`, or says how long
    /// to wait (nothing is taken then).
    pub fn take(&self, tenant: &str, bytes: usize, now: Instant) -> Result<(), KvError> {
        if bytes == 0 {
            return Ok(());
        }
        let burst = self.burst;
        let bucket = self.buckets.get_with_by_ref(tenant, || {
            Arc::new(Mutex::new(Bucket {
                allowance: burst,
                at: now,
            }))
        });
        let mut bucket = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.allowance = (bucket.allowance + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        // A write larger than the burst (a big import) passes on a full
        // bucket and leaves it in debt, so it is paced, never refused for
        // good.
        let needed = (bytes as f64).min(self.burst);
        if needed <= bucket.allowance {
            bucket.allowance -= bytes as f64;
            return Ok(());
        }
        let wait_ms = ((needed - bucket.allowance) / self.rate * 1000.0).ceil();
        Err(KvError::RateLimited(format!(
            "{bytes} {} now would pass {} per second per node (bursts of {}); retry in {wait_ms} ms",
            self.what, self.rate as u64, self.burst as u64,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_writes_its_burst_then_at_the_rate_and_others_are_untouched() {
        let pace = Pace::new(1000, 4000);
        let start = Instant::now();
        // At the burst: taken whole.
        assert!(pace.take("a", 4000, start).is_ok());
        // One byte past it: refused, with the wait.
        let Err(KvError::RateLimited(why)) = pace.take("a", 1, start) else {
            panic!("past the burst must be refused");
        };
        assert!(
            why.contains("retry in 1 ms") && why.contains("bytes written"),
            "{why}"
        );
        // Another tenant has its own bucket.
        assert!(pace.take("b", 4000, start).is_ok());
        // Half a second refills 500 bytes: 500 pass, 501 do not.
        let later = start + Duration::from_millis(500);
        assert!(pace.take("a", 501, later).is_err());
        assert!(pace.take("a", 500, later).is_ok());
    }

    #[test]
    fn a_write_larger_than_the_burst_passes_on_a_full_bucket_and_leaves_a_debt() {
        let pace = Pace::new(1000, 4000);
        let start = Instant::now();
        assert!(pace.take("a", 10_000, start).is_ok());
        // 6,000 bytes of debt, then a 1,000-byte write: 7 s away.
        let Err(KvError::RateLimited(why)) = pace.take("a", 1000, start) else {
            panic!("a bucket in debt must refuse");
        };
        assert!(why.contains("retry in 7000 ms"), "{why}");
        assert!(pace.take("a", 1000, start + Duration::from_secs(7)).is_ok());
        let defaults = Pace::default();
        // The largest value passes at once, twice.
        let max = super::super::super::MAX_VALUE_BYTES;
        assert!(defaults.take("t", max, start).is_ok());
        assert!(defaults.take("t", max, start).is_ok());
        assert!(defaults.take("t", max, start).is_err());
    }
}
