//! The background lane: where guest calls that turned out heavy finish.
//!
//! Wasm code yields every fuel slice, so on the serving runtime a CPU-bound
//! guest cannot keep other requests waiting. Host-side work a guest causes
//! does not yield: the page faults of a `memory.fill` over tens of MiB, the
//! copy of a huge response out of linear memory, the reset of that memory
//! when the instance goes. One 40 MiB response costs ~30 ms of that, and
//! used to stall every other tenant's requests on the worker for as long.
//!
//! Yielding is not enough on its own either: eight calls spinning through
//! their CPU budget on a one-core daemon still took three quarters of it,
//! and a light tenant's hello p99 rose 3.7× beside them.
//!
//! So a call whose linear memory grows past [`HEAVY_MEMORY_BYTES`], or that
//! has run for [`HEAVY_CPU`] on the serving runtime, is moved, at that
//! point (a yield point), to a thread of its own at the lowest
//! CPU priority (nice 19), where the kernel preempts it whenever a serving
//! thread has work; its tenant is marked heavy for [`HEAVY_MARK`] so its
//! next calls start there. Light tenants never leave the serving runtime,
//! and a fresh, isolated instance per request is kept either way.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

/// Linear memory past which a call counts as heavy: 8 MiB, 60× what the
/// hello function uses and well past the 1 MiB default stack plus a
/// modest heap; at about this size the unmetered page faults and copies
/// reach a millisecond.
pub const HEAVY_MEMORY_BYTES: usize = 8 << 20;

/// Time a call may spend running (inside its polls, not waiting on I/O) on
/// the serving runtime before it counts as heavy: 2 ms, a hundred times
/// what a hello takes and a twenty-fifth of the default CPU budget, so
/// only calls that compute for real (an image resize, a spin) move.
pub const HEAVY_CPU: Duration = Duration::from_millis(2);

/// How long a tenant stays on the background lane after a heavy call.
pub const HEAVY_MARK: Duration = Duration::from_secs(30);

/// The nice value of the background lane's thread: the lowest priority a
/// normal thread can have, so it gets ~1.5 % of a core the serving threads
/// want and all of one they leave idle.
const LANE_NICE: i32 = 19;

/// Set from inside a call (by the memory limiter) when the call turns
/// heavy; read by [`run`] to move the call.
#[derive(Debug, Clone, Default)]
pub struct HeavySignal(Arc<AtomicBool>);

impl HeavySignal {
    /// Marks the call heavy.
    pub fn fire(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the call turned heavy.
    pub fn fired(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A tenant's heavy mark: until when its calls start on the background
/// lane. Shared by every deployment of the tenant.
#[derive(Debug, Default)]
pub struct HeavyMark {
    /// Milliseconds since [`epoch`] until which the tenant is heavy.
    until_ms: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl HeavyMark {
    /// Marks the tenant heavy for [`HEAVY_MARK`] from now.
    pub fn mark(&self) {
        let until = now_ms().saturating_add(u64::try_from(HEAVY_MARK.as_millis()).unwrap_or(0));
        self.until_ms.fetch_max(until, Ordering::AcqRel);
    }

    /// Whether the tenant is heavy now.
    pub fn is_heavy(&self) -> bool {
        now_ms() < self.until_ms.load(Ordering::Acquire)
    }
}

/// The lane's runtime, started on first use; `None` if its thread could
/// not start (calls then stay where they are).
fn lane() -> Option<&'static tokio::runtime::Handle> {
    static LANE: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();
    LANE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("verge-heavy-lane".into())
            .spawn(move || {
                lower_priority();
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => {
                        let _ = tx.send(Some(runtime.handle().clone()));
                        runtime.block_on(std::future::pending::<()>());
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "no background lane");
                        let _ = tx.send(None);
                    }
                }
            });
        match spawned {
            Ok(_) => rx.recv().ok().flatten(),
            Err(err) => {
                tracing::warn!(error = %err, "no background lane thread");
                None
            }
        }
    })
    .as_ref()
}

/// Sets the calling thread to [`LANE_NICE`].
pub(super) fn lower_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, thread_native_id,
    };
    // For a normal policy `Min` is the highest niceness, 19.
    let lowered = thread_priority::set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
    );
    if let Err(err) = lowered {
        tracing::warn!(
            ?err,
            nice = LANE_NICE,
            "could not lower the background lane's priority"
        );
    }
}

