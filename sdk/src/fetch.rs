//! Outbound HTTP to the origins in the app's `allowed_hosts`.
//!
//! ```no_run
//! use verge_sdk::fetch;
//!
//! # fn run() -> Result<(), fetch::Error> {
//! let res = fetch::get("https://api.example.com/items/1").send()?;
//! if res.is_success() {
//!     let _item: serde_json::Value = res.json_body().map_err(|e| fetch::Error::InvalidRequest(e.to_string()))?;
//! }
//! let _created = fetch::post("https://api.example.com/items")
//!     .header("authorization", "Bearer secret")
//!     .json(&serde_json::json!({"name": "x"}))
//!     .timeout_ms(500)
//!     .send()?;
//! # Ok(()) }
//! ```
//!
//! Every call counts against the request's subrequest budget (50 by
//! default) and ends by the request's deadline. The fetched
//! [`Response`] can be returned from the handler as is.
//!
//! Several origins at once: [`RequestBuilder::start`] returns a [`Pending`]
//! fetch that runs while the function goes on; [`wait_all`] waits for a
//! batch and [`select`] for whichever answers first. Three 300 ms origins
//! then take 300 ms, not 900.
//!
//! ```no_run
//! use verge_sdk::fetch;
//!
//! # fn run() -> Result<(), fetch::Error> {
//! let profile = fetch::get("https://profile.example/me").start()?;
//! let posts = fetch::get("https://posts.example/latest").start()?;
//! let [profile, posts] = fetch::wait_all([profile, posts]);
//! let _ = (profile?.body().len(), posts.map(|r| r.status()));
//! # Ok(()) }
//! ```

use crate::Response;
use crate::wit::verge::edge::fetch as wit;
use crate::wit::verge::edge::http_types::Request as WitRequest;

pub use wit::{Error, ResponseHead};

impl Error {
    /// A short stable name for the kind of error: `denied`, `timeout`,
    /// `dns`, `connection`, `too-many-subrequests`, `too-large` or
    /// `invalid-request`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Denied(_) => "denied",
            Error::Timeout => "timeout",
            Error::Dns(_) => "dns",
            Error::Connection(_) => "connection",
            Error::TooManySubrequests => "too-many-subrequests",
            Error::TooLarge => "too-large",
            Error::InvalidRequest(_) => "invalid-request",
        }
    }
}

/// An outbound request being built; [`RequestBuilder::send`] sends it.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until sent"]
pub struct RequestBuilder {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout_ms: Option<u32>,
    follow_redirects: bool,
    cache: Option<wit::CachePolicy>,
    /// A mistake found while building, reported by `send`.
    invalid: Option<String>,
}

/// A request with `method` to `url` (absolute `http` or `https`).
pub fn request(method: &str, url: impl Into<String>) -> RequestBuilder {
    RequestBuilder {
        method: method.to_ascii_uppercase(),
        url: url.into(),
        headers: Vec::new(),
        body: Vec::new(),
        timeout_ms: None,
        follow_redirects: false,
        cache: None,
        invalid: None,
    }
}

/// A GET request.
pub fn get(url: impl Into<String>) -> RequestBuilder {
    request("GET", url)
}

/// A POST request.
pub fn post(url: impl Into<String>) -> RequestBuilder {
    request("POST", url)
}

impl RequestBuilder {
    /// Appends a header field.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and `content-type: application/json`.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => self.header("content-type", "application/json").body(body),
            Err(err) => Self {
                invalid: Some(format!("could not serialize the JSON body: {err}")),
                ..self
            },
        }
    }

    /// Gives up after `ms` milliseconds (never later than the request's
    /// own deadline).
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// Follows up to 10 redirects instead of returning the 3xx.
    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.follow_redirects = follow;
        self
    }

    /// Goes through the edge cache (GET only): the origin's `Cache-Control`
    /// decides what is stored (`default_ttl_seconds` when it says nothing;
    /// 0 stores only what it allows), stale responses are served during
    /// `stale_while_revalidate` while the host revalidates in the
    /// background, and identical misses share one origin request. The
    /// response's `verge-cache` header says `hit`, `stale`, `miss` or
    /// `pass`.
    pub fn cache(
        mut self,
        default_ttl_seconds: u32,
        stale_while_revalidate: Option<u32>,
        tags: &[&str],
    ) -> Self {
        self.cache = Some(wit::CachePolicy {
            default_ttl_seconds,
            stale_while_revalidate_seconds: stale_while_revalidate,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        });
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, Error> {
        let (req, options) = self.into_wit()?;
        wit::send(&req, &options).map(Response::from_wit)
    }

    /// Starts the request and returns at once; the response comes with
    /// [`Pending::wait`]. It counts against the subrequest budget now
    /// (`too-many-subrequests` past it). At most 6 fetches of a request
    /// run at once: a 7th start waits for one of them to finish.
    pub fn start(self) -> Result<Pending, Error> {
        let (req, options) = self.into_wit()?;
        wit::start(&req, &options).map(Pending)
    }

    fn into_wit(self) -> Result<(WitRequest, wit::Options), Error> {
        if let Some(why) = self.invalid {
            return Err(Error::InvalidRequest(why));
        }
        let req = WitRequest {
            method: self.method,
            uri: self.url,
            headers: self.headers,
            body: self.body,
        };
        let options = wit::Options {
            timeout_ms: self.timeout_ms,
            follow_redirects: self.follow_redirects,
            cache: self.cache,
        };
        Ok((req, options))
    }
}

