//! Admin API for KV: read, write, list and bulk-import a tenant's stores.
//!
//! | method | path (under `/v1/tenants/{t}/kv/{store}`) | body |
//! |---|---|---|
//! | GET | `/keys?prefix=&cursor=&limit=` | → `{"keys": [...], "cursor": ...}` |
//! | GET | `/keys/{key}` | → the value's bytes |
//! | PUT | `/keys/{key}?ttl=SECONDS` | the value's bytes |
//! | DELETE | `/keys/{key}` | |
//! | POST | `/import` | `{"key": "value", ...}` or `[{"key", "value", "ttl"?}]` |

use crate::storage::kv::{KvError, WriteOp};
use crate::tenancy::{Registry, RegistryError};
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Most entries one import may carry.
pub const MAX_IMPORT_ENTRIES: usize = 10_000;

/// Why a KV admin request failed.
pub enum KvApiError {
    /// From the registry (unknown tenant, bad store name).
    Registry(RegistryError),
    /// From storage, or a refused key or value.
    Kv(KvError),
    /// Bad request shape.
    Bad(String),
    /// Key not found, or unknown sub-path.
    NotFound,
}

impl KvApiError {
    /// The status and message.
    pub fn status(&self) -> (StatusCode, String) {
        match self {
            Self::Registry(RegistryError::NotFound(what)) => {
                (StatusCode::NOT_FOUND, format!("{what} not found"))
            }
            Self::Registry(e) => (StatusCode::BAD_REQUEST, e.to_string()),
            Self::Kv(KvError::Storage(e)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("storage failure: {e}"),
            ),
            Self::Kv(KvError::QuotaExceeded) => (
                StatusCode::INSUFFICIENT_STORAGE,
                KvError::QuotaExceeded.to_string(),
            ),
            Self::Kv(e) => (StatusCode::BAD_REQUEST, e.to_string()),
            Self::Bad(msg) => (StatusCode::BAD_REQUEST, msg.clone()),
            Self::NotFound => (StatusCode::NOT_FOUND, "no such key".into()),
        }
    }
}

/// An import body, `{"key": "value", ...}` or `[{"key", "value", "ttl"?}]`,
/// parsed entry by entry: past [`MAX_IMPORT_ENTRIES`] the parse stops
/// there, so a huge body costs no more than the entries it may hold.
struct Import(Vec<ImportEntry>);

impl<'de> Deserialize<'de> for Import {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = Import;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of keys to values or a list of {key, value, ttl}")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Import, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    push_capped(
                        &mut entries,
                        ImportEntry {
                            key,
                            value,
                            ttl: None,
                        },
                    )?;
                }
                Ok(Import(entries))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Import, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = seq.next_element::<ImportEntry>()? {
                    push_capped(&mut entries, entry)?;
                }
                Ok(Import(entries))
            }
        }
        de.deserialize_any(Entries)
    }
}

fn push_capped<E: serde::de::Error>(
    entries: &mut Vec<ImportEntry>,
    entry: ImportEntry,
) -> Result<(), E> {
    if entries.len() == MAX_IMPORT_ENTRIES {
        return Err(E::custom(format!(
            "at most {MAX_IMPORT_ENTRIES} entries per import"
        )));
    }
    entries.push(entry);
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportEntry {
    key: String,
    value: String,
    #[serde(default)]
    ttl: Option<u32>,
}

/// Decodes `%XX` escapes in a path segment (keys may contain `/`, spaces...).
pub fn percent_decode(s: &str) -> Result<String, KvApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| KvApiError::Bad("bad %-escape in the key".into()))?;
            out.push(
                u8::from_str_radix(hex, 16)
                    .map_err(|_| KvApiError::Bad("bad %-escape in the key".into()))?,
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| KvApiError::Bad("the key is not UTF-8".into()))
}

fn query<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}

fn json_ok(value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(value.to_string())));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

/// Handles `rest` (the path after `/kv/{store}`).
pub async fn handle(
    registry: &Arc<Registry>,
    tenant: &str,
    store: &str,
    rest: &str,
    method: &Method,
    raw_query: Option<&str>,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, KvApiError> {
    let ns = registry
        .kv_namespace(tenant.to_owned(), store.to_owned())
        .await
        .map_err(KvApiError::Registry)?;
    let kv = registry.kv();
    match (rest, method) {
        ("/keys", &Method::GET) => {
            let prefix = percent_decode(query(raw_query, "prefix").unwrap_or(""))?;
            let cursor = query(raw_query, "cursor").map(percent_decode).transpose()?;
            let limit = query(raw_query, "limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100);
            let page = kv
                .list(&ns, &prefix, cursor.as_deref(), limit)
                .await
                .map_err(KvApiError::Kv)?;
            Ok(json_ok(
                &json!({ "keys": page.keys, "cursor": page.cursor }),
            ))
        }
        ("/import", &Method::POST) => {
            let Import(entries) = serde_json::from_slice(&body)
                .map_err(|e| KvApiError::Bad(format!("import refused: {e}")))?;
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
            let count = kv.write_all(&ns, ops).await.map_err(KvApiError::Kv)?;
            Ok(json_ok(&json!({ "imported": count })))
        }
        (path, method) => {
            let key = percent_decode(path.strip_prefix("/keys/").ok_or(KvApiError::NotFound)?)?;
            match *method {
                Method::GET => match kv.get(&ns, &key).await.map_err(KvApiError::Kv)? {
                    Some(value) => Ok(Response::new(Full::new(Bytes::from(value)))),
                    None => Err(KvApiError::NotFound),
                },
                Method::PUT => {
                    let ttl = query(raw_query, "ttl").and_then(|t| t.parse().ok());
                    let op = WriteOp::Set {
                        key: key.clone(),
                        value: body.to_vec(),
                        ttl,
                    };
                    kv.write(&ns, op).await.map_err(KvApiError::Kv)?;
                    Ok(json_ok(&json!({ "stored": key })))
                }
                Method::DELETE => {
                    kv.write(&ns, WriteOp::Delete { key: key.clone() })
                        .await
                        .map_err(KvApiError::Kv)?;
                    Ok(json_ok(&json!({ "deleted": key })))
                }
                _ => Err(KvApiError::Bad("method not allowed here".into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%2Fb%20c").ok(), Some("a/b c".to_owned()));
        assert!(percent_decode("a%2").is_err());
        assert!(percent_decode("%zz").is_err());
    }
}
