//! The WIT side of `verge:edge/fetch`: conversions from and to the
//! generated types, and the `Host` impls over [`FetchView`].

use super::hops::strip_hop_by_hop;
use super::{
    CachePolicy, FetchCtx, FetchError, FetchOptions, Fetched, Inbound, OriginBody, Outbound,
    PendingFetch,
};
use crate::capabilities::bindings::http_types::{Request as WitRequest, Response as WitResponse};
use crate::capabilities::bindings::verge::edge::fetch as wit;
use crate::capabilities::view::TableView;
use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;
use wasmtime::component::Resource;

/// What fetch host functions get: their context and the table that holds
/// pending fetches and bodies.
pub type FetchView<'a> = TableView<'a, FetchCtx>;

impl From<wit::CachePolicy> for CachePolicy {
    fn from(c: wit::CachePolicy) -> Self {
        Self {
            default_ttl: Duration::from_secs(c.default_ttl_seconds.into()),
            stale_while_revalidate: c
                .stale_while_revalidate_seconds
                .map(|s| Duration::from_secs(s.into())),
            tags: c.tags,
        }
    }
}

type WitResult<T> = wasmtime::Result<Result<T, wit::Error>>;

impl TryFrom<WitRequest> for Outbound {
    type Error = FetchError;

    fn try_from(req: WitRequest) -> Result<Self, FetchError> {
        let method = Method::from_bytes(req.method.as_bytes())
            .map_err(|_| FetchError::InvalidRequest(format!("bad method {:?}", req.method)))?;
        let uri: Uri = req
            .uri
            .parse()
            .map_err(|err| FetchError::InvalidRequest(format!("bad URL {:?}: {err}", req.uri)))?;
        let mut headers = HeaderMap::with_capacity(req.headers.len());
        for (name, value) in req.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| FetchError::InvalidRequest(format!("bad header name {name:?}")))?;
            let value = HeaderValue::from_str(&value)
                .map_err(|_| FetchError::InvalidRequest(format!("bad value for header {name}")))?;
            headers.append(name, value);
        }
        strip_hop_by_hop(&mut headers);
        headers.remove(HOST);
        Ok(Outbound {
            method,
            uri,
            headers,
            body: Bytes::from(req.body),
        })
    }
}

impl From<FetchError> for wit::Error {
    fn from(err: FetchError) -> Self {
        match err {
            FetchError::Denied(why) => Self::Denied(why),
            FetchError::Timeout => Self::Timeout,
            FetchError::Dns(why) => Self::Dns(why),
            FetchError::Connection(why) => Self::Connection(why),
            FetchError::TooManySubrequests(_) => Self::TooManySubrequests,
            FetchError::TooLarge(_) => Self::TooLarge,
            FetchError::InvalidRequest(why) => Self::InvalidRequest(why),
        }
    }
}

impl From<Inbound> for WitResponse {
    fn from(inbound: Inbound) -> Self {
        Self {
            status: inbound.status,
            headers: wit_headers(&inbound.headers),
            body: inbound.body.to_vec(),
        }
    }
}

impl From<wit::Options> for FetchOptions {
    fn from(options: wit::Options) -> Self {
        Self {
            timeout: options
                .timeout_ms
                .map(|ms| Duration::from_millis(ms.into())),
            follow_redirects: options.follow_redirects,
            cache: options.cache.map(CachePolicy::from),
        }
    }
}

