//! Responses that start before the handler returns; see
//! [`crate::Response::from_stream`] and [`crate::Response::start_streaming`].

use crate::fetch::Body;
use crate::wit::verge::edge::respond as wit;

/// Why a streamed response could not start or continue: the response was
/// already started, the client has gone, or the body passed the app's
/// response cap (it was cut there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError(pub String);

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StreamError {}

/// The body of a response being streamed; see
/// [`crate::Response::start_streaming`]. It implements [`std::io::Write`];
/// each write goes towards the client at once.
#[derive(Debug)]
pub struct BodyWriter(wit::BodyWriter);

impl BodyWriter {
    /// Sends `chunk` towards the client. Waits while the client is slower
    /// than the function.
    pub fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), StreamError> {
        self.0.write(chunk).map_err(StreamError)
    }
}

impl std::io::Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_chunk(buf)
            .map(|()| buf.len())
            .map_err(std::io::Error::other)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) fn start(status: u16, headers: &[(String, String)]) -> Result<BodyWriter, StreamError> {
    wit::start_streaming(status, headers)
        .map(BodyWriter)
        .map_err(StreamError)
}

pub(crate) fn pass_through(
    status: u16,
    headers: &[(String, String)],
    body: Body,
) -> Result<(), String> {
    wit::pass_through(status, headers, body.0)
}
