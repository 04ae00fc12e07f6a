//! The fleet's message bus on Redis: what one node changes that every node
//! must apply to its own copy, and who the nodes are.
//! - Edge-cache purges on pub/sub (the cache stays per node, as a PoP's
//!   does; a purge must reach all). `PUBLISH` answers how many nodes were
//!   subscribed, which is what `verge cache purge` reports as reached. A
//!   node that is cut off misses purges sent meanwhile; cache TTLs bound
//!   what it keeps serving.
//! - Control-plane changes: their revision on `verge:control`, which
//!   wakes each node's sync (`tenancy::fleet_sync`).
//! - Heartbeats: each node keeps `verge:node:NAME` alive (a key with a
//!   TTL) with the revision it applied and the version it serves of each
//!   app; `GET /v1/nodes` lists the live ones.

use futures_util::StreamExt as _;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The channel cache purges travel on.
pub const PURGE_CHANNEL: &str = "verge:cache:purge";

/// The channel KV writes to read-cached stores are announced on.
pub const KV_CHANNEL: &str = "verge:kv:invalidate";

/// Longest a publish waits for Redis before the admin call fails with
/// the reason: admin writes must not hang on an unreachable Redis.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_millis(500);

/// How long the subscriber waits before resubscribing after Redis went
/// away.
pub const RESUBSCRIBE_WAIT: Duration = Duration::from_millis(500);

/// How often a node refreshes its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// How long a heartbeat counts: a node silent for this long (three missed
/// beats and some) is listed as down.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(7);

/// How long a silent node stays listed (as down, with when it was last
/// seen) before it is forgotten: long enough for an operator to notice a
/// node that died, short enough that a node removed for good goes away.
pub const NODE_REMEMBERED_FOR: Duration = Duration::from_secs(3600);

/// What a node says about itself in its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its name.
    pub name: String,
    /// Its region label.
    pub region: String,
    /// Its data-plane address.
    pub data: String,
    /// Its admin API address.
    pub admin: String,
    /// When it last beat, in ms since the epoch.
    pub heartbeat_ms: u64,
    /// The control-plane revision it applied.
    #[serde(default)]
    pub revision: u64,
    /// The version it serves of each app (`tenant/app`).
    #[serde(default)]
    pub apps: std::collections::BTreeMap<String, u32>,
    /// Whether it refuses the fleet's control plane because Redis went
    /// back in time (it serves its snapshot meanwhile).
    #[serde(default)]
    pub diverged: bool,
}

impl NodeInfo {
    /// Whether it beat within [`HEARTBEAT_TTL`] of `now_ms`.
    pub fn is_up(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.heartbeat_ms)
            < u64::try_from(HEARTBEAT_TTL.as_millis()).unwrap_or(u64::MAX)
    }
}

/// One purge, as every node applies it to its cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeMessage {
    /// The node that purged first (it does not apply its own message).
    pub origin: String,
    /// The tenant's data key; none with `all` purges every tenant.
    pub tenant: Option<String>,
    /// Purge this tag.
    pub tag: Option<String>,
    /// Purge this key.
    pub key: Option<String>,
    /// Purge everything (of the tenant, or of all).
    pub all: bool,
}

/// A KV write another node made to a store some app caches: every other
/// node drops its entry for the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvInvalidation {
    /// The node that wrote.
    pub origin: String,
    /// The tenant's data key.
    pub tenant: String,
    /// The store.
    pub store: String,
    /// The key.
    pub key: String,
}

/// What a node does with what arrives on the bus.
pub struct Handlers {
    /// Applies another node's cache purge.
    pub purge: Box<dyn Fn(PurgeMessage) + Send + Sync>,
    /// Called for every control-plane change and after every
    /// (re)subscription (changes may have been missed meanwhile).
    pub changed: Box<dyn Fn() + Send + Sync>,
    /// Drops the read-cache entry another node's write made stale.
    pub kv: Box<dyn Fn(KvInvalidation) + Send + Sync>,
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Redis refused, failed or did not answer in time.
    #[error("the cluster's Redis: {0}")]
    Redis(String),
}

/// This node's end of the bus.
pub struct ClusterBus {
    client: redis::Client,
    node: String,
    publisher: tokio::sync::OnceCell<ConnectionManager>,
}

