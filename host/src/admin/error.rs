//! Every way an admin request can fail, and the one exhaustive mapping
//! from each to a status and a message, for every endpoint alike (KV
//! included): bad input is 4xx, a host failure (storage, no randomness)
//! is 500.

use super::auth::AuthError;
use crate::server::body::BodyError;
use crate::storage::StorageError;
use crate::storage::kv::KvError;
use crate::tenancy::RegistryError;
use http::StatusCode;

/// What a handler returns before it becomes a response.
#[derive(Debug)]
pub enum ApiError {
    /// The token is missing, unknown, or not allowed to do this.
    Auth(AuthError),
    /// A control-plane operation refused or failed.
    Registry(RegistryError),
    /// A KV operation refused or failed.
    Kv(KvError),
    /// The request is malformed.
    BadRequest(String),
    /// The body broke a cap or the body policy.
    Body(BodyError),
    /// No such endpoint.
    NotFound,
    /// No such KV key.
    NoSuchKey,
    /// The endpoint exists, not with this method.
    MethodNotAllowed,
    /// A fleet operation could not reach the cluster's Redis.
    Bus(crate::storage::bus::BusError),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        Self::Auth(e)
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        Self::Registry(e)
    }
}

impl From<KvError> for ApiError {
    fn from(e: KvError) -> Self {
        Self::Kv(e)
    }
}

/// The status and message `err` answers with.
pub fn status_of(err: &ApiError) -> (StatusCode, String) {
    match err {
        ApiError::Auth(AuthError::Unauthenticated) => (
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required".into(),
        ),
        ApiError::Auth(AuthError::Forbidden) => {
            (StatusCode::FORBIDDEN, "this token may not do that".into())
        }
        ApiError::Registry(e @ RegistryError::Diverged { .. }) => {
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        ApiError::Registry(e) => match registry_status(e) {
            StatusCode::INTERNAL_SERVER_ERROR => {
                (StatusCode::INTERNAL_SERVER_ERROR, HOST_FAILURE.into())
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                (StatusCode::SERVICE_UNAVAILABLE, STORE_UNAVAILABLE.into())
            }
            status => (status, e.to_string()),
        },
        ApiError::Kv(e) => (kv_status(e), kv_message(e)),
        ApiError::BadRequest(msg) => (StatusCode::BAD_REQUEST, msg.clone()),
        ApiError::Body(err) => (body_status(err), err.to_string()),
        ApiError::NotFound => (StatusCode::NOT_FOUND, "no such endpoint".into()),
        ApiError::Bus(err) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("done on this node only: {err}; retry to reach the others"),
        ),
        ApiError::NoSuchKey => (StatusCode::NOT_FOUND, "no such key".into()),
        ApiError::MethodNotAllowed => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed here".into(),
        ),
    }
}

/// Whether `err` left nothing written and the same request may simply be
/// sent again: a control-plane change refused because another node changed
/// the records it read first (the registry already ran it again a few
/// times).
pub fn is_retryable(err: &ApiError) -> bool {
    matches!(
        err,
        ApiError::Registry(RegistryError::Storage(StorageError::Conflict(_)))
    )
}

