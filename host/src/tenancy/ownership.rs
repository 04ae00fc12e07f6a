//! Who may claim which host: a host name belongs to one tenant (any of its
//! apps may route paths on it), `*.suffix` and `*` routes are operator
//! grants, and a wildcard never covers a host another tenant claimed (nor
//! the other way round). IP literals and `localhost` are never a tenant's
//! by claiming them: they are what Host-less, by-IP and health-check
//! requests carry, so they need the operator's grant of that exact host.
//! With `hosts_need_grants` every host does (the operator proves the
//! domain's owner). Refusals never name the other tenant or its app.
//! The checks are linear in the number of routes on the node.

use super::RegistryError;
use super::router::Route;
use std::collections::HashMap;

/// One claimed route: its tenant and app.
pub(super) struct Claim<'a> {
    pub tenant: &'a str,
    pub app: &'a str,
    pub route: Route,
}

/// A host no tenant holds by claiming it: an IP literal or `localhost`.
pub(super) fn is_reserved_host(host: &str) -> bool {
    host == "localhost"
        || host.parse::<std::net::Ipv4Addr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
}

/// Whether the operator's `grants` (route host patterns such as
/// `*.example.com`, `*` or an exact host) allow `route`'s host. A wildcard
/// or catch-all always needs one, a reserved host its exact grant (or
/// `*`), any other host one only when `hosts_need_grants`. A grant of
/// `*.example.com` also allows `*.eu.example.com` and `www.example.com`.
fn granted(route: &Route, grants: &[String], hosts_need_grants: bool) -> bool {
    if route.is_catch_all() {
        return grants.iter().any(|g| g == "*");
    }
    let under = |suffix: &str| {
        grants.iter().any(|grant| {
            grant == "*"
                || grant
                    .strip_prefix('*')
                    .is_some_and(|granted| suffix.ends_with(granted) && granted.starts_with('.'))
        })
    };
    let Some(host) = route.exact_host() else {
        return route.wildcard_suffix().is_some_and(under);
    };
    let exact = grants.iter().any(|grant| grant == host || grant == "*");
    if is_reserved_host(host) {
        return exact;
    }
    if !hosts_need_grants {
        return true;
    }
    exact || host.find('.').is_some_and(|dot| under(&host[dot..]))
}

