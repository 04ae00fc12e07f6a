//! Expired and deleted entries leave Redis in the background, found
//! through two fleet-wide indexes rather than a scan of the keyspace (with
//! 1M keys, each node's every-second `SCAN` took 7.9 s of Redis CPU per
//! 10 s on an idle fleet):
//! - [`DUE_KEY`], a sorted set of tenants' data keys by when each next
//!   needs a sweep. A write that sets an expiry lowers its tenant's time
//!   there *before* the write (so no expiring entry is ever unindexed); a
//!   sweep moves it to the tenant's next expiry, or at most
//!   [`SWEEP_REVISIT`] ahead.
//! - [`FORGOTTEN_KEY`], deleted tenants' data keys by deletion time; their
//!   entries are removed a bounded step at a time.
//!
//! Every node sweeps; each script is exact, so two nodes sweeping the same
//! tenant never double-count.

use super::super::{Clock, KvError};
use super::{REDIS_ENTRY_OVERHEAD_BYTES, REDIS_KV_TIMEOUT, storage};
use crate::storage::redis_link::RedisLink;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;

/// How often a node sweeps expired entries out of Redis.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Most expired entries one sweep removes per tenant, so a sweep never
/// holds Redis for long (about a millisecond of Lua).
pub const MAX_SWEEP_ENTRIES: usize = 1000;

/// Most tenants one node sweeps per [`SWEEP_INTERVAL`]; the rest wait for
/// the next tick (or another node).
pub const MAX_SWEEP_TENANTS: usize = 64;

/// Longest a tenant goes unswept while it has entries with an expiry: a
/// write whose expiry is later than its tenant's indexed time does not move
/// it, so a sweep never moves it further than this (and a tenant whose
/// entries all left is looked at this often, for about 10 µs).
pub const SWEEP_REVISIT: Duration = Duration::from_secs(60);

/// The fleet's sweep index: data key → when it is next due (ms).
pub const DUE_KEY: &str = "verge:kv:due";

/// Deleted tenants whose entries are being removed: data key → when it was
/// deleted (ms).
pub const FORGOTTEN_KEY: &str = "verge:kv:forgotten";

/// `done` once the sweep index was filled from a keyspace scan, for
/// entries written before the index existed: the only scan a fleet ever
/// runs. `scanning` (with an expiry) while a node does it.
const SEEDED_KEY: &str = "verge:kv:due-seeded";

/// How long a node may take to fill the sweep index before another tries.
const SEEDING_LEASE: Duration = Duration::from_secs(600);

/// Most entries of a deleted tenant one purge step removes (about a
/// millisecond of Redis).
pub const MAX_PURGE_ENTRIES: usize = 1000;

/// Purge steps one node runs per [`SWEEP_INTERVAL`]: a deleted tenant's
/// entries leave at about 5,000 a second per node.
pub const PURGE_STEPS_PER_TICK: usize = 5;

/// How long a deleted tenant stays in [`FORGOTTEN_KEY`] after its entries
/// are gone, so a write by a node that had not yet heard of the deletion
/// is removed too (nodes hear within a few seconds).
pub const FORGET_GRACE: Duration = Duration::from_secs(60);

/// What a sweep needs, shared with the background task.
#[derive(Clone)]
pub(super) struct Sweeper {
    pub(super) conn: RedisLink,
    pub(super) clock: Arc<dyn Clock>,
    sweep: redis::Script,
    due: redis::Script,
    purge: redis::Script,
    /// Whether this node saw the seeding scan done, so it stops asking.
    seeded: Arc<std::sync::atomic::AtomicBool>,
}

static SWEEP: &str = include_str!("sweep.lua");
static DUE: &str = include_str!("due.lua");
static PURGE: &str = include_str!("purge.lua");

/// `call` by [`REDIS_KV_TIMEOUT`], a storage error naming `what` if cut
/// short.
async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, KvError> {
    super::within(REDIS_KV_TIMEOUT, call, |why| {
        storage(format!("{what}: {why}"))
    })
    .await
}

/// `{t:TENANT}:`, the prefix of every key of a data key.
pub(super) fn tag(tenant: &str) -> String {
    format!("{{t:{tenant}}}:")
}

impl Sweeper {
    pub(super) fn new(conn: RedisLink, clock: Arc<dyn Clock>) -> Self {
        Self {
            conn,
            clock,
            sweep: redis::Script::new(SWEEP),
            due: redis::Script::new(DUE),
            purge: redis::Script::new(PURGE),
            seeded: Arc::default(),
        }
    }

    /// One tick: due tenants swept, forgotten tenants purged a step.
    pub(super) async fn run(&self) -> Result<(), KvError> {
        let Some(mut conn) = self.conn.get() else {
            return Ok(());
        };
        self.seed_once(&mut conn).await?;
        self.sweep_due(&mut conn).await?;
        self.purge_forgotten(&mut conn).await
    }