fn registry_status(e: &RegistryError) -> StatusCode {
    match e {
        RegistryError::InvalidName { .. }
        | RegistryError::InvalidRoute(_)
        | RegistryError::Invalid(_)
        | RegistryError::BadComponent(_) => StatusCode::BAD_REQUEST,
        RegistryError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        RegistryError::RouteConflict { .. }
        | RegistryError::HostClaimed(_)
        | RegistryError::AlreadyExists(_) => StatusCode::CONFLICT,
        RegistryError::NotGranted(_) | RegistryError::Reserved { .. } => StatusCode::FORBIDDEN,
        RegistryError::TooMany { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        RegistryError::Diverged { .. } => StatusCode::SERVICE_UNAVAILABLE,
        RegistryError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
        RegistryError::NotFound(_) => StatusCode::NOT_FOUND,
        RegistryError::Storage(StorageError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        RegistryError::Storage(StorageError::Conflict(_)) => StatusCode::CONFLICT,
        RegistryError::Storage(_) | RegistryError::Host(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn kv_status(e: &KvError) -> StatusCode {
    match e {
        KvError::KeyTooLarge
        | KvError::ValueTooLarge
        | KvError::InvalidKey(_)
        | KvError::NotAnInteger(_)
        | KvError::TtlTooLong => StatusCode::BAD_REQUEST,
        KvError::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
        KvError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        KvError::OutcomeUnknown(_) => StatusCode::GATEWAY_TIMEOUT,
        KvError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What a client is told of a failure on the server's side: its details
/// (file paths, OS errors) are the operator's, in the log.
const HOST_FAILURE: &str = "the server failed to do this; its operator's log has the details";

/// What a client is told while the control plane's store (the fleet's
/// Redis) is unreachable: which part, not its address or error.
const STORE_UNAVAILABLE: &str =
    "the control plane's store (the cluster's Redis) is unavailable; retry shortly";

fn kv_message(e: &KvError) -> String {
    match e {
        KvError::Storage(_) => format!("storage failure: {HOST_FAILURE}"),
        KvError::OutcomeUnknown(_) => {
            KvError::OutcomeUnknown("the cluster's Redis did not answer in time".into()).to_string()
        }
        other => other.to_string(),
    }
}

fn body_status(err: &BodyError) -> StatusCode {
    match err {
        BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::Stalled(_) | BodyError::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
        BodyError::BudgetExhausted => StatusCode::SERVICE_UNAVAILABLE,
        BodyError::Transport(_) => StatusCode::BAD_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(err: ApiError) -> u16 {
        status_of(&err).0.as_u16()
    }

    #[test]
    fn one_table_for_every_endpoint_host_failures_are_500() {
        let conflict = RegistryError::RouteConflict {
            route: "a.test".into(),
            owner: "t/a".into(),
        };
        assert_eq!(status(conflict.into()), 409);
        assert_eq!(
            status(RegistryError::NotFound("tenant t".into()).into()),
            404
        );
        assert_eq!(status(RegistryError::Invalid("bad".into()).into()), 400);
        assert_eq!(
            status(RegistryError::Host("no randomness".into()).into()),
            500
        );
        assert_eq!(status(KvError::Storage("disk full".into()).into()), 500);
        assert_eq!(status(KvError::QuotaExceeded.into()), 507);
        assert_eq!(status(KvError::KeyTooLarge.into()), 400);
        assert_eq!(status(KvError::RateLimited("wait".into()).into()), 429);
        let unknown = KvError::OutcomeUnknown("redis at 10.0.0.7: timeout".into());
        let (code, message) = status_of(&unknown.into());
        assert_eq!(code, 504);
        assert!(
            message.contains("may or may not have been applied"),
            "{message}"
        );
        assert!(!message.contains("10.0.0.7"), "{message}");
        assert_eq!(status(ApiError::NoSuchKey), 404);
        assert_eq!(status(ApiError::MethodNotAllowed), 405);
        assert_eq!(status(AuthError::Forbidden.into()), 403);
        let (_, message) = status_of(&KvError::Storage("disk full".into()).into());
        assert!(message.contains("storage failure"), "{message}");
        // No path or OS error reaches the client.
        let leaky = "/var/lib/verge/kv.redb: No space left on device";
        for err in [
            ApiError::from(KvError::Storage(leaky.into())),
            RegistryError::Storage(StorageError::Corrupted(leaky.into())).into(),
            RegistryError::Storage(StorageError::Unavailable(leaky.into())).into(),
            RegistryError::Host(leaky.into()).into(),
        ] {
            let (_, message) = status_of(&err);
            assert!(
                !message.contains("/var/lib") && !message.contains("No space"),
                "{message}"
            );
        }
    }
}