/// A fetch in flight, from [`RequestBuilder::start`]. Dropping it aborts
/// the origin request; [`crate::wait_until`] lets it finish after the
/// response instead.
#[derive(Debug)]
#[must_use = "dropping a pending fetch aborts it"]
pub struct Pending(pub(crate) wit::Pending);

impl Pending {
    /// Whether the response (or the error) is in, so [`Pending::wait`]
    /// returns at once.
    pub fn is_ready(&self) -> bool {
        self.0.ready()
    }

    /// Waits for the response, body included (up to 16 MiB).
    pub fn wait(self) -> Result<Response, Error> {
        wit::Pending::wait(self.0).map(Response::from_wit)
    }

    /// Waits for the response head only; the body is read in chunks from
    /// the returned [`Body`] (or passed to the client with
    /// [`Response::from_stream`], which calls this).
    ///
    /// ```no_run
    /// use std::io::Read;
    /// use verge_sdk::fetch;
    ///
    /// # fn run() -> Result<(), fetch::Error> {
    /// let (head, mut body) = fetch::get("https://origin.example/big.csv").start()?.wait_head()?;
    /// let mut first_line = [0u8; 256];
    /// let n = body.read(&mut first_line).unwrap_or(0); // the rest is never downloaded
    /// let _ = (head.status, &first_line[..n]);
    /// # Ok(()) }
    /// ```
    pub fn wait_head(self) -> Result<(ResponseHead, Body), Error> {
        wit::Pending::wait_head(self.0).map(|(head, body)| (head, Body(body)))
    }
}

/// A fetched body arriving from the origin, read in chunks of at most
/// 64 KiB. Dropping it closes the origin connection. It implements
/// [`std::io::Read`].
#[derive(Debug)]
pub struct Body(pub(crate) wit::Body);

impl Body {
    /// The next chunk, at most `max` bytes; `None` at the end.
    pub fn read_chunk(&mut self, max: usize) -> Result<Option<Vec<u8>>, Error> {
        self.0.read(u32::try_from(max).unwrap_or(u32::MAX))
    }
}

impl std::io::Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.read_chunk(buf.len()) {
            Ok(Some(chunk)) => {
                let n = chunk.len().min(buf.len());
                buf[..n].copy_from_slice(&chunk[..n]);
                Ok(n)
            }
            Ok(None) => Ok(0),
            Err(err) => Err(std::io::Error::other(format!("fetch body: {}", err.kind()))),
        }
    }
}

/// Waits for every fetch of `pending`; the answers come in the same order.
/// They run at once, so this takes as long as the slowest.
pub fn wait_all<const N: usize>(pending: [Pending; N]) -> [Result<Response, Error>; N] {
    pending.map(Pending::wait)
}

/// Waits until one of `pending` is ready and returns its index (the
/// others keep running); `None` for an empty slice.
///
/// ```no_run
/// use verge_sdk::fetch;
///
/// # fn run() -> Result<(), fetch::Error> {
/// let mut racing = vec![
///     fetch::get("https://a.example/").start()?,
///     fetch::get("https://b.example/").start()?,
/// ];
/// if let Some(first) = fetch::select(&racing) {
///     let _winner = racing.swap_remove(first).wait()?;
/// }
/// // The loser is aborted when `racing` is dropped.
/// # Ok(()) }
/// ```
pub fn select(pending: &[Pending]) -> Option<usize> {
    let handles: Vec<&wit::Pending> = pending.iter().map(|p| &p.0).collect();
    wit::select(&handles).map(|index| index as usize)
}

/// Sends an incoming request on to `url`, keeping its method, headers and
/// body: the building block of a proxy.
pub fn forward(req: &crate::Request, url: impl Into<String>) -> RequestBuilder {
    let mut builder = request(req.method().as_str(), url).body(req.body().to_vec());
    for (name, value) in req.headers() {
        if let Ok(value) = value.to_str() {
            builder = builder.header(name.as_str(), value);
        }
    }
    builder
}
