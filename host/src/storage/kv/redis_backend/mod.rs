//! KV on Redis, for fleet mode: every node reads and writes one Redis, so
//! a write through one node is read through any other. The rules are
//! those of `logic.rs`, run inside Redis as Lua scripts (`apply.lua`,
//! `list.lua`) so each write, and each batch of `write_all`, is atomic
//! across nodes; the node's clock supplies "now", as for redb.
//!
//! Key layout, per tenant hash tag so one tenant's keys share a Redis
//! Cluster slot (`{t:TENANT}`):
//! - `{t:T}:v:STORE\0KEY`: a hash, `p` the payload, `x` the expiry in ms
//!   since the epoch (0 = never);
//! - `{t:T}:i:STORE`: a sorted set of the store's keys, all score 0, so
//!   `ZRANGEBYLEX` lists them in byte order (`SCAN` has no order);
//! - `{t:T}:x`: a sorted set of `STORE\0KEY` by expiry, for the sweeper;
//! - `{t:T}:u`: the tenant's bytes charged ([`charge`]);
//! - `{t:T}:s`: the set of the tenant's store names, to find a deleted
//!   tenant's entries;
//! - and, fleet-wide, the indexes of `sweeper.rs`.

mod pace;
mod script;
mod sweeper;

use script::{decode_reply, encode};

pub use pace::{
    REDIS_TENANT_LIST_ENTRIES_PER_SECOND, REDIS_TENANT_WRITE_BURST_BYTES,
    REDIS_TENANT_WRITE_BYTES_PER_SECOND,
};
pub use sweeper::{
    DUE_KEY, FORGET_GRACE, FORGOTTEN_KEY, MAX_PURGE_ENTRIES, MAX_SWEEP_ENTRIES, MAX_SWEEP_TENANTS,
    PURGE_STEPS_PER_TICK, SWEEP_INTERVAL, SWEEP_REVISIT,
};

use super::logic::{Namespace, Outcome, WriteOp, live};
use super::{Clock, KeyPage, KvBackend, KvError};
use super::{check_key, clamp_limit};
use crate::storage::redis_link::RedisLink;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;

/// Longest a KV call waits for Redis before it fails with a storage error:
/// a request must never hang on an unreachable Redis, and a healthy one
/// answers in well under a millisecond on a LAN.
pub const REDIS_KV_TIMEOUT: Duration = Duration::from_millis(250);

/// The slowest rate a healthy Redis is assumed to take a write's bytes at:
/// a write gets [`REDIS_KV_TIMEOUT`] plus its bytes at this rate, since a
/// large value must cross the network and, with `appendfsync always`, be
/// written and fsynced before Redis answers. The largest value (25 MiB)
/// gets 500 ms more; a small write keeps the 250 ms bound. Without it a
/// value the limits allow failed, ambiguously, on a busy disk.
pub const REDIS_KV_WRITE_BYTES_PER_SECOND: u64 = 50 << 20;

/// What each write of a batch adds to its wait: a script applies about
/// 20,000 writes a second on a busy Redis, so 100 µs leaves five times
/// that. A 5,000-entry import gets 500 ms more; without it 118 of 200 such
/// imports under `appendfsync always` answered "no answer" yet were all
/// stored.
pub const REDIS_KV_WRITE_OP_COST: Duration = Duration::from_micros(100);

/// How long a write of `ops` writes carrying `bytes` of values may wait
/// for Redis.
pub fn write_timeout(bytes: usize, ops: usize) -> Duration {
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    let extra_ms = bytes.saturating_mul(1000) / REDIS_KV_WRITE_BYTES_PER_SECOND;
    let per_op = REDIS_KV_WRITE_OP_COST.saturating_mul(u32::try_from(ops).unwrap_or(u32::MAX));
    REDIS_KV_TIMEOUT
        + Duration::from_millis(extra_ms)
        + per_op.saturating_sub(REDIS_KV_WRITE_OP_COST)
}

