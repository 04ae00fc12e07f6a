//! The HTTP caps of one app: what a request may send and a guest may
//! answer. The host's are the ceiling; tenants and apps may only lower them
//! ([`super::effective_http_limits`]).

/// Largest request body: 16 MiB. Bodies are buffered for the guest, so the
/// cap bounds host memory per request; larger uploads belong in a stream
/// (`wasi:http/proxy` functions) or object storage.
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: usize = 16 << 20;

/// Largest header section (names + values): 32 KiB, above what browsers
/// send with large cookies, far below what would hurt the host.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 << 10;

/// Longest request URI: 8 KiB, the common limit of proxies and CDNs.
pub const DEFAULT_MAX_URI_BYTES: usize = 8 << 10;

/// Largest response body a guest may return: 32 MiB. Past it → 502.
pub const DEFAULT_MAX_RESPONSE_BODY_BYTES: usize = 32 << 20;

/// The HTTP caps one app (or, as the ceiling, the whole server) applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request body.
    pub max_request_body_bytes: usize,
    /// Largest header section.
    pub max_header_bytes: usize,
    /// Longest URI.
    pub max_uri_bytes: usize,
    /// Largest response body from a guest.
    pub max_response_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_request_body_bytes: DEFAULT_MAX_REQUEST_BODY_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_response_body_bytes: DEFAULT_MAX_RESPONSE_BODY_BYTES,
        }
    }
}
