//! Count caps on what tenants may create, and names the platform keeps for
//! itself. Every cap is a named constant with its reason; an operator may
//! raise or lower them in `[tenancy]` of the config file.

use super::RegistryError;
use crate::capabilities::fetch::OutboundGrant;

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

/// Compiles running at once on the node: one per core of this machine
/// kind (2), so deploys never take every core from serving.
pub const MAX_COMPILES_IN_FLIGHT: usize = 2;

/// Compiles one tenant may run at once: one, so a tenant's compile bomb
/// queues behind nothing but its own.
pub const MAX_COMPILES_PER_TENANT: usize = 1;

/// Uploads whose bodies are read at once on the node: 4 × the 32 MiB
/// component cap bounds what uploads buffer to 128 MiB (20 concurrent
/// 32 MiB uploads used to take RSS to 2.18 GB).
pub const MAX_UPLOADS_IN_FLIGHT: usize = 4;

/// Uploads one tenant may have in flight at once.
pub const MAX_UPLOADS_PER_TENANT: usize = 1;

/// The window a tenant's compile time is counted over. Each tenant may
/// spend one compile budget (`compile_budget_secs`, 60 s by default) of
/// compile time per window: a tenant's compile bomb runs to its budget
/// once, and its next compile waits for the next window (429) instead of
/// taking a core from every other tenant's traffic again at once.
pub const COMPILE_TIME_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// Compile time each tenant spent in its current [`COMPILE_TIME_WINDOW`]:
/// one fixed window per tenant that compiled lately (at most the node's
/// tenants).
#[derive(Debug, Default)]
pub struct CompileTime {
    spent: std::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, std::time::Duration)>,
    >,
}

impl CompileTime {
    /// Refuses a compile (429) while `tenant` has spent `allowance` or
    /// more in its window.
    pub fn check(&self, tenant: &str, allowance: std::time::Duration) -> Result<(), RegistryError> {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        spent.retain(|_, (since, _)| now.duration_since(*since) < COMPILE_TIME_WINDOW);
        match spent.get(tenant) {
            Some((_, used)) if *used >= allowance => Err(RegistryError::Busy {
                what: "compile time",
                whose: "this tenant's (its window of 10 minutes is spent)",
            }),
            _ => Ok(()),
        }
    }

    /// Starts timing a compile of `tenant`'s, counted when the clock drops
    /// (also when the compile is cancelled: its client went away).
    pub fn clock(&self, tenant: &str) -> CompileClock<'_> {
        CompileClock {
            time: self,
            tenant: tenant.to_owned(),
            started: std::time::Instant::now(),
        }
    }

    /// Counts `took` of compile time to `tenant`.
    fn charge(&self, tenant: &str, took: std::time::Duration) {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        let entry = spent
            .entry(tenant.to_owned())
            .or_insert((now, std::time::Duration::ZERO));
        if now.duration_since(entry.0) >= COMPILE_TIME_WINDOW {
            *entry = (now, std::time::Duration::ZERO);
        }
        entry.1 = entry.1.saturating_add(took);
    }
}

/// A compile being timed; counted to its tenant on drop.
pub struct CompileClock<'a> {
    time: &'a CompileTime,
    tenant: String,
    started: std::time::Instant,
}

impl Drop for CompileClock<'_> {
    fn drop(&mut self) {
        self.time.charge(&self.tenant, self.started.elapsed());
    }
}

