//! One listener's connection budget (a total and a per-client-IP count) and
//! one connection's life: requests in flight counted, the connection closed
//! once it has been idle for the idle timeout, drained on shutdown.

use super::BoxError;
use super::limits::{ConnectionLimits, IDLE_CLOSE_GRACE};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
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
/// body is written) and since when it has had none.
#[derive(Debug)]
pub(super) struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    idle_since_ms: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
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

/// A response body that keeps its request counted as in flight until it
/// has been written (or dropped).
pub(super) struct Tracked<B> {
    inner: B,
    _guard: RequestGuard,
}

impl<B> Tracked<B> {
    pub(super) fn new(inner: B, guard: RequestGuard) -> Self {
        Self {
            inner,
            _guard: guard,
        }
    }
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Drives `conn` to the end: asks it to close (`close`: hyper's graceful
/// shutdown) when it has been idle for the idle timeout or when `drain`
/// fires, and drops it if it has not closed [`IDLE_CLOSE_GRACE`] later
/// with nothing in flight (an HTTP/2 peer that never answers the closing
/// ping).
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
    let mut closing = false;
    let mut draining = *drain.borrow();
    if draining {
        close(conn.as_mut());
        closing = true;
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => return result.map_err(Into::into),
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
