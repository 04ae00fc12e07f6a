//! The rules of every write, over any [`Table`]: TTL, increment, CAS, the
//! expiry index and per-tenant usage. Nothing is mutated until the outcome
//! is known, so a refused operation leaves the table as it was.

use super::{KvError, MAX_TTL_SECONDS, MAX_VALUE_BYTES, check_key};

/// Where keys live: one tenant's one store, and the tenant's quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The owning tenant.
    pub tenant: String,
    /// The store name.
    pub store: String,
    /// The tenant's storage quota in bytes.
    pub quota_bytes: u64,
}

impl Namespace {
    /// `tenant \0 store \0`: the prefix of every key in this namespace.
    pub fn prefix(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.tenant.len() + self.store.len() + 2);
        out.extend_from_slice(self.tenant.as_bytes());
        out.push(0);
        out.extend_from_slice(self.store.as_bytes());
        out.push(0);
        out
    }

    /// The stored key for `key`.
    pub fn key(&self, key: &str) -> Vec<u8> {
        let mut out = self.prefix();
        out.extend_from_slice(key.as_bytes());
        out
    }
}

/// A write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Store a value.
    Set {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// Seconds to live.
        ttl: Option<u32>,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: String,
    },
    /// Add to a decimal integer.
    Increment {
        /// The key.
        key: String,
        /// What to add.
        delta: i64,
        /// Seconds to live, applied when the key is created.
        ttl: Option<u32>,
    },
    /// Set if the current value is `expected`.
    CompareAndSwap {
        /// The key.
        key: String,
        /// The value required now (`None`: the key must not exist).
        expected: Option<Vec<u8>>,
        /// The value to set.
        new: Vec<u8>,
        /// Seconds to live.
        ttl: Option<u32>,
    },
}

/// What a write returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Set or delete done.
    Done,
    /// The counter's new value.
    Counter(i64),
    /// Whether the CAS applied.
    Swapped(bool),
}

