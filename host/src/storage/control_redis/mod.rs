//! The control plane in Redis, for fleet mode: Redis holds the truth and
//! every node's `control.redb` is its snapshot of the last revision it
//! applied (so a node restarts and serves during a Redis outage).
//!
//! Key layout, all under one hash tag so a change and its revision bump
//! are one atomic script on Redis Cluster too (the control plane is small:
//! a record per tenant, app and version):
//! - `{verge:cp}:rev`: the revision, bumped by every change;
//! - `{verge:cp}:tenants`, `:apps`, `:versions`: hashes holding the same
//!   keys and JSON values as the tables of `control.redb`;
//! - `{verge:cp}:component:SHA256`: component bytes, stored once.
//!
//! A change is published on [`CONTROL_CHANNEL`] with its revision. Nodes
//! then read the whole state in one `MULTI` and apply it (`sync`): a lost
//! message, a gap or a reconnect all end the same way, at the latest
//! revision.

mod scope;

pub use scope::{Scope, scope_of};

use super::StorageError;
use super::redis_link::RedisLink;
use std::time::Duration;

/// The channel every control-plane change is announced on.
pub const CONTROL_CHANNEL: &str = "verge:control";

/// The key holding the control plane's revision.
pub const REVISION_KEY: &str = "{verge:cp}:rev";

const TABLE_KEYS: [&str; 3] = [
    "{verge:cp}:tenants",
    "{verge:cp}:apps",
    "{verge:cp}:versions",
];

/// Scope key → the revision that last wrote it (`scope.rs`).
const TOUCHED_KEY: &str = "{verge:cp}:touched";

/// Longest a control-plane call waits for Redis: an admin write fails
/// with 503 and the reason rather than hang, and a healthy Redis answers
/// in well under a millisecond on a LAN.
pub const CONTROL_TIMEOUT: Duration = Duration::from_millis(500);

/// Longest a node waits to fetch or store one component's bytes (up to
/// `MAX_COMPONENT_BYTES`, 32 MiB) in Redis.
pub const COMPONENT_TIMEOUT: Duration = Duration::from_secs(10);

static APPLY: &str = include_str!("apply.lua");
static RESEED: &str = include_str!("reseed.lua");

/// One of the three control tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Tenants by name.
    Tenants = 0,
    /// Apps by `tenant/app`.
    Apps = 1,
    /// Versions by `tenant/app/NUMBER`.
    Versions = 2,
}

/// One change to a control table, as both stores apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlOp {
    /// Insert or replace a record.
    Put(Table, String, Vec<u8>),
    /// Remove a record.
    Delete(Table, String),
    /// Remove every record whose key starts with the prefix.
    DeletePrefix(Table, String),
}

/// The whole control plane at one revision: each table's keys and values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlSnapshot {
    /// The revision it is.
    pub revision: u64,
    /// Tenants, apps and versions, in [`Table`] order.
    pub tables: [Vec<(String, Vec<u8>)>; 3],
}

/// The control plane's Redis.
pub struct RedisControl {
    link: RedisLink,
    apply: redis::Script,
    reseed: redis::Script,
}

fn unavailable(err: impl std::fmt::Display) -> StorageError {
    StorageError::Unavailable(format!("the cluster's Redis: {err}"))
}

