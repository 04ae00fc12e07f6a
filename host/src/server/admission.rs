//! The instance pool's admission: every guest call takes one of its
//! permits, after its app's and tenant's own (so a call waiting on its
//! tenant's cap holds nothing shared). A slice of the pool is kept for
//! tenants that hold little of it: a tenant flooding the pool up to its
//! cap, or several doing so at once, leaves room for a neighbour's next
//! request. (One tenant whose `wait_until` slept held the whole pool: every
//! other tenant got 500 `instantiate-failed` for 29 s.)

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The part of the pool only light tenants may take: an eighth, so that
/// however many tenants sit at their caps, a light tenant's requests find
/// a slot.
pub const POOL_RESERVE_DIVISOR: usize = 8;

/// A tenant holding at most this share of the pool (1/32 of it, and at
/// least 2 slots) counts as light and may use the reserve: a tenant with a
/// few requests in flight, not one holding tens.
pub const LIGHT_SHARE_DIVISOR: usize = 32;

/// The pool's permits: the shared part and the reserve.
#[derive(Debug)]
pub struct PoolAdmission {
    shared: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
    light: usize,
}

impl PoolAdmission {
    /// `pool` permits in all, an eighth of them in reserve.
    pub fn new(pool: usize) -> Self {
        let pool = pool.max(1);
        let reserve = pool / POOL_RESERVE_DIVISOR;
        Self {
            shared: Arc::new(Semaphore::new(pool - reserve)),
            reserve: Arc::new(Semaphore::new(reserve)),
            light: (pool / LIGHT_SHARE_DIVISOR).max(2),
        }
    }

    /// Whether a tenant holding `held` slots counts as light.
    pub fn is_light(&self, held: usize) -> bool {
        held <= self.light
    }

    /// A permit now, if one is free to a tenant this light (or not).
    pub fn try_admit(&self, light: bool) -> Option<OwnedSemaphorePermit> {
        self.shared.clone().try_acquire_owned().ok().or_else(|| {
            light
                .then(|| self.reserve.clone().try_acquire_owned().ok())
                .flatten()
        })
    }

    /// A permit by `deadline`: from the shared part, or, for a light
    /// tenant, from the reserve too. `None` when none came in time.
    pub async fn admit(&self, light: bool, deadline: Instant) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.shared.clone().try_acquire_owned() {
            return Some(permit);
        }
        if !light {
            return tokio::time::timeout_at(deadline, self.shared.clone().acquire_owned())
                .await
                .ok()?
                .ok();
        }
        if let Ok(permit) = self.reserve.clone().try_acquire_owned() {
            return Some(permit);
        }
        let either = async {
            tokio::select! {
                permit = self.shared.clone().acquire_owned() => permit.ok(),
                permit = self.reserve.clone().acquire_owned() => permit.ok(),
            }
        };
        tokio::time::timeout_at(deadline, either)
            .await
            .ok()
            .flatten()
    }

    /// Permits free now, both parts.
    pub fn available(&self) -> usize {
        self.shared.available_permits() + self.reserve.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_heavy_tenant_stops_at_the_shared_part_and_a_light_one_gets_the_reserve() {
        let pool = PoolAdmission::new(128);
        assert!(pool.is_light(4) && !pool.is_light(5));
        let soon = || Instant::now() + Duration::from_millis(20);
        let mut heavy = Vec::new();
        while let Some(permit) = pool.admit(false, soon()).await {
            heavy.push(permit);
        }
        // Held up to the shared part: 112 of 128.
        assert_eq!(heavy.len(), 128 - 128 / POOL_RESERVE_DIVISOR);
        // The reserve is the light tenants', to the last slot.
        let mut light = Vec::new();
        while let Some(permit) = pool.admit(true, soon()).await {
            light.push(permit);
        }
        assert_eq!(light.len(), 128 / POOL_RESERVE_DIVISOR);
        assert_eq!(pool.available(), 0);
        // A slot given back is taken by a light tenant that waits.
        let waiting = pool.admit(true, Instant::now() + Duration::from_secs(1));
        drop(heavy.pop());
        assert!(waiting.await.is_some());
    }

    #[test]
    fn a_tiny_pool_keeps_no_reserve_and_still_admits() {
        let pool = PoolAdmission::new(1);
        assert_eq!(pool.available(), 1);
        assert!(pool.is_light(2));
    }
}
