//! Every way a request can fail, and the one exhaustive mapping from each
//! to an HTTP status and a `verge-error` code.

use super::body::BodyError;
use crate::runtime::GuestError;
use http::StatusCode;
use thiserror::Error;

/// Why a request got an error page instead of a guest response.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// No deployment matches the host and path.
    #[error("no function is deployed for this host and path")]
    NoRoute,
    /// The request could not be understood.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The URI is longer than the cap.
    #[error("the request URI is too long")]
    UriTooLong,
    /// The header section is larger than the cap.
    #[error("the request headers are too large")]
    HeadersTooLarge,
    /// The body is larger than the cap.
    #[error("the request body is too large")]
    BodyTooLarge,
    /// The body stalled or arrived slower than the minimum rate.
    #[error("the request body did not arrive in time: {0}")]
    BodyTimeout(String),
    /// A method the host answers itself or refuses (`CONNECT`).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No instance slot became free within the admission queue timeout.
    #[error("the server is overloaded, retry shortly")]
    Overloaded,
    /// The guest could not run or failed.
    #[error(transparent)]
    Guest(#[from] GuestError),
    /// The guest returned something that is not a valid HTTP response.
    #[error("the function returned an invalid response: {0}")]
    BadGuestResponse(String),
}

impl From<BodyError> for RequestError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge { .. } => Self::BodyTooLarge,
            BodyError::Stalled(_) | BodyError::TooSlow(_) => Self::BodyTimeout(err.to_string()),
            BodyError::BudgetExhausted => Self::Overloaded,
            BodyError::Transport(msg) => Self::BadRequest(format!("reading the body: {msg}")),
        }
    }
}

impl RequestError {
    /// The status and `verge-error` code for this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::NoRoute => (StatusCode::NOT_FOUND, "no-route"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            Self::UriTooLong => (StatusCode::URI_TOO_LONG, "uri-too-long"),
            Self::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
            ),
            Self::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body-too-large"),
            Self::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "body-timeout"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            Self::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::Guest(GuestError::CpuLimit) => (StatusCode::SERVICE_UNAVAILABLE, "cpu-limit"),
            Self::Guest(GuestError::MemoryLimit) => {
                (StatusCode::SERVICE_UNAVAILABLE, "memory-limit")
            }
            Self::Guest(GuestError::Timeout) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            Self::Guest(GuestError::Trap(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "guest-error"),
            Self::Guest(GuestError::Instantiate(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "instantiate-failed")
            }
            Self::BadGuestResponse(_) => (StatusCode::BAD_GATEWAY, "bad-guest-response"),
        }
    }

    /// Whether the client should be told to retry later.
    pub fn retry_after_secs(&self) -> Option<u32> {
        matches!(self, Self::Overloaded).then_some(1)
    }

    /// The text the client sees: the short public reason only. Details
    /// (trap messages, backtraces) go to the log, never to the client.
    pub fn public_message(&self) -> &'static str {
        match self {
            Self::NoRoute => "no function is deployed for this host and path",
            Self::BadRequest(_) => "the request could not be understood",
            Self::UriTooLong => "the request URI is too long",
            Self::HeadersTooLarge => "the request headers are too large",
            Self::BodyTooLarge => "the request body is too large",
            Self::BodyTimeout(_) => "the request body did not arrive in time",
            Self::MethodNotAllowed => "this method is not allowed",
            Self::Overloaded => "the server is overloaded, retry shortly",
            Self::Guest(GuestError::CpuLimit) => "the function used up its CPU budget",
            Self::Guest(GuestError::MemoryLimit) => "the function exceeded its memory limit",
            Self::Guest(GuestError::Timeout) => "the function did not finish in time",
            Self::Guest(GuestError::Trap(_)) => "the function failed",
            Self::Guest(GuestError::Instantiate(_)) => "the function could not be started",
            Self::BadGuestResponse(_) => "the function returned an invalid response",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_design_table() {
        let cases = [
            (RequestError::NoRoute, 404, "no-route"),
            (RequestError::BodyTooLarge, 413, "body-too-large"),
            (RequestError::HeadersTooLarge, 431, "headers-too-large"),
            (RequestError::BodyTimeout("x".into()), 408, "body-timeout"),
            (RequestError::MethodNotAllowed, 405, "method-not-allowed"),
            (RequestError::Overloaded, 503, "overloaded"),
            (GuestError::CpuLimit.into(), 503, "cpu-limit"),
            (GuestError::MemoryLimit.into(), 503, "memory-limit"),
            (GuestError::Timeout.into(), 504, "timeout"),
            (GuestError::Trap("x".into()).into(), 500, "guest-error"),
            (
                RequestError::BadGuestResponse("x".into()),
                502,
                "bad-guest-response",
            ),
        ];
        for (err, status, code) in cases {
            let (s, c) = err.status_and_code();
            assert_eq!((s.as_u16(), c), (status, code), "{err:?}");
        }
        assert_eq!(RequestError::Overloaded.retry_after_secs(), Some(1));
        assert_eq!(RequestError::NoRoute.retry_after_secs(), None);
    }
}
