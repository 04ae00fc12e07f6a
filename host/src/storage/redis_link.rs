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
/// `timeout`, if Redis answers by four timeouts; else why not.
async fn open(client: &redis::Client, timeout: Duration) -> Result<ConnectionManager, String> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(timeout));
    let manager = ConnectionManager::new_with_config(client.clone(), config);
    match tokio::time::timeout(timeout * 4, manager).await {
        Ok(Ok(manager)) => Ok(manager),
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "connecting to Redis");
            Err(why_not(&err))
        }
        Err(_) => Err(format!("no answer within {} ms", (timeout * 4).as_millis())),
    }
}

/// Why connecting failed, in the operator's terms: a refused password is
/// not an unreachable Redis.
fn why_not(err: &redis::RedisError) -> String {
    let text = err.to_string();
    // `AUTH` also matches `NOAUTH` (a password the server wants).
    let auth = err.kind() == redis::ErrorKind::AuthenticationFailed
        || text.contains("AUTH")
        || text.contains("WRONGPASS");
    if auth {
        format!(
            "Redis refused the authentication (check VERGE_CLUSTER_PASSWORD or cluster.password_file against the server's requirepass/ACL): {text}"
        )
    } else {
        format!("Redis is not reachable: {text}")
    }
}

impl RedisLink {
    /// Connects to `client` now if Redis answers, or keeps trying in the
    /// background with backoff. `what` names the user in the logs.
    pub async fn connect(client: &redis::Client, timeout: Duration, what: &'static str) -> Self {
        let link = Self {
            slot: Arc::new(RwLock::new(None)),
        };
        match open(client, timeout).await {
            Ok(manager) => link.fill(manager),
            Err(why) => {
                tracing::warn!("{what}: {why}; calls fail until it answers");
                let (client, link) = (client.clone(), link.clone());
                tokio::spawn(async move {
                    let mut wait = RECONNECT_FIRST;
                    loop {
                        tokio::time::sleep(wait).await;
                        if let Ok(manager) = open(&client, timeout).await {
                            link.fill(manager);
                            tracing::info!("{what}: connected to Redis");
                            return;
                        }
                        wait = (wait * 2).min(RECONNECT_MAX);
                    }
                });
            }
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

#[cfg(test)]
mod why_tests {
    use super::why_not;

    #[test]
    fn a_refused_password_is_named_as_such_not_as_unreachable() {
        let auth = redis::RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        let said = why_not(&auth);
        assert!(said.contains("refused the authentication"), "{said}");
        assert!(!said.contains("not reachable"), "{said}");
        let io =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(why_not(&io).contains("not reachable"), "{}", why_not(&io));
    }
}
