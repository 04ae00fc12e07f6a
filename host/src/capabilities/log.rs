//! `verge:edge/log` plus the guest's stdout and stderr: leveled records
//! into the host's tracing output, tagged with app and request id.

use super::bindings::verge::edge::log as wit;
use super::{PerRequest, RequestScope};
use crate::telemetry::log_ring::LogRing;
use bytes::Bytes;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Longest log record kept, in bytes; longer messages are cut (at a UTF-8
/// boundary) so one guest cannot flood the log pipeline with one call.
pub const MAX_LOG_RECORD_BYTES: usize = 4096;

/// Records one request may write; later ones are dropped and counted, so a
/// logging loop costs the guest its CPU budget, not the host its disk.
pub const MAX_LOG_RECORDS_PER_REQUEST: u32 = 1000;

/// Log level, as the guest gave it.
pub type Level = wit::Level;

/// Where one request's logs go. Cloning shares the record budget.
#[derive(Debug, Clone)]
pub struct LogCtx {
    inner: Arc<LogTags>,
}

#[derive(Debug)]
struct LogTags {
    app: Arc<str>,
    request_id: Arc<str>,
    written: AtomicU32,
    ring: Option<Arc<LogRing>>,
    /// The panic report the guest wrote to stderr, if any (see
    /// [`LogCtx::panic_message`]).
    panic: std::sync::Mutex<PanicReport>,
}

/// What a Rust guest's panic hook prints to stderr: `thread '…' panicked
/// at FILE:LINE:COL:`, the message (one or more lines), then `note: run
/// with RUST_BACKTRACE=1 …`.
#[derive(Debug, Default)]
struct PanicReport {
    message: Option<String>,
    reading: bool,
}

impl LogCtx {
    /// A log context for one request of `app`.
    pub fn new(app: Arc<str>, request_id: Arc<str>) -> Self {
        Self::with_ring(app, request_id, None)
    }

    /// A log context that also keeps each record in the app's `ring`.
    pub fn with_ring(app: Arc<str>, request_id: Arc<str>, ring: Option<Arc<LogRing>>) -> Self {
        Self {
            inner: Arc::new(LogTags {
                app,
                request_id,
                written: AtomicU32::new(0),
                ring,
                panic: Default::default(),
            }),
        }
    }

    /// The request id its records are tagged with.
    pub fn request_id(&self) -> &Arc<str> {
        &self.inner.request_id
    }

    /// The panic the guest reported on stderr during this request, as one
    /// line (`panicked at src/lib.rs:8:5: the message`), so the host's
    /// failure line can carry it instead of a bare trap.
    pub fn panic_message(&self) -> Option<String> {
        self.panic_report().message.clone()
    }

    fn panic_report(&self) -> std::sync::MutexGuard<'_, PanicReport> {
        self.inner
            .panic
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a stderr `line` is part of a panic report (noted for
    /// [`LogCtx::panic_message`]).
    fn note_stderr(&self, line: &str) -> bool {
        let mut report = self.panic_report();
        if let Some(at) = line.find("panicked at ") {
            report.message = Some(line[at..].trim_end_matches(':').to_owned());
            report.reading = true;
            return true;
        }
        if !report.reading {
            return false;
        }
        if line.starts_with("note: ") {
            report.reading = false;
        } else if let Some(message) = &mut report.message
            && message.len() < MAX_LOG_RECORD_BYTES
        {
            message.push_str(": ");
            message.push_str(line);
        }
        true
    }

    /// Records written so far, including dropped ones.
    pub fn records(&self) -> u32 {
        self.inner.written.load(Ordering::Relaxed)
    }

    /// Writes one record, enforcing the size and count caps.
    pub fn write(&self, level: Level, message: &str) {
        self.write_to(level, message, true);
    }

    /// [`LogCtx::write`] to the app's ring only, not the host's log.
    fn write_unmirrored(&self, level: Level, message: &str) {
        self.write_to(level, message, false);
    }

    fn write_to(&self, level: Level, message: &str, mirror: bool) {
        let n = self.inner.written.fetch_add(1, Ordering::Relaxed);
        if n >= MAX_LOG_RECORDS_PER_REQUEST {
            if n == MAX_LOG_RECORDS_PER_REQUEST {
                self.emit(
                    Level::Warn,
                    "log record limit reached; further records from this request are dropped",
                    true,
                );
            }
            return;
        }
        self.emit(level, truncate(message, MAX_LOG_RECORD_BYTES), mirror);
    }

    fn emit(&self, level: Level, message: &str, mirror: bool) {
        let (app, id) = (&*self.inner.app, &*self.inner.request_id);
        if let Some(ring) = &self.inner.ring {
            ring.push(level_name(level), id, message);
            // The app's ring keeps every line; the host's own log takes at
            // most a few a second per app (tenants' lines are theirs to
            // flood with, not the operator's disk).
            static MIRRORED: std::sync::LazyLock<crate::telemetry::log_limit::LogLimit> =
                std::sync::LazyLock::new(Default::default);
            if !mirror
                || MIRRORED
                    .allow(&format!("{:p}", Arc::as_ptr(ring)))
                    .is_none()
            {
                return;
            }
        }
        if !mirror {
            return;
        }
        match level {
            Level::Trace => {
                tracing::trace!(target: "verge::guest", app, request_id = id, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "verge::guest", app, request_id = id, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "verge::guest", app, request_id = id, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "verge::guest", app, request_id = id, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "verge::guest", app, request_id = id, "{message}")
            }
        }
    }

    /// The guest's stdout: each line one info record.
    pub fn stdout(&self) -> GuestOutput {
        GuestOutput::new(self.clone(), Level::Info)
    }

    /// The guest's stderr: each line one warn record.
    pub fn stderr(&self) -> GuestOutput {
        GuestOutput::new(self.clone(), Level::Warn)
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

fn truncate(message: &str, max: usize) -> &str {
    if message.len() <= max {
        return message;
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

impl wit::Host for LogCtx {
    fn write(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        LogCtx::write(self, level, &message);
        Ok(())
    }
}

impl PerRequest for LogCtx {
    /// The same app and ring, tagged with the request's id, with a record
    /// budget of its own.
    fn for_request(self, scope: &RequestScope) -> Self {
        Self::with_ring(
            self.inner.app.clone(),
            scope.request_id.clone(),
            self.inner.ring.clone(),
        )
    }
}

/// Links `verge:edge/log` into `linker`, over the context `get` projects.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<LogCtx>>(linker, get)
}

/// A guest output stream (stdout or stderr) that turns lines into records.
pub struct GuestOutput {
    log: LogCtx,
    level: Level,
    line: Vec<u8>,
}

impl GuestOutput {
    fn new(log: LogCtx, level: Level) -> Self {
        Self {
            log,
            level,
            line: Vec::new(),
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(pos) = bytes.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&bytes[..pos]);
            self.flush_line();
            bytes = &bytes[pos + 1..];
        }
        self.line.extend_from_slice(bytes);
        if self.line.len() >= MAX_LOG_RECORD_BYTES {
            self.flush_line();
        }
    }

    fn flush_line(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches('\r');
        if self.level == Level::Warn && self.log.note_stderr(text) {
            // Kept for `verge logs`; the host's own log says it once, in
            // the request's failure line.
            self.log.write_unmirrored(self.level, text);
        } else {
            self.log.write(self.level, text);
        }
        self.line.clear();
    }
}

impl Drop for GuestOutput {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.flush_line();
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(GuestOutput::new(self.log.clone(), self.level))
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(GuestOutput::new(self.log.clone(), self.level))
    }
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(MAX_LOG_RECORD_BYTES)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_a_char_boundary() {
        let s = "é".repeat(3000);
        let cut = truncate(&s, MAX_LOG_RECORD_BYTES);
        assert!(cut.len() <= MAX_LOG_RECORD_BYTES && cut.len() >= MAX_LOG_RECORD_BYTES - 1);
        assert_eq!(truncate("short", 10), "short");
    }

    #[test]
    fn counts_records_up_to_the_cap_and_past_it() {
        let log = LogCtx::new("app".into(), "id".into());
        for _ in 0..MAX_LOG_RECORDS_PER_REQUEST + 5 {
            log.write(Level::Info, "x");
        }
        assert_eq!(log.records(), MAX_LOG_RECORDS_PER_REQUEST + 5);
    }

    #[test]
    fn output_splits_lines_and_flushes_the_tail_on_drop() {
        let log = LogCtx::new("app".into(), "id".into());
        let mut out = log.stdout();
        out.push(b"one\ntwo\nthr");
        assert_eq!(log.records(), 2);
        drop(out);
        assert_eq!(log.records(), 3);
    }
}
