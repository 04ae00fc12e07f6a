//! One error type for handlers that use `?`.
//!
//! A handler may return `Result<Response, verge_sdk::Error>`; the SDK's own
//! errors (KV, fetch, cache) and any `std::error::Error` convert with `?`.
//! A failed request answers `500` (`502` for a fetch failure: the origin,
//! not the function, failed), and the full message goes to the app's log
//! tagged with the request id, which the client sees in the
//! `verge-request-id` response header. The message itself is not sent to
//! the client, since it may name internals.
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
}

impl Error {
    /// A failure answering `status`, logging `message`.
    pub fn new(status: u16, message: impl fmt::Display) -> Self {
        Self {
            status,
            message: message.to_string(),
        }
    }

    /// A failure answering 500, logging `message` (for text that is not an
    /// error type: `Error::msg("no such user")`).
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::new(500, message)
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
/// a 502, anything else a 500.
impl<E: std::error::Error + 'static> From<E> for Error {
    fn from(err: E) -> Self {
        let dyn_err: &(dyn std::error::Error + 'static) = &err;
        let status = if dyn_err.is::<crate::fetch::Error>() {
            502
        } else {
            500
        };
        Self::new(status, &err)
    }
}

impl IntoResponse for Error {
    /// Logs the message at error level and answers the status with a short
    /// body pointing at the request id.
    fn into_response(self) -> Response {
        crate::log::error(&self.message);
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
    }
}
