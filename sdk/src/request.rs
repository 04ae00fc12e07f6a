//! The incoming request a handler receives.

use crate::__private::WitRequest;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

/// An incoming HTTP request, with its body fully read by the host.
///
/// Converts to and from `http::Request<Vec<u8>>`:
///
/// ```
/// let req = verge_sdk::Request::from(
///     http::Request::get("https://example.com/a?b=1").body(Vec::new()).unwrap(),
/// );
/// assert_eq!(req.path(), "/a");
/// assert_eq!(req.query(), Some("b=1"));
/// let back: http::Request<Vec<u8>> = req.into();
/// assert_eq!(back.uri().host(), Some("example.com"));
/// ```
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Request {
    /// Lifts the WIT record. The host sends only valid methods, URIs and
    /// headers; anything else is dropped rather than trusted.
    pub(crate) fn from_wit(req: WitRequest) -> Self {
        let method = Method::from_bytes(req.method.as_bytes()).unwrap_or(Method::GET);
        let uri = req.uri.parse::<Uri>().unwrap_or_default();
        let mut headers = HeaderMap::with_capacity(req.headers.len());
        for (name, value) in req.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.append(name, value);
            }
        }
        Self {
            method,
            uri,
            headers,
            body: req.body,
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The absolute request URI (`scheme://host[:port]/path?query`).
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The path, always starting with `/`.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The query string without the `?`, if there is one.
    pub fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    /// The value of query parameter `name` (the first one, percent-decoding
    /// not applied).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }

    /// All header fields.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The first value of header `name` when it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The body bytes (empty in a function that calls
    /// [`Request::body_stream`]).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as a stream, read in chunks as it arrives: for bodies too
    /// large to hold, or to start before the last byte is in. A function
    /// that calls this anywhere is handed every request body this way (the
    /// host does not buffer it, and [`Request::body`] is empty); the app's
    /// request body cap and the read timeouts apply as bytes arrive, as
    /// `too-large` and `timeout` errors from [`crate::fetch::Body`]. `None`
    /// the second time.
    ///
    /// ```no_run
    /// use std::io::Read;
    /// use verge_sdk::{Request, Response};
    ///
    /// #[verge_sdk::handler]
    /// fn handle(req: Request) -> Response {
    ///     let Some(mut body) = req.body_stream() else {
    ///         return Response::error(400, "no body");
    ///     };
    ///     let (mut total, mut buf) = (0, vec![0; 64 << 10]);
    ///     while let Ok(n @ 1..) = body.read(&mut buf) {
    ///         total += n; // never more than 64 KiB in memory
    ///     }
    ///     Response::text(format!("{total} bytes"))
    /// }
    /// ```
    pub fn body_stream(&self) -> Option<crate::fetch::Body> {
        crate::wit::verge::edge::incoming::request_body().map(crate::fetch::Body)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }

    /// The body parsed as JSON.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// Takes the body out of the request.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

impl<B: Into<Vec<u8>>> From<http::Request<B>> for Request {
    fn from(req: http::Request<B>) -> Self {
        let (parts, body) = req.into_parts();
        Self {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body: body.into(),
        }
    }
}

impl From<Request> for http::Request<Vec<u8>> {
    fn from(req: Request) -> Self {
        let mut out = http::Request::new(req.body);
        *out.method_mut() = req.method;
        *out.uri_mut() = req.uri;
        *out.headers_mut() = req.headers;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifts_wit_request_and_drops_invalid_headers() {
        let req = Request::from_wit(WitRequest {
            method: "POST".into(),
            uri: "http://h.example/p?x=1&y=two".into(),
            headers: vec![
                ("content-type".into(), "text/plain".into()),
                ("bad name".into(), "v".into()),
            ],
            body: b"hi".to_vec(),
        });
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.path(), "/p");
        assert_eq!(req.query_param("y"), Some("two"));
        assert_eq!(req.query_param("z"), None);
        assert_eq!(req.header("content-type"), Some("text/plain"));
        assert_eq!(req.headers().len(), 1);
        assert_eq!(req.text(), Ok("hi"));
    }
}
