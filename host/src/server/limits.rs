//! Caps on what a client may send, applied before any guest runs.

use std::time::Duration;

// The per-app HTTP caps belong to tenancy (each app gets its own, at most
// the server's); the server applies the host-wide ones before routing.
pub use crate::tenancy::{
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_REQUEST_BODY_BYTES, DEFAULT_MAX_RESPONSE_BODY_BYTES,
    DEFAULT_MAX_URI_BYTES, HttpLimits,
};

/// hyper's HTTP/1 read buffer: room for hyper's own 64 KiB request-target
/// limit plus twice the header cap, so an oversized URI gets 414 and an
/// oversized header section reaches our check (and a `verge-error` header)
/// instead of hyper cutting either with 431. The buffer grows only as a
/// head needs it; a head past it still gets hyper's 431.
pub const HTTP1_READ_BUFFER_BYTES: usize = (64 << 10) + 2 * DEFAULT_MAX_HEADER_BYTES;

/// Time a client has to send its request head: stops slowloris clients from
/// pinning connections.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Open client connections; past it, accepting pauses until one closes
/// (the kernel's backlog holds the next ones). Also bounded at start by the
/// open-file limit less [`RESERVED_FDS`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Open file descriptors kept back from the data plane for everything else:
/// the admin listener's [`ADMIN_MAX_CONNECTIONS`], the data files, outbound
/// fetch sockets and compiled artifacts. With `ulimit -n 1024` the data
/// plane takes at most 768 connections and `/healthz` still answers.
pub const RESERVED_FDS: usize = 256;

/// Connections the admin listener holds at once: the CLI, health checks
/// and scrapers need a few; past it, accepting pauses.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Connections one client IP may hold on a listener: enough for a browser
/// farm behind one NAT, far below [`DEFAULT_MAX_CONNECTIONS`], so one host
/// cannot take every slot. Trusted proxies (`--trusted-proxy`) are exempt;
/// 0 turns the cap off. Past it, the new connection is closed at once.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;

/// A connection with no request in flight is closed this long after its
/// last request finished, or after it was accepted: covers sockets that
/// never send a byte, an HTTP/2 preface and then silence, and idle
/// keep-alive. Same as [`HEADER_READ_TIMEOUT`] so a slow head is not cut
/// earlier than hyper would.
pub const DEFAULT_IDLE_TIMEOUT: Duration = HEADER_READ_TIMEOUT;

/// After asking an idle connection to close (GOAWAY), how long it may take
/// before it is dropped: an HTTP/2 peer that never answers the closing
/// ping is cut here.
pub const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Longest gap between two frames of a request body: a client that stops
/// sending mid-body gets 408 and its buffered bytes are freed.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Slowest average rate a request body may arrive at once
/// [`BODY_RATE_GRACE`] has passed: 16 KiB/s, below a poor mobile uplink,
/// so a 16 MiB body may take at most ~17 minutes, never hours. Past it →
/// 408.
pub const DEFAULT_MIN_BODY_BYTES_PER_SEC: u64 = 16 << 10;

/// How long a body may arrive at any rate before [`DEFAULT_MIN_BODY_BYTES_PER_SEC`]
/// applies (TCP slow start, a client's first write).
pub const BODY_RATE_GRACE: Duration = Duration::from_secs(5);

/// Request-body bytes buffered across all requests at once, HTTP/1 and
/// HTTP/2 streams alike: 256 MiB, 16 bodies at the 16 MiB cap. Past it a
/// request gets 503 `overloaded` and its bytes are freed, so no number of
/// clients can make the host hold more.
pub const DEFAULT_BUFFERED_BODY_BYTES: usize = 256 << 20;

/// Buffered response bytes held across all requests until their peers have
/// read them: 512 MiB, 17 responses at the 30 MiB cap. A whole response
/// stays in memory until it is written, and a peer that reads slowly (or
/// never, with an HTTP/2 window of 0) would otherwise pin it; past this
/// budget a response is answered 503 `overloaded` instead, and the bytes
/// come back as each response is written or its connection dropped.
pub const DEFAULT_BUFFERED_RESPONSE_BYTES: usize = 512 << 20;