/// Redis memory an entry costs beyond its key and value bytes, measured
/// with `INFO memory` over 200,000 entries on Redis 7.0 (jemalloc): about
/// 230 bytes for the value's hash and its index entry, 130 more with an
/// expiry. Charged so that a tenant's quota bounds what Redis really holds
/// (charging key + value alone let 44 MB of quota hold 337 MB of Redis).
pub const REDIS_ENTRY_OVERHEAD_BYTES: u64 = 512;

/// What an entry is charged against its tenant's quota on Redis: its size
/// as on redb (`base` = the namespace's `tenant\0store\0` bytes, the key,
/// 8 bytes of expiry, the payload), the key twice more (the index's and the
/// expiry index's members), [`REDIS_ENTRY_OVERHEAD_BYTES`], and a quarter
/// of the payload, the most the allocator rounds a large value up by.
/// `apply.lua` and `sweep.lua` compute the same.
pub fn charge(base: usize, key: usize, payload: usize) -> u64 {
    let bytes = base + 3 * key + 8 + payload + payload / 4;
    u64::try_from(bytes).unwrap_or(u64::MAX) + REDIS_ENTRY_OVERHEAD_BYTES
}

/// The most writes one batch is timed for on the large-writes connection
/// (the admin API's largest import).
const BULK_CEILING_OPS: usize = 10_000;

/// Writes carrying more than this go over a connection of their own, so a
/// large value crossing the socket does not hold every small call queued
/// behind it on the shared one.
pub const REDIS_BULK_WRITE_BYTES: usize = 256 << 10;

/// Index entries one `list` call examines at most: a Lua script runs to
/// its end whatever the client's timeout, and blocks every other tenant's
/// calls meanwhile (over ~1M expired keys one call took 3.6 s). Past it the
/// page ends early with a cursor where the next one continues; 1,000
/// entries take about a millisecond.
pub const REDIS_LIST_MAX_EXAMINED: usize = 2_000;

static APPLY: &str = include_str!("apply.lua");
static LIST: &str = include_str!("list.lua");

/// KV over one Redis deployment. A node starts even while Redis is away:
/// KV calls then fail at once with a storage error, and a task connects in
/// the background with backoff. Once connected, the connection manager
/// reconnects by itself.
pub struct RedisKv {
    conn: RedisLink,
    /// For writes over [`REDIS_BULK_WRITE_BYTES`].
    bulk: RedisLink,
    pace: pace::Pace,
    /// The pace of `list` work per tenant.
    list_pace: pace::Pace,
    /// Whether the last call reached Redis (for readiness).
    answered: std::sync::atomic::AtomicBool,
    clock: Arc<dyn Clock>,
    apply: redis::Script,
    list: redis::Script,
    sweeper: sweeper::Sweeper,
    _sweeping: AbortOnDrop,
}

/// Stops the background sweeper with the backend.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The Redis keys of one namespace.
struct Keys {
    value_prefix: Vec<u8>,
    index: String,
    expiry: String,
    usage: String,
    stores: String,
    member_prefix: Vec<u8>,
}

impl Keys {
    fn of(ns: &Namespace) -> Self {
        let tag = sweeper::tag(&ns.tenant);
        let mut value_prefix = format!("{tag}v:{}", ns.store).into_bytes();
        value_prefix.push(0);
        let mut member_prefix = ns.store.clone().into_bytes();
        member_prefix.push(0);
        Self {
            value_prefix,
            index: format!("{tag}i:{}", ns.store),
            expiry: format!("{tag}x"),
            usage: format!("{tag}u"),
            stores: format!("{tag}s"),
            member_prefix,
        }
    }

    fn value(&self, key: &str) -> Vec<u8> {
        let mut out = self.value_prefix.clone();
        out.extend_from_slice(key.as_bytes());
        out
    }
}

