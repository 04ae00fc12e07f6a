//! What a control-plane change reads and writes, so the fleet checks
//! conflicts per record instead of on one global revision: one tenant
//! writing through two nodes made 26 of 40 of another tenant's writes fail
//! with 409 when any change anywhere since the writer's revision refused
//! it.
//!
//! Every change names scope keys; Redis remembers, per key, the revision
//! that last wrote it (`{verge:cp}:touched`), and refuses a change when a
//! key it read was written after the revision the writer checked against.
//! The keys:
//! - `t:NAME`: everything of tenant NAME (its record, apps and versions;
//!   the per-tenant caps are checked against these);
//! - `tenants`: the set of tenants (creating or deleting one, the tenant
//!   cap, token lookups);
//! - `h:HOST`: a host an app routes; a host claim also writes
//!   `under:SUFFIX` for each of its parent domains and reads
//!   `wild:SUFFIX`, and a `*.SUFFIX` route writes `wild:SUFFIX` and reads
//!   `under:SUFFIX`, so a host and a wildcard over it claimed by two
//!   tenants at once conflict (`*` is the empty suffix).

use super::{ControlOp, Table};
use crate::storage::records::AppRecord;
use std::collections::BTreeSet;

/// The keys a change reads (checked) and writes (stamped).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Refused if any was written after the writer's revision.
    pub reads: BTreeSet<String>,
    /// Stamped with the change's revision.
    pub writes: BTreeSet<String>,
}

impl Scope {
    fn both(&mut self, key: String) {
        self.reads.insert(key.clone());
        self.writes.insert(key);
    }
}

/// The tenant a control key belongs to: the table key up to its first `/`.
fn tenant_of(key: &str) -> &str {
    key.split('/').next().unwrap_or(key)
}

/// `a.b.c` → `b.c`, `c`, `` (the empty suffix stands for `*`).
fn parents(host: &str) -> impl Iterator<Item = &str> {
    host.match_indices('.')
        .map(move |(at, _)| &host[at + 1..])
        .chain(std::iter::once(""))
}

/// The scope of routing `route` (`host[/path]`, `*.suffix` or `*`).
fn route_scope(scope: &mut Scope, route: &str) {
    let host = route
        .split('/')
        .next()
        .unwrap_or(route)
        .to_ascii_lowercase();
    let wildcard = if host == "*" {
        Some(String::new())
    } else {
        host.strip_prefix("*.").map(str::to_owned)
    };
    match wildcard {
        Some(suffix) => {
            scope.both(format!("wild:{suffix}"));
            scope.reads.insert(format!("under:{suffix}"));
            for parent in parents(&suffix) {
                scope.reads.insert(format!("wild:{parent}"));
            }
        }
        None => {
            scope.both(format!("h:{host}"));
            for parent in parents(&host) {
                scope.writes.insert(format!("under:{parent}"));
                scope.reads.insert(format!("wild:{parent}"));
            }
        }
    }
}

/// What `ops` read and write. An app record that cannot be decoded makes
/// the change global (`None`: checked against the whole revision).
pub fn scope_of(ops: &[ControlOp]) -> Option<Scope> {
    let mut scope = Scope::default();
    for op in ops {
        let (table, key) = match op {
            ControlOp::Put(table, key, _)
            | ControlOp::Delete(table, key)
            | ControlOp::DeletePrefix(table, key) => (*table, key),
        };
        scope.both(format!("t:{}", tenant_of(key)));
        if table == Table::Tenants {
            scope.both("tenants".into());
        }
        if let ControlOp::Put(Table::Apps, _, value) = op {
            let app: AppRecord = serde_json::from_slice(value).ok()?;
            for route in &app.manifest.routes {
                route_scope(&mut scope, route);
            }
        }
    }
    Some(scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlaps(a: &Scope, b: &Scope) -> bool {
        a.reads.iter().any(|k| b.writes.contains(k)) || b.reads.iter().any(|k| a.writes.contains(k))
    }

    fn routes(tenant: &str, routes: &[&str]) -> Scope {
        let app = AppRecord {
            tenant: tenant.into(),
            name: "app".into(),
            manifest: crate::storage::records::AppManifest {
                routes: routes.iter().map(|r| (*r).to_owned()).collect(),
                ..Default::default()
            },
            secrets: Default::default(),
            secrets_set_at: Default::default(),
            active_version: None,
            next_version: 1,
        };
        let value = serde_json::to_vec(&app).unwrap_or_default();
        scope_of(&[ControlOp::Put(Table::Apps, format!("{tenant}/app"), value)]).unwrap_or_default()
    }

    #[test]
    fn two_tenants_changing_their_own_records_do_not_conflict() {
        let a = routes("a", &["a.test"]);
        let b = routes("b", &["b.test/api"]);
        assert!(!overlaps(&a, &b));
        let config = scope_of(&[ControlOp::Put(Table::Versions, "a/app/3".into(), vec![])])
            .unwrap_or_default();
        assert!(overlaps(&a, &config), "one tenant's changes conflict");
        assert!(!overlaps(&b, &config));
    }

    #[test]
    fn one_host_or_a_wildcard_over_it_claimed_by_two_tenants_conflicts() {
        let host = routes("a", &["shop.example.com"]);
        assert!(overlaps(&host, &routes("b", &["SHOP.example.com/x"])));
        assert!(overlaps(&host, &routes("b", &["*.example.com"])));
        assert!(overlaps(&host, &routes("b", &["*.com"])));
        assert!(overlaps(&host, &routes("b", &["*"])));
        assert!(!overlaps(&host, &routes("b", &["*.other.com"])));
        assert!(overlaps(
            &routes("a", &["*.example.com"]),
            &routes("b", &["*.com"])
        ));
    }

    #[test]
    fn tenant_records_share_the_tenant_set_and_names_collide() {
        let create = |name: &str| {
            scope_of(&[ControlOp::Put(Table::Tenants, name.into(), vec![])]).unwrap_or_default()
        };
        assert!(overlaps(&create("x"), &create("x")));
        assert!(overlaps(&create("x"), &create("y")), "the tenant cap");
        assert_eq!(
            scope_of(&[ControlOp::Put(
                Table::Apps,
                "a/app".into(),
                b"not json".to_vec()
            )]),
            None
        );
    }
}
