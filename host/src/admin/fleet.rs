//! The fleet endpoints: `GET /v1/nodes` (the operator's view: every live
//! node, the revision it applied and how far behind it is) and
//! `GET /v1/tenants/{t}/apps/{a}/nodes` (a tenant's view of one app's
//! rollout, which `verge deploy --wait` polls).

use super::endpoint::AppRef;
use super::error::ApiError;
use super::routes::{AdminApi, Reply, ok};
use serde_json::json;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl AdminApi {
    /// `GET /v1/nodes`.
    pub(super) async fn nodes(&self) -> Reply {
        let Some(bus) = &self.bus else {
            return ok(&json!({ "cluster": false, "nodes": [] }));
        };
        let revision = bus.revision().await.map_err(ApiError::Bus)?;
        let now = now_ms();
        let nodes: Vec<_> = bus
            .nodes()
            .await
            .map_err(ApiError::Bus)?
            .into_iter()
            .map(|node| {
                json!({
                    "name": node.name,
                    "region": node.region,
                    "data": node.data,
                    "admin": node.admin,
                    "heartbeat_ms": node.heartbeat_ms,
                    "heartbeat_age_ms": now.saturating_sub(node.heartbeat_ms),
                    "up": node.is_up(now),
                    "revision": node.revision,
                    "lag": revision.saturating_sub(node.revision),
                    "diverged": node.diverged,
                    "apps": node.apps.len(),
                })
            })
            .collect();
        ok(&json!({ "cluster": true, "revision": revision, "nodes": nodes }))
    }

    /// `GET /v1/tenants/{t}/apps/{a}/nodes`: the active version (as this
    /// node knows it) and the version each live node serves (`null` where
    /// it serves none).
    pub(super) async fn app_nodes(&self, app: AppRef) -> Reply {
        let r = &self.registry;
        let record = r.app(app.tenant.clone(), app.app.clone()).await?;
        let key = format!("{}/{}", app.tenant, app.app);
        let now = now_ms();
        let nodes: Vec<_> = match &self.bus {
            Some(bus) => bus
                .nodes()
                .await
                .map_err(ApiError::Bus)?
                .into_iter()
                .map(|node| {
                    json!({
                        "name": node.name,
                        "region": node.region,
                        "version": node.apps.get(&key),
                        "up": node.is_up(now),
                        "heartbeat_age_ms": now.saturating_sub(node.heartbeat_ms),
                    })
                })
                .collect(),
            None => {
                let (_, served) = r.served();
                vec![
                    json!({ "name": "local", "region": "", "version": served.get(&key), "up": true }),
                ]
            }
        };
        ok(&json!({
            "cluster": self.bus.is_some(),
            "active_version": record.active_version,
            "nodes": nodes,
        }))
    }
}
