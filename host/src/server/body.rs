//! Request bodies read under a cap, a deadline and a shared budget: a
//! client that stops sending mid-body, or sends slower than the minimum
//! rate, is cut, and no number of clients can make the host buffer more
//! than [`BodyBudget`] allows. The data plane (buffered and streamed
//! bodies) and the admin API read every body through [`GuardedBody`].

use super::limits::BodyPolicy;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Why a request body could not be read.
#[derive(Debug, Error)]
pub enum BodyError {
    /// More bytes than the cap.
    #[error("the body is over the {cap} byte limit")]
    TooLarge {
        /// The cap that was passed.
        cap: usize,
    },
    /// No frame arrived within the idle timeout.
    #[error("no body bytes arrived for {0:?}")]
    Stalled(Duration),
    /// The body arrived slower than the minimum rate.
    #[error("the body arrived slower than {0} bytes/s")]
    TooSlow(u64),
    /// The bytes buffered across all requests reached the budget.
    #[error("the server's buffered-body budget is used up")]
    BudgetExhausted,
    /// The connection failed or the peer reset the stream.
    #[error("reading the body: {0}")]
    Transport(String),
}

impl BodyError {
    /// Whether the client sent too slowly (408).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Stalled(_) | Self::TooSlow(_))
    }
}

/// Bytes of request bodies buffered across all requests of a server: a
/// semaphore whose permits are bytes, taken as frames arrive and given
/// back when the request is done with its body.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
}

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Bytes not held by any request now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// Holds `n` bytes until the permit drops; `None` past the budget.
    pub fn take(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(n).ok()?;
        self.bytes.clone().try_acquire_many_owned(n).ok()
    }
}

/// Budget bytes a request holds while its body is in memory.
#[derive(Debug, Default)]
pub struct Reservation(Option<OwnedSemaphorePermit>);

impl Reservation {
    fn add(&mut self, permit: OwnedSemaphorePermit) {
        match &mut self.0 {
            Some(held) => held.merge(permit),
            None => self.0 = Some(permit),
        }
    }
}

/// A request body read under `cap` bytes, a [`BodyPolicy`] and optionally
/// a [`BodyBudget`].
pub struct GuardedBody<B> {
    inner: B,
    cap: usize,
    policy: BodyPolicy,
    started: Instant,
    last_frame: Instant,
    received: u64,
    /// Armed the first time the body makes the reader wait: a body that
    /// is already in (every GET, most small bodies) never sets a timer.
    deadline: Option<Pin<Box<Sleep>>>,
    budget: Option<BodyBudget>,
    held: Reservation,
}

impl<B> GuardedBody<B> {
    /// Wraps `inner`; the clocks start now.
    pub fn new(inner: B, cap: usize, policy: BodyPolicy, budget: Option<BodyBudget>) -> Self {
        let now = Instant::now();
        Self {
            inner,
            cap,
            policy,
            started: now,
            last_frame: now,
            received: 0,
            deadline: None,
            budget,
            held: Reservation::default(),
        }
    }

    /// The budget bytes this body holds, to keep until the bytes are freed.
    pub fn into_reservation(self) -> Reservation {
        self.held
    }

    /// The moment the next frame must have arrived by: the idle timeout
    /// after the last frame, or the moment the average rate would fall
    /// below the minimum, whichever comes first.
    fn next_deadline(&self) -> Instant {
        let idle = self.last_frame + self.policy.idle_timeout;
        if self.policy.min_bytes_per_sec == 0 {
            return idle;
        }
        let earned =
            Duration::from_secs_f64(self.received as f64 / self.policy.min_bytes_per_sec as f64);
        idle.min(self.started + self.policy.rate_grace + earned)
    }

    fn expired(&self) -> BodyError {
        if Instant::now() >= self.last_frame + self.policy.idle_timeout {
            BodyError::Stalled(self.policy.idle_timeout)
        } else {
            BodyError::TooSlow(self.policy.min_bytes_per_sec)
        }
    }
}

