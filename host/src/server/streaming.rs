//! The data-plane path of a Verge function that may start its response
//! before returning (`verge:edge/respond`): the request is read as for any
//! function, the head goes out as soon as the guest starts it, and the body
//! (chunks the guest writes, or a fetched body passed through) streams
//! under the app's response cap, cut exactly there. Admission and instance
//! slots are held until the guest is done, as for proxy components.

use super::dispatch::{Dispatcher, InFlight};
use super::error::RequestError;
use super::guest_io::with_head;
use super::{BoxError, DataBody, full_body};
use crate::capabilities::respond::{Chunk, StartedBody, StartedResponse};
use crate::runtime::RequestContext;
use crate::tenancy::Deployment;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

impl Dispatcher {
    /// Admits and runs one request of a streaming Verge function.
    pub(super) async fn run_streaming(
        &self,
        req: Request<Incoming>,
        uri: String,
        deployment: &Deployment,
        mut ctx: RequestContext,
    ) -> Result<Response<DataBody>, RequestError> {
        let limits = deployment.http_limits;
        let read = self.read_request(req, uri, deployment).await?;
        ctx.request_body = read.stream;
        let reservation = read.reservation;
        let permits = self.admit(deployment).await?;
        let in_flight = InFlight::start(self.metrics().clone());
        let held = (in_flight, permits, reservation);
        let done = self.when_guest_done(deployment, held, "streaming function");
        let cap = limits.max_response_body_bytes;
        let started = deployment
            .function
            .handle_streaming(read.request, ctx, cap, done)
            .await?;
        let label: Arc<str> = format!("{}/{}", deployment.tenant, deployment.app).into();
        to_streamed(started, cap, label)
    }
}

/// The HTTP response for what the guest started.
fn to_streamed(
    started: StartedResponse,
    cap: usize,
    label: Arc<str>,
) -> Result<Response<DataBody>, RequestError> {
    let StartedResponse {
        status,
        headers,
        body,
    } = started;
    let body = match body {
        StartedBody::Whole(bytes) => {
            if bytes.len() > cap {
                return Err(RequestError::BadGuestResponse(format!(
                    "body of {} bytes is over the {cap} byte cap",
                    bytes.len()
                )));
            }
            full_body(Full::new(Bytes::from(bytes)))
        }
        StartedBody::Chunks(chunks) => Capped::new(Chunks(chunks), cap, label).boxed_unsync(),
        StartedBody::Fetched(fetched) => {
            Capped::new(fetched.map_err(BoxError::from), cap, label).boxed_unsync()
        }
    };
    with_head(status, headers, body)
}

/// The chunks a guest writes, as a body; an `Err` chunk ends it with an
/// error, so the client sees the body cut short.
struct Chunks(mpsc::Receiver<Chunk>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.0.poll_recv(cx) {
            Poll::Ready(Some(Ok(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(Some(Err(why))) => Poll::Ready(Some(Err(why.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A body cut exactly at `cap` bytes: the frame that crosses it is
/// shortened, and the body then ends with an error (so the client sees an
/// incomplete response, never a silently short one). Logged once.
struct Capped<B> {
    inner: B,
    left: usize,
    cut: bool,
    cap: usize,
    label: Arc<str>,
}

impl<B> Capped<B> {
    fn new(inner: B, cap: usize, label: Arc<str>) -> Self {
        Self {
            inner,
            left: cap,
            cut: false,
            cap,
            label,
        }
    }
}

impl<B> Body for Capped<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.cut {
            return Poll::Ready(Some(Err(format!(
                "the response body is over the app's cap of {} bytes",
                this.cap
            )
            .into())));
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        let Some(data) = frame.data_ref() else {
            return Poll::Ready(Some(Ok(frame)));
        };
        if data.len() <= this.left {
            this.left -= data.len();
            return Poll::Ready(Some(Ok(frame)));
        }
        let mut data = frame.into_data().unwrap_or_default();
        data.truncate(this.left);
        this.left = 0;
        this.cut = true;
        tracing::warn!(
            app = &*this.label,
            cap = this.cap,
            "response body over the cap; the response was cut"
        );
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `chunks`, as the guest would write them.
    fn chunks(parts: &[&'static [u8]]) -> Chunks {
        let (tx, rx) = mpsc::channel(parts.len().max(1));
        for part in parts {
            tx.try_send(Ok(Bytes::from_static(part))).unwrap();
        }
        Chunks(rx)
    }

    async fn read(body: impl Body<Data = Bytes, Error = BoxError> + Unpin) -> (Vec<u8>, bool) {
        let mut body = body;
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => bytes.extend_from_slice(&frame.into_data().unwrap()),
                Err(_) => return (bytes, true),
            }
        }
        (bytes, false)
    }

    #[tokio::test]
    async fn a_body_at_the_cap_passes_and_one_past_it_is_cut_exactly_there() {
        let label: Arc<str> = "t/a".into();
        let at = Capped::new(chunks(&[b"abc", b"de"]), 5, label.clone());
        assert_eq!(read(at).await, (b"abcde".to_vec(), false));
        let past = Capped::new(chunks(&[b"abc", b"def", b"g"]), 5, label);
        assert_eq!(read(past).await, (b"abcde".to_vec(), true));
    }

    #[tokio::test]
    async fn a_failed_chunk_ends_the_body_with_an_error() {
        let (tx, rx) = mpsc::channel(2);
        tx.try_send(Ok(Bytes::from_static(b"part"))).unwrap();
        tx.try_send(Err("the function trapped".into())).unwrap();
        drop(tx);
        assert_eq!(read(Chunks(rx)).await, (b"part".to_vec(), true));
    }
}
