//! Who a function may reach: the app's allow-list of origins, and the
//! host's refusal of addresses that lead into the operator's own network.

use arc_swap::ArcSwap;
use ipnet::IpNet;
use std::net::SocketAddr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Why an allow-list entry was refused at deploy time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allowed host {entry:?}: {reason}")]
pub struct AllowListError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A host pattern: exact, `*.suffix` (subdomains only) or `*` (any host).
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// Stored with its leading dot: `.example.com`.
    Subdomains(String),
    Any,
}

/// One `scheme://host[:port]` entry; `port: None` means any port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    https: bool,
    host: HostPattern,
    port: Option<u16>,
}

/// The origins one app may fetch. Empty denies everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    origins: Vec<Origin>,
}

impl AllowList {
    /// Parses `scheme://host[:port]` entries: scheme `http` or `https`;
    /// host exact, `*.example.com` (any subdomain, not the apex) or `*`;
    /// port a number or `*`, the scheme's default when absent. Nothing
    /// after the authority (no path).
    pub fn parse(entries: &[String]) -> Result<Self, AllowListError> {
        let origins = entries
            .iter()
            .map(|entry| {
                parse_origin(entry).map_err(|reason| AllowListError {
                    entry: entry.clone(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { origins })
    }

    /// Whether `scheme://host:port` is allowed (`host` lower-case, IPv6
    /// without brackets).
    pub fn allows(&self, https: bool, host: &str, port: u16) -> bool {
        self.origins.iter().any(|o| {
            o.https == https
                && o.port.is_none_or(|p| p == port)
                && match &o.host {
                    HostPattern::Any => true,
                    HostPattern::Exact(h) => h == host,
                    HostPattern::Subdomains(suffix) => {
                        host.len() > suffix.len() && host.ends_with(suffix.as_str())
                    }
                }
        })
    }

    /// True when nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }
}

fn parse_origin(entry: &str) -> Result<Origin, &'static str> {
    let (scheme, rest) = entry
        .split_once("://")
        .ok_or("expected scheme://host[:port]")?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return Err("the scheme must be http or https"),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err("only scheme://host[:port]: no path, query or user");
    }
    let (host, port) = split_host_port(rest)?;
    let port = match port {
        None => Some(if https { 443 } else { 80 }),
        Some("*") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| "the port must be 1-65535 or *")?,
        ),
    };
    if port == Some(0) {
        return Err("the port must be 1-65535 or *");
    }
    let host = host.to_ascii_lowercase();
    let host = if host == "*" {
        HostPattern::Any
    } else if let Some(suffix) = host.strip_prefix("*.") {
        if !crate::names::is_hostname(suffix) {
            return Err("a wildcard must be *.domain");
        }
        HostPattern::Subdomains(format!(".{suffix}"))
    } else if crate::names::is_hostname(&host) || host.parse::<IpAddr>().is_ok() {
        HostPattern::Exact(host)
    } else {
        return Err("not a valid host name or address");
    };
    Ok(Origin { https, host, port })
}

/// Splits `host[:port]`, with IPv6 literals in brackets.
pub(super) fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed [ in the host")?;
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or("junk after ]"),
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

/// An operator's grant of a private range, on every port or one:
/// `10.0.0.0/8`, `127.0.0.1/32:8080`, `[fd00::/8]:443`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundGrant {
    /// The range.
    pub net: IpNet,
    /// The one port, or every port.
    pub port: Option<u16>,
}

impl std::str::FromStr for OutboundGrant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("outbound grant {s:?}: use CIDR or CIDR:PORT ([v6/len]:PORT)");
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Self { net, port: None });
        }
        let (net, port) = match s.strip_prefix('[') {
            Some(rest) => rest.split_once("]:").ok_or_else(bad)?,
            None => s.rsplit_once(':').ok_or_else(bad)?,
        };
        Ok(Self {
            net: net.parse().map_err(|_| bad())?,
            port: Some(port.parse().map_err(|_| bad())?),
        })
    }
}

impl std::fmt::Display for OutboundGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.port, self.net) {
            (None, net) => write!(f, "{net}"),
            (Some(port), IpNet::V6(net)) => write!(f, "[{net}]:{port}"),
            (Some(port), net) => write!(f, "{net}:{port}"),
        }
    }
}

/// The rule for destination addresses: public unicast only, except ranges
/// the operator grants (node-wide, or to one tenant), and never the
/// daemon's own listeners, whatever is granted.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allowed: Vec<OutboundGrant>,
    own: Arc<ArcSwap<Vec<SocketAddr>>>,
}

impl AddressPolicy {
    /// Public addresses plus `allowed` on every port (node-wide).
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self {
            allowed: allowed
                .into_iter()
                .map(|net| OutboundGrant { net, port: None })
                .collect(),
            own: Arc::default(),
        }
    }

    /// This policy plus one tenant's `grants`; the daemon's own listeners
    /// stay shared (and refused).
    pub fn with_grants(&self, grants: &[OutboundGrant]) -> Self {
        let mut allowed = self.allowed.clone();
        allowed.extend_from_slice(grants);
        Self {
            allowed,
            own: self.own.clone(),
        }
    }

    /// The daemon's own listeners, refused to every fetch.
    pub fn set_own_listeners(&self, listeners: Vec<SocketAddr>) {
        self.own.store(Arc::new(listeners));
    }

    /// Whether `ip` may be connected to on some port (the resolver's
    /// filter; [`AddressPolicy::permits_socket`] decides on the peer).
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        is_public(ip) || self.allowed.iter().any(|grant| grant.net.contains(&ip))
    }

    /// Whether a connection to `addr` is permitted: never one of the
    /// daemon's own listeners; a public address; or a granted range on a
    /// granted port.
    pub fn permits_socket(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        let own = self.own.load();
        let is_own = own.iter().any(|listener| {
            listener.port() == addr.port()
                && (listener.ip().to_canonical() == ip
                    || (listener.ip().is_unspecified() && !is_public(ip)))
        });
        if is_own {
            return false;
        }
        is_public(ip)
            || self.allowed.iter().any(|grant| {
                grant.net.contains(&ip) && grant.port.is_none_or(|port| port == addr.port())
            })
    }
}