/// Runs `call` by `timeout`. A call cut short after it may have been sent
/// (a timeout, a dropped connection) fails as `cut_short` says (for a
/// write, [`KvError::OutcomeUnknown`]); any other failure as a storage
/// error.
async fn within<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
    cut_short: impl FnOnce(String) -> KvError,
) -> Result<T, KvError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) if err.is_timeout() || err.is_connection_dropped() => {
            Err(cut_short(format!("redis: {err}")))
        }
        Ok(Err(err)) => Err(storage(err)),
        Err(_) => Err(cut_short(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

fn storage(err: impl std::fmt::Display) -> KvError {
    KvError::Storage(format!("redis: {err}"))
}

impl RedisKv {
    /// KV on the Redis at `url` (`redis://HOST:PORT[/DB]` or `rediss://`).
    /// A malformed URL is an error; an unreachable Redis is not (see the
    /// type's docs).
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<Self, KvError> {
        let client = redis::Client::open(url).map_err(storage)?;
        Ok(Self::with_client(&client, clock).await)
    }

    /// KV through `client` (as [`RedisKv::connect`]).
    pub async fn with_client(client: &redis::Client, clock: Arc<dyn Clock>) -> Self {
        // The connection's own ceiling is the largest value's write time;
        // each call is bounded tighter by `bounded`/`bounded_by`.
        let ceiling = write_timeout(super::MAX_VALUE_BYTES, 1);
        let conn = RedisLink::connect(client, ceiling, "KV").await;
        let bulk_ceiling = write_timeout(REDIS_TENANT_WRITE_BURST_BYTES as usize, BULK_CEILING_OPS);
        let bulk = RedisLink::connect(client, bulk_ceiling, "KV (large writes)").await;
        let sweeper = sweeper::Sweeper::new(conn.clone(), clock.clone());
        let background = sweeper.clone();
        let sweeping = tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_INTERVAL).await;
                if let Err(err) = background.run().await {
                    tracing::debug!(error = %err, "sweeping expired KV entries");
                }
            }
        });
        Self {
            conn,
            bulk,
            pace: pace::Pace::default(),
            list_pace: pace::Pace::lists(),
            answered: std::sync::atomic::AtomicBool::new(true),
            clock,
            apply: redis::Script::new(APPLY),
            list: redis::Script::new(LIST),
            sweeper,
            _sweeping: AbortOnDrop(sweeping),
        }
    }

    /// The connection, or a storage error while Redis has never answered.
    fn conn(&self) -> Result<ConnectionManager, KvError> {
        self.conn.get().ok_or_else(|| storage("not connected yet"))
    }

    /// Runs `call` by [`REDIS_KV_TIMEOUT`]; a storage error if not.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, KvError> {
        self.answered_by(REDIS_KV_TIMEOUT, call, storage).await
    }

    /// [`within`], remembering whether Redis answered (for readiness).
    async fn answered_by<T>(
        &self,
        timeout: Duration,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
        cut_short: impl FnOnce(String) -> KvError,
    ) -> Result<T, KvError> {
        let result = within(timeout, call, cut_short).await;
        self.answered
            .store(result.is_ok(), std::sync::atomic::Ordering::Relaxed);
        result
    }

    /// Applies `ops` in one script run: all or none.
    async fn apply_all(&self, ns: &Namespace, ops: &[WriteOp]) -> Result<Vec<Outcome>, KvError> {
        let now = self.clock.now_ms();
        let keys = Keys::of(ns);
        let mut invocation = self.apply.prepare_invoke();
        invocation
            .arg(now)
            .arg(ns.quota_bytes)
            .arg(ns.prefix().len())
            .arg(&keys.value_prefix)
            .arg(&keys.index)
            .arg(&keys.expiry)
            .arg(&keys.usage)
            .arg(&keys.member_prefix)
            .arg(ops.len())
            .arg(REDIS_ENTRY_OVERHEAD_BYTES)
            .arg(&keys.stores)
            .arg(&ns.store);
        let mut carried = 0;
        let mut earliest_expiry: Option<u64> = None;
        for op in ops {
            let (kind, key, value, new_expiry, expected) = encode(op, now)?;
            let (flag, expected) = match expected {
                Some(bytes) => ("1", bytes),
                None => ("0", Vec::new()),
            };
            carried += value.len() + expected.len() + key.len();
            if new_expiry != 0 {
                earliest_expiry = Some(earliest_expiry.map_or(new_expiry, |e| e.min(new_expiry)));
            }
            invocation
                .arg(kind)
                .arg(key)
                .arg(value)
                .arg(new_expiry)
                .arg(flag)
                .arg(expected);
        }
        self.pace
            .take(&ns.tenant, carried, std::time::Instant::now())?;
        let mut conn = if carried > REDIS_BULK_WRITE_BYTES {
            self.bulk.get()
        } else {
            self.conn.get()
        }
        .ok_or_else(|| storage("not connected yet"))?;
        if let Some(at) = earliest_expiry {
            // Indexed for the sweepers before any entry can expire.
            let mut announce = redis::cmd("ZADD");
            announce
                .arg(sweeper::DUE_KEY)
                .arg("LT")
                .arg(at)
                .arg(&ns.tenant);
            self.bounded(announce.query_async::<i64>(&mut conn)).await?;
        }
        let timeout = write_timeout(carried, ops.len());
        let reply: Vec<redis::Value> = self
            .answered_by(
                timeout,
                invocation.invoke_async(&mut conn),
                KvError::OutcomeUnknown,
            )
            .await?;
        decode_reply(ops, &reply)
    }
}

