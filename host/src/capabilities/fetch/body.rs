//! A fetched response body that has not been read yet: read in chunks by
//! the guest (`fetch.body.read`) or passed through to the client
//! (`respond.pass-through`) as it arrives. It never reads past the fetch's
//! deadline. It holds no in-flight slot: a slot covers a request until its
//! head is in (a guest that starts 7 fetches before reading any body must
//! not wait on itself); it holds its exchange's place among the open ones
//! (`sockets.rs`) until it ends or is dropped.

use super::FetchError;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::body::{Body, Frame};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

/// The most one `read` returns: a guest asking for more gets this much,
/// so one call never makes the host copy an unbounded buffer.
pub const MAX_BODY_READ: usize = 64 << 10;

/// A fetched body, streaming from the origin or already whole (a cached
/// response).
pub struct OriginBody {
    source: Source,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    /// What the last frame held beyond the last `read`'s `max`.
    leftover: Bytes,
    /// Its place among the open exchanges, until the end.
    open: Option<super::sockets::OpenExchange>,
}

enum Source {
    Stream(Incoming),
    /// Any other body (the incoming request's, guarded by the server).
    Boxed(StreamedBody),
    Whole(Option<Bytes>),
}

/// A body from elsewhere whose errors are already fetch errors.
pub type StreamedBody = http_body_util::combinators::BoxBody<Bytes, FetchError>;

impl OriginBody {
    /// The body of an origin response, read by `deadline`.
    pub(super) fn streaming(body: Incoming, deadline: Instant) -> Self {
        Self {
            source: Source::Stream(body),
            deadline,
            timer: None,
            leftover: Bytes::new(),
            open: None,
        }
    }

    /// A body from elsewhere (the incoming request's), read by `deadline`.
    pub fn boxed(body: StreamedBody, deadline: Instant) -> Self {
        Self {
            source: Source::Boxed(body),
            deadline,
            timer: None,
            leftover: Bytes::new(),
            open: None,
        }
    }

    /// A body already in memory.
    pub fn whole(body: Bytes) -> Self {
        Self {
            source: Source::Whole(Some(body)),
            deadline: Instant::now(),
            timer: None,
            leftover: Bytes::new(),
            open: None,
        }
    }

    /// The same body, holding `open` until it ends or is dropped.
    pub(super) fn holding(mut self, open: Option<super::sockets::OpenExchange>) -> Self {
        self.open = open;
        self
    }

    /// When reading must end.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The next chunk, at most `max` bytes (clamped to 1..=[`MAX_BODY_READ`]);
    /// `None` at the end.
    pub async fn read(&mut self, max: usize) -> Result<Option<Bytes>, FetchError> {
        let max = max.clamp(1, MAX_BODY_READ);
        if self.leftover.is_empty() {
            match poll_fn(|cx| self.poll_data(cx)).await? {
                Some(data) => self.leftover = data,
                None => return Ok(None),
            }
        }
        let n = max.min(self.leftover.len());
        Ok(Some(self.leftover.split_to(n)))
    }

    /// The next non-empty data frame; trailers are skipped.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, FetchError>> {
        if !self.leftover.is_empty() {
            return Poll::Ready(Ok(Some(std::mem::take(&mut self.leftover))));
        }
        if let Source::Whole(data) = &mut self.source {
            return Poll::Ready(Ok(data.take().filter(|d| !d.is_empty())));
        }
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(self.deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(FetchError::Timeout));
        }
        loop {
            let polled = match &mut self.source {
                Source::Stream(body) => Pin::new(body)
                    .poll_frame(cx)
                    .map_err(|err| FetchError::Connection(format!("reading the body: {err}"))),
                Source::Boxed(body) => Pin::new(body).poll_frame(cx),
                Source::Whole(_) => return Poll::Ready(Ok(None)),
            };
            match polled {
                Poll::Ready(None) => {
                    // The exchange is over: its socket is back in the pool.
                    self.open = None;
                    return Poll::Ready(Ok(None));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => return Poll::Ready(Ok(Some(data))),
                    _ => continue,
                },
                Poll::Ready(Some(Err(err))) => {
                    self.open = None;
                    return Poll::Ready(Err(err));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Body for OriginBody {
    type Data = Bytes;
    type Error = FetchError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, FetchError>>> {
        match self.get_mut().poll_data(cx) {
            Poll::Ready(Ok(Some(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err))),
            Poll::Pending => Poll::Pending,
        }
    }
}
