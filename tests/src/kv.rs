//! Namespaces and writes the KV suites share.

use verge::storage::kv::{Namespace, WriteOp};

/// Store `s` of `tenant` with `quota_bytes`.
pub fn ns(tenant: &str, quota_bytes: u64) -> Namespace {
    Namespace {
        tenant: tenant.into(),
        store: "s".into(),
        quota_bytes,
    }
}

/// A set of `key` to `value`, with a TTL in seconds.
pub fn set(key: &str, value: &[u8], ttl: Option<u32>) -> WriteOp {
    WriteOp::Set {
        key: key.into(),
        value: value.to_vec(),
        ttl,
    }
}