#[wasmtime_wasi::async_trait]
impl KvBackend for RedisKv {
    fn fault(&self) -> Option<String> {
        let connected = self.conn.get().is_some();
        if !connected {
            return Some("KV: not connected to the cluster's Redis yet".into());
        }
        let answered = self.answered.load(std::sync::atomic::Ordering::Relaxed);
        (!answered).then(|| "KV: the cluster's Redis did not answer the last call".into())
    }

    async fn recheck(&self) -> Option<String> {
        // Healthy: nothing to ask.
        self.fault()?;
        if let Ok(mut conn) = self.conn() {
            let _: Result<String, _> = self
                .bounded(redis::cmd("PING").query_async(&mut conn))
                .await;
        }
        self.fault()
    }

    async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        let now = self.clock.now_ms();
        let mut conn = self.conn()?;
        let value_key = Keys::of(ns).value(key);
        let (payload, expiry): (Option<Vec<u8>>, Option<u64>) = self
            .bounded(
                redis::cmd("HMGET")
                    .arg(value_key)
                    .arg("p")
                    .arg("x")
                    .query_async(&mut conn),
            )
            .await?;
        Ok(payload.and_then(|payload| {
            let mut raw = expiry.unwrap_or(0).to_be_bytes().to_vec();
            raw.extend_from_slice(&payload);
            live(&raw, now).map(<[u8]>::to_vec)
        }))
    }

    async fn write(&self, ns: &Namespace, op: WriteOp) -> Result<Outcome, KvError> {
        let mut outcomes = self.apply_all(ns, std::slice::from_ref(&op)).await?;
        outcomes
            .pop()
            .ok_or_else(|| storage("no outcome for the write"))
    }

    async fn write_all(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<usize, KvError> {
        self.apply_all(ns, &ops)
            .await
            .map(|outcomes| outcomes.len())
    }

    async fn sweep_expired(&self) -> Result<(), KvError> {
        self.sweeper.run().await
    }

    async fn forget_tenant(&self, tenant: &str) -> Result<(), KvError> {
        self.sweeper.forget(tenant).await
    }

    async fn list(
        &self,
        ns: &Namespace,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KeyPage, KvError> {
        let limit = clamp_limit(limit);
        let keys = Keys::of(ns);
        let mut start = b"[".to_vec();
        start.extend_from_slice(prefix.as_bytes());
        if let Some(cursor) = cursor.filter(|c| c.as_bytes() >= prefix.as_bytes()) {
            start = b"(".to_vec();
            start.extend_from_slice(cursor.as_bytes());
        }
        let stop = if prefix.is_empty() {
            b"+".to_vec()
        } else {
            let mut stop = b"[".to_vec();
            stop.extend_from_slice(prefix.as_bytes());
            stop.push(0xff);
            stop
        };
        let mut invocation = self.list.prepare_invoke();
        invocation
            .arg(&keys.index)
            .arg(&keys.value_prefix)
            .arg(self.clock.now_ms())
            .arg(start)
            .arg(stop)
            .arg(limit)
            .arg(REDIS_LIST_MAX_EXAMINED);
        let mut conn = self.conn()?;
        // The most this call may examine is taken first; what it did not
        // use is given back.
        self.list_pace.take(
            &ns.tenant,
            REDIS_LIST_MAX_EXAMINED,
            std::time::Instant::now(),
        )?;
        let (found, stopped_at, examined): (Vec<Vec<u8>>, Option<Vec<u8>>, usize) =
            match self.bounded(invocation.invoke_async(&mut conn)).await {
                Ok(reply) => reply,
                Err(err) => {
                    self.list_pace
                        .give_back(&ns.tenant, REDIS_LIST_MAX_EXAMINED);
                    return Err(err);
                }
            };
        self.list_pace
            .give_back(&ns.tenant, REDIS_LIST_MAX_EXAMINED.saturating_sub(examined));
        let mut page = KeyPage {
            keys: found
                .iter()
                .take(limit)
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect(),
            cursor: None,
        };
        if found.len() > limit {
            page.cursor = page.keys.last().cloned();
        } else if let Some(at) = stopped_at {
            // A short (or empty) page: the next one continues past the
            // entries this call examined.
            page.cursor = Some(String::from_utf8_lossy(&at).into_owned());
        }
        Ok(page)
    }
}

#[cfg(test)]
mod timeout_tests {
    use super::*;

    #[test]
    fn a_write_waits_the_base_timeout_plus_its_bytes_at_the_floor_rate() {
        assert_eq!(write_timeout(0, 1), REDIS_KV_TIMEOUT);
        assert_eq!(write_timeout(1024, 1), REDIS_KV_TIMEOUT);
        assert_eq!(
            write_timeout(super::super::MAX_VALUE_BYTES, 1),
            REDIS_KV_TIMEOUT + Duration::from_millis(500)
        );
        assert_eq!(
            write_timeout(usize::MAX, 1),
            REDIS_KV_TIMEOUT + Duration::from_millis(u64::MAX / REDIS_KV_WRITE_BYTES_PER_SECOND)
        );
    }

    #[test]
    fn a_batch_waits_longer_with_each_write_it_carries() {
        // A 5,000-entry import of small values: 250 ms + 4,999 × 100 µs.
        assert_eq!(
            write_timeout(0, 5_000),
            REDIS_KV_TIMEOUT + Duration::from_micros(499_900)
        );
        assert_eq!(write_timeout(0, 0), REDIS_KV_TIMEOUT);
    }

    #[test]
    fn an_entry_is_charged_at_least_what_redis_was_measured_to_hold() {
        // Measured (INFO memory, Redis 7.0, 200,000 entries, key "key-N",
        // namespace `tenant~abc\0store\0`): bytes beyond the payload.
        let base = "tenant~abc\0store\0".len();
        for (payload, measured_with_ttl) in [
            (6, 377),
            (100, 548 + 100),
            (1000, 585 + 1000),
            (100_000, 15_201 + 100_000),
        ] {
            let charged = charge(base, "key-100000".len(), payload);
            assert!(
                charged >= measured_with_ttl,
                "{payload}: {charged} < {measured_with_ttl}"
            );
            // ... and not wildly more: at most twice for small entries.
            assert!(
                charged <= 2 * measured_with_ttl + 512,
                "{payload}: {charged}"
            );
        }
    }
}
