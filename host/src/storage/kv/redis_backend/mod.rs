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
//! - `{t:T}:u`: the tenant's bytes used, counted as on redb.

use super::logic::{Namespace, Outcome, WriteOp, check_value, expiry_for, live};
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

/// How long a write carrying `bytes` of values may wait for Redis.
pub fn write_timeout(bytes: usize) -> Duration {
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    let extra_ms = bytes.saturating_mul(1000) / REDIS_KV_WRITE_BYTES_PER_SECOND;
    REDIS_KV_TIMEOUT + Duration::from_millis(extra_ms)
}

/// Index entries one `list` call examines at most: a Lua script runs to
/// its end whatever the client's timeout, and blocks every other tenant's
/// calls meanwhile (over ~1M expired keys one call took 3.6 s). Past it the
/// page ends early with a cursor where the next one continues; 1,000
/// entries take about a millisecond.
pub const REDIS_LIST_MAX_EXAMINED: usize = 2_000;

/// How often a node sweeps expired entries out of Redis (every node does;
/// the script keeps each removal exact, so they never double-count).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Most expired entries one sweep removes per tenant, so a sweep never
/// holds Redis for long.
pub const MAX_SWEEP_ENTRIES: usize = 1000;

/// What a sweep needs, shared with the background sweeper.
#[derive(Clone)]
struct Sweeper {
    conn: RedisLink,
    clock: Arc<dyn Clock>,
    script: redis::Script,
}