/// Raw storage the rules run over. `raw` values are `expiry (8 bytes BE, 0 =
/// never) ++ payload`.
pub trait Table {
    /// The raw value at `key`.
    fn get_raw(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// Stores a raw value.
    fn put_raw(&mut self, key: &[u8], raw: &[u8]) -> Result<(), KvError>;
    /// Removes a key.
    fn remove_raw(&mut self, key: &[u8]) -> Result<(), KvError>;
    /// Adds or removes an expiry-index entry.
    fn index_expiry(&mut self, at_ms: u64, key: &[u8], present: bool) -> Result<(), KvError>;
    /// The tenant's bytes used.
    fn usage(&mut self, tenant: &str) -> Result<u64, KvError>;
    /// Sets the tenant's bytes used.
    fn set_usage(&mut self, tenant: &str, bytes: u64) -> Result<(), KvError>;
}

/// Splits a raw value into (expiry ms, payload).
pub fn decode(raw: &[u8]) -> (u64, &[u8]) {
    match raw.split_first_chunk::<8>() {
        Some((at, payload)) => (u64::from_be_bytes(*at), payload),
        None => (0, raw),
    }
}

/// The payload if the raw value is live at `now_ms`.
pub fn live(raw: &[u8], now_ms: u64) -> Option<&[u8]> {
    let (at, payload) = decode(raw);
    (at == 0 || at > now_ms).then_some(payload)
}

fn encode(expiry: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&expiry.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// When a value written at `now_ms` with `ttl` expires (0 = never).
pub(super) fn expiry_for(ttl: Option<u32>, now_ms: u64) -> Result<u64, KvError> {
    match ttl {
        None | Some(0) => Ok(0),
        Some(s) if s > MAX_TTL_SECONDS => Err(KvError::TtlTooLong),
        Some(s) => Ok(now_ms.saturating_add(u64::from(s) * 1000)),
    }
}

/// Applies one write to `table` at time `now_ms`.
pub fn apply(
    table: &mut impl Table,
    ns: &Namespace,
    op: &WriteOp,
    now_ms: u64,
) -> Result<Outcome, KvError> {
    let key = match op {
        WriteOp::Set { key, .. }
        | WriteOp::Delete { key }
        | WriteOp::Increment { key, .. }
        | WriteOp::CompareAndSwap { key, .. } => key,
    };
    check_key(key)?;
    let stored_key = ns.key(key);
    let old = table.get_raw(&stored_key)?;
    let current = old.as_deref().and_then(|raw| live(raw, now_ms));
    // Decide the new raw value (None = delete) and the outcome.
    let (new_raw, outcome) = match op {
        WriteOp::Set { value, ttl, .. } => {
            check_value(value)?;
            (
                Some(encode(expiry_for(*ttl, now_ms)?, value)),
                Outcome::Done,
            )
        }
        WriteOp::Delete { .. } => (None, Outcome::Done),
        WriteOp::Increment { delta, ttl, .. } => {
            let before = match current {
                None => 0,
                Some(bytes) => std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .ok_or_else(|| {
                        KvError::NotAnInteger("the value is not a decimal integer".into())
                    })?,
            };
            let after = before
                .checked_add(*delta)
                .ok_or_else(|| KvError::NotAnInteger("the counter would overflow".into()))?;
            // A live key keeps its expiry; a new one takes the TTL.
            let expiry = match (current, old.as_deref()) {
                (Some(_), Some(raw)) => decode(raw).0,
                _ => expiry_for(*ttl, now_ms)?,
            };
            (
                Some(encode(expiry, after.to_string().as_bytes())),
                Outcome::Counter(after),
            )
        }
        WriteOp::CompareAndSwap {
            expected, new, ttl, ..
        } => {
            check_value(new)?;
            if current != expected.as_deref() {
                return Ok(Outcome::Swapped(false));
            }
            (
                Some(encode(expiry_for(*ttl, now_ms)?, new)),
                Outcome::Swapped(true),
            )
        }
    };
    let size = |raw: &Option<Vec<u8>>| {
        raw.as_ref()
            .map_or(0, |r| (stored_key.len() + r.len()) as u64)
    };
    let (old_size, new_size) = (size(&old), size(&new_raw));
    let usage = table.usage(&ns.tenant)?;
    let new_usage = usage.saturating_sub(old_size).saturating_add(new_size);
    if new_size > old_size && new_usage > ns.quota_bytes {
        return Err(KvError::QuotaExceeded);
    }
    // Mutate: index, value, usage.
    if let Some(old) = &old {
        let (at, _) = decode(old);
        if at != 0 {
            table.index_expiry(at, &stored_key, false)?;
        }
    }
    match &new_raw {
        Some(raw) => {
            let (at, _) = decode(raw);
            if at != 0 {
                table.index_expiry(at, &stored_key, true)?;
            }
            table.put_raw(&stored_key, raw)?;
        }
        None if old.is_some() => table.remove_raw(&stored_key)?,
        None => {}
    }
    if new_usage != usage {
        table.set_usage(&ns.tenant, new_usage)?;
    }
    Ok(outcome)
}

/// Refuses a value over the size cap.
pub(super) fn check_value(value: &[u8]) -> Result<(), KvError> {
    if value.len() > MAX_VALUE_BYTES {
        Err(KvError::ValueTooLarge)
    } else {
        Ok(())
    }
}

/// Removes an expired key found in the expiry index, if it is still the
/// one that expires at `at_ms` (it may have been rewritten since).
pub fn sweep_one(table: &mut impl Table, at_ms: u64, stored_key: &[u8]) -> Result<(), KvError> {
    table.index_expiry(at_ms, stored_key, false)?;
    let Some(raw) = table.get_raw(stored_key)? else {
        return Ok(());
    };
    if decode(&raw).0 != at_ms {
        return Ok(());
    }
    table.remove_raw(stored_key)?;
    let tenant = stored_key.split(|&b| b == 0).next().unwrap_or_default();
    let tenant = String::from_utf8_lossy(tenant).into_owned();
    let usage = table.usage(&tenant)?;
    table.set_usage(
        &tenant,
        usage.saturating_sub((stored_key.len() + raw.len()) as u64),
    )
}

/// Builds a page from `(stored key, raw value)` pairs in key order that
/// start at the namespace+prefix: skips expired entries and the cursor
/// itself, stops after `limit` keys.
pub fn page_from<I, K, V>(
    entries: I,
    ns_prefix_len: usize,
    prefix: &[u8],
    cursor: Option<&str>,
    limit: usize,
    now_ms: u64,
) -> Result<super::KeyPage, KvError>
where
    I: Iterator<Item = Result<(K, V), KvError>>,
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut page = super::KeyPage::default();
    for entry in entries {
        let (stored, raw) = entry?;
        let stored = stored.as_ref();
        if !stored.starts_with(prefix) {
            break;
        }
        let key = &stored[ns_prefix_len.min(stored.len())..];
        if cursor.is_some_and(|c| key <= c.as_bytes()) || live(raw.as_ref(), now_ms).is_none() {
            continue;
        }
        if page.keys.len() == limit {
            page.cursor = page.keys.last().cloned();
            break;
        }
        page.keys.push(String::from_utf8_lossy(key).into_owned());
    }
    Ok(page)
}
