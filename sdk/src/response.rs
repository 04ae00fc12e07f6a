//! The response a handler returns, with builders for the common cases.

use crate::__private::WitResponse;

/// An HTTP response. Headers are kept as written; the host validates the
/// status and every header before sending, and answers 502
/// `bad-guest-response` for an invalid one.
///
/// ```
/// use verge_sdk::Response;
/// let res = Response::text("hi").with_status(201).with_header("x-a", "1");
/// assert_eq!(res.status(), 201);
/// assert_eq!(res.header("content-type"), Some("text/plain; charset=utf-8"));
/// let http: http::Response<Vec<u8>> = res.try_into().unwrap();
/// assert_eq!(http.body(), b"hi");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// 200 with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<String>) -> Self {
        Self::new(200)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(body.into())
    }

    /// 200 with a `text/html; charset=utf-8` body.
    pub fn html(body: impl Into<String>) -> Self {
        Self::new(200)
            .with_header("content-type", "text/html; charset=utf-8")
            .with_body(body.into())
    }

    /// 200 with `value` serialized as JSON; 500 if it cannot be serialized.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(200)
                .with_header("content-type", "application/json")
                .with_body(body),
            Err(err) => Self::text(format!("could not serialize JSON: {err}")).with_status(500),
        }
    }

    /// A redirect to `location` with `status` (301, 302, 303, 307 or 308).
    pub fn redirect(location: impl Into<String>, status: u16) -> Self {
        Self::new(status).with_header("location", location)
    }

    /// An empty response with `status`, e.g. `Response::status(204)`.
    pub fn status_only(status: u16) -> Self {
        Self::new(status)
    }

    /// A plain-text error page: `404 not found`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::text(message).with_status(status)
    }

    /// Replaces the status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Appends a header field.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All header fields in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8 text.
    pub fn text_body(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }

    /// The body parsed as JSON.
    #[cfg(feature = "json")]
    pub fn json_body<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// Takes the body out of the response.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Passes a fetched response through to the client as it arrives, the
    /// CDN proxy case: the host never holds more than a few chunks of the
    /// body, and the app's response cap cuts it. Sends the head at once;
    /// return the result from the handler. If the origin cannot be reached
    /// the result is a 502 response instead.
    ///
    /// ```no_run
    /// use verge_sdk::{Request, Response, fetch};
    ///
    /// #[verge_sdk::handler]
    /// fn handle(req: Request) -> Response {
    ///     match fetch::get(format!("https://origin.example{}", req.path())).start() {
    ///         Ok(pending) => Response::from_stream(pending),
    ///         Err(err) => Response::error(502, err.kind()),
    ///     }
    /// }
    /// ```
    pub fn from_stream(pending: crate::fetch::Pending) -> Self {
        match pending.wait_head() {
            Ok((head, body)) => {
                match crate::respond::pass_through(head.status, &head.headers, body) {
                    // The host has sent the response; what is returned now
                    // is not used.
                    Ok(()) => Self::new(head.status),
                    Err(why) => Self::error(502, why),
                }
            }
            Err(err) => Self::error(
                502,
                format!("the origin could not be reached: {}", err.kind()),
            ),
        }
    }

    /// Sends this response's status and headers now and returns a writer
    /// for its body, so the client gets the first bytes while the handler
    /// is still working (streaming HTML). The body ends when the writer is
    /// dropped or the handler returns; what the handler returns is then not
    /// used. This response's own body, if any, is sent first.
    ///
    /// ```no_run
    /// use std::io::Write;
    /// use verge_sdk::{Request, Response};
    ///
    /// #[verge_sdk::handler]
    /// fn handle(_req: Request) -> Response {
    ///     let Ok(mut page) = Response::html("<!doctype html><h1>Report</h1>").start_streaming() else {
    ///         return Response::error(500, "could not start the page");
    ///     };
    ///     for row in 0..3 {
    ///         let _ = write!(page, "<p>row {row}</p>"); // each row as soon as it is ready
    ///     }
    ///     Response::new(200)
    /// }
    /// ```
    pub fn start_streaming(
        self,
    ) -> Result<crate::respond::BodyWriter, crate::respond::StreamError> {
        let mut writer = crate::respond::start(self.status, &self.headers)?;
        if !self.body.is_empty() {
            writer.write_chunk(&self.body)?;
        }
        Ok(writer)
    }

    pub(crate) fn from_wit(res: WitResponse) -> Self {
        Self {
            status: res.status,
            headers: res.headers,
            body: res.body,
        }
    }

    pub(crate) fn into_wit(self) -> WitResponse {
        WitResponse {
            status: self.status,
            headers: self.headers,
            body: self.body,
        }
    }
}

impl<B: Into<Vec<u8>>> From<http::Response<B>> for Response {
    fn from(res: http::Response<B>) -> Self {
        let (parts, body) = res.into_parts();
        let headers = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Self {
            status: parts.status.as_u16(),
            headers,
            body: body.into(),
        }
    }
}

impl TryFrom<Response> for http::Response<Vec<u8>> {
    type Error = http::Error;

    fn try_from(res: Response) -> Result<Self, Self::Error> {
        let mut builder = http::Response::builder().status(res.status);
        for (name, value) in res.headers {
            builder = builder.header(name, value);
        }
        builder.body(res.body)
    }
}

/// Anything a handler may return.
pub trait IntoResponse {
    /// Converts into a [`Response`].
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl<B: Into<Vec<u8>>> IntoResponse for http::Response<B> {
    fn into_response(self) -> Response {
        self.into()
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(ok) => ok.into_response(),
            Err(err) => err.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_status_headers_and_body() {
        let r = Response::redirect("/x", 301);
        assert_eq!((r.status(), r.header("Location")), (301, Some("/x")));
        let r = Response::error(404, "not found");
        assert_eq!((r.status(), r.body()), (404, &b"not found"[..]));
        #[cfg(feature = "json")]
        {
            let r = Response::json(&[1, 2]);
            assert_eq!(r.body(), b"[1,2]");
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
        let err: Result<Response, Response> = Err(Response::new(418));
        assert_eq!(err.into_response().status(), 418);
    }

    #[test]
    fn converts_from_http_response() {
        let http = http::Response::builder()
            .status(202)
            .header("a", "b")
            .body("x")
            .unwrap_or_default();
        let r = Response::from(http);
        assert_eq!(
            (r.status(), r.header("a"), r.body()),
            (202, Some("b"), &b"x"[..])
        );
    }
}
