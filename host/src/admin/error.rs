//! Every way an admin request can fail, and the one mapping from each to
//! a status and a message.

use crate::server::body::BodyError;
use crate::tenancy::RegistryError;
use http::StatusCode;

use super::auth::AuthError;

/// What a handler returns before it becomes a response.
pub(super) enum ApiError {
    Kv(super::kv::KvApiError),
    Auth(AuthError),
    Registry(RegistryError),
    BadRequest(String),
    Body(BodyError),
    NotFound,
    MethodNotAllowed,
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

pub(super) fn status_of(err: &ApiError) -> (StatusCode, String) {
    match err {
        ApiError::Kv(e) => e.status(),
        ApiError::Auth(AuthError::Unauthenticated) => (
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required".into(),
        ),
        ApiError::Auth(AuthError::Forbidden) => {
            (StatusCode::FORBIDDEN, "this token may not do that".into())
        }
        ApiError::BadRequest(msg) => (StatusCode::BAD_REQUEST, msg.clone()),
        ApiError::Body(err) => {
            let status = match err {
                BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::Stalled(_) | BodyError::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
                BodyError::BudgetExhausted => StatusCode::SERVICE_UNAVAILABLE,
                BodyError::Transport(_) => StatusCode::BAD_REQUEST,
            };
            (status, err.to_string())
        }
        ApiError::NotFound => (StatusCode::NOT_FOUND, "no such endpoint".into()),
        ApiError::MethodNotAllowed => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed here".into(),
        ),
        ApiError::Registry(e) => {
            let status = match e {
                RegistryError::InvalidName { .. }
                | RegistryError::InvalidRoute(_)
                | RegistryError::Invalid(_)
                | RegistryError::BadComponent(_) => StatusCode::BAD_REQUEST,
                RegistryError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                RegistryError::RouteConflict { .. }
                | RegistryError::HostClaimed(_)
                | RegistryError::AlreadyExists(_) => StatusCode::CONFLICT,
                RegistryError::NotGranted(_) | RegistryError::Reserved { .. } => {
                    StatusCode::FORBIDDEN
                }
                RegistryError::TooMany { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                RegistryError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
                RegistryError::NotFound(_) => StatusCode::NOT_FOUND,
                RegistryError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, e.to_string())
        }
    }
}
