//! Which address is the client's: the TCP peer, unless the peer is a proxy
//! the operator trusts, in which case the nearest untrusted hop that the
//! proxies recorded in `Forwarded` or `X-Forwarded-For`.

use http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trust peers inside `nets`; empty trusts nobody.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// Whether `ip` is a proxy the operator trusts.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client's address. Headers from an untrusted peer are ignored,
    /// so a client cannot spoof its location. From a trusted peer, the
    /// hops are read right to left (nearest first) and the first address
    /// that is not itself a trusted proxy is the client; `Forwarded` is
    /// preferred over `X-Forwarded-For` when both are present.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_hops(headers).or_else(|| x_forwarded_for_hops(headers));
        let Some(hops) = hops else {
            return peer;
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = hop else {
                // An unparsable or obfuscated hop: stop at the last known.
                return client;
            };
            client = ip.to_canonical();
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// `X-Forwarded-For: client, proxy1, proxy2` (all header lines in order).
fn x_forwarded_for_hops(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let values = header_values(headers, "x-forwarded-for");
    if values.is_empty() {
        return None;
    }
    Some(
        values
            .iter()
            .flat_map(|v| v.split(','))
            .map(|hop| parse_node(hop.trim()))
            .collect(),
    )
}

/// RFC 7239 `Forwarded: for=192.0.2.1;proto=https, for="[2001:db8::1]:80"`.
fn forwarded_hops(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let values = header_values(headers, "forwarded");
    if values.is_empty() {
        return None;
    }
    let hops: Vec<Option<IpAddr>> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(key, _)| key.eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| parse_node(value.trim().trim_matches('"')))
        })
        .collect();
    Some(hops)
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`
/// or `[2001:db8::1]:80`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    node.strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|ip| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(
            proxies().client_ip(ip("203.0.113.9"), &h),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::default().client_ip(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn trusted_peers_name_the_nearest_untrusted_hop() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.7")]);
        assert_eq!(proxies().client_ip(ip("10.0.0.1"), &h), ip("1.2.3.4"));
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "1.2.3.4"),
        ]);
        assert_eq!(proxies().client_ip(ip("10.0.0.1"), &h), ip("1.2.3.4"));
        let h = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.8")]);
        assert_eq!(proxies().client_ip(ip("10.0.0.1"), &h), ip("10.0.0.9"));
        let h = headers(&[]);
        assert_eq!(proxies().client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_header_with_ports_and_ipv6() {
        let h = headers(&[(
            "forwarded",
            "for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.3:80",
        )]);
        assert_eq!(proxies().client_ip(ip("::1"), &h), ip("2001:db8::7"));
        let h = headers(&[("forwarded", "for=_hidden, for=1.2.3.4")]);
        assert_eq!(proxies().client_ip(ip("::1"), &h), ip("1.2.3.4"));
        let h = headers(&[("forwarded", "for=1.2.3.4, for=unknown")]);
        assert_eq!(proxies().client_ip(ip("::1"), &h), ip("::1"));
    }

    #[test]
    fn mapped_ipv4_peers_are_canonical() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            proxies().client_ip(ip("::ffff:10.1.1.1"), &h),
            ip("1.2.3.4")
        );
    }
}
