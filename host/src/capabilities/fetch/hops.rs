//! What one hop carries and where the next one goes: hop-by-hop headers
//! are dropped (RFC 9110 §7.6.1), redirects resolved as browsers do.

use super::{FetchError, Inbound, Outbound};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONNECTION, COOKIE, LOCATION};
use http::{HeaderMap, HeaderName, Method, Uri};

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus
/// the framing and `Host` the client derives itself.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Removes hop-by-hop headers, including any the `Connection` header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

pub(crate) fn strip_inbound(mut inbound: Inbound) -> Inbound {
    strip_hop_by_hop(&mut inbound.headers);
    inbound
}

/// The next hop of a redirect, if `inbound` is one: 303 (and 301/302 after
/// a POST) turn into a GET without body, as browsers do; 307/308 repeat the
/// request. Credentials do not follow to another origin.
pub(super) fn redirect(
    prev: &Outbound,
    status: u16,
    headers: &HeaderMap,
) -> Result<Option<Outbound>, FetchError> {
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return Ok(None);
    }
    let Some(location) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let uri = resolve_location(&prev.uri, location)?;
    let mut next = prev.clone();
    if status == 303 || (matches!(status, 301 | 302) && prev.method == Method::POST) {
        next.method = Method::GET;
        next.body = Bytes::new();
        next.headers.remove(http::header::CONTENT_TYPE);
    }
    if uri.authority() != prev.uri.authority() || uri.scheme() != prev.uri.scheme() {
        next.headers.remove(AUTHORIZATION);
        next.headers.remove(COOKIE);
    }
    next.uri = uri;
    Ok(Some(next))
}

fn resolve_location(base: &Uri, location: &str) -> Result<Uri, FetchError> {
    let bad = |err: String| FetchError::InvalidRequest(format!("redirect to {location:?}: {err}"));
    let target: Uri = location
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
    if target.scheme().is_some() {
        return Ok(target);
    }
    let mut parts = base.clone().into_parts();
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(dir, _)| dir);
        format!("{dir}/{location}")
    };
    parts.path_and_query = Some(
        path.parse()
            .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?,
    );
    Uri::from_parts(parts).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn outbound(method: Method, uri: &str) -> Outbound {
        Outbound {
            method,
            uri: uri.parse().unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"data"),
        }
    }

    /// Where `prev` goes after a `status` answer with `location`.
    fn redirect_to(
        prev: &Outbound,
        status: u16,
        location: &str,
    ) -> Result<Option<Outbound>, FetchError> {
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, HeaderValue::from_str(location).unwrap());
        redirect(prev, status, &headers)
    }

    #[test]
    fn redirects_resolve_relative_locations_and_change_method_like_browsers() {
        let post = outbound(Method::POST, "http://a.example/x/y?q=1");
        let next = redirect_to(&post, 303, "/z").unwrap().unwrap();
        assert_eq!(next.uri, "http://a.example/z");
        assert_eq!(next.method, Method::GET);
        assert!(next.body.is_empty());
        let next = redirect_to(&post, 307, "w").unwrap().unwrap();
        assert_eq!(next.uri, "http://a.example/x/w");
        assert_eq!(next.method, Method::POST);
        assert_eq!(next.body, "data");
        assert!(redirect_to(&post, 200, "/z").unwrap().is_none());
    }

    #[test]
    fn credentials_do_not_follow_to_another_origin() {
        let mut get = outbound(Method::GET, "https://a.example/");
        get.headers
            .insert(AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        let same = redirect_to(&get, 302, "/b").unwrap().unwrap();
        assert!(same.headers.contains_key(AUTHORIZATION));
        let other = redirect_to(&get, 302, "https://b.example/")
            .unwrap()
            .unwrap();
        assert!(!other.headers.contains_key(AUTHORIZATION));
    }
}
