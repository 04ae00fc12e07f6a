//! Where the client is, from the operator's geo database.
//!
//! ```no_run
//! use verge_sdk::geo;
//!
//! let country = geo::client().and_then(|l| l.country_code).unwrap_or_default();
//! let ip = geo::client_ip(); // Some("203.0.113.7")
//! let berlin = geo::lookup("81.2.69.160");
//! ```
//!
//! Every field is optional: databases differ, and without one every
//! lookup answers `None`.

use crate::wit::verge::edge::geo as wit;

pub use wit::Location;

/// The current request's client address (the TCP peer, or the client a
/// trusted proxy names).
pub fn client_ip() -> Option<String> {
    wit::client_ip()
}

/// The location of the current request's client.
pub fn client() -> Option<Location> {
    wit::client()
}

/// The location of `ip` (IPv4 or IPv6 text).
pub fn lookup(ip: &str) -> Option<Location> {
    wit::lookup(ip)
}