impl ClusterBus {
    /// The bus through `client`, as node `node`.
    pub fn with_client(client: redis::Client, node: &str) -> Self {
        Self {
            client,
            node: node.to_owned(),
            publisher: tokio::sync::OnceCell::new(),
        }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Sends `message` to every node; returns how many received it (this
    /// node's subscriber included).
    pub async fn publish(&self, message: &PurgeMessage) -> Result<usize, BusError> {
        let payload = serde_json::to_string(message).map_err(|e| BusError::Redis(e.to_string()))?;
        self.call(redis::cmd("PUBLISH").arg(PURGE_CHANNEL).arg(payload))
            .await
    }

    /// Runs one command on the publishing connection, by
    /// [`PUBLISH_TIMEOUT`].
    async fn call<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, BusError> {
        let run = async {
            let mut conn = self.conn().await?;
            command
                .query_async::<T>(&mut conn)
                .await
                .map_err(|e| BusError::Redis(e.to_string()))
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, run).await {
            Ok(result) => result,
            Err(_) => Err(BusError::Redis(format!(
                "no answer within {} ms",
                PUBLISH_TIMEOUT.as_millis()
            ))),
        }
    }

    /// Keeps this node's heartbeat alive with what `info` says until the
    /// task is dropped: every [`HEARTBEAT_INTERVAL`], and at once when
    /// `now` is notified (the node applied a change).
    pub fn beat(
        self: &Arc<Self>,
        info: impl Fn() -> NodeInfo + Send + 'static,
        now: Arc<tokio::sync::Notify>,
    ) -> tokio::task::JoinHandle<()> {
        let bus = self.clone();
        tokio::spawn(async move {
            loop {
                let at = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                let beat = NodeInfo {
                    heartbeat_ms: at,
                    ..info()
                };
                if let Err(err) = bus.store_beat(&beat).await {
                    tracing::debug!(error = %err, "heartbeat");
                }
                tokio::select! {
                    () = tokio::time::sleep(HEARTBEAT_INTERVAL) => {}
                    () = now.notified() => {}
                }
            }
        })
    }

    /// The fleet's control-plane revision.
    pub async fn revision(&self) -> Result<u64, BusError> {
        let revision: Option<u64> = self
            .call(redis::cmd("GET").arg(super::control_redis::REVISION_KEY))
            .await?;
        Ok(revision.unwrap_or(0))
    }

    async fn conn(&self) -> Result<ConnectionManager, BusError> {
        let conn = self
            .publisher
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await
            .map_err(|e| BusError::Redis(e.to_string()))?;
        Ok(conn.clone())
    }

    async fn store_beat(&self, beat: &NodeInfo) -> Result<(), BusError> {
        let payload = serde_json::to_string(beat).map_err(|e| BusError::Redis(e.to_string()))?;
        self.call(
            redis::cmd("SET")
                .arg(format!("verge:node:{}", beat.name))
                .arg(payload)
                .arg("PX")
                .arg(u64::try_from(NODE_REMEMBERED_FOR.as_millis()).unwrap_or(u64::MAX)),
        )
        .await
    }

    /// The nodes that beat within [`NODE_REMEMBERED_FOR`], by name (see
    /// [`NodeInfo::is_up`]).
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, BusError> {
        let list = async {
            let mut conn = self.conn().await?;
            let redis = |e: redis::RedisError| BusError::Redis(e.to_string());
            let mut names: Vec<String> = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg("verge:node:*")
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .map_err(redis)?;
                names.extend(found);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            if names.is_empty() {
                return Ok(Vec::new());
            }
            let beats: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&names)
                .query_async(&mut conn)
                .await
                .map_err(redis)?;
            let mut nodes: Vec<NodeInfo> = beats
                .into_iter()
                .flatten()
                .filter_map(|beat| serde_json::from_str(&beat).ok())
                .collect();
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(nodes)
        };
        tokio::time::timeout(PUBLISH_TIMEOUT, list)
            .await
            .map_err(|_| BusError::Redis("no answer".into()))?
    }

    /// Announces a KV write to the other nodes, in the background: the
    /// write is already durable, and a lost announcement is bounded by the
    /// cache TTL.
    pub fn announce_kv_write(self: &Arc<Self>, tenant: &str, store: &str, key: &str) {
        let message = KvInvalidation {
            origin: self.node.clone(),
            tenant: tenant.to_owned(),
            store: store.to_owned(),
            key: key.to_owned(),
        };
        let bus = self.clone();
        tokio::spawn(async move {
            let Ok(payload) = serde_json::to_string(&message) else {
                return;
            };
            let sent: Result<usize, _> = bus
                .call(redis::cmd("PUBLISH").arg(KV_CHANNEL).arg(payload))
                .await;
            if let Err(err) = sent {
                tracing::debug!(error = %err, "announcing a KV write");
            }
        });
    }

    /// Hands what arrives to `handlers`, resubscribing after Redis goes
    /// away, until the task is dropped.
    pub fn subscribe(self: &Arc<Self>, handlers: Handlers) -> tokio::task::JoinHandle<()> {
        let bus = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(err) = bus.listen(&handlers).await {
                    tracing::warn!(error = %err, "cluster bus subscription lost; resubscribing");
                }
                // The node checks at once whether it can still reach the
                // control plane (readiness says so if not).
                (handlers.changed)();
                tokio::time::sleep(RESUBSCRIBE_WAIT).await;
            }
        })
    }

    async fn listen(&self, handlers: &Handlers) -> redis::RedisResult<()> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(PURGE_CHANNEL).await?;
        pubsub.subscribe(KV_CHANNEL).await?;
        pubsub
            .subscribe(super::control_redis::CONTROL_CHANNEL)
            .await?;
        (handlers.changed)();
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let channel = message.get_channel_name();
            if channel == super::control_redis::CONTROL_CHANNEL {
                (handlers.changed)();
                continue;
            }
            let payload: String = message.get_payload()?;
            if channel == KV_CHANNEL {
                match serde_json::from_str::<KvInvalidation>(&payload) {
                    Ok(stale) if stale.origin != self.node => (handlers.kv)(stale),
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "an unreadable KV invalidation on the cluster bus")
                    }
                }
                continue;
            }
            match serde_json::from_str::<PurgeMessage>(&payload) {
                Ok(purge) if purge.origin != self.node => (handlers.purge)(purge),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "an unreadable message on the cluster bus")
                }
            }
        }
        Ok(())
    }
}
