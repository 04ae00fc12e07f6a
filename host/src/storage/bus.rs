//! The fleet's message bus on Redis pub/sub: what one node changes that
//! every node must apply to its own copy. Today that is edge-cache purges
//! (the cache stays per node, as a PoP's does; a purge must reach all).
//! `PUBLISH` answers how many nodes were subscribed, which is what
//! `verge cache purge` reports as confirmed. A node that is cut off misses
//! purges sent meanwhile; cache TTLs bound what it keeps serving.

use futures_util::StreamExt as _;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The channel cache purges travel on.
pub const PURGE_CHANNEL: &str = "verge:cache:purge";

/// Longest a publish waits for Redis before the admin call fails with
/// the reason: admin writes must not hang on an unreachable Redis.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_millis(500);

/// How long the subscriber waits before resubscribing after Redis went
/// away.
pub const RESUBSCRIBE_WAIT: Duration = Duration::from_millis(500);

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
    /// The bus on the Redis at `url`, as node `node`.
    pub fn new(url: &str, node: &str) -> Result<Self, BusError> {
        let client = redis::Client::open(url).map_err(|e| BusError::Redis(e.to_string()))?;
        Ok(Self {
            client,
            node: node.to_owned(),
            publisher: tokio::sync::OnceCell::new(),
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Sends `message` to every node; returns how many received it (this
    /// node's subscriber included).
    pub async fn publish(&self, message: &PurgeMessage) -> Result<usize, BusError> {
        let payload = serde_json::to_string(message).map_err(|e| BusError::Redis(e.to_string()))?;
        let send = async {
            let conn = self
                .publisher
                .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
                .await?;
            let mut conn = conn.clone();
            redis::cmd("PUBLISH")
                .arg(PURGE_CHANNEL)
                .arg(payload)
                .query_async::<usize>(&mut conn)
                .await
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, send).await {
            Ok(Ok(receivers)) => Ok(receivers),
            Ok(Err(err)) => Err(BusError::Redis(err.to_string())),
            Err(_) => Err(BusError::Redis(format!(
                "no answer within {} ms",
                PUBLISH_TIMEOUT.as_millis()
            ))),
        }
    }

    /// Applies every purge other nodes send with `apply`, resubscribing
    /// after Redis goes away, until the task is dropped.
    pub fn subscribe(
        self: &Arc<Self>,
        apply: impl Fn(PurgeMessage) + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let bus = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(err) = bus.listen(&apply).await {
                    tracing::warn!(error = %err, "cluster bus subscription lost; resubscribing");
                }
                tokio::time::sleep(RESUBSCRIBE_WAIT).await;
            }
        })
    }

    async fn listen(&self, apply: &impl Fn(PurgeMessage)) -> redis::RedisResult<()> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(PURGE_CHANNEL).await?;
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let payload: String = message.get_payload()?;
            match serde_json::from_str::<PurgeMessage>(&payload) {
                Ok(purge) if purge.origin != self.node => apply(purge),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "an unreadable message on the cluster bus")
                }
            }
        }
        Ok(())
    }
}
