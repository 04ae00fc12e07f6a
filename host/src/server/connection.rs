//! One listener's connection budget (a total and a per-client-IP count) and
//! one connection's life: requests in flight counted, the connection closed
//! once it has been idle for the idle timeout, dropped once its peer has
//! read (almost) none of a pending response for [`RESPONSE_STALL_TIMEOUT`],
//! drained on shutdown.

use super::BoxError;
use super::limits::{
    ConnectionLimits, IDLE_CLOSE_GRACE, RESPONSE_CHUNK_BYTES, RESPONSE_MIN_BYTES_PER_STALL,
    RESPONSE_STALL_TIMEOUT,
};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The connection slots of one listener (or of a plain and a TLS listener
/// serving the same traffic).
#[derive(Debug)]
pub struct ConnectionGate {
    limits: ConnectionLimits,
    total: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// A held connection slot; frees its total and per-IP counts on drop.
pub struct ConnectionSlot {
    gate: Arc<ConnectionGate>,
    ip: Option<IpAddr>,
    _total: OwnedSemaphorePermit,
}

impl ConnectionGate {
    /// A gate for `limits`.
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            total: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// The limits this gate applies.
    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Waits for a free slot in the total (before accepting).
    pub(super) async fn total_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.total.clone().acquire_owned().await.ok()
    }

    /// Takes `ip`'s share for an accepted connection; `None` when `ip` is
    /// at its cap (the connection is then closed at once).
    pub(super) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        total: OwnedSemaphorePermit,
    ) -> Option<ConnectionSlot> {
        let capped =
            self.limits.max_per_ip > 0 && !self.limits.exempt.iter().any(|net| net.contains(&ip));
        if capped {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let count = per_ip.entry(ip).or_insert(0);
            if *count >= self.limits.max_per_ip {
                return None;
            }
            *count += 1;
        }
        Some(ConnectionSlot {
            gate: self.clone(),
            ip: capped.then_some(ip),
            _total: total,
        })
    }

    /// Waits until every connection has closed, or `timeout` passes;
    /// returns whether all closed.
    pub(super) async fn drained(&self, timeout: Duration) -> bool {
        let all = u32::try_from(self.limits.max_connections.max(1)).unwrap_or(u32::MAX);
        tokio::time::timeout(timeout, self.total.acquire_many(all))
            .await
            .is_ok()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut per_ip = self.gate.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

/// What one connection is doing: requests in flight (until their response
/// body is written) and since when it has had none; responses whose next
/// bytes wait on the peer, and when the peer last took some.
#[derive(Debug)]
pub(super) struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    idle_since_ms: AtomicU64,
    /// Response bodies whose next bytes are ready and not yet taken by
    /// the connection: the peer has them to read.
    waiting_on_peer: AtomicUsize,
    /// Since when some response has waited on the peer.
    waiting_since_ms: AtomicU64,
    /// Response bytes the connection has taken, in all.
    taken: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            waiting_on_peer: AtomicUsize::new(0),
            waiting_since_ms: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        })
    }

    /// One more response waits on the peer.
    fn wait_on_peer(&self) {
        if self.waiting_on_peer.fetch_add(1, Ordering::AcqRel) == 0 {
            self.waiting_since_ms
                .store(self.now_ms(), Ordering::Release);
        }
    }

    /// Resolves once a response has waited on the peer for at least
    /// `window` while the peer took less than `min_bytes` in the last
    /// `window` (checked every half window, so within one and a half). The
    /// kernel may let a few bytes through to a peer that reads nothing
    /// (its send buffer grows); that is not a peer reading.
    pub(super) async fn stalled(&self, window: Duration, min_bytes: u64) {
        // What was taken one window and half a window ago.
        let now = self.taken.load(Ordering::Acquire);
        let mut samples = [now, now];
        loop {
            tokio::time::sleep(window / 2).await;
            let taken = self.taken.load(Ordering::Acquire);
            let moved = taken.saturating_sub(samples[0]);
            samples = [samples[1], taken];
            if self.waiting_on_peer.load(Ordering::Acquire) == 0 {
                continue;
            }
            let since = self.waiting_since_ms.load(Ordering::Acquire);
            let waited = Duration::from_millis(self.now_ms().saturating_sub(since));
            if waited >= window && moved < min_bytes {
                return;
            }
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Marks a request as started; it ends when the guard drops.
    pub(super) fn start(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard(self.clone())
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.idle_since_ms.load(Ordering::Acquire);
        Some(Duration::from_millis(self.now_ms().saturating_sub(since)))
    }

    /// Resolves once the connection has had no request in flight for
    /// `timeout`.
    pub(super) async fn idle(&self, timeout: Duration) {
        loop {
            let wait = match self.idle_for() {
                Some(idle) if idle >= timeout => return,
                Some(idle) => timeout - idle,
                None => timeout,
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A request in flight on a connection.
pub(super) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        activity
            .idle_since_ms
            .store(activity.now_ms(), Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether a response's next bytes wait on the peer, shared with the waker
/// a streamed body wakes when its next bytes are ready: from then they
/// wait on the connection, which takes them at once if its peer reads.
struct PeerState {
    activity: Arc<Activity>,
    on_peer: std::sync::atomic::AtomicBool,
    /// The connection's waker, while a streamed body is pending.
    waker: Mutex<Option<Waker>>,
}

impl PeerState {
    fn set(&self, on_peer: bool) {
        if self.on_peer.swap(on_peer, Ordering::AcqRel) == on_peer {
            return;
        }
        if on_peer {
            self.activity.wait_on_peer();
        } else {
            self.activity.waiting_on_peer.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Wake for PeerState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.set(true);
        let waker = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A response body that keeps its request counted as in flight until it
/// has been written (or dropped), hands its data to the connection in
/// pieces of at most [`RESPONSE_CHUNK_BYTES`], and tells the connection
/// whether its next bytes wait on the peer (see [`Activity::stalled`]).
pub(super) struct Tracked<B: Body> {
    inner: B,
    /// The body's error, held for one poll: the connection first flushes
    /// the pieces it took before it (an error ends the connection, and
    /// what it still buffered with it).
    failed: Option<B::Error>,
    /// The rest of a data frame larger than one piece.
    rest: Bytes,
    /// Whether any data was handed out: until then an empty body may say
    /// it is done without being polled.
    started: bool,
    peer: Arc<PeerState>,
    /// For a streamed body (no exact size): the waker it is polled with.
    streamed: Option<Waker>,
    _guard: RequestGuard,
}

impl<B: Body> Tracked<B> {
    pub(super) fn new(inner: B, guard: RequestGuard) -> Self {
        // A response starts waiting on the peer: a connection with room
        // asks for its first bytes at once.
        let peer = Arc::new(PeerState {
            activity: guard.0.clone(),
            on_peer: std::sync::atomic::AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        peer.set(true);
        let streamed = inner
            .size_hint()
            .exact()
            .is_none()
            .then(|| Waker::from(peer.clone()));
        Self {
            inner,
            failed: None,
            rest: Bytes::new(),
            started: false,
            peer,
            streamed,
            _guard: guard,
        }
    }

    fn piece(&mut self) -> Bytes {
        let n = self.rest.len().min(RESPONSE_CHUNK_BYTES);
        self.started = true;
        self.peer
            .activity
            .taken
            .fetch_add(n as u64, Ordering::AcqRel);
        self.rest.split_to(n)
    }
}

impl<B: Body> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.peer.set(false);
    }
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        if let Some(err) = this.failed.take() {
            return Poll::Ready(Some(Err(err)));
        }
        if !this.rest.is_empty() {
            this.peer.set(true);
            return Poll::Ready(Some(Ok(Frame::data(this.piece()))));
        }
        let polled = match &this.streamed {
            Some(waker) => {
                // The function holds the next bytes until its waker fires
                // (which may be during this poll).
                this.peer.set(false);
                *this.peer.waker.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(cx.waker().clone());
                Pin::new(&mut this.inner).poll_frame(&mut Context::from_waker(waker))
            }
            None => Pin::new(&mut this.inner).poll_frame(cx),
        };
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_data() {
                    Ok(data) => {
                        this.rest = data;
                        Frame::data(this.piece())
                    }
                    Err(frame) => frame,
                };
                this.peer.set(true);
                Poll::Ready(Some(Ok(frame)))
            }
            // Waiting on the function, until its waker fires.
            Poll::Pending => {
                if this.streamed.is_none() {
                    this.peer.set(false);
                }
                Poll::Pending
            }
            // Failed after data: let the connection flush it first (it
            // flushes when a body is pending), then fail.
            Poll::Ready(Some(Err(err))) if this.started => {
                this.peer.set(false);
                this.failed = Some(err);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            // Done: nothing waits on the peer.
            done => {
                this.peer.set(false);
                done
            }
        }
    }

    /// Done only for a body that never had data. Otherwise the connection
    /// asks once more after the last piece, which it does only when it has
    /// room for it: a peer that stops reading is then seen waiting.
    fn is_end_stream(&self) -> bool {
        !self.started && self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        hint.set_lower(hint.lower().saturating_add(rest));
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(rest));
        }
        hint
    }
}

/// Drives `conn` to the end: asks it to close (`close`: hyper's graceful
/// shutdown) when it has been idle for the idle timeout or when `drain`
/// fires, and drops it if it has not closed [`IDLE_CLOSE_GRACE`] later
/// with nothing in flight (an HTTP/2 peer that never answers the closing
/// ping). Drops it at once when a response has waited on a peer that
/// reads (almost) nothing for [`RESPONSE_STALL_TIMEOUT`], whatever else
/// the peer does.
pub(super) async fn drive<C, E>(
    conn: C,
    close: impl Fn(Pin<&mut C>),
    activity: &Activity,
    idle_timeout: Duration,
    mut drain: tokio::sync::watch::Receiver<bool>,
) -> Result<(), BoxError>
where
    C: std::future::Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    tokio::pin!(conn);
    let idle = activity.idle(idle_timeout);
    tokio::pin!(idle);
    let stalled = activity.stalled(RESPONSE_STALL_TIMEOUT, RESPONSE_MIN_BYTES_PER_STALL);
    tokio::pin!(stalled);
    let mut closing = false;
    let mut draining = *drain.borrow();
    if draining {
        close(conn.as_mut());
        closing = true;
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => return result.map_err(Into::into),
            () = &mut stalled => {
                return Err(format!(
                    "dropped: the peer took less than {RESPONSE_MIN_BYTES_PER_STALL} response bytes in {} s",
                    RESPONSE_STALL_TIMEOUT.as_secs()
                )
                .into());
            }
            () = &mut idle, if !closing => {
                close(conn.as_mut());
                closing = true;
            }
            changed = drain.changed(), if !draining => {
                draining = true;
                if changed.is_ok() && !closing {
                    close(conn.as_mut());
                    closing = true;
                }
            }
            () = tokio::time::sleep(IDLE_CLOSE_GRACE), if closing => {
                if activity.idle_for().is_some() {
                    return Err("closed an idle connection that did not close itself".into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max: usize, per_ip: usize) -> Arc<ConnectionGate> {
        ConnectionGate::new(ConnectionLimits {
            max_connections: max,
            max_per_ip: per_ip,
            exempt: vec!["10.0.0.0/8".parse().unwrap()],
            ..ConnectionLimits::default()
        })
    }

    #[tokio::test]
    async fn one_ip_gets_its_cap_and_not_one_more_and_a_closed_slot_comes_back() {
        let gate = gate(100, 3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let mut slots = Vec::new();
        for _ in 0..3 {
            let permit = gate.total_permit().await.unwrap();
            slots.push(gate.admit(ip, permit).expect("under the cap"));
        }
        let permit = gate.total_permit().await.unwrap();
        assert!(gate.admit(ip, permit).is_none(), "one past the cap");
        let permit = gate.total_permit().await.unwrap();
        assert!(
            gate.admit(other, permit).is_some(),
            "another IP is not affected"
        );
        slots.pop();
        let permit = gate.total_permit().await.unwrap();
        assert!(gate.admit(ip, permit).is_some(), "a freed slot is reusable");
    }

    #[tokio::test]
    async fn trusted_proxies_are_exempt_and_zero_means_no_cap() {
        let gate = gate(100, 1);
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..5 {
            let permit = gate.total_permit().await.unwrap();
            held.push(gate.admit(proxy, permit).expect("exempt"));
        }
        let open = self::gate(100, 0);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..5 {
            let permit = open.total_permit().await.unwrap();
            held.push(open.admit(ip, permit).expect("no cap"));
        }
    }

    #[tokio::test]
    async fn a_connection_is_idle_only_with_nothing_in_flight() {
        let activity = Activity::new();
        let guard = activity.start();
        assert!(activity.idle_for().is_none());
        let waited = tokio::time::timeout(
            Duration::from_millis(150),
            activity.idle(Duration::from_millis(50)),
        )
        .await;
        assert!(waited.is_err(), "busy connections are never idle");
        drop(guard);
        let started = std::time::Instant::now();
        activity.idle(Duration::from_millis(100)).await;
        assert!(started.elapsed() >= Duration::from_millis(90));
    }
}