/// Runs `call` by `timeout`, naming what did not answer.
async fn bounded<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, StorageError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(unavailable(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

impl RedisControl {
    /// The control plane through `client`; an unreachable Redis is not an
    /// error (calls fail with [`StorageError::Unavailable`] until it
    /// answers).
    pub async fn with_client(client: &redis::Client) -> Self {
        Self {
            link: RedisLink::connect(client, CONTROL_TIMEOUT, "control plane").await,
            apply: redis::Script::new(APPLY),
            reseed: redis::Script::new(RESEED),
        }
    }

    fn conn(&self) -> Result<redis::aio::ConnectionManager, StorageError> {
        self.link
            .get()
            .ok_or_else(|| unavailable("not connected yet"))
    }

    /// Applies `ops` if the control plane is still at `expected`; returns
    /// the new revision, or [`StorageError::Conflict`] when another node
    /// changed it first.
    pub async fn apply(&self, expected: u64, ops: &[ControlOp]) -> Result<u64, StorageError> {
        self.apply_within(expected, ops, None).await
    }

    /// Applies `ops` unless something they read ([`scope_of`]) was written
    /// after `expected` (any change at all, for ops without a scope);
    /// returns the new revision, which is `expected + 1` only when nothing
    /// else changed meanwhile, or [`StorageError::Conflict`].
    pub async fn apply_scoped(
        &self,
        expected: u64,
        ops: &[ControlOp],
    ) -> Result<u64, StorageError> {
        self.apply_within(expected, ops, scope_of(ops)).await
    }

    async fn apply_within(
        &self,
        expected: u64,
        ops: &[ControlOp],
        scope: Option<Scope>,
    ) -> Result<u64, StorageError> {
        let mut conn = self.conn()?;
        let mut invocation = control_script(&self.apply, expected);
        match &scope {
            Some(scope) => {
                invocation.arg(scope.reads.len());
                for key in &scope.reads {
                    invocation.arg(key);
                }
                invocation.arg(scope.writes.len());
                for key in &scope.writes {
                    invocation.arg(key);
                }
            }
            None => {
                invocation.arg(-1).arg(0);
            }
        }
        for op in ops {
            match op {
                ControlOp::Put(table, key, value) => invocation
                    .arg("put")
                    .arg(*table as u8 + 1)
                    .arg(key)
                    .arg(value.as_slice()),
                ControlOp::Delete(table, key) => {
                    invocation.arg("del").arg(*table as u8 + 1).arg(key)
                }
                ControlOp::DeletePrefix(table, prefix) => invocation
                    .arg("delprefix")
                    .arg(*table as u8 + 1)
                    .arg(prefix),
            };
        }
        let (status, revision): (String, u64) =
            bounded(CONTROL_TIMEOUT, invocation.invoke_async(&mut conn)).await?;
        match status.as_str() {
            "ok" => Ok(revision),
            _ => Err(StorageError::Conflict(format!(
                "another node changed the same records (the control plane moved to revision {revision} while this one was at {expected}); retry"
            ))),
        }
    }

    /// Writes `snapshot`'s tables over Redis's at revision `revision`, if
    /// Redis is still at `expected` (else [`StorageError::Conflict`]).
    pub async fn reseed(
        &self,
        expected: u64,
        snapshot: &ControlSnapshot,
        revision: u64,
    ) -> Result<u64, StorageError> {
        let mut conn = self.conn()?;
        let mut invocation = control_script(&self.reseed, expected);
        invocation.arg(revision);
        for rows in &snapshot.tables {
            invocation.arg(rows.len());
            for (key, value) in rows {
                invocation.arg(key).arg(value.as_slice());
            }
        }
        let (status, now): (String, u64) =
            bounded(COMPONENT_TIMEOUT, invocation.invoke_async(&mut conn)).await?;
        match status.as_str() {
            "ok" => Ok(now),
            _ => Err(StorageError::Conflict(format!(
                "the fleet's Redis moved to revision {now} while this node read {expected}; retry"
            ))),
        }
    }

    /// The current revision (0 before the first change).
    pub async fn revision(&self) -> Result<u64, StorageError> {
        let mut conn = self.conn()?;
        let revision: Option<u64> = bounded(
            CONTROL_TIMEOUT,
            redis::cmd("GET").arg(REVISION_KEY).query_async(&mut conn),
        )
        .await?;
        Ok(revision.unwrap_or(0))
    }

    /// The whole control plane, read in one transaction.
    pub async fn snapshot(&self) -> Result<ControlSnapshot, StorageError> {
        let mut conn = self.conn()?;
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("GET").arg(REVISION_KEY);
        for key in TABLE_KEYS {
            pipe.cmd("HGETALL").arg(key);
        }
        type Hash = Vec<(String, Vec<u8>)>;
        let (revision, tenants, apps, versions): (Option<u64>, Hash, Hash, Hash) =
            bounded(CONTROL_TIMEOUT, pipe.query_async(&mut conn)).await?;
        Ok(ControlSnapshot {
            revision: revision.unwrap_or(0),
            tables: [tenants, apps, versions],
        })
    }

    /// Stores a component's bytes under their hash (once).
    pub async fn put_component(&self, sha256: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let mut conn = self.conn()?;
        bounded(
            COMPONENT_TIMEOUT,
            redis::cmd("SET")
                .arg(component_key(sha256))
                .arg(bytes)
                .arg("NX")
                .query_async::<()>(&mut conn),
        )
        .await
    }

    /// A component's bytes, if some node stored them.
    pub async fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let mut conn = self.conn()?;
        bounded(
            COMPONENT_TIMEOUT,
            redis::cmd("GET")
                .arg(component_key(sha256))
                .query_async(&mut conn),
        )
        .await
    }
}

/// A call of `script` with the control plane's keys (revision, the three
/// tables, the touched stamps) and its first two arguments: the revision
/// the writer read, the channel to announce on.
fn control_script(script: &redis::Script, expected: u64) -> redis::ScriptInvocation<'_> {
    let mut invocation = script.prepare_invoke();
    invocation.key(REVISION_KEY);
    for key in TABLE_KEYS {
        invocation.key(key);
    }
    invocation.key(TOUCHED_KEY);
    invocation.arg(expected).arg(CONTROL_CHANNEL);
    invocation
}

fn component_key(sha256: &str) -> String {
    format!("{{verge:cp}}:component:{sha256}")
}

/// Runs `call` to completion from blocking code (the registry's methods
/// run on `spawn_blocking` threads), on the runtime that spawned them.
pub fn block_on<T>(
    call: impl std::future::Future<Output = Result<T, StorageError>>,
) -> Result<T, StorageError> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| unavailable("called outside the async runtime"))?;
    handle.block_on(call)
}