/// Public unicast: not loopback, private, shared (CGNAT), link-local
/// (which holds the 169.254.169.254 metadata service), multicast,
/// reserved, documentation or benchmarking space, nor an IPv6 form that
/// embeds one of those.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let seg = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match seg[0] {
        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach IPv4 hosts.
        0x0064 if seg[1] == 0xff9b => is_public_v4(embedded(seg[6], seg[7])),
        0x2002 => is_public_v4(embedded(seg[1], seg[2])),
        // Teredo and documentation.
        0x2001 if seg[1] == 0 || seg[1] == 0x0db8 => false,
        first => {
            !(ip.is_unspecified()
                || ip.is_loopback()
                || first & 0xfe00 == 0xfc00 // unique local, incl. fd00:ec2::254
                || first & 0xffc0 == 0xfe80 // link-local
                || first & 0xffc0 == 0xfec0 // site-local (deprecated)
                || first & 0xff00 == 0xff00 // multicast
                || (first == 0x0100 && seg[1..4] == [0, 0, 0]) // discard
                || (first == 0 && seg[1..6] == [0, 0, 0, 0, 0])) // v4-compatible
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        let entries: Vec<String> = entries.iter().map(|s| (*s).to_owned()).collect();
        AllowList::parse(&entries).unwrap()
    }

    #[test]
    fn exact_wildcard_and_ports() {
        let allow = list(&[
            "https://api.example.com",
            "http://*.cdn.example:8080",
            "http://127.0.0.1:*",
        ]);
        assert!(allow.allows(true, "api.example.com", 443));
        assert!(
            !allow.allows(false, "api.example.com", 80),
            "scheme matters"
        );
        assert!(
            !allow.allows(true, "api.example.com", 8443),
            "default port only"
        );
        assert!(!allow.allows(true, "evil-api.example.com", 443));
        assert!(allow.allows(false, "a.b.cdn.example", 8080));
        assert!(
            !allow.allows(false, "cdn.example", 8080),
            "apex is not a subdomain"
        );
        assert!(!allow.allows(false, "xcdn.example", 8080));
        assert!(allow.allows(false, "127.0.0.1", 1234));
        assert!(!AllowList::default().allows(true, "api.example.com", 443));
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        for bad in [
            "api.example.com",
            "ftp://x.example",
            "https://x.example/path",
            "https://x.example:0",
            "https://x.example:99999",
            "https://*x.example",
            "https://user@x.example",
            "https://",
        ] {
            let err = AllowList::parse(&[bad.to_owned()]);
            assert!(err.is_err(), "{bad} was accepted");
        }
        assert!(AllowList::parse(&["https://[::1]:8443".to_owned()]).is_ok());
    }

    #[test]
    fn private_and_metadata_addresses_are_refused() {
        let policy = AddressPolicy::default();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::1",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(!policy.permits(ip), "{refused} was permitted");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(policy.permits(ip), "{public} was refused");
        }
    }

    #[test]
    fn grants_are_per_port_and_the_daemons_own_listeners_are_never_reachable() {
        let node = AddressPolicy::default();
        let grant: OutboundGrant = "127.0.0.1/32:8443".parse().unwrap();
        assert_eq!(grant.to_string(), "127.0.0.1/32:8443");
        assert_eq!(
            "[fd00::/8]:443".parse::<OutboundGrant>().unwrap().port,
            Some(443)
        );
        assert!("10.0.0.0/8:port".parse::<OutboundGrant>().is_err());
        let tenant = node.with_grants(&[grant]);
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(
            tenant.permits_socket(at("127.0.0.1:8443")),
            "the granted port"
        );
        assert!(!tenant.permits_socket(at("127.0.0.1:8444")), "another port");
        assert!(!node.permits_socket(at("127.0.0.1:8443")), "another tenant");
        let wide = node.with_grants(&["127.0.0.0/8".parse().unwrap()]);
        node.set_own_listeners(vec![at("127.0.0.1:9900"), at("0.0.0.0:8080")]);
        assert!(
            !wide.permits_socket(at("127.0.0.1:9900")),
            "the admin listener"
        );
        assert!(
            !wide.permits_socket(at("127.0.0.2:8080")),
            "a wildcard listener"
        );
        assert!(wide.permits_socket(at("127.0.0.1:7000")));
        assert!(
            wide.permits_socket(at("93.184.216.34:8080")),
            "public is public"
        );
    }

    #[test]
    fn operator_ranges_are_allowed() {
        let net: IpNet = "127.0.0.1/32".parse().unwrap();
        let policy = AddressPolicy::new(vec![net]);
        assert!(policy.permits("127.0.0.1".parse().unwrap()));
        assert!(policy.permits("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!policy.permits("127.0.0.2".parse().unwrap()));
    }
}