impl<B> Body for GuardedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len();
                    this.received = this.received.saturating_add(len as u64);
                    if this.received > this.cap as u64 {
                        return Poll::Ready(Some(Err(BodyError::TooLarge { cap: this.cap })));
                    }
                    if let Some(budget) = &this.budget {
                        match budget.take(len) {
                            Some(permit) => this.held.add(permit),
                            None => return Poll::Ready(Some(Err(BodyError::BudgetExhausted))),
                        }
                    }
                    this.last_frame = Instant::now();
                    let next = this.next_deadline();
                    if let Some(deadline) = &mut this.deadline {
                        deadline.as_mut().reset(next);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                Poll::Ready(Some(Err(BodyError::Transport(err.to_string()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let next = this.next_deadline();
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(next)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(this.expired()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reads all of `body`; returns the bytes and the budget they hold. The
/// frames are kept as they arrive (hyper's own buffers, no copy) and
/// joined into one buffer only once the body is complete, so a body that
/// stalls or is cut never costs a large allocation: with large buffers
/// made up front, freed ones stayed resident in the allocator's arenas and
/// peak memory reached twice the budget. `declared` sizes the joined
/// buffer.
pub async fn read_all<B>(
    mut body: GuardedBody<B>,
    declared: Option<u64>,
) -> Result<(Vec<u8>, Reservation), BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    use http_body_util::BodyExt as _;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            len += data.len();
            chunks.push(data);
        }
    }
    let capacity = declared.map_or(len, |d| usize::try_from(d).unwrap_or(len).min(len));
    let mut bytes = Vec::with_capacity(capacity.max(len));
    for chunk in chunks {
        bytes.extend_from_slice(&chunk);
    }
    Ok((bytes, body.into_reservation()))
}

/// The declared `Content-Length`, refused when it is already over `cap`
/// (before a byte of the body is read).
pub fn check_declared(headers: &http::HeaderMap, cap: usize) -> Result<Option<u64>, BodyError> {
    match declared_length(headers) {
        Some(len) if len > cap as u64 => Err(BodyError::TooLarge { cap }),
        declared => Ok(declared),
    }
}

/// The `Content-Length` a request declares, if any and well-formed.
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tokio::sync::mpsc;

    /// A body fed by hand, frame by frame; ends when the sender drops.
    struct Fed(mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
        }
    }

    fn policy(idle_ms: u64, rate: u64, grace_ms: u64) -> BodyPolicy {
        BodyPolicy {
            idle_timeout: Duration::from_millis(idle_ms),
            min_bytes_per_sec: rate,
            rate_grace: Duration::from_millis(grace_ms),
        }
    }

    fn fed() -> (mpsc::Sender<Bytes>, Fed) {
        let (tx, rx) = mpsc::channel(64);
        (tx, Fed(rx))
    }

    #[tokio::test]
    async fn a_body_at_the_cap_is_read_and_one_byte_more_is_refused() {
        for (len, ok) in [(10, true), (11, false)] {
            let (tx, body) = fed();
            tx.send(Bytes::from(vec![b'x'; len])).await.unwrap();
            drop(tx);
            let read = read_all(GuardedBody::new(body, 10, policy(1000, 0, 0), None), None).await;
            match read {
                Ok((bytes, _)) => assert!(ok && bytes.len() == len),
                Err(err) => assert!(!ok && matches!(err, BodyError::TooLarge { cap: 10 })),
            }
        }
    }

    #[tokio::test]
    async fn a_stalled_body_is_cut_at_the_idle_timeout() {
        let (tx, body) = fed();
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        let started = std::time::Instant::now();
        let err = read_all(
            GuardedBody::new(body, 1 << 20, policy(200, 0, 0), None),
            None,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, BodyError::Stalled(_)) && err.is_timeout(),
            "{err}"
        );
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        drop(tx);
    }

    #[tokio::test]
    async fn a_trickle_under_the_minimum_rate_is_cut_though_never_idle() {
        // 10 bytes every 50 ms = 200 B/s, under a 1,000 B/s minimum
        // after a 100 ms grace; never idle for the 1 s idle timeout.
        let (tx, body) = fed();
        let feeder = tokio::spawn(async move {
            for _ in 0..40 {
                if tx.send(Bytes::from_static(b"0123456789")).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let err = read_all(
            GuardedBody::new(body, 1 << 20, policy(1000, 1000, 100), None),
            Some(400),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, BodyError::TooSlow(1000)), "{err}");
        feeder.abort();
    }

    #[tokio::test]
    async fn bodies_share_the_budget_and_give_it_back_when_done() {
        let budget = BodyBudget::new(100);
        let read = |len: usize| {
            let budget = budget.clone();
            async move {
                let (tx, body) = fed();
                tx.send(Bytes::from(vec![0; len])).await.unwrap();
                drop(tx);
                read_all(
                    GuardedBody::new(body, 1 << 20, policy(1000, 0, 0), Some(budget)),
                    Some(len as u64),
                )
                .await
            }
        };
        let (_, first) = read(60).await.unwrap();
        assert_eq!(budget.available(), 40);
        let (_, second) = read(40).await.unwrap();
        assert_eq!(budget.available(), 0, "at the budget");
        let err = read(1).await.unwrap_err();
        assert!(matches!(err, BodyError::BudgetExhausted), "{err}");
        drop((first, second));
        assert_eq!(budget.available(), 100, "given back");
        assert!(read(100).await.is_ok());
    }
}
