//! Between the wire and the guest: the request as a Verge function gets
//! it ([`ReadRequest`], made by `Dispatcher::read_request`), and the
//! guest's response checked and turned into HTTP.

use super::error::RequestError;
use crate::capabilities::fetch::OriginBody;
use crate::runtime::{GuestRequest, GuestResponse};
use crate::tenancy::HttpLimits;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

/// Hop-by-hop and framing headers a guest may not set: the server owns the
/// connection and computes the framing itself.
const HOST_OWNED_HEADERS: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
];

/// A request as the guest gets it.
pub(super) struct ReadRequest {
    /// The request, its body whole unless it streams.
    pub(super) request: GuestRequest,
    /// The body-budget bytes its buffered body holds.
    pub(super) reservation: super::body::Reservation,
    /// The unread body, for a function that reads it as a stream.
    pub(super) stream: Option<Box<OriginBody>>,
}

/// Validates the guest's response against `limits` and turns it into an
/// HTTP response.
pub(super) fn to_http(
    res: GuestResponse,
    limits: &HttpLimits,
) -> Result<Response<Full<Bytes>>, RequestError> {
    if res.body.len() > limits.max_response_body_bytes {
        return Err(RequestError::BadGuestResponse(format!(
            "body of {} bytes is over the {} byte cap",
            res.body.len(),
            limits.max_response_body_bytes
        )));
    }
    with_head(res.status, res.headers, Full::new(Bytes::from(res.body)))
}

/// A response with the guest's `status` and `headers`, checked, and the
/// headers the host owns left out, around `body`.
pub(super) fn with_head<B>(
    status: u16,
    headers: Vec<(String, String)>,
    body: B,
) -> Result<Response<B>, RequestError> {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| !s.is_informational())
        .ok_or_else(|| RequestError::BadGuestResponse(format!("invalid status {status}")))?;
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let map = response.headers_mut();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| RequestError::BadGuestResponse(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(&value).map_err(|_| {
            RequestError::BadGuestResponse(format!("invalid value for header {name}"))
        })?;
        if HOST_OWNED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        map.append(name, value);
    }
    Ok(response)
}
