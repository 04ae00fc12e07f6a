//! The read-through HTTP cache behind `fetch` with a cache policy: a shared
//! cache in the sense of RFC 9111, simplified. GET responses are stored
//! per tenant by URL when `Cache-Control` allows it (`s-maxage`, else
//! `max-age`, else the policy's default TTL; never `no-store`, `private`,
//! `no-cache` or with `Set-Cookie`), served fresh from the cache, served
//! stale inside the stale-while-revalidate window while the host
//! revalidates in the background (`If-None-Match` / `If-Modified-Since`,
//! a 304 refreshes the stored copy), and identical misses share one
//! origin request. Responses that may not be stored leave a short "pass"
//! marker so later requests go straight to the origin instead of queueing
//! behind each other.

use super::client::{FetchClient, Inbound, Outbound};
use super::{FetchError, strip_inbound};
use crate::capabilities::cache::{CacheEntry, CacheStore, FillGuard, Lookup};
use bytes::Bytes;
use http::header::{
    AGE, CACHE_CONTROL, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, SET_COOKIE,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a "don't cache this URL" marker lasts: long enough to stop
/// a burst from queueing, short enough to notice when the origin changes.
pub const PASS_TTL: Duration = Duration::from_secs(30);

/// Longest a background revalidation may take.
pub const REVALIDATE_TIMEOUT: Duration = Duration::from_secs(10);

/// The header a cached fetch's response carries: `hit`, `stale`, `miss`
/// or `pass` (not cacheable).
pub const CACHE_STATUS_HEADER: &str = "verge-cache";

/// The guest's cache policy for one fetch.
#[derive(Debug, Clone, Default)]
pub struct CachePolicy {
    /// TTL when the origin sends no max-age (0: don't cache then).
    pub default_ttl: Duration,
    /// Stale window, overriding the origin's `stale-while-revalidate`.
    pub stale_while_revalidate: Option<Duration>,
    /// Tags for purges.
    pub tags: Vec<String>,
}

/// How long a response may be stored, from its headers and the policy;
/// `None` when it must not be.
pub fn freshness(
    status: u16,
    headers: &HeaderMap,
    policy: &CachePolicy,
) -> Option<(Duration, Duration)> {
    if !matches!(status, 200 | 203 | 204 | 300 | 301 | 308 | 404 | 410)
        || headers.contains_key(SET_COOKIE)
    {
        return None;
    }
    let directives: Vec<(String, Option<u64>)> = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| {
            let (name, value) = d.trim().split_once('=').unwrap_or((d.trim(), ""));
            (
                name.to_ascii_lowercase(),
                value.trim_matches('"').parse().ok(),
            )
        })
        .collect();
    let find = |name: &str| directives.iter().find(|(n, _)| n == name);
    if find("no-store").is_some() || find("private").is_some() || find("no-cache").is_some() {
        return None;
    }
    let age = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let max_age = find("s-maxage")
        .or_else(|| find("max-age"))
        .and_then(|(_, v)| *v)
        .map(|secs| Duration::from_secs(secs.saturating_sub(age)))
        .unwrap_or(policy.default_ttl);
    if max_age.is_zero() {
        return None;
    }
    let swr = policy.stale_while_revalidate.unwrap_or_else(|| {
        Duration::from_secs(
            find("stale-while-revalidate")
                .and_then(|(_, v)| *v)
                .unwrap_or(0),
        )
    });
    Some((max_age, swr))
}