impl Sweeper {
    /// Sweeps every tenant's expiry index (found with `SCAN`, which has no
    /// order but visits every key).
    async fn run(&self) -> Result<(), KvError> {
        let Some(mut conn) = self.conn.get() else {
            return Ok(());
        };
        let mut cursor: u64 = 0;
        loop {
            let mut command = redis::cmd("SCAN");
            command
                .arg(cursor)
                .arg("MATCH")
                .arg("{t:*}:x")
                .arg("COUNT")
                .arg(1000)
                .arg("TYPE")
                .arg("zset");
            let scan = command.query_async::<(u64, Vec<String>)>(&mut conn);
            let (next, keys) = tokio::time::timeout(REDIS_KV_TIMEOUT, scan)
                .await
                .map_err(|_| storage("no answer to SCAN"))?
                .map_err(storage)?;
            for key in keys {
                // Exactly `{t:TENANT}:x` (tenant names hold no brace); a
                // store's index whose name happens to match is skipped.
                let Some(tenant) = key
                    .strip_prefix("{t:")
                    .and_then(|rest| rest.strip_suffix("}:x"))
                    .filter(|tenant| !tenant.contains('}'))
                else {
                    continue;
                };
                let tenant_len = tenant.len();
                let tag = &key[..key.len() - 1];
                let mut sweep = self.script.prepare_invoke();
                sweep
                    .key(&key)
                    .key(format!("{tag}u"))
                    .arg(tag)
                    .arg(tenant_len)
                    .arg(self.clock.now_ms())
                    .arg(MAX_SWEEP_ENTRIES);
                let swept = sweep.invoke_async::<usize>(&mut conn);
                tokio::time::timeout(REDIS_KV_TIMEOUT, swept)
                    .await
                    .map_err(|_| storage("no answer to a sweep"))?
                    .map_err(storage)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

static APPLY: &str = include_str!("apply.lua");
static SWEEP: &str = include_str!("sweep.lua");
static LIST: &str = include_str!("list.lua");

/// KV over one Redis deployment. A node starts even while Redis is away:
/// KV calls then fail at once with a storage error, and a task connects in
/// the background with backoff. Once connected, the connection manager
/// reconnects by itself.
pub struct RedisKv {
    conn: RedisLink,
    /// Whether the last call reached Redis (for readiness).
    answered: std::sync::atomic::AtomicBool,
    clock: Arc<dyn Clock>,
    apply: redis::Script,
    list: redis::Script,
    sweeper: Sweeper,
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
    member_prefix: Vec<u8>,
}

impl Keys {
    fn of(ns: &Namespace) -> Self {
        let tag = format!("{{t:{}}}", ns.tenant);
        let mut value_prefix = format!("{tag}:v:{}", ns.store).into_bytes();
        value_prefix.push(0);
        let mut member_prefix = ns.store.clone().into_bytes();
        member_prefix.push(0);
        Self {
            value_prefix,
            index: format!("{tag}:i:{}", ns.store),
            expiry: format!("{tag}:x"),
            usage: format!("{tag}:u"),
            member_prefix,
        }
    }

    fn value(&self, key: &str) -> Vec<u8> {
        let mut out = self.value_prefix.clone();
        out.extend_from_slice(key.as_bytes());
        out
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
        let ceiling = write_timeout(super::MAX_VALUE_BYTES);
        let conn = RedisLink::connect(client, ceiling, "KV").await;
        let sweeper = Sweeper {
            conn: conn.clone(),
            clock: clock.clone(),
            script: redis::Script::new(SWEEP),
        };
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

    /// Runs `call` by [`REDIS_KV_TIMEOUT`].
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, KvError> {
        self.bounded_by(REDIS_KV_TIMEOUT, call).await
    }

    /// Runs `call` by `timeout`.
    async fn bounded_by<T>(
        &self,
        timeout: Duration,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, KvError> {
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(result) => result.map_err(storage),
            Err(_) => Err(storage(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
        };
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
            .arg(ops.len());
        let mut carried = 0;
        for op in ops {
            let (kind, key, value, new_expiry, expected) = encode(op, now)?;
            let (flag, expected) = match expected {
                Some(bytes) => ("1", bytes),
                None => ("0", Vec::new()),
            };
            carried += value.len() + expected.len();
            invocation
                .arg(kind)
                .arg(key)
                .arg(value)
                .arg(new_expiry)
                .arg(flag)
                .arg(expected);
        }
        let mut conn = self.conn()?;
        let reply: Vec<redis::Value> = self
            .bounded_by(write_timeout(carried), invocation.invoke_async(&mut conn))
            .await?;
        decode_reply(ops, &reply)
    }
}

/// A write as the script's arguments: kind, key, value or delta, expiry
/// for a new value, expected value.
type Encoded<'a> = (&'static str, &'a str, Vec<u8>, u64, Option<Vec<u8>>);

fn encode(op: &WriteOp, now_ms: u64) -> Result<Encoded<'_>, KvError> {
    let expiry = |ttl: Option<u32>| expiry_for(ttl, now_ms);
    let value = |v: &[u8]| check_value(v).map(|()| v.to_vec());
    let encoded = match op {
        WriteOp::Set { key, value: v, ttl } => {
            ("set", key.as_str(), value(v)?, expiry(*ttl)?, None)
        }
        WriteOp::Delete { key } => ("del", key.as_str(), Vec::new(), 0, None),
        WriteOp::Increment { key, delta, ttl } => (
            "inc",
            key.as_str(),
            delta.to_string().into_bytes(),
            expiry(*ttl)?,
            None,
        ),
        WriteOp::CompareAndSwap {
            key,
            expected,
            new,
            ttl,
        } => (
            "cas",
            key.as_str(),
            value(new)?,
            expiry(*ttl)?,
            expected.clone(),
        ),
    };
    check_key(encoded.1)?;
    Ok(encoded)
}

/// The outcomes of an `apply.lua` reply, or its refusal.
fn decode_reply(ops: &[WriteOp], reply: &[redis::Value]) -> Result<Vec<Outcome>, KvError> {
    let text = |v: &redis::Value| -> String {
        match v {
            redis::Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            redis::Value::SimpleString(s) => s.clone(),
            redis::Value::Int(n) => n.to_string(),
            other => format!("{other:?}"),
        }
    };
    let words: Vec<String> = reply.iter().map(text).collect();
    match words.first().map(String::as_str) {
        Some("ok") => ops
            .iter()
            .zip(&words[1..])
            .map(|(op, word)| match op {
                WriteOp::Set { .. } | WriteOp::Delete { .. } => Ok(Outcome::Done),
                WriteOp::CompareAndSwap { .. } => Ok(Outcome::Swapped(word == "swapped")),
                WriteOp::Increment { .. } => word
                    .parse()
                    .map(Outcome::Counter)
                    .map_err(|_| storage(format!("a counter of {word:?}"))),
            })
            .collect(),
        Some("err") => match words.get(2).map(String::as_str) {
            Some("quota") => Err(KvError::QuotaExceeded),
            Some("not-integer") => Err(KvError::NotAnInteger(
                words.get(3).cloned().unwrap_or_default(),
            )),
            other => Err(storage(format!("refused: {other:?}"))),
        },
        _ => Err(storage(format!("an unexpected reply {words:?}"))),
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
        let (found, stopped_at): (Vec<Vec<u8>>, Option<Vec<u8>>) =
            self.bounded(invocation.invoke_async(&mut conn)).await?;
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
        assert_eq!(write_timeout(0), REDIS_KV_TIMEOUT);
        assert_eq!(write_timeout(1024), REDIS_KV_TIMEOUT);
        assert_eq!(
            write_timeout(super::super::MAX_VALUE_BYTES),
            REDIS_KV_TIMEOUT + Duration::from_millis(500)
        );
        assert_eq!(
            write_timeout(usize::MAX),
            REDIS_KV_TIMEOUT + Duration::from_millis(u64::MAX / REDIS_KV_WRITE_BYTES_PER_SECOND)
        );
    }
}
