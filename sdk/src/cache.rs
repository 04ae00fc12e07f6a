//! The edge cache: per node, byte-bounded, private to the tenant.
//!
//! ```no_run
//! use verge_sdk::cache::{self, Options};
//!
//! # fn render() -> Result<Vec<u8>, String> { Ok(b"<h1>hi</h1>".to_vec()) }
//! # fn run() -> Result<(), String> {
//! let options = Options::ttl(60).stale_while_revalidate(300).tag("page:home");
//! // One request renders on a miss; concurrent ones wait for it, then hit.
//! let page = cache::get_or_fill("page:/", &options, || {
//!     Ok::<_, String>((render()?, vec![("content-type".into(), "text/html".into())]))
//! })?;
//! assert!(!page.body.is_empty());
//! cache::purge_tag("page:home");
//! # Ok(()) }
//! ```

use crate::wit::verge::edge::cache as wit;

pub use wit::{Entry, Error, LookupResult};

/// How an entry is stored: TTL, stale-while-revalidate window, tags and
/// headers kept with it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    ttl_seconds: u32,
    swr_seconds: u32,
    tags: Vec<String>,
    headers: Vec<(String, String)>,
}

impl Options {
    /// Fresh for `seconds` (at least 1).
    pub fn ttl(seconds: u32) -> Self {
        Self {
            ttl_seconds: seconds.max(1),
            ..Self::default()
        }
    }

    /// Then served stale for `seconds` more while one request refreshes it.
    pub fn stale_while_revalidate(mut self, seconds: u32) -> Self {
        self.swr_seconds = seconds;
        self
    }

    /// Adds a tag to purge it by.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Keeps a header with the body.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn to_wit(&self, headers: Vec<(String, String)>) -> wit::PutOptions {
        let mut all = self.headers.clone();
        all.extend(headers);
        wit::PutOptions {
            ttl_seconds: self.ttl_seconds.max(1),
            stale_while_revalidate_seconds: self.swr_seconds,
            tags: self.tags.clone(),
            headers: all,
        }
    }
}

/// The entry if it is fresh.
pub fn get(key: &str) -> Option<Entry> {
    wit::get(key)
}

/// Stores `body` under `key`.
pub fn put(key: &str, body: &[u8], options: &Options) -> Result<(), Error> {
    wit::put(key, body, &options.to_wit(Vec::new()))
}

/// Removes one entry.
pub fn delete(key: &str) {
    wit::delete(key)
}

/// Removes every entry tagged `tag`; returns how many.
pub fn purge_tag(tag: &str) -> u32 {
    wit::purge_tag(tag)
}

/// Hit, stale or fill; see [`get_or_fill`] for the usual way to use it.
pub fn lookup(key: &str) -> LookupResult {
    wit::lookup(key)
}

/// Where a [`Cached`] value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A fresh entry.
    Hit,
    /// A stale entry inside its window (another request is refreshing it).
    Stale,
    /// This request filled (or refreshed) it.
    Filled,
}

/// A value from [`get_or_fill`].
#[derive(Debug, Clone)]
pub struct Cached {
    /// The body.
    pub body: Vec<u8>,
    /// The headers stored with it.
    pub headers: Vec<(String, String)>,
    /// Hit, stale or filled.
    pub source: Source,
}

/// The cached value of `key`, or `fill`'s result stored with `options`.
/// Concurrent misses are coalesced: one request runs `fill`, the others
/// wait for its put and hit. A stale entry is returned as is, except to
/// the one request chosen to refresh it, which runs `fill`. If `fill`
/// fails its error is returned and nothing is stored; waiters fill
/// themselves once this request ends.
pub fn get_or_fill<E>(
    key: &str,
    options: &Options,
    fill: impl FnOnce() -> Result<(Vec<u8>, Vec<(String, String)>), E>,
) -> Result<Cached, E> {
    let stored = |entry: Entry, source| Cached {
        body: entry.body,
        headers: entry.headers,
        source,
    };
    match wit::lookup(key) {
        LookupResult::Hit(entry) => return Ok(stored(entry, Source::Hit)),
        LookupResult::Stale(stale) if !stale.revalidate => {
            return Ok(stored(stale.entry, Source::Stale));
        }
        LookupResult::Stale(_) | LookupResult::Fill => {}
    }
    let (body, headers) = fill()?;
    if let Err(err) = wit::put(key, &body, &options.to_wit(headers.clone())) {
        crate::log::warn(format!("cache put of {key} refused: {err}"));
    }
    let mut all = options.headers.clone();
    all.extend(headers);
    Ok(Cached {
        body,
        headers: all,
        source: Source::Filled,
    })
}
