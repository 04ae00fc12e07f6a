//! Who may claim which host: a host name belongs to one tenant (any of its
//! apps may route paths on it), `*.suffix` and `*` routes are operator
//! grants, and a wildcard never covers a host another tenant claimed (nor
//! the other way round). Refusals never name the other tenant or its app.
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

/// Whether the operator's `grants` (route host patterns such as
/// `*.example.com` or `*`) allow `route`'s wildcard or catch-all host. A
/// grant of `*.example.com` also allows `*.eu.example.com`.
fn granted(route: &Route, grants: &[String]) -> bool {
    if route.is_catch_all() {
        return grants.iter().any(|g| g == "*");
    }
    let Some(suffix) = route.wildcard_suffix() else {
        return true;
    };
    grants.iter().any(|grant| {
        grant == "*"
            || grant
                .strip_prefix('*')
                .is_some_and(|granted| suffix.ends_with(granted) && granted.starts_with('.'))
    })
}

/// Checks `routes` for app `app` of `tenant`, which holds `grants`, against
/// every route `others` already claim (the app's own current routes may be
/// among them; they are skipped).
pub(super) fn check<'a>(
    tenant: &str,
    app: &str,
    grants: &[String],
    routes: &[Route],
    others: impl IntoIterator<Item = Claim<'a>>,
) -> Result<(), RegistryError> {
    for route in routes {
        if !granted(route, grants) {
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
        let grants: Vec<String> = grants.iter().map(|g| (*g).to_owned()).collect();
        check(
            tenant,
            "new",
            &grants,
            &[Route::parse(route).unwrap()],
            claims(existing),
        )
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
