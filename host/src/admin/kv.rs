//! Admin API for KV: read, write, list and bulk-import a tenant's stores.
//!
//! | method | path (under `/v1/tenants/{t}/kv/{store}`) | body |
//! |---|---|---|
//! | GET | `/keys?prefix=&cursor=&limit=` | → `{"keys": [...], "cursor": ...}` |
//! | GET | `/keys/{key}` | → the value's bytes |
//! | PUT | `/keys/{key}?ttl=SECONDS` | the value's bytes |
//! | DELETE | `/keys/{key}` | |
//! | POST | `/import` | `{"key": "value", ...}` or `[{"key", "value", "ttl"?}]` |

pub use super::dto::MAX_IMPORT_ENTRIES;

use super::dto::Import;
use super::endpoint::KvEndpoint;
use super::error::ApiError;
use crate::storage::kv::WriteOp;
use crate::tenancy::Registry;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::json;
use std::sync::Arc;

fn json_ok(value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(value.to_string())));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

/// Serves `endpoint` on `tenant`'s `store`.
pub(super) async fn handle(
    registry: &Arc<Registry>,
    tenant: &str,
    store: &str,
    endpoint: KvEndpoint,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let ns = registry
        .kv_namespace(tenant.to_owned(), store.to_owned())
        .await?;
    let kv = registry.kv();
    match endpoint {
        KvEndpoint::List {
            prefix,
            cursor,
            limit,
        } => {
            let page = kv.list(&ns, &prefix, cursor.as_deref(), limit).await?;
            Ok(json_ok(
                &json!({ "keys": page.keys, "cursor": page.cursor }),
            ))
        }
        KvEndpoint::Import => {
            let Import(entries) = serde_json::from_slice(&body)
                .map_err(|e| ApiError::BadRequest(format!("import refused: {e}")))?;
            drop(body);
            let ops: Vec<WriteOp> = entries
                .into_iter()
                .map(|e| WriteOp::Set {
                    key: e.key,
                    value: e.value.into_bytes(),
                    ttl: e.ttl,
                })
                .collect();
            // One commit: every entry is stored, or none.
            let count = kv.write_all(&ns, ops).await?;
            Ok(json_ok(&json!({ "imported": count })))
        }
        KvEndpoint::Get(key) => match kv.get(&ns, &key).await? {
            Some(value) => Ok(Response::new(Full::new(Bytes::from(value)))),
            None => Err(ApiError::NoSuchKey),
        },
        KvEndpoint::Put(key, ttl) => {
            let op = WriteOp::Set {
                key: key.clone(),
                value: body.to_vec(),
                ttl,
            };
            kv.write(&ns, op).await?;
            Ok(json_ok(&json!({ "stored": key })))
        }
        KvEndpoint::Delete(key) => {
            kv.write(&ns, WriteOp::Delete { key: key.clone() }).await?;
            Ok(json_ok(&json!({ "deleted": key })))
        }
    }
}