/// Runs work nobody waits on (a request's work after its response) on the
/// background lane, so it gets what the serving threads leave: a tenant
/// answering at once and spinning afterwards must not take the CPU its
/// neighbours' requests need. On the serving runtime where the lane could
/// not start.
pub fn spawn<F>(work: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    match lane() {
        Some(lane) => drop(lane.spawn(work)),
        None => drop(tokio::spawn(work)),
    }
}

/// Aborts the lane task when the caller goes away (the client hung up).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `call` where it belongs: on the background lane from the start
/// when `mark` says the tenant is heavy; otherwise here, moved to the lane
/// at the first poll after `signal` fires or after its polls took
/// [`HEAVY_CPU`] in all (the tenant is then marked).
/// `lost` makes the answer when the lane task fails (only then).
pub async fn run<F>(
    call: F,
    mark: &HeavyMark,
    signal: &HeavySignal,
    lost: impl FnOnce() -> F::Output,
) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Some(lane) = lane() else {
        return call.await;
    };
    let mut call: Pin<Box<F>> = Box::pin(call);
    if !mark.is_heavy() {
        let mut ran = Duration::ZERO;
        let here = std::future::poll_fn(|cx| {
            let started = Instant::now();
            let polled = call.as_mut().poll(cx);
            ran += started.elapsed();
            match polled {
                Poll::Ready(output) => Poll::Ready(Some(output)),
                Poll::Pending if signal.fired() || ran >= HEAVY_CPU => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        if let Some(output) = here {
            return output;
        }
        mark.mark();
    }
    let mut task = AbortOnDrop(lane.spawn(call));
    (&mut task.0).await.unwrap_or_else(|_| lost())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_light_call_stays_and_a_heavy_one_moves_and_marks_its_tenant() {
        let mark = HeavyMark::default();
        let here = std::thread::current().id();
        let signal = HeavySignal::default();
        let stayed = run(
            async move { std::thread::current().id() },
            &mark,
            &signal,
            || here,
        )
        .await;
        assert_eq!(stayed, here);
        assert!(!mark.is_heavy());

        let fired = signal.clone();
        let moved = run(
            async move {
                fired.fire();
                tokio::task::yield_now().await;
                std::thread::current().id()
            },
            &mark,
            &signal,
            || here,
        )
        .await;
        assert_ne!(moved, here, "finished on the lane");
        assert!(mark.is_heavy(), "the tenant is marked");
        let fresh = HeavySignal::default();
        let started_there = run(
            async move { std::thread::current().id() },
            &mark,
            &fresh,
            || here,
        )
        .await;
        assert_eq!(started_there, moved, "a marked tenant starts on the lane");
        let nice = run(
            async {
                let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
                let after = stat.rsplit_once(')').map(|(_, rest)| rest.to_owned());
                // After ")": state is field 0, nice is field 16.
                after.and_then(|rest| rest.split_whitespace().nth(16).map(str::to_owned))
            },
            &mark,
            &fresh,
            || None,
        )
        .await;
        assert_eq!(nice.as_deref(), Some("19"), "the lane runs at nice 19");
    }

    #[tokio::test]
    async fn a_call_that_computes_past_the_cpu_threshold_moves_and_one_that_waits_stays() {
        let here = std::thread::current().id();
        // Waiting (on a timer: I/O) does not count, however long.
        let mark = HeavyMark::default();
        let stayed = run(
            async move {
                tokio::time::sleep(HEAVY_CPU * 3).await;
                std::thread::current().id()
            },
            &mark,
            &HeavySignal::default(),
            || here,
        )
        .await;
        assert_eq!(stayed, here);
        assert!(!mark.is_heavy());
        // Computing does, at the first yield past it.
        let moved = run(
            async move {
                for _ in 0..100 {
                    let started = Instant::now();
                    while started.elapsed() < HEAVY_CPU / 4 {
                        std::hint::spin_loop();
                    }
                    tokio::task::yield_now().await;
                }
                std::thread::current().id()
            },
            &mark,
            &HeavySignal::default(),
            || here,
        )
        .await;
        assert_ne!(moved, here, "finished on the lane");
        assert!(mark.is_heavy());
    }
}
