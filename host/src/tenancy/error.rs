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
    /// Disk or database failure.
    #[error(transparent)]
    Storage(#[from] StorageError),
}
