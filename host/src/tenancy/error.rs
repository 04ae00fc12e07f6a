//! Control-plane errors.

use super::router::RouteError;
use crate::runtime::LoadError;
use crate::storage::StorageError;
use thiserror::Error;

/// Why a control-plane operation was refused or failed.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// A name that is not `[a-z0-9][a-z0-9-]*` (≤ 63 bytes).
    #[error("invalid {what} name {name:?}: use lower-case letters, digits and dashes (at most 63)")]
    InvalidName {
        /// tenant, app, variable, ...
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// Malformed route.
    #[error(transparent)]
    InvalidRoute(#[from] RouteError),
    /// Some other invalid input.
    #[error("{0}")]
    Invalid(String),
    /// A route already owned by another app.
    #[error("route {route} already belongs to app {owner}")]
    RouteConflict {
        /// The route.
        route: String,
        /// `tenant/app` owning it.
        owner: String,
    },
    /// A host (or a wildcard covering one) claimed by another tenant. The
    /// message names neither that tenant nor its app.
    #[error("the host {0} belongs to another tenant")]
    HostClaimed(String),
    /// A wildcard or catch-all route without the operator's grant.
    #[error(
        "the route {0} needs an operator grant: wildcard and catch-all hosts, IP literals and `localhost` (and on nodes that require it, every host) are granted per tenant (`route_grants`)"
    )]
    NotGranted(String),
    /// A count cap (apps, routes, tenants) was reached.
    #[error("{what}: at most {max}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// The cap.
        max: usize,
    },
    /// Every slot of some work (compiles, uploads in flight) is taken;
    /// retry shortly.
    #[error("busy: all of {whose} {what} slots are in use; retry shortly")]
    Busy {
        /// compile, upload
        what: &'static str,
        /// "this tenant's" or "the node's"
        whose: &'static str,
    },
    /// A name reserved by the platform.
    #[error("the {what} name {name:?} is reserved")]
    Reserved {
        /// tenant, ...
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Unknown tenant, app or version.
    #[error("{0} not found")]
    NotFound(String),
    /// Creating something that exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The upload is over the size cap.
    #[error("the component is {size} bytes, over the {max} byte limit")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// The component was refused (not a component, does not link, ...).
    #[error(transparent)]
    BadComponent(#[from] LoadError),
    /// The host itself failed (no randomness for a token, say): nothing the
    /// caller can fix.
    #[error("host failure: {0}")]
    Host(String),
    /// Disk or database failure.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The fleet's Redis holds an older control plane than this node has
    /// applied (emptied, restored from a backup, a lagging replica after a
    /// failover): the node keeps serving its snapshot and takes no writes
    /// until an operator decides.
    #[error(
        "the fleet's Redis is at control-plane revision {there}, behind this node's {here} (emptied, restored or failed over?): this node keeps serving its snapshot and refuses writes; an operator re-seeds Redis from the node with the highest revision (`verge cluster reseed --url ITS_ADMIN_URL`) or accepts Redis's state on each node (`verge cluster accept --revision {there}`)"
    )]
    Diverged {
        /// The revision this node applied.
        here: u64,
        /// The revision Redis holds.
        there: u64,
    },
}