/// How long a response may wait on a peer that reads (almost) nothing: a
/// connection whose pending response has waited this long while its peer
/// took less than [`RESPONSE_MIN_BYTES_PER_STALL`] in the last window (an
/// HTTP/1 client that stops reading, an HTTP/2 peer that opens no window,
/// even one that answers every ping) is dropped within two windows, and
/// its responses' memory with it.
pub const RESPONSE_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What a peer must read of a pending response per
/// [`RESPONSE_STALL_TIMEOUT`]: 160 KiB, 16 KiB/s, the floor request bodies
/// must arrive at ([`DEFAULT_MIN_BODY_BYTES_PER_SEC`]). Less is what the
/// kernel trickles to a socket nobody reads.
pub const RESPONSE_MIN_BYTES_PER_STALL: u64 =
    DEFAULT_MIN_BODY_BYTES_PER_SEC * RESPONSE_STALL_TIMEOUT.as_secs();

/// Largest piece of a response handed to the connection at once: the
/// connection takes the next only when it has room, so pieces taken are
/// what the peer read (see [`RESPONSE_STALL_TIMEOUT`]).
pub const RESPONSE_CHUNK_BYTES: usize = 64 << 10;

/// Streams one HTTP/2 connection may have open at once (hyper's default
/// is 200); each may buffer a flow-control window.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// HTTP/2 flow-control window per stream: what a peer may send on one
/// stream before we read it (1 MiB, hyper's default, written down).
pub const H2_STREAM_WINDOW_BYTES: u32 = 1 << 20;

/// HTTP/2 flow-control window per connection: all streams of a connection
/// together hold at most this much unread, whatever their number. What has
/// been read counts against [`DEFAULT_BUFFERED_BODY_BYTES`].
pub const H2_CONNECTION_WINDOW_BYTES: u32 = 1 << 20;

/// How often an HTTP/2 connection is pinged; a peer that does not answer
/// within [`H2_KEEP_ALIVE_TIMEOUT`] is dropped (a dead peer behind a NAT).
pub const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// How long an HTTP/2 ping may go unanswered.
pub const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request waits for a free instance slot before 503 `overloaded`.
pub const ADMISSION_QUEUE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long shutdown waits for in-flight requests to finish. A little more
/// than the default wall-clock limit, so a request that started just before
/// the signal can still finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(35);

/// How a listener treats its connections: the caps and timeouts an
/// anonymous client meets before any guest runs. Defaults are the
/// constants above; `[connections]` in the config file overrides them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections on the listener (shared by its plain and TLS
    /// sockets).
    pub max_connections: usize,
    /// Connections per client IP; 0 for no cap.
    pub max_per_ip: usize,
    /// Peers exempt from the per-IP cap (trusted proxies).
    pub exempt: Vec<ipnet::IpNet>,
    /// Close a connection with no request in flight after this long.
    pub idle_timeout: Duration,
    /// How request bodies must arrive.
    pub body: BodyPolicy,
    /// Request-body bytes buffered across all requests.
    pub buffered_body_bytes: usize,
    /// Whole-response bytes held until their peers read them, across all
    /// requests.
    pub buffered_response_bytes: usize,
}

/// How fast a request body must arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPolicy {
    /// Longest gap between two body frames.
    pub idle_timeout: Duration,
    /// Slowest average rate once [`BodyPolicy::rate_grace`] has passed.
    pub min_bytes_per_sec: u64,
    /// Time before the minimum rate applies.
    pub rate_grace: Duration,
}

impl Default for BodyPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: DEFAULT_BODY_IDLE_TIMEOUT,
            min_bytes_per_sec: DEFAULT_MIN_BODY_BYTES_PER_SEC,
            rate_grace: BODY_RATE_GRACE,
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            exempt: Vec::new(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body: BodyPolicy::default(),
            buffered_body_bytes: DEFAULT_BUFFERED_BODY_BYTES,
            buffered_response_bytes: DEFAULT_BUFFERED_RESPONSE_BYTES,
        }
    }
}

impl ConnectionLimits {
    /// The admin listener's: these timeouts, [`ADMIN_MAX_CONNECTIONS`].
    pub fn admin(&self) -> Self {
        Self {
            max_connections: ADMIN_MAX_CONNECTIONS,
            max_per_ip: ADMIN_MAX_CONNECTIONS,
            ..self.clone()
        }
    }
}
