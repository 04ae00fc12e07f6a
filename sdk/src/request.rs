//! The incoming request a handler receives.

use crate::__private::WitRequest;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use std::sync::OnceLock;

/// An incoming HTTP request.
///
/// Its body is read whole the first time a handler asks for it
/// ([`Request::body`], [`Request::text`], [`Request::json`]), or as a
/// stream with [`Request::body_stream`]; both work in one function, on
/// different routes.
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
    /// The whole body, once read (or as the host sent it).
    body: OnceLock<Result<Vec<u8>, BodyError>>,
    /// The query's pairs, percent-decoded, once asked for.
    query: OnceLock<Vec<(String, String)>>,
}

/// Why the request body could not be read or parsed. Returned with `?`
/// from a handler it answers its [`BodyError::status`] with the reason
/// (the client sent the body, so the reason is the client's to see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the app's request body cap: 413.
    TooLarge,
    /// The client stopped sending before the read timeout: 408.
    Timeout,
    /// The body ended early or could not be read: 400.
    Interrupted(String),
    /// The body is not the JSON the handler expects: 400, with the parse
    /// error.
    Json(String),
}

impl BodyError {
    /// The status a handler that returns this error answers.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::TooLarge => 413,
            BodyError::Timeout => 408,
            BodyError::Interrupted(_) | BodyError::Json(_) => 400,
        }
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge => f.write_str("request body too large"),
            BodyError::Timeout => f.write_str("request body timed out"),
            BodyError::Interrupted(why) => write!(f, "request body could not be read: {why}"),
            BodyError::Json(why) => write!(f, "request body is not valid JSON: {why}"),
        }
    }
}

impl std::error::Error for BodyError {}

impl Request {
    /// Lifts the WIT record. The host sends only valid methods, URIs and
    /// headers; anything else is dropped rather than trusted. An empty
    /// body may be one the host streams: it is read on first use.
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
        let body = OnceLock::new();
        if !req.body.is_empty() {
            let _ = body.set(Ok(req.body));
        }
        Self {
            method,
            uri,
            headers,
            body,
            query: OnceLock::new(),
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

    /// The query string without the `?`, if there is one (not decoded).
    pub fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    /// The value of query parameter `name`, percent-decoded as a form is
    /// (`+` is a space): the first one when it repeats
    /// ([`Request::query_params`] gives every one).
    ///
    /// ```
    /// let req = verge_sdk::Request::from(
    ///     http::Request::get("https://e.x/?q=a%20b+c&t=1&t=2").body(Vec::new()).unwrap(),
    /// );
    /// assert_eq!(req.query_param("q"), Some("a b c"));
    /// assert_eq!(req.query_param_raw("q"), Some("a%20b+c"));
    /// assert_eq!(req.query_params("t"), ["1", "2"]);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query_pairs()
            .iter()
            .find_map(|(key, value)| (key == name).then_some(value.as_str()))
    }

