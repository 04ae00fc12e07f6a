//! One node's link to the fleet's Redis, shared by the KV backend and the
//! control plane: a connection manager that may not exist yet. A node
//! starts even while Redis is away; a task then connects in the background
//! with backoff, and once connected the manager reconnects by itself.

use redis::aio::ConnectionManager;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long the first reconnect attempt waits after a failed connect at
/// start; doubled after each failure up to [`RECONNECT_MAX`].
pub const RECONNECT_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between two connect attempts while Redis is away.
pub const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// A client for the Redis at `url` (`redis://` or `rediss://` for TLS).
/// With `ca_pem` (a PEM bundle), a `rediss://` server's certificate must
/// chain to it; without, to the system's roots.
pub fn client(url: &str, ca_pem: Option<Vec<u8>>) -> Result<redis::Client, String> {
    let made = match ca_pem {
        Some(root) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root),
            },
        ),
        None => redis::Client::open(url),
    };
    made.map_err(|err| format!("the cluster URL: {err}"))
}

/// A connection to Redis that is there once Redis first answered.
#[derive(Clone)]
pub struct RedisLink {
    slot: Arc<RwLock<Option<ConnectionManager>>>,
}

/// A connection manager on `client` whose calls each wait at most
/// `timeout`, if Redis answers by four timeouts.
async fn open(client: &redis::Client, timeout: Duration) -> Option<ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(timeout));
    let manager = ConnectionManager::new_with_config(client.clone(), config);
    match tokio::time::timeout(timeout * 4, manager).await {
        Ok(Ok(manager)) => Some(manager),
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "connecting to Redis");
            None
        }
        Err(_) => None,
    }
}

impl RedisLink {
    /// Connects to `client` now if Redis answers, or keeps trying in the
    /// background with backoff. `what` names the user in the logs.
    pub async fn connect(client: &redis::Client, timeout: Duration, what: &'static str) -> Self {
        let link = Self {
            slot: Arc::new(RwLock::new(None)),
        };
        if let Some(manager) = open(client, timeout).await {
            link.fill(manager);
        } else {
            tracing::warn!("{what}: Redis is not reachable; calls fail until it is");
            let (client, link) = (client.clone(), link.clone());
            tokio::spawn(async move {
                let mut wait = RECONNECT_FIRST;
                loop {
                    tokio::time::sleep(wait).await;
                    if let Some(manager) = open(&client, timeout).await {
                        link.fill(manager);
                        tracing::info!("{what}: connected to Redis");
                        return;
                    }
                    wait = (wait * 2).min(RECONNECT_MAX);
                }
            });
        }
        link
    }

    fn fill(&self, manager: ConnectionManager) {
        *self
            .slot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(manager);
    }

    /// The connection, if Redis has answered once.
    pub fn get(&self) -> Option<ConnectionManager> {
        self.slot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
