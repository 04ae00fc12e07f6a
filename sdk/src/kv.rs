//! Key-value storage: strongly consistent, durable once a call returns,
//! with TTLs, prefix listing, atomic increment and compare-and-swap.
//! A store opens only if the app's manifest declares it (`kv_stores`).
//!
//! ```no_run
//! use verge_sdk::kv::Store;
//!
//! # fn run() -> Result<(), verge_sdk::kv::Error> {
//! let links = Store::open("links")?;
//! links.set("home", "https://example.com")?;
//! links.set_with_ttl("session:42", b"data", 3600)?;
//! assert_eq!(links.get_string("home")?.as_deref(), Some("https://example.com"));
//! let hits = links.increment("hits:home", 1)?;
//! let created = links.compare_and_swap("slug", None, b"taken")?; // false if it existed
//! for key in links.keys("session:")? { /* ... */ }
//! # Ok(()) }
//! ```

use crate::wit::verge::edge::kv as wit;

pub use wit::{Error, KeyPage};

/// An open store.
pub struct Store(wit::Store);

impl Store {
    /// Opens a store declared in the app's manifest.
    pub fn open(name: impl AsRef<str>) -> Result<Self, Error> {
        wit::Store::open(name.as_ref()).map(Self)
    }

    /// The value, or `None` when missing or expired.
    pub fn get(&self, key: impl AsRef<str>) -> Result<Option<Vec<u8>>, Error> {
        self.0.get(key.as_ref())
    }

    /// The value as UTF-8 text (invalid bytes replaced).
    pub fn get_string(&self, key: impl AsRef<str>) -> Result<Option<String>, Error> {
        Ok(self
            .get(key)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The value parsed as JSON; a value that does not parse is an error.
    #[cfg(feature = "json")]
    pub fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: impl AsRef<str>,
    ) -> Result<Option<T>, Error> {
        match self.get(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Other(format!("stored value is not the expected JSON: {e}"))),
        }
    }

    /// Stores a value (bytes or text) without expiry.
    pub fn set(&self, key: impl AsRef<str>, value: impl AsRef<[u8]>) -> Result<(), Error> {
        self.0.set(key.as_ref(), value.as_ref(), None)
    }

    /// Stores a value that expires after `ttl_seconds`.
    pub fn set_with_ttl(
        &self,
        key: impl AsRef<str>,
        value: impl AsRef<[u8]>,
        ttl_seconds: u32,
    ) -> Result<(), Error> {
        self.0.set(key.as_ref(), value.as_ref(), Some(ttl_seconds))
    }

    /// Stores `value` serialized as JSON.
    #[cfg(feature = "json")]
    pub fn set_json<T: serde::Serialize + ?Sized>(
        &self,
        key: impl AsRef<str>,
        value: &T,
    ) -> Result<(), Error> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::Other(e.to_string()))?;
        self.set(key, bytes)
    }

    /// Removes a key (no error when missing).
    pub fn delete(&self, key: impl AsRef<str>) -> Result<(), Error> {
        self.0.delete(key.as_ref())
    }

    /// One page of keys starting with `prefix`, after `cursor`.
    pub fn list(
        &self,
        prefix: impl AsRef<str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KeyPage, Error> {
        self.0.list(prefix.as_ref(), cursor, limit)
    }

    /// Every key starting with `prefix`, following cursors page by page.
    pub fn keys(&self, prefix: impl AsRef<str>) -> Result<Vec<String>, Error> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list(prefix.as_ref(), cursor.as_deref(), 1000)?;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Adds `delta` to the counter at `key` (missing = 0); returns the new value.
    pub fn increment(&self, key: impl AsRef<str>, delta: i64) -> Result<i64, Error> {
        self.0.increment(key.as_ref(), delta, None)
    }

    /// Like [`Store::increment`]; a counter created by this call expires
    /// after `ttl_seconds` (a rate-limit window).
    pub fn increment_with_ttl(
        &self,
        key: impl AsRef<str>,
        delta: i64,
        ttl_seconds: u32,
    ) -> Result<i64, Error> {
        self.0.increment(key.as_ref(), delta, Some(ttl_seconds))
    }

    /// Sets `key` to `new` only if its value is `expected` (`None`: only if
    /// it does not exist). True when it was set.
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<str>,
        expected: Option<&[u8]>,
        new: impl AsRef<[u8]>,
    ) -> Result<bool, Error> {
        self.0
            .compare_and_swap(key.as_ref(), expected, new.as_ref(), None)
    }
}