impl wit::Host for FetchView<'_> {
    async fn send(&mut self, req: WitRequest, options: wit::Options) -> WitResult<WitResponse> {
        let result = match self.ctx.start(req, options.into()).await {
            Ok(pending) => pending.outcome().await,
            Err(err) => Err(err),
        };
        Ok(result.map(WitResponse::from).map_err(wit::Error::from))
    }

    async fn start(
        &mut self,
        req: WitRequest,
        options: wit::Options,
    ) -> WitResult<Resource<PendingFetch>> {
        match self.ctx.start(req, options.into()).await {
            Ok(pending) => Ok(Ok(self.table.push(pending)?)),
            Err(err) => Ok(Err(err.into())),
        }
    }

    async fn select(
        &mut self,
        pending: Vec<Resource<PendingFetch>>,
    ) -> wasmtime::Result<Option<u32>> {
        if pending.is_empty() {
            return Ok(None);
        }
        let table = &mut *self.table;
        let ready = poll_fn(|cx| {
            for (index, handle) in pending.iter().enumerate() {
                match table.get_mut(handle) {
                    Ok(fetch) => {
                        if fetch.poll_ready(cx).is_ready() {
                            return Poll::Ready(Ok(index));
                        }
                    }
                    Err(err) => return Poll::Ready(Err(err)),
                }
            }
            Poll::Pending
        })
        .await?;
        Ok(Some(u32::try_from(ready)?))
    }
}

impl wit::HostPending for FetchView<'_> {
    async fn ready(&mut self, pending: Resource<PendingFetch>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&pending)?.is_ready())
    }

    async fn wait(&mut self, pending: Resource<PendingFetch>) -> WitResult<WitResponse> {
        let pending = self.table.delete(pending)?;
        Ok(pending
            .outcome()
            .await
            .map(WitResponse::from)
            .map_err(wit::Error::from))
    }

    async fn wait_head(
        &mut self,
        pending: Resource<PendingFetch>,
    ) -> WitResult<(wit::ResponseHead, Resource<OriginBody>)> {
        let pending = self.table.delete(pending)?;
        let (status, headers, body) = match pending.head().await {
            Ok(Fetched::Whole(inbound)) => (
                inbound.status,
                inbound.headers,
                OriginBody::whole(inbound.body),
            ),
            Ok(Fetched::Open {
                status,
                headers,
                body,
            }) => (status, headers, body),
            Err(err) => return Ok(Err(err.into())),
        };
        let head = wit::ResponseHead {
            status,
            headers: wit_headers(&headers),
        };
        Ok(Ok((head, self.table.push(body)?)))
    }

    async fn drop(&mut self, pending: Resource<PendingFetch>) -> wasmtime::Result<()> {
        // Dropping aborts the task and with it the origin request.
        self.table.delete(pending)?;
        Ok(())
    }
}

impl wit::HostBody for FetchView<'_> {
    async fn read(&mut self, body: Resource<OriginBody>, max: u32) -> WitResult<Option<Vec<u8>>> {
        let body = self.table.get_mut(&body)?;
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        Ok(body
            .read(max)
            .await
            .map(|chunk| chunk.map(|c| c.to_vec()))
            .map_err(wit::Error::from))
    }

    async fn drop(&mut self, body: Resource<OriginBody>) -> wasmtime::Result<()> {
        // Dropping closes the origin connection and frees the slot.
        self.table.delete(body)?;
        Ok(())
    }
}

/// Header fields as the guest sees them: lower-case names, values with
/// invalid UTF-8 replaced.
fn wit_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let req = WitRequest {
            method: "GET".into(),
            uri: "http://a.example/".into(),
            headers: vec![
                ("connection".into(), "x-private, keep-alive".into()),
                ("x-private".into(), "1".into()),
                ("transfer-encoding".into(), "chunked".into()),
                ("host".into(), "evil.example".into()),
                ("x-kept".into(), "1".into()),
            ],
            body: Vec::new(),
        };
        let out = Outbound::try_from(req).unwrap();
        let names: Vec<&str> = out.headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn malformed_requests_are_invalid() {
        let bad = |method: &str, uri: &str, header: (&str, &str)| WitRequest {
            method: method.into(),
            uri: uri.into(),
            headers: vec![(header.0.into(), header.1.into())],
            body: Vec::new(),
        };
        for req in [
            bad("GE T", "http://a.example/", ("a", "b")),
            bad("GET", "http://a example/", ("a", "b")),
            bad("GET", "http://a.example/", ("bad name", "b")),
            bad("GET", "http://a.example/", ("a", "line\nbreak")),
        ] {
            assert!(matches!(
                Outbound::try_from(req),
                Err(FetchError::InvalidRequest(_))
            ));
        }
    }
}