    /// Every value of query parameter `name`, decoded, in order.
    pub fn query_params(&self, name: &str) -> Vec<&str> {
        self.query_pairs()
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// Every query pair, names and values decoded, in order.
    pub fn query_pairs(&self) -> &[(String, String)] {
        self.query.get_or_init(|| {
            self.query()
                .map(|query| {
                    form_urlencoded::parse(query.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    /// The value of query parameter `name` exactly as the client sent it
    /// (matched against the undecoded name).
    pub fn query_param_raw(&self, name: &str) -> Option<&str> {
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

    /// The whole body, read on first use (empty when it could not be read:
    /// [`Request::try_body`] says why, or after [`Request::body_stream`]
    /// took it).
    pub fn body(&self) -> &[u8] {
        self.try_body().unwrap_or_default()
    }

    /// The whole body, read on first use; the app's request body cap and
    /// read timeout apply while it arrives.
    pub fn try_body(&self) -> Result<&[u8], BodyError> {
        self.body
            .get_or_init(read_streamed_body)
            .as_deref()
            .map_err(Clone::clone)
    }

    /// The body as a stream, read in chunks as it arrives: for bodies too
    /// large to hold, or to start before the last byte is in. The app's
    /// request body cap and the read timeouts apply as bytes arrive, as
    /// `too-large` and `timeout` errors from [`crate::fetch::Body`]. `None`
    /// the second time, or once the whole body was read
    /// ([`Request::body`]). A function that calls this anywhere is handed
    /// every request body as a stream by the host; handlers that ask for
    /// the whole body still get it, read on first use.
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
        if self.body.get().is_some() {
            return None;
        }
        crate::wit::verge::edge::incoming::request_body().map(crate::fetch::Body)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(self.body())
    }

    /// The body parsed as JSON. Returned with `?`, a malformed body
    /// answers 400 with the parse error.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, BodyError> {
        serde_json::from_slice(self.try_body()?).map_err(|err| BodyError::Json(err.to_string()))
    }

    /// Takes the body out of the request.
    pub fn into_body(self) -> Vec<u8> {
        let _ = self.try_body();
        match self.body.into_inner() {
            Some(Ok(body)) => body,
            _ => Vec::new(),
        }
    }
}

/// Reads the body the host streams (a function that calls
/// [`Request::body_stream`] anywhere) whole; empty when the host sent it
/// whole, and it was empty. Through `incoming-whole`, not `incoming`: a
/// function that only reads whole bodies must not import `incoming`, or
/// the host would stream its bodies too.
fn read_streamed_body() -> Result<Vec<u8>, BodyError> {
    let Some(body) = crate::wit::verge::edge::incoming_whole::streamed_body() else {
        return Ok(Vec::new());
    };
    let mut body = crate::fetch::Body(body);
    let mut out = Vec::new();
    while let Some(chunk) = body.read_chunk(READ_CHUNK_BYTES).map_err(|err| match err {
        crate::fetch::Error::TooLarge => BodyError::TooLarge,
        crate::fetch::Error::Timeout => BodyError::Timeout,
        other => BodyError::Interrupted(other.kind().to_owned()),
    })? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The largest chunk asked of the host per read of a streamed body: the
/// host's own chunk size.
const READ_CHUNK_BYTES: usize = 64 << 10;

impl<B: Into<Vec<u8>>> From<http::Request<B>> for Request {
    fn from(req: http::Request<B>) -> Self {
        let (parts, body) = req.into_parts();
        Self {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body: OnceLock::from(Ok(body.into())),
            query: OnceLock::new(),
        }
    }
}

impl From<Request> for http::Request<Vec<u8>> {
    fn from(req: Request) -> Self {
        let (method, uri, headers) = (req.method.clone(), req.uri.clone(), req.headers.clone());
        let mut out = http::Request::new(req.into_body());
        *out.method_mut() = method;
        *out.uri_mut() = uri;
        *out.headers_mut() = headers;
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

    fn get(uri: &str) -> Request {
        Request::from(http::Request::get(uri).body(Vec::new()).unwrap())
    }

    #[test]
    fn query_values_are_decoded_and_repeated_ones_kept() {
        let req = get("http://h/?q=a%20b+c&t=1&t=2&e=&flag&%6Bey=%E2%9C%93");
        assert_eq!(req.query_param("q"), Some("a b c"));
        assert_eq!(req.query_param_raw("q"), Some("a%20b+c"));
        assert_eq!(req.query_params("t"), ["1", "2"]);
        assert_eq!(req.query_param("t"), Some("1"));
        assert_eq!(req.query_param("e"), Some(""));
        assert_eq!(req.query_param("flag"), Some(""));
        assert_eq!(req.query_param("key"), Some("\u{2713}"));
        assert_eq!(req.query_param("missing"), None);
        assert_eq!(req.query_pairs().len(), 6);
        assert!(get("http://h/").query_pairs().is_empty());
    }

    #[cfg(feature = "json")]
    #[test]
    fn malformed_json_is_a_400_with_the_parse_error() {
        let req = Request::from(
            http::Request::post("http://h/")
                .body(b"{\"a\":".to_vec())
                .unwrap(),
        );
        let err = req.json::<serde_json::Value>().unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("EOF"), "{err}");
        let handler_err: crate::Error = err.into();
        assert_eq!(handler_err.status(), 400);
    }
}