fn to_entry(inbound: &Inbound, ttl: Duration, swr: Duration, tags: &[String]) -> CacheEntry {
    let mut headers = vec![(":status".to_owned(), inbound.status.to_string())];
    headers.extend(inbound.headers.iter().map(|(n, v)| {
        (
            n.as_str().to_owned(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        )
    }));
    CacheEntry {
        body: inbound.body.clone(),
        headers,
        tags: tags.to_vec(),
        stored: Instant::now(),
        ttl,
        swr,
    }
}

fn from_entry(entry: &CacheEntry, status_header: &'static str) -> Inbound {
    let mut status = 200;
    let mut headers = HeaderMap::new();
    for (name, value) in &entry.headers {
        if name == ":status" {
            status = value.parse().unwrap_or(200);
        } else if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    let age = Instant::now()
        .saturating_duration_since(entry.stored)
        .as_secs();
    headers.insert(AGE, HeaderValue::from(age));
    headers.insert(CACHE_STATUS_HEADER, HeaderValue::from_static(status_header));
    Inbound {
        status,
        headers,
        body: entry.body.clone(),
    }
}

fn is_pass(entry: &CacheEntry) -> bool {
    entry.headers.iter().any(|(n, _)| n == ":pass")
}

fn pass_marker() -> CacheEntry {
    CacheEntry {
        body: Bytes::new(),
        headers: vec![(":pass".into(), "1".into())],
        tags: Vec::new(),
        stored: Instant::now(),
        ttl: PASS_TTL,
        swr: Duration::ZERO,
    }
}

fn mark(mut inbound: Inbound, status: &'static str) -> Inbound {
    inbound
        .headers
        .insert(CACHE_STATUS_HEADER, HeaderValue::from_static(status));
    inbound
}

/// Where one cached fetch goes.
pub(super) struct CachedFetch {
    pub(super) client: Arc<FetchClient>,
    pub(super) store: Arc<CacheStore>,
    pub(super) tenant: Arc<str>,
    pub(super) policy: CachePolicy,
}

impl CachedFetch {
    /// Stores `inbound` (or a pass marker) and returns it marked `label`.
    fn store(&self, key: &str, inbound: Inbound, label: &'static str) -> Inbound {
        let inbound = strip_inbound(inbound);
        match freshness(inbound.status, &inbound.headers, &self.policy) {
            Some((ttl, swr)) => {
                if let Err(err) = self.store.put(
                    &self.tenant,
                    key,
                    to_entry(&inbound, ttl, swr, &self.policy.tags),
                ) {
                    tracing::debug!(error = %err, key, "fetch response not cached");
                }
                mark(inbound, label)
            }
            None => {
                let _ = self.store.put(&self.tenant, key, pass_marker());
                mark(inbound, "pass")
            }
        }
    }

    /// A GET through the cache. `send` makes one origin request (and
    /// counts it); it is called at most once, plus once in the background
    /// for a revalidation.
    pub(super) async fn get(
        self,
        outbound: Outbound,
        deadline: tokio::time::Instant,
        mut take_subrequest: impl FnMut() -> Result<(), FetchError>,
    ) -> Result<Inbound, FetchError> {
        let key = format!("fetch:GET {}", outbound.uri);
        match self.store.lookup(&self.tenant, &key, deadline).await {
            Lookup::Hit(entry) if is_pass(&entry) => {
                take_subrequest()?;
                let inbound = self.client.send(outbound, deadline).await?;
                Ok(mark(strip_inbound(inbound), "pass"))
            }
            Lookup::Hit(entry) => Ok(from_entry(&entry, "hit")),
            Lookup::Stale(entry, refresh) => {
                let stale = from_entry(&entry, "stale");
                if let Some(guard) = refresh
                    && take_subrequest().is_ok()
                {
                    self.revalidate_in_background(key, outbound, stale.clone(), guard);
                }
                Ok(stale)
            }
            Lookup::Fill(guard) => {
                take_subrequest()?;
                let inbound = self.client.send(outbound, deadline).await;
                let result = inbound.map(|inbound| self.store(&key, inbound, "miss"));
                drop(guard);
                result
            }
        }
    }

    fn revalidate_in_background(
        self,
        key: String,
        mut outbound: Outbound,
        stored: Inbound,
        guard: FillGuard,
    ) {
        if let Some(etag) = stored.headers.get(ETAG) {
            outbound.headers.insert(IF_NONE_MATCH, etag.clone());
        }
        if let Some(modified) = stored.headers.get(LAST_MODIFIED) {
            outbound.headers.insert(IF_MODIFIED_SINCE, modified.clone());
        }
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + REVALIDATE_TIMEOUT;
            match self.client.send(outbound, deadline).await {
                Ok(fresh) if fresh.status == StatusCode::NOT_MODIFIED.as_u16() => {
                    // Same body; new freshness from the 304's headers.
                    let mut merged = stored;
                    merged.headers.remove(CACHE_STATUS_HEADER);
                    merged.headers.remove(AGE);
                    for (name, value) in &fresh.headers {
                        merged.headers.insert(name.clone(), value.clone());
                    }
                    self.store(&key, merged, "hit");
                }
                Ok(fresh) => {
                    self.store(&key, fresh, "hit");
                }
                Err(err) => tracing::debug!(error = %err, key, "background revalidation failed"),
            }
            drop(guard);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(*n, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn cache_control_decides_what_is_stored_and_for_how_long() {
        let policy = CachePolicy::default();
        let secs = |s| Duration::from_secs(s);
        let f = |pairs: &[(&'static str, &'static str)]| freshness(200, &headers(pairs), &policy);
        assert_eq!(
            f(&[("cache-control", "max-age=60")]),
            Some((secs(60), secs(0)))
        );
        assert_eq!(
            f(&[("cache-control", "max-age=0, s-maxage=30")]),
            Some((secs(30), secs(0)))
        );
        assert_eq!(
            f(&[("cache-control", "max-age=60, stale-while-revalidate=30")]),
            Some((secs(60), secs(30)))
        );
        assert_eq!(
            f(&[("cache-control", "max-age=60"), ("age", "20")]),
            Some((secs(40), secs(0)))
        );
        for refused in ["no-store", "private, max-age=60", "no-cache", "max-age=0"] {
            assert_eq!(f(&[("cache-control", refused)]), None, "{refused}");
        }
        assert_eq!(
            f(&[("cache-control", "max-age=60"), ("set-cookie", "a=b")]),
            None
        );
        assert_eq!(f(&[]), None, "no max-age and no default");
        assert_eq!(
            freshness(500, &headers(&[("cache-control", "max-age=60")]), &policy),
            None
        );
        let with_default = CachePolicy {
            default_ttl: secs(10),
            stale_while_revalidate: Some(secs(5)),
            tags: Vec::new(),
        };
        assert_eq!(
            freshness(200, &headers(&[]), &with_default),
            Some((secs(10), secs(5)))
        );
    }
}
