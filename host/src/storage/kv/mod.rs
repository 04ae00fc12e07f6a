//! Key-value storage behind a trait, free of WIT types. One set of rules
//! (`logic.rs`'s `apply`) over two storages: redb (durable, group commit) and memory
//! (unit tests). Keys are namespaced by (tenant, store) so tenants never
//! meet; values carry their expiry; usage is tracked per tenant for quotas.

mod logic;
pub mod memory;
pub mod redb;
pub mod redis_backend;

pub use logic::{Namespace, Outcome, WriteOp};

use thiserror::Error;

/// Longest key: 512 bytes, as on Workers KV.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value: 25 MiB, as on Workers KV.
pub const MAX_VALUE_BYTES: usize = 25 << 20;
/// Most keys one `list` call returns; larger limits are clamped to it.
pub const MAX_LIST_LIMIT: u32 = 1000;
/// Storage (keys + values) one tenant may use unless its limits say
/// otherwise: 1 GiB, as on the Workers free plan.
pub const DEFAULT_TENANT_QUOTA_BYTES: u64 = 1 << 30;
/// Longest TTL: one year, so expiry arithmetic never overflows and a typo
/// does not keep data forever by accident.
pub const MAX_TTL_SECONDS: u32 = 365 * 24 * 3600;

/// Why a KV operation failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KvError {
    /// Empty or over [`MAX_KEY_BYTES`].
    #[error("the key is empty or longer than {MAX_KEY_BYTES} bytes")]
    KeyTooLarge,
    /// Over [`MAX_VALUE_BYTES`].
    #[error("the value is longer than {MAX_VALUE_BYTES} bytes")]
    ValueTooLarge,
    /// The tenant's quota would be exceeded.
    #[error("the tenant's storage quota would be exceeded")]
    QuotaExceeded,
    /// A key with a forbidden character.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Increment on a value that is not a decimal integer, or overflow.
    #[error("{0}")]
    NotAnInteger(String),
    /// A TTL above [`MAX_TTL_SECONDS`].
    #[error("the TTL is longer than {MAX_TTL_SECONDS} seconds")]
    TtlTooLong,
    /// The storage failed (disk, database); nothing was acknowledged.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The store took the write but did not answer in time: it may or may
    /// not have been applied. Read the keys back, or send it again (a set,
    /// a delete and an import leave the same state when repeated; an
    /// increment does not).
    #[error(
        "outcome unknown: {0}; the write may or may not have been applied (read it back or repeat it: sets, deletes and imports are idempotent, increments are not)"
    )]
    OutcomeUnknown(String),
    /// The tenant wrote more bytes than its pace allows (fleet KV only);
    /// nothing was written. Retry after the given wait.
    #[error("the tenant's KV write rate is exceeded: {0}")]
    RateLimited(String),
}

/// Milliseconds since the Unix epoch; a trait so tests can move time.
pub trait Clock: Send + Sync + 'static {
    /// Now, in ms.
    fn now_ms(&self) -> u64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to: for tests of TTLs and sweeping.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    /// A clock reading `ms`.
    pub fn at(ms: u64) -> Self {
        Self(std::sync::atomic::AtomicU64::new(ms))
    }

    /// Sets the time.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One page of keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPage {
    /// Keys in byte order.
    pub keys: Vec<String>,
    /// Where the next page starts, if there is one.
    pub cursor: Option<String>,
}

/// A KV backend.
#[wasmtime_wasi::async_trait]
pub trait KvBackend: Send + Sync + 'static {
    /// The live value of `key`.
    async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Applies a write; returns once it is durable.
    async fn write(&self, ns: &Namespace, op: WriteOp) -> Result<Outcome, KvError>;
    /// The storage fault the backend has not recovered from, if any (for
    /// readiness).
    fn fault(&self) -> Option<String> {
        None
    }
    /// Asks the store again whether the fault [`KvBackend::fault`] reports
    /// is over (Redis: a `PING`), for a readiness probe that recovers as
    /// soon as the store does rather than at the next guest call.
    async fn recheck(&self) -> Option<String> {
        self.fault()
    }
    /// Applies every write of `ops` or none (the first refusal is the
    /// answer): one commit, durable when this returns.
    async fn write_all(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<usize, KvError>;
    /// Removes entries that have expired by now and gives their bytes back
    /// to their tenants' quotas (each backend also does this on its own,
    /// about every second).
    async fn sweep_expired(&self) -> Result<(), KvError>;
    /// Removes, in the background, every entry stored under the data key
    /// `tenant` (a deleted tenant's; a tenant created again under its name
    /// has another data key, so nothing it writes is touched). Returns once
    /// the removal is recorded, not done.
    async fn forget_tenant(&self, _tenant: &str) -> Result<(), KvError> {
        Ok(())
    }
    /// Live keys with `prefix` after `cursor`, at most `limit` (clamped).
    async fn list(
        &self,
        ns: &Namespace,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KeyPage, KvError>;
}

/// Checks a key: 1..=512 bytes, no NUL (the namespace separator).
pub fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KvError::KeyTooLarge);
    }
    if key.contains('\0') {
        return Err(KvError::InvalidKey("keys may not contain NUL".into()));
    }
    Ok(())
}

/// Clamps a guest's list limit to 1..=[`MAX_LIST_LIMIT`].
pub fn clamp_limit(limit: u32) -> usize {
    limit.clamp(1, MAX_LIST_LIMIT) as usize
}
