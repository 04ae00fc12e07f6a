//! Routes: `host[/path-prefix]`. Hosts are exact (`api.example.com`),
//! wildcard (`*.example.com`: any subdomain, not the apex) or `*` (any host).
//! Precedence: exact host, then the longest wildcard suffix, then `*`; within
//! a host, the longest path prefix that ends at a segment boundary.
//! The table is immutable: a change builds a new one, swapped in atomically.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use thiserror::Error;

/// Longest route string accepted.
pub const MAX_ROUTE_LEN: usize = 512;

/// A parsed route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    host: HostPattern,
    prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum HostPattern {
    Exact(String),
    /// The suffix including its leading dot: `.example.com`.
    Wildcard(String),
    Any,
}

/// Why a route string was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Not of the form `host[/prefix]`.
    #[error("invalid route {route:?}: {reason}")]
    Invalid {
        /// The route as given.
        route: String,
        /// Why.
        reason: &'static str,
    },
}

impl Route {
    /// Parses `host[/path-prefix]`.
    pub fn parse(route: &str) -> Result<Self, RouteError> {
        let invalid = |reason| RouteError::Invalid {
            route: route.to_owned(),
            reason,
        };
        if route.is_empty() || route.len() > MAX_ROUTE_LEN {
            return Err(invalid("empty or longer than 512 bytes"));
        }
        let (host, prefix) = match route.find('/') {
            Some(i) => (&route[..i], &route[i..]),
            None => (route, "/"),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if !crate::names::is_hostname(suffix) {
                return Err(invalid("the wildcard suffix is not a hostname"));
            }
            HostPattern::Wildcard(format!(".{suffix}"))
        } else if crate::names::is_hostname(&host) {
            HostPattern::Exact(host)
        } else {
            return Err(invalid("the host is not a hostname, `*.suffix` or `*`"));
        };
        if prefix.contains(['?', '#', ' ']) || prefix.contains("//") {
            return Err(invalid(
                "the path prefix may not contain `?`, `#`, spaces or `//`",
            ));
        }
        let prefix = match prefix.trim_end_matches('/') {
            "" => "/".to_owned(),
            trimmed => trimmed.to_owned(),
        };
        Ok(Self { host, prefix })
    }

    /// The exact host name, for a route on one host.
    pub fn exact_host(&self) -> Option<&str> {
        match &self.host {
            HostPattern::Exact(host) => Some(host),
            _ => None,
        }
    }

    /// The wildcard suffix with its leading dot (`.example.com`), for a
    /// `*.example.com` route.
    pub fn wildcard_suffix(&self) -> Option<&str> {
        match &self.host {
            HostPattern::Wildcard(suffix) => Some(suffix),
            _ => None,
        }
    }

    /// Whether the route is the catch-all `*`.
    pub fn is_catch_all(&self) -> bool {
        matches!(self.host, HostPattern::Any)
    }

    /// Whether `path` is under this route's prefix at a segment boundary.
    fn matches_path(&self, path: &str) -> bool {
        self.prefix == "/"
            || path == self.prefix
            || path
                .strip_prefix(self.prefix.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostPattern::Exact(h) => f.write_str(h)?,
            HostPattern::Wildcard(s) => write!(f, "*{s}")?,
            HostPattern::Any => f.write_str("*")?,
        }
        if self.prefix != "/" {
            f.write_str(&self.prefix)?;
        }
        Ok(())
    }
}

/// The routes of one host pattern, longest prefix first.
type Bucket<T> = Vec<(Route, Arc<T>)>;

/// Routes to values of type `T` (deployments in the server).
#[derive(Debug, Clone)]
pub struct Router<T> {
    exact: HashMap<String, Bucket<T>>,
    /// Longest suffix first.
    wildcard: Vec<(String, Bucket<T>)>,
    any: Bucket<T>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Self {
            exact: HashMap::new(),
            wildcard: Vec::new(),
            any: Vec::new(),
        }
    }
}

