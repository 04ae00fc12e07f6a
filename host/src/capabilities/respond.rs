//! `verge:edge/respond`: a response that starts before the handler
//! returns. The runtime hands each request of a streaming function a
//! one-shot channel to the server ([`RespondCtx::begin`]); `start-streaming`
//! and `pass-through` send the head down it at once, with the body to
//! follow: chunks the guest writes (through a queue of
//! [`STREAM_QUEUE_CHUNKS`]), or a fetched body passed through as it
//! arrives. When the handler returns, the runtime ends a written body or,
//! if nothing was started, sends the returned response the same way.

use super::bindings::verge::edge::respond as wit;
use super::fetch::OriginBody;
use super::view::{TableView, WithTable};
use super::{PerRequest, RequestScope};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use tokio::sync::{mpsc, oneshot};
use wasmtime::component::{Linker, Resource};

/// Chunks queued between a writing guest and a slower client: enough to
/// keep the connection busy, few enough that a guest cannot park its whole
/// output in host memory; `write` waits while the queue is full.
pub const STREAM_QUEUE_CHUNKS: usize = 4;

/// What a chunk queue carries: data, or why the body stopped short (the
/// guest failed mid-body; the client must not see a complete body).
pub type Chunk = Result<Bytes, String>;

/// The body of a response started by the guest.
pub enum StartedBody {
    /// The response `handle` returned, whole.
    Whole(Vec<u8>),
    /// Chunks the guest writes.
    Chunks(mpsc::Receiver<Chunk>),
    /// A fetched body, passed through.
    Fetched(OriginBody),
}

/// A response head and where its body comes from.
pub struct StartedResponse {
    /// The status, checked (100-999, not 1xx).
    pub status: u16,
    /// Header fields, each name and value checked.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: StartedBody,
}

/// One request's way to start its response early: none unless the
/// runtime serves the request streaming (boxed, so every other request's
/// store carries one pointer).
#[derive(Default)]
pub struct RespondCtx(Option<Box<Streaming>>);

/// The channel to the server and the body being written.
#[derive(Default)]
struct Streaming {
    start: Option<oneshot::Sender<StartedResponse>>,
    writer: Option<mpsc::Sender<Chunk>>,
    cap: usize,
    written: usize,
}

impl Clone for RespondCtx {
    /// The channel belongs to one request: a copy has none.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PerRequest for RespondCtx {
    fn for_request(self, _scope: &RequestScope) -> Self {
        Self::default()
    }
}

impl RespondCtx {
    /// Lets the request start its response: the head goes to `start`, and
    /// a written body may hold at most `cap` bytes.
    pub fn begin(&mut self, start: oneshot::Sender<StartedResponse>, cap: usize) {
        self.0 = Some(Box::new(Streaming {
            start: Some(start),
            cap,
            ..Streaming::default()
        }));
    }

    /// The channel, if no response was started yet.
    pub fn take_start(&mut self) -> Option<oneshot::Sender<StartedResponse>> {
        self.0.as_mut()?.start.take()
    }

    /// Ends a written body: `failure` tells the client it stopped short.
    pub async fn end_body(&mut self, failure: Option<String>) {
        if let Some(streaming) = self.0.as_mut() {
            streaming.end_body(failure).await;
        }
    }

    /// The streaming state, or why this request has none.
    fn streaming(&mut self) -> Result<&mut Streaming, String> {
        self.0
            .as_deref_mut()
            .ok_or_else(|| "this request is not served streaming".to_owned())
    }
}

impl Streaming {
    async fn end_body(&mut self, failure: Option<String>) {
        if let (Some(writer), Some(why)) = (self.writer.take(), failure) {
            let _ = writer.send(Err(why)).await;
        }
    }

    fn start(&mut self, response: StartedResponse) -> Result<(), String> {
        let start = self
            .start
            .take()
            .ok_or("the response was already started")?;
        start
            .send(response)
            .map_err(|_| "the client has gone".to_owned())
    }
}

/// Checks a head the guest gives; the error says what is wrong.
fn checked_head(status: u16, headers: &[(String, String)]) -> Result<(), String> {
    match StatusCode::from_u16(status) {
        Ok(code) if !code.is_informational() => {}
        _ => return Err(format!("invalid status {status}")),
    }
    for (name, value) in headers {
        HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name}"))?;
    }
    Ok(())
}

/// The guest's handle on a body it writes.
pub struct BodyWriter;

/// What respond host functions get: their context and the table.
pub type RespondView<'a> = TableView<'a, RespondCtx>;

impl wit::Host for RespondView<'_> {
    async fn start_streaming(
        &mut self,
        status: u16,
        headers: Vec<(String, String)>,
    ) -> wasmtime::Result<Result<Resource<BodyWriter>, String>> {
        if let Err(why) = checked_head(status, &headers) {
            return Ok(Err(why));
        }
        let streaming = match self.ctx.streaming() {
            Ok(streaming) => streaming,
            Err(why) => return Ok(Err(why)),
        };
        let (writer, chunks) = mpsc::channel(STREAM_QUEUE_CHUNKS);
        let started = streaming.start(StartedResponse {
            status,
            headers,
            body: StartedBody::Chunks(chunks),
        });
        if let Err(why) = started {
            return Ok(Err(why));
        }
        streaming.writer = Some(writer);
        streaming.written = 0;
        Ok(Ok(self.table.push(BodyWriter)?))
    }

    async fn pass_through(
        &mut self,
        status: u16,
        headers: Vec<(String, String)>,
        body: Resource<OriginBody>,
    ) -> wasmtime::Result<Result<(), String>> {
        let body = self.table.delete(body)?;
        if let Err(why) = checked_head(status, &headers) {
            return Ok(Err(why));
        }
        Ok(self.ctx.streaming().and_then(|streaming| {
            streaming.start(StartedResponse {
                status,
                headers,
                body: StartedBody::Fetched(body),
            })
        }))
    }
}

impl wit::HostBodyWriter for RespondView<'_> {
    async fn write(
        &mut self,
        writer: Resource<BodyWriter>,
        chunk: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        self.table.get(&writer)?;
        let streaming = match self.ctx.streaming() {
            Ok(streaming) => streaming,
            Err(why) => return Ok(Err(why)),
        };
        let Some(sender) = streaming.writer.clone() else {
            return Ok(Err("the body has ended".into()));
        };
        let room = streaming.cap.saturating_sub(streaming.written);
        let over = chunk.len() > room;
        let mut chunk = chunk;
        chunk.truncate(room);
        streaming.written += chunk.len();
        if !chunk.is_empty() && sender.send(Ok(Bytes::from(chunk))).await.is_err() {
            streaming.writer = None;
            return Ok(Err("the client has gone".into()));
        }
        if over {
            let why = format!(
                "the response body is over the app's cap of {} bytes; it was cut there",
                streaming.cap
            );
            streaming.end_body(Some(why.clone())).await;
            return Ok(Err(why));
        }
        Ok(Ok(()))
    }

    async fn drop(&mut self, writer: Resource<BodyWriter>) -> wasmtime::Result<()> {
        self.table.delete(writer)?;
        if let Ok(streaming) = self.ctx.streaming() {
            streaming.writer = None;
        }
        Ok(())
    }
}

/// Links `verge:edge/respond` into `linker`, over the view `get` projects.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> RespondView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, WithTable<RespondCtx>>(linker, get)
}
