//! One error type for handlers that use `?`.
//!
//! A handler may return `Result<Response, verge_sdk::Error>`; the SDK's own
//! errors (KV, fetch, cache) and any `std::error::Error` convert with `?`.
//!
//! - `Error::new(404, "no such item")` is the function's own answer: the
//!   client gets that status and message. Only a 5xx is logged as an error.
//! - An error converted with `?` answers `500` (`502` for a fetch failure:
//!   the origin, not the function, failed; `400`, `408` or `413` for a
//!   request body that is malformed, late or too large, with the reason).
//!   The full message of a 5xx goes to the app's log tagged with the
//!   request id, which the client sees in the `verge-request-id` response
//!   header; the message itself is not sent, since it may name internals.
//!
//! ```no_run
//! use verge_sdk::{Request, Response, kv::Store};
//!
//! #[verge_sdk::handler]
//! fn handle(req: Request) -> Result<Response, verge_sdk::Error> {
//!     let store = Store::open("data")?;
//!     let hits = store.increment("hits", 1)?;
//!     let upstream = verge_sdk::fetch::get("https://api.example.com/").send()?;
//!     let n: u32 = req.path().trim_start_matches('/').parse()?;
//!     Ok(Response::text(format!("{hits} hits, {n}, origin said {}", upstream.status())))
//! }
//! ```

use crate::{IntoResponse, Response};
use std::fmt;

/// A handler's failure: a status for the client and a message for the log.
pub struct Error {
    status: u16,
    message: String,
    /// Whether the client may see the message: the function's own words,
    /// or a reason about the client's own request.
    public: bool,
}

impl Error {
    /// The function's answer: `status` with `message` as the body (a 5xx
    /// is also logged as an error).
    pub fn new(status: u16, message: impl fmt::Display) -> Self {
        Self {
            status,
            message: message.to_string(),
            public: true,
        }
    }

    /// A failure answering 500, logging `message` and sending only the
    /// status (for text that is not an error type:
    /// `Error::msg("backend said no")`).
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::internal(500, message)
    }

    fn internal(status: u16, message: impl fmt::Display) -> Self {
        Self {
            status,
            message: message.to_string(),
            public: false,
        }
    }

    /// The status the client gets.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// What is logged.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

/// Any error type converts (like `anyhow`: `verge_sdk::Error` is itself not
/// a `std::error::Error`, so the conversion cannot loop). A fetch error is
/// a 502, a request body error its own status with its reason, anything
/// else a 500.
impl<E: std::error::Error + 'static> From<E> for Error {
    fn from(err: E) -> Self {
        let dyn_err: &(dyn std::error::Error + 'static) = &err;
        if let Some(body) = dyn_err.downcast_ref::<crate::BodyError>() {
            return Self::new(body.status(), body);
        }
        let status = if dyn_err.is::<crate::fetch::Error>() {
            502
        } else {
            500
        };
        Self::internal(status, &err)
    }
}

impl IntoResponse for Error {
    /// Answers the status with the message when it is the client's to see
    /// (else a short body pointing at the request id). A 5xx is logged at
    /// error level, anything else at info.
    fn into_response(self) -> Response {
        if self.status >= 500 {
            crate::log::error(&self.message);
        } else {
            crate::log::info(format!("{} {}", self.status, self.message));
        }
        if self.public {
            return Response::error(self.status, format!("{}\n", self.message));
        }
        let reason = match self.status {
            502 => "bad gateway",
            _ => "internal error",
        };
        Response::error(
            self.status,
            format!(
                "{} {reason}\nsee the verge-request-id header in `verge logs`\n",
                self.status
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_errors_convert_with_their_status() {
        let fetch: Error = crate::fetch::Error::Timeout.into();
        assert_eq!(fetch.status(), 502);
        let kv: Error = crate::kv::Error::QuotaExceeded.into();
        assert_eq!(kv.status(), 500);
        let parse: Error = "x".parse::<u32>().unwrap_err().into();
        assert_eq!(parse.status(), 500);
        assert!(parse.message().contains("invalid digit"), "{parse:?}");
        assert_eq!(Error::msg("no such user").status(), 500);
        assert_eq!(Error::new(404, "gone").status(), 404);
        assert!(Error::new(404, "gone").public);
        assert!(!parse.public && !fetch.public);
        let body: Error = crate::BodyError::TooLarge.into();
        assert_eq!((body.status(), body.public), (413, true));
    }
}
