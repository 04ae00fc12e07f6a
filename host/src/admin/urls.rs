//! Where a deployed app answers, as URLs people can paste: each route's
//! host on the data plane's scheme and port (or the operator's public URL).

use crate::tenancy::router::Route;

/// How the data plane is reached from outside: a scheme and a port, and
/// the host that stands for a catch-all route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrls {
    scheme: String,
    /// `None`: the scheme's default port (not written).
    port: Option<u16>,
    /// What a `*` route is shown as.
    any_host: String,
}

impl Default for PublicUrls {
    fn default() -> Self {
        Self::listening(false, 8080)
    }
}

impl PublicUrls {
    /// The data plane as bound: `https` when it only listens with TLS,
    /// on `port`.
    pub fn listening(https: bool, port: u16) -> Self {
        let scheme = if https { "https" } else { "http" };
        Self::new(scheme, port, "localhost")
    }

    /// What deploys print for a data plane bound to `plain` (and `tls`):
    /// the operator's `public_url` when set, else the HTTPS listener when
    /// there is one (the URLs people paste), else the plain one.
    pub fn for_plane(
        public_url: Option<&str>,
        plain: std::net::SocketAddr,
        tls: Option<std::net::SocketAddr>,
    ) -> Result<Self, String> {
        match (public_url, tls) {
            (Some(url), _) => Self::parse(url),
            (None, Some(tls)) => Ok(Self::listening(true, tls.port())),
            (None, None) => Ok(Self::listening(false, plain.port())),
        }
    }

    /// From the operator's public base URL (`https://edge.example.net`,
    /// `http://1.2.3.4:8080`): its scheme and port, its host for catch-all
    /// routes.
    pub fn parse(base: &str) -> Result<Self, String> {
        let uri: http::Uri = base
            .parse()
            .map_err(|err| format!("the public URL {base:?} is not a URL: {err}"))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_owned(),
            _ => {
                return Err(format!(
                    "the public URL {base:?} must start with http:// or https://"
                ));
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("the public URL {base:?} has no host"))?;
        let default = if scheme == "https" { 443 } else { 80 };
        Ok(Self::new(&scheme, uri.port_u16().unwrap_or(default), host))
    }

    fn new(scheme: &str, port: u16, any_host: &str) -> Self {
        let default = if scheme == "https" { 443 } else { 80 };
        Self {
            scheme: scheme.to_owned(),
            port: (port != default).then_some(port),
            any_host: any_host.to_owned(),
        }
    }

    /// One URL per route, in order; routes that do not parse are skipped
    /// (the registry stores only normalised ones).
    pub fn for_routes(&self, routes: &[String]) -> Vec<String> {
        routes
            .iter()
            .filter_map(|r| Route::parse(r).ok())
            .map(|route| {
                let text = route.to_string();
                let (host, prefix) = match text.find('/') {
                    Some(at) => (&text[..at], &text[at..]),
                    None => (text.as_str(), "/"),
                };
                let host = if host == "*" { &self.any_host } else { host };
                let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
                format!("{}://{host}{port}{prefix}", self.scheme)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_tls_on_deploys_print_https_urls() {
        let plain = "127.0.0.1:8080".parse().unwrap();
        let tls = Some("127.0.0.1:8443".parse().unwrap());
        let routes = ["a.test/x".to_owned()];
        let with_tls = PublicUrls::for_plane(None, plain, tls).unwrap();
        assert_eq!(with_tls.for_routes(&routes), ["https://a.test:8443/x"]);
        let without = PublicUrls::for_plane(None, plain, None).unwrap();
        assert_eq!(without.for_routes(&routes), ["http://a.test:8080/x"]);
        let public = PublicUrls::for_plane(Some("https://edge.example"), plain, tls).unwrap();
        assert_eq!(public.for_routes(&routes), ["https://a.test/x"]);
    }

    fn urls(base: &PublicUrls, routes: &[&str]) -> Vec<String> {
        base.for_routes(&routes.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn routes_become_urls_on_the_data_planes_scheme_and_port() {
        let plane = PublicUrls::listening(false, 8080);
        assert_eq!(
            urls(&plane, &["site.test", "api.test/v1", "*.apps.test", "*"]),
            [
                "http://site.test:8080/",
                "http://api.test:8080/v1",
                "http://*.apps.test:8080/",
                "http://localhost:8080/"
            ]
        );
        assert_eq!(
            urls(&PublicUrls::listening(true, 443), &["site.test"]),
            ["https://site.test/"]
        );
        let public = PublicUrls::parse("https://edge.example.net").unwrap();
        assert_eq!(
            urls(&public, &["site.test/x", "*"]),
            ["https://site.test/x", "https://edge.example.net/"]
        );
        assert_eq!(
            urls(
                &PublicUrls::parse("http://1.2.3.4:8000").unwrap(),
                &["a.test"]
            ),
            ["http://a.test:8000/"]
        );
        assert!(PublicUrls::parse("edge.example.net").is_err());
        assert!(PublicUrls::parse("ftp://edge.example.net").is_err());
    }
}
