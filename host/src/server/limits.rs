//! Caps on what a client may send, applied before any guest runs.

use std::time::Duration;

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

/// hyper's HTTP/1 read buffer: larger than the header cap so that an
/// oversized header section reaches our check (and gets a `verge-error`
/// header) instead of being cut by hyper.
pub const HTTP1_READ_BUFFER_BYTES: usize = 2 * DEFAULT_MAX_HEADER_BYTES;

/// Time a client has to send its request head: stops slowloris clients from
/// pinning connections.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Open client connections; past it, accepting pauses until one closes.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// How long a request waits for a free instance slot before 503 `overloaded`.
pub const ADMISSION_QUEUE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long shutdown waits for in-flight requests to finish. A little more
/// than the default wall-clock limit, so a request that started just before
/// the signal can still finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(35);

/// The caps one server applies.
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