/// Checks `routes` for app `app` of `tenant`, which holds `grants`, against
/// every route `others` already claim (the app's own current routes may be
/// among them; they are skipped).
pub(super) fn check<'a>(
    tenant: &str,
    app: &str,
    grants: &[String],
    hosts_need_grants: bool,
    routes: &[Route],
    others: impl IntoIterator<Item = Claim<'a>>,
) -> Result<(), RegistryError> {
    for route in routes {
        if !granted(route, grants, hosts_need_grants) {
            return Err(RegistryError::NotGranted(route.to_string()));
        }
    }
    // Other tenants' exact hosts and wildcard suffixes; this tenant's
    // other apps' exact routes.
    let mut hosts: HashMap<String, ()> = HashMap::new();
    let mut suffixes: HashMap<String, ()> = HashMap::new();
    let mut own: HashMap<String, String> = HashMap::new();
    for claim in others {
        if claim.tenant == tenant {
            if claim.app != app {
                own.insert(claim.route.to_string(), claim.app.to_owned());
            }
            continue;
        }
        if let Some(host) = claim.route.exact_host() {
            hosts.insert(host.to_owned(), ());
        } else if let Some(suffix) = claim.route.wildcard_suffix() {
            suffixes.insert(suffix.to_owned(), ());
        }
    }
    for route in routes {
        if let Some(owner) = own.get(&route.to_string()) {
            return Err(RegistryError::RouteConflict {
                route: route.to_string(),
                owner: format!("{tenant}/{owner}"),
            });
        }
        let claimed = |host: &str| RegistryError::HostClaimed(host.to_owned());
        if let Some(host) = route.exact_host() {
            if hosts.contains_key(host) {
                return Err(claimed(host));
            }
            // Under another tenant's wildcard: `.a.b.c`, `.b.c`, `.c`.
            let mut rest = host;
            while let Some(at) = rest.find('.') {
                if suffixes.contains_key(&rest[at..]) {
                    return Err(claimed(host));
                }
                rest = &rest[at + 1..];
            }
        } else if let Some(suffix) = route.wildcard_suffix() {
            let covers = |other: &str| other.ends_with(suffix);
            let overlaps = |other: &str| other.ends_with(suffix) || suffix.ends_with(other);
            if hosts.keys().any(|h| covers(h)) || suffixes.keys().any(|s| overlaps(s)) {
                return Err(claimed(&route.to_string()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims<'a>(list: &'a [(&'a str, &'a str, &'a str)]) -> Vec<Claim<'a>> {
        list.iter()
            .map(|(tenant, app, route)| Claim {
                tenant,
                app,
                route: Route::parse(route).unwrap(),
            })
            .collect()
    }

    fn try_claim(
        tenant: &str,
        grants: &[&str],
        route: &str,
        existing: &[(&str, &str, &str)],
    ) -> Result<(), RegistryError> {
        claim_on(false, tenant, grants, route, existing)
    }

    fn claim_on(
        hosts_need_grants: bool,
        tenant: &str,
        grants: &[&str],
        route: &str,
        existing: &[(&str, &str, &str)],
    ) -> Result<(), RegistryError> {
        let grants: Vec<String> = grants.iter().map(|g| (*g).to_owned()).collect();
        check(
            tenant,
            "new",
            &grants,
            hosts_need_grants,
            &[Route::parse(route).unwrap()],
            claims(existing),
        )
    }

    #[test]
    fn ip_literals_and_localhost_need_the_operators_exact_grant() {
        for host in ["127.0.0.1", "localhost", "10.0.0.5/api", "LOCALHOST"] {
            let err = try_claim("squatter", &[], host, &[]).unwrap_err();
            assert!(matches!(err, RegistryError::NotGranted(_)), "{host}: {err}");
            assert!(
                try_claim("squatter", &["*.0.0.1"], host, &[]).is_err(),
                "{host}: a suffix grant does not cover an address"
            );
        }
        assert!(try_claim("ops", &["127.0.0.1"], "127.0.0.1", &[]).is_ok());
        assert!(try_claim("ops", &["localhost"], "localhost/health", &[]).is_ok());
        assert!(try_claim("ops", &["*"], "10.0.0.5", &[]).is_ok());
        // Names under localhost (the demo's `hello.localhost`) are names.
        assert!(try_claim("demo", &[], "hello.localhost", &[]).is_ok());
        assert!(is_reserved_host("[::1]") && !is_reserved_host("1.2.3.4.example"));
    }

    #[test]
    fn with_hosts_needing_grants_only_a_granted_domain_is_claimed() {
        assert!(claim_on(true, "squatter", &[], "shop.example", &[]).is_err());
        assert!(claim_on(true, "owner", &["shop.example"], "shop.example/x", &[]).is_ok());
        assert!(claim_on(true, "owner", &["*.example"], "www.example", &[]).is_ok());
        assert!(
            claim_on(true, "owner", &["*.example"], "example", &[]).is_err(),
            "a suffix grant covers names under it, not the apex"
        );
        assert!(claim_on(false, "anyone", &[], "shop.example", &[]).is_ok());
    }

    const VICTIM: &[(&str, &str, &str)] = &[("victim", "site", "evil.test")];

    #[test]
    fn a_path_under_another_tenants_host_is_refused_without_naming_it() {
        let err = try_claim("attacker", &[], "evil.test/sub", VICTIM).unwrap_err();
        assert!(matches!(err, RegistryError::HostClaimed(_)), "{err}");
        let text = err.to_string();
        assert!(!text.contains("victim") && !text.contains("site"), "{text}");
        assert!(
            try_claim("victim", &[], "evil.test/sub", VICTIM).is_ok(),
            "its own host"
        );
    }

    #[test]
    fn wildcards_and_catch_all_need_a_grant() {
        for route in ["*.test", "*"] {
            let err = try_claim("t", &[], route, &[]).unwrap_err();
            assert!(
                matches!(err, RegistryError::NotGranted(_)),
                "{route}: {err}"
            );
        }
        assert!(try_claim("t", &["*.test"], "*.test", &[]).is_ok());
        assert!(
            try_claim("t", &["*.test"], "*.eu.test", &[]).is_ok(),
            "narrower"
        );
        assert!(
            try_claim("t", &["*.eu.test"], "*.test", &[]).is_err(),
            "wider"
        );
        assert!(try_claim("t", &["*.test"], "*", &[]).is_err());
        assert!(try_claim("t", &["*"], "*", &[]).is_ok());
    }

    #[test]
    fn a_wildcard_may_not_cover_another_tenants_host_nor_be_covered() {
        let err = try_claim("attacker", &["*"], "*.test", VICTIM).unwrap_err();
        assert!(matches!(err, RegistryError::HostClaimed(_)), "{err}");
        let granted: &[(&str, &str, &str)] = &[("victim", "site", "*.victim.test")];
        assert!(try_claim("attacker", &[], "www.victim.test", granted).is_err());
        assert!(try_claim("attacker", &["*"], "*.eu.victim.test", granted).is_err());
        assert!(try_claim("attacker", &["*"], "*.other.test", granted).is_ok());
        assert!(
            try_claim("attacker", &[], "victim.test", granted).is_ok(),
            "apex"
        );
    }

    #[test]
    fn the_same_route_in_two_apps_of_one_tenant_names_the_app() {
        let mine: &[(&str, &str, &str)] = &[("t", "web", "t.test/api")];
        let err = try_claim("t", &[], "t.test/api", mine).unwrap_err();
        assert!(err.to_string().contains("t/web"), "{err}");
        assert!(try_claim("t", &[], "t.test/other", mine).is_ok());
    }
}