    async fn sweep_due(&self, conn: &mut ConnectionManager) -> Result<(), KvError> {
        let now = self.clock.now_ms();
        let due: Vec<(String, u64)> = bounded(
            "the sweep index",
            redis::cmd("ZRANGEBYSCORE")
                .arg(DUE_KEY)
                .arg("-inf")
                .arg(now)
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(MAX_SWEEP_TENANTS)
                .query_async(conn),
        )
        .await?;
        let revisit = now.saturating_add(SWEEP_REVISIT.as_millis() as u64);
        for (tenant, seen) in due {
            let tag = tag(&tenant);
            let mut sweep = self.sweep.prepare_invoke();
            sweep
                .key(format!("{tag}x"))
                .key(format!("{tag}u"))
                .arg(&tag)
                .arg(tenant.len())
                .arg(now)
                .arg(MAX_SWEEP_ENTRIES)
                .arg(REDIS_ENTRY_OVERHEAD_BYTES);
            let (removed, next): (usize, i64) =
                bounded("a sweep", sweep.invoke_async(conn)).await?;
            let next = if removed >= MAX_SWEEP_ENTRIES {
                // More are due: at the next tick.
                now
            } else {
                u64::try_from(next).map_or(revisit, |next| next.min(revisit))
            };
            let mut moved = self.due.prepare_invoke();
            moved.key(DUE_KEY).arg(&tenant).arg(seen).arg(next);
            bounded("the sweep index", moved.invoke_async::<i64>(conn)).await?;
        }
        Ok(())
    }

    async fn purge_forgotten(&self, conn: &mut ConnectionManager) -> Result<(), KvError> {
        let now = self.clock.now_ms();
        let forgotten: Vec<(String, u64)> = bounded(
            "the forgotten tenants",
            redis::cmd("ZRANGE")
                .arg(FORGOTTEN_KEY)
                .arg(0)
                .arg(PURGE_STEPS_PER_TICK - 1)
                .arg("WITHSCORES")
                .query_async(conn),
        )
        .await?;
        let mut steps = 0;
        for (tenant, deleted_at) in forgotten {
            let tag = tag(&tenant);
            loop {
                steps += 1;
                let mut purge = self.purge.prepare_invoke();
                purge.arg(&tag).arg(MAX_PURGE_ENTRIES);
                let (_, done): (usize, u8) = bounded("a purge", purge.invoke_async(conn)).await?;
                if done == 1 {
                    let grace_over =
                        now > deleted_at.saturating_add(FORGET_GRACE.as_millis() as u64);
                    if grace_over {
                        let mut gone = redis::pipe();
                        gone.zrem(FORGOTTEN_KEY, &tenant).ignore();
                        gone.zrem(DUE_KEY, &tenant).ignore();
                        bounded("the forgotten tenants", gone.query_async::<()>(conn)).await?;
                    }
                    break;
                }
                if steps >= PURGE_STEPS_PER_TICK {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Files `tenant` for removal (idempotent: the first deletion time
    /// stays).
    pub(super) async fn forget(&self, tenant: &str) -> Result<(), KvError> {
        let mut conn = self
            .conn
            .get()
            .ok_or_else(|| storage("not connected yet"))?;
        bounded(
            "forgetting a tenant",
            redis::cmd("ZADD")
                .arg(FORGOTTEN_KEY)
                .arg("NX")
                .arg(self.clock.now_ms())
                .arg(tenant)
                .query_async::<i64>(&mut conn),
        )
        .await
        .map(drop)
    }

    /// Fills the sweep index from a keyspace scan once per fleet, for
    /// tenants whose expiring entries were written before it existed.
    async fn seed_once(&self, conn: &mut ConnectionManager) -> Result<(), KvError> {
        use std::sync::atomic::Ordering;
        if self.seeded.load(Ordering::Acquire) {
            return Ok(());
        }
        let first: Option<String> = bounded(
            "the sweep index",
            redis::cmd("SET")
                .arg(SEEDED_KEY)
                .arg("scanning")
                .arg("NX")
                .arg("EX")
                .arg(SEEDING_LEASE.as_secs())
                .query_async(conn),
        )
        .await?;
        if first.is_none() {
            // Another node scans, or the scan is done: once it is, this
            // node stops asking every tick.
            let state: Option<String> = bounded(
                "the sweep index",
                redis::cmd("GET").arg(SEEDED_KEY).query_async(conn),
            )
            .await?;
            if state.as_deref() == Some("done") {
                self.seeded.store(true, Ordering::Release);
            }
            return Ok(());
        }
        let now = self.clock.now_ms();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = bounded(
                "SCAN",
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg("{t:*}:x")
                    .arg("COUNT")
                    .arg(1000)
                    .arg("TYPE")
                    .arg("zset")
                    .query_async(conn),
            )
            .await?;
            for key in keys {
                // Exactly `{t:TENANT}:x` (data keys hold no brace).
                let tenant = key
                    .strip_prefix("{t:")
                    .and_then(|rest| rest.strip_suffix("}:x"))
                    .filter(|tenant| !tenant.contains('}'));
                if let Some(tenant) = tenant {
                    bounded(
                        "the sweep index",
                        redis::cmd("ZADD")
                            .arg(DUE_KEY)
                            .arg("LT")
                            .arg(now)
                            .arg(tenant)
                            .query_async::<i64>(conn),
                    )
                    .await?;
                }
            }
            if next == 0 {
                let mut done = redis::cmd("SET");
                done.arg(SEEDED_KEY).arg("done");
                bounded("the sweep index", done.query_async::<()>(conn)).await?;
                self.seeded.store(true, Ordering::Release);
                return Ok(());
            }
            cursor = next;
        }
    }
}