impl<T> Router<T> {
    /// Builds a router from `(route, target)` pairs. Routes must be unique
    /// (the control plane refuses conflicts before this point).
    pub fn new(entries: impl IntoIterator<Item = (Route, Arc<T>)>) -> Self {
        let mut router = Self::default();
        let mut wildcard: HashMap<String, Bucket<T>> = HashMap::new();
        for (route, target) in entries {
            match &route.host {
                HostPattern::Exact(h) => router
                    .exact
                    .entry(h.clone())
                    .or_default()
                    .push((route, target)),
                HostPattern::Wildcard(s) => {
                    wildcard.entry(s.clone()).or_default().push((route, target))
                }
                HostPattern::Any => router.any.push((route, target)),
            }
        }
        let by_prefix_len = |v: &mut Bucket<T>| {
            v.sort_by_key(|(route, _)| std::cmp::Reverse(route.prefix.len()));
        };
        router.exact.values_mut().for_each(by_prefix_len);
        router.wildcard = wildcard.into_iter().collect();
        router
            .wildcard
            .iter_mut()
            .for_each(|(_, v)| by_prefix_len(v));
        router
            .wildcard
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        by_prefix_len(&mut router.any);
        router
    }

    /// The target for `host` (lower-case, no port) and `path`.
    pub fn resolve(&self, host: &str, path: &str) -> Option<&Arc<T>> {
        fn pick<'a, T>(routes: &'a [(Route, Arc<T>)], path: &str) -> Option<&'a Arc<T>> {
            routes
                .iter()
                .find(|(r, _)| r.matches_path(path))
                .map(|(_, t)| t)
        }
        if let Some(found) = self.exact.get(host).and_then(|routes| pick(routes, path)) {
            return Some(found);
        }
        for (suffix, routes) in &self.wildcard {
            if host.len() > suffix.len()
                && host.ends_with(suffix.as_str())
                && let Some(found) = pick(routes, path)
            {
                return Some(found);
            }
        }
        pick(&self.any, path)
    }
}

#[cfg(test)]
#[allow(clippy::panic, reason = "tests")]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &'static str)]) -> Router<&'static str> {
        Router::new(routes.iter().map(|(r, t)| {
            (
                Route::parse(r).unwrap_or_else(|e| panic!("{e}")),
                Arc::new(*t),
            )
        }))
    }

    #[test]
    fn exact_beats_wildcard_beats_any_and_longest_prefix_wins() {
        let r = router(&[
            ("api.example.com", "api"),
            ("api.example.com/v2", "api-v2"),
            ("*.example.com", "wild"),
            ("*.eu.example.com", "wild-eu"),
            ("*", "any"),
            ("*/static", "any-static"),
        ]);
        let at = |h, p| r.resolve(h, p).map(|t| **t);
        assert_eq!(at("api.example.com", "/"), Some("api"));
        assert_eq!(at("api.example.com", "/v2"), Some("api-v2"));
        assert_eq!(at("api.example.com", "/v2/x"), Some("api-v2"));
        assert_eq!(
            at("api.example.com", "/v2x"),
            Some("api"),
            "segment boundary"
        );
        assert_eq!(at("www.example.com", "/"), Some("wild"));
        assert_eq!(at("a.eu.example.com", "/"), Some("wild-eu"));
        assert_eq!(
            at("example.com", "/"),
            Some("any"),
            "the apex is not a subdomain"
        );
        assert_eq!(at("other.test", "/static/a.css"), Some("any-static"));
    }

    #[test]
    fn no_match_without_a_catch_all() {
        let r = router(&[("a.test/app", "a")]);
        assert_eq!(r.resolve("a.test", "/"), None);
        assert_eq!(r.resolve("b.test", "/app"), None);
    }

    #[test]
    fn parses_and_normalises_routes() {
        let r = Route::parse("API.Example.com/v1/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.to_string(), "api.example.com/v1");
        assert_eq!(Route::parse("a.test/"), Route::parse("a.test"));
        for bad in [
            "",
            "bad host",
            "*.",
            "a..b",
            "a.test/x?y",
            "a.test//x",
            "*x.test",
            &"a".repeat(513),
        ] {
            assert!(Route::parse(bad).is_err(), "{bad:?}");
        }
    }
}
