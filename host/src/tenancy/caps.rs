//! Count caps on what tenants may create, and names the platform keeps for
//! itself. Every cap is a named constant with its reason; an operator may
//! raise or lower them in `[tenancy]` of the config file.

use super::RegistryError;

/// Tenants on one node: far above a node's useful size, low enough that
/// listing them stays a small answer.
pub const DEFAULT_MAX_TENANTS: usize = 10_000;

/// Apps per tenant: Workers' paid-plan figure (500) is per account; 100 per
/// tenant keeps one tenant's deploy churn and compiled artifacts bounded.
pub const DEFAULT_MAX_APPS_PER_TENANT: usize = 100;

/// Routes per app: enough for every host and path a site needs, and keeps
/// the claim checks and the routing table small (95,000 routes in one
/// request used to take 10 s under the write lock).
pub const DEFAULT_MAX_ROUTES_PER_APP: usize = 100;

/// Tenant names the platform reserves: `op` is the operator tokens' prefix
/// (`verge_op_…`), so a tenant of that name could never authenticate; the
/// others would read as the platform's own in logs and URLs.
pub const RESERVED_TENANT_NAMES: [&str; 4] = ["op", "operator", "admin", "verge"];

/// The caps one registry applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryCaps {
    /// Tenants on the node.
    pub max_tenants: usize,
    /// Apps per tenant.
    pub max_apps_per_tenant: usize,
    /// Routes per app.
    pub max_routes_per_app: usize,
}

impl Default for RegistryCaps {
    fn default() -> Self {
        Self {
            max_tenants: DEFAULT_MAX_TENANTS,
            max_apps_per_tenant: DEFAULT_MAX_APPS_PER_TENANT,
            max_routes_per_app: DEFAULT_MAX_ROUTES_PER_APP,
        }
    }
}

/// `count` things of `what` exist; one more is refused at `max`.
pub(super) fn room_for_one(
    what: &'static str,
    count: usize,
    max: usize,
) -> Result<(), RegistryError> {
    if count >= max {
        return Err(RegistryError::TooMany { what, max });
    }
    Ok(())
}

/// Refuses a reserved tenant name.
pub(super) fn check_tenant_name(name: &str) -> Result<(), RegistryError> {
    if RESERVED_TENANT_NAMES.contains(&name) {
        return Err(RegistryError::Reserved {
            what: "tenant",
            name: name.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_allows_up_to_its_value_and_not_one_more() {
        assert!(room_for_one("apps", 99, 100).is_ok());
        let err = room_for_one("apps", 100, 100).unwrap_err();
        assert_eq!(err.to_string(), "apps: at most 100");
    }

    #[test]
    fn the_operator_prefix_is_reserved() {
        assert!(check_tenant_name("op").is_err());
        assert!(check_tenant_name("ops").is_ok());
    }
}