/// Slots of some work (compiles, uploads): the node's and each tenant's.
/// Past either, the work is refused with 429 at once rather than queued
/// behind a slow one.
#[derive(Debug)]
pub struct TenantSlots {
    what: &'static str,
    global: std::sync::Arc<tokio::sync::Semaphore>,
    per_tenant_max: usize,
    per_tenant: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl TenantSlots {
    /// `global` slots on the node, `per_tenant` of them for one tenant;
    /// `what` names the work in refusals.
    pub fn new(what: &'static str, global: usize, per_tenant: usize) -> Self {
        Self {
            what,
            global: std::sync::Arc::new(tokio::sync::Semaphore::new(global)),
            per_tenant_max: per_tenant,
            per_tenant: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The compile slots: `MAX_COMPILES_IN_FLIGHT`, `MAX_COMPILES_PER_TENANT`.
    pub fn compiles() -> Self {
        Self::new("compile", MAX_COMPILES_IN_FLIGHT, MAX_COMPILES_PER_TENANT)
    }

    /// The upload slots: `MAX_UPLOADS_IN_FLIGHT`, `MAX_UPLOADS_PER_TENANT`.
    pub fn uploads() -> Self {
        Self::new("upload", MAX_UPLOADS_IN_FLIGHT, MAX_UPLOADS_PER_TENANT)
    }

    /// Takes a slot of the node's and one of `tenant`'s, or says which is full.
    pub fn take(&self, tenant: &str) -> Result<TenantPermit<'_>, RegistryError> {
        let mut per_tenant = self.per_tenant.lock().unwrap_or_else(|p| p.into_inner());
        let count = per_tenant.entry(tenant.to_owned()).or_insert(0);
        if *count >= self.per_tenant_max {
            return Err(RegistryError::Busy {
                what: self.what,
                whose: "this tenant's",
            });
        }
        let global = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| RegistryError::Busy {
                what: self.what,
                whose: "the node's",
            })?;
        *count += 1;
        Ok(TenantPermit {
            slots: self,
            tenant: tenant.to_owned(),
            _global: global,
        })
    }
}

/// Held slots; given back on drop.
pub struct TenantPermit<'a> {
    slots: &'a TenantSlots,
    tenant: String,
    _global: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for TenantPermit<'_> {
    fn drop(&mut self) {
        let mut per_tenant = self
            .slots
            .per_tenant
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_tenant.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_tenant.remove(&self.tenant);
            }
        }
    }
}

/// The caps one registry applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryCaps {
    /// Tenants on the node.
    pub max_tenants: usize,
    /// Apps per tenant.
    pub max_apps_per_tenant: usize,
    /// Routes per app.
    pub max_routes_per_app: usize,
    /// Every host a tenant routes needs the operator's grant (the exact
    /// host or a `*.suffix` covering it), not only wildcards: the operator
    /// has checked who owns each domain. Off, the first tenant to claim an
    /// unreserved host name holds it.
    pub hosts_need_grants: bool,
}

impl Default for RegistryCaps {
    fn default() -> Self {
        Self {
            max_tenants: DEFAULT_MAX_TENANTS,
            max_apps_per_tenant: DEFAULT_MAX_APPS_PER_TENANT,
            max_routes_per_app: DEFAULT_MAX_ROUTES_PER_APP,
            hosts_need_grants: false,
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

/// Parses a tenant's outbound grants (`CIDR` or `CIDR:PORT`).
pub(super) fn outbound_grants(grants: &[String]) -> Result<Vec<OutboundGrant>, RegistryError> {
    grants
        .iter()
        .map(|grant| grant.parse().map_err(RegistryError::Invalid))
        .collect()
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

    #[test]
    fn a_tenant_that_spent_its_compile_time_waits_and_others_do_not() {
        let time = CompileTime::default();
        let allowance = std::time::Duration::from_millis(30);
        assert!(time.check("bomber", allowance).is_ok(), "nothing spent yet");
        time.charge("bomber", std::time::Duration::from_millis(29));
        assert!(time.check("bomber", allowance).is_ok(), "just under");
        time.charge("bomber", std::time::Duration::from_millis(1));
        let err = time.check("bomber", allowance).unwrap_err();
        assert!(matches!(err, RegistryError::Busy { .. }), "{err}");
        assert!(time.check("other", allowance).is_ok(), "another tenant");
        {
            let _clock = time.clock("timed");
            std::thread::sleep(std::time::Duration::from_millis(35));
        }
        assert!(
            time.check("timed", allowance).is_err(),
            "a dropped clock counts"
        );
    }
}
