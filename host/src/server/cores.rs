//! Thread-per-core serving: one current-thread tokio runtime per core, each
//! on a thread of its own, and accepted connections handed to them in turn.
//! A connection lives on one core: its requests, the guest calls of a
//! `wasi:http/proxy` component (a task per request, body channels) and
//! their timers wake only tasks of that thread.
//!
//! Why (docs/performance.md, measured on the shipped binary pinned to one
//! core): on tokio's multi-threaded scheduler every request wrote the IO
//! driver's eventfd once (a wake-up crossing into the scheduler), and the
//! proxy world's task and channel hand-offs paid for it. The same binary
//! with a current-thread runtime served a wasi-crate hello at 32.0k
//! instead of 22.0k req/s and the JavaScript hello at 4.96k instead of
//! 3.94k; the Verge-SDK hello, which hands off nothing, was unchanged.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Task polls between two checks of the IO driver on a serving runtime.
/// tokio's default is 61: with CPU-bound guests always runnable, each poll
/// is one fuel slice (~0.1 ms), so new requests waited ~6 ms to be noticed
/// (the noisy-neighbour bench, docs/performance.md). 4 bounds that to a few
/// slices at a throughput cost too small to measure on the hello load bench.
pub const EVENT_INTERVAL: u32 = 4;

/// The serving threads; they stop when this is dropped (their tasks are
/// cancelled with their runtime).
pub struct ServingCores {
    handles: Vec<Handle>,
    next: AtomicUsize,
    _stops: Vec<oneshot::Sender<()>>,
}

impl std::fmt::Debug for ServingCores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCores")
            .field("threads", &self.handles.len())
            .finish()
    }
}

/// Serving threads by default: one per core this process may run on
/// (`taskset` and cgroup limits included).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl ServingCores {
    /// Starts `threads` serving threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<Arc<Self>> {
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        for index in 0..threads.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .event_interval(EVENT_INTERVAL)
                .build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("verge-serve-{index}"))
                .spawn(move || {
                    // Runs until the sender is dropped; the runtime's drop
                    // then cancels whatever is left.
                    let _ = runtime.block_on(stopped);
                })?;
        }
        crate::telemetry::process::record_serving_threads(handles.len());
        crate::telemetry::process::record_runtime_event_interval(EVENT_INTERVAL);
        Ok(Arc::new(Self {
            handles,
            next: AtomicUsize::new(0),
            _stops: stops,
        }))
    }

    /// The next thread's runtime, in turn.
    fn next_handle(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }

    /// Serves the accepted `stream` with `connection` on the next serving
    /// thread, re-registered with that thread's own IO driver so its
    /// readiness wakes only that thread.
    pub fn serve<F, Fut>(&self, stream: TcpStream, connection: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let failed = |err: std::io::Error| {
            tracing::debug!(error = %err, "handing a connection over failed");
        };
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => return failed(err),
        };
        drop(self.next_handle().spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => connection(stream).await,
                Err(err) => failed(err),
            }
        }));
    }
}
