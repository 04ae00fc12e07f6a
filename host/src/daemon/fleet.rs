//! Fleet-mode wiring of `start_platform`: the control plane in Redis, the
//! node's first catch-up, and the three tasks a fleet node runs — the bus
//! subscriber (purges, and control-plane changes that wake the sync), the
//! sync loop (on every change, and every [`RECONCILE_INTERVAL`] as a
//! safety net) and the heartbeat (at once after a change is applied).

use super::{ClusterConfig, apply_purge};
use crate::storage::bus::{ClusterBus, Handlers, NodeInfo};
use crate::storage::control_redis::RedisControl;
use crate::telemetry::metrics::Metrics;
use crate::tenancy::Registry;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How often a node checks the control plane's revision even without a
/// message: a message lost while the subscription was down, or a change
/// that failed to apply, is caught within this.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(5);

/// Longest a starting node waits for its first catch-up before it serves
/// its local snapshot (and keeps trying in the background).
pub const FIRST_SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// The fleet's control plane.
pub(super) async fn control(cluster: &ClusterConfig) -> anyhow::Result<Arc<RedisControl>> {
    let client = cluster
        .client()
        .with_context(|| format!("node {}: the control plane's Redis", cluster.node_name))?;
    Ok(Arc::new(RedisControl::with_client(&client).await))
}

/// The first catch-up with the fleet, before serving: a new node serves
/// every app at once; during a Redis outage the node serves its snapshot.
pub(super) async fn first_sync(registry: &Arc<Registry>, metrics: &Metrics) {
    match tokio::time::timeout(FIRST_SYNC_TIMEOUT, registry.sync()).await {
        Ok(Ok(synced)) => {
            metrics.cluster(true, Some(0));
            tracing::info!(
                revision = synced.revision,
                apps = registry.live_apps(),
                "caught up with the fleet"
            );
            // Secrets sealed under a previous key are resealed through
            // Redis, so the whole fleet moves to the new key.
            if let Err(err) = registry.reseal().await {
                tracing::warn!(error = %err, "could not reseal secrets under the current key");
            }
        }
        Ok(Err(err)) => {
            metrics.cluster(false, None);
            tracing::warn!(error = %err, "the fleet's control plane is unreachable; serving the local snapshot");
        }
        Err(_) => {
            metrics.cluster(false, None);
            tracing::warn!(
                "no catch-up with the fleet within {FIRST_SYNC_TIMEOUT:?}; serving the local snapshot"
            );
        }
    }
}

/// Where this node serves, for its heartbeat.
pub(super) struct Addresses {
    /// The data plane.
    pub data: SocketAddr,
    /// The admin API.
    pub admin: SocketAddr,
}

/// Starts the subscriber, the sync loop and the heartbeat.
pub(super) fn start(
    registry: &Arc<Registry>,
    bus: &Arc<ClusterBus>,
    cluster: &ClusterConfig,
    addresses: Addresses,
    metrics: Arc<Metrics>,
) -> Vec<JoinHandle<()>> {
    let wake = Arc::new(Notify::new());
    let beat_now = Arc::new(Notify::new());
    let kv_cache = registry.kv_cache();
    {
        let bus = bus.clone();
        kv_cache.announce_with(Arc::new(move |tenant: &str, store: &str, key: &str| {
            bus.announce_kv_write(tenant, store, key);
        }));
    }
    let subscriber = {
        let cache = registry.cache();
        let wake = wake.clone();
        bus.subscribe(Handlers {
            purge: Box::new(move |purge| apply_purge(&cache, &purge)),
            changed: Box::new(move || wake.notify_one()),
            kv: Box::new(move |stale| kv_cache.invalidate(&stale.tenant, &stale.store, &stale.key)),
        })
    };
    let syncing = {
        let (registry, bus, beat_now) = (registry.clone(), bus.clone(), beat_now.clone());
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                // A change message also refreshes the heartbeat at once,
                // even when this node made the change (and so applied it
                // before the message came): `deploy --wait` reads it.
                let woken = tokio::select! {
                    () = wake.notified() => true,
                    () = tokio::time::sleep(RECONCILE_INTERVAL) => false,
                };
                let before = registry.served().0;
                let synced = registry.sync().await;
                metrics.fleet_diverged(registry.diverged());
                match synced {
                    Ok(synced) => {
                        metrics.cluster(true, Some(0));
                        if failing {
                            tracing::info!(
                                revision = synced.revision,
                                "the fleet's control plane is back"
                            );
                        }
                        failing = false;
                        if woken || synced.revision != before || synced.apps_changed > 0 {
                            beat_now.notify_one();
                        }
                    }
                    Err(err) => {
                        let lag = bus.revision().await.ok().map(|r| r.saturating_sub(before));
                        metrics.cluster(false, lag);
                        if !failing {
                            tracing::warn!(error = %err, "cannot sync with the fleet's control plane; serving what this node has");
                        }
                        failing = true;
                    }
                }
            }
        })
    };
    let heartbeat = {
        let registry = registry.clone();
        let (name, region) = (cluster.node_name.clone(), cluster.region.clone());
        bus.beat(
            move || {
                let (revision, apps) = registry.served();
                NodeInfo {
                    name: name.clone(),
                    region: region.clone(),
                    data: addresses.data.to_string(),
                    admin: addresses.admin.to_string(),
                    heartbeat_ms: 0,
                    revision,
                    apps,
                    diverged: registry.diverged(),
                }
            },
            beat_now,
        )
    };
    vec![subscriber, syncing, heartbeat]
}
