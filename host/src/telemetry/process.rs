//! Process metrics in the Prometheus convention (`process_*`), read from
//! `/proc/self` on Linux at each scrape; nothing elsewhere.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};

/// Clock ticks per second for `/proc/self/stat` CPU times; 100 on every
/// Linux platform Verge runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// Page size for the resident set in `/proc/self/stat`.
const PAGE_BYTES: u64 = 4096;

/// The event interval of the serving runtime, once one was built with
/// `daemon::runtime_builder()` (0 until then).
static RUNTIME_EVENT_INTERVAL: AtomicU32 = AtomicU32::new(0);

/// Serving threads (one current-thread runtime each), once started.
static SERVING_THREADS: AtomicU32 = AtomicU32::new(0);

/// Records how many serving threads run, for `/metrics`.
pub fn record_serving_threads(threads: usize) {
    SERVING_THREADS.store(
        u32::try_from(threads).unwrap_or(u32::MAX),
        Ordering::Relaxed,
    );
}

/// Records the serving runtime's event interval for `/metrics`.
pub fn record_runtime_event_interval(interval: u32) {
    RUNTIME_EVENT_INTERVAL.store(interval, Ordering::Relaxed);
}

/// The serving runtime's shape: workers (read from the runtime itself) and
/// event interval, so a test can tell that the binary serves with the
/// configuration the benches measured.
fn encode_runtime(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP verge_runtime_workers Serving threads, one current-thread runtime each."
    );
    let _ = writeln!(out, "# TYPE verge_runtime_workers gauge");
    let _ = writeln!(
        out,
        "verge_runtime_workers {}",
        SERVING_THREADS.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP verge_runtime_event_interval Task polls between IO-driver checks (0: not the serving runtime)."
    );
    let _ = writeln!(out, "# TYPE verge_runtime_event_interval gauge");
    let _ = writeln!(
        out,
        "verge_runtime_event_interval {}",
        RUNTIME_EVENT_INTERVAL.load(Ordering::Relaxed)
    );
    if let Ok((soft, _)) = rlimit::Resource::NOFILE.get() {
        let _ = writeln!(
            out,
            "# HELP process_max_fds Maximum number of open file descriptors."
        );
        let _ = writeln!(out, "# TYPE process_max_fds gauge");
        let _ = writeln!(out, "process_max_fds {soft}");
    }
}

/// The text lines, or nothing when `/proc` is not there.
pub(super) fn encode() -> String {
    let mut out = String::new();
    encode_runtime(&mut out);
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return out;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return out;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    // After ")": state is 0, utime 11, stime 12, starttime 19, rss 21.
    if let (Some(utime), Some(stime)) = (field(11), field(12)) {
        let cpu = (utime + stime) as f64 / TICKS_PER_SECOND;
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds Total user and system CPU time."
        );
        let _ = writeln!(out, "# TYPE process_cpu_seconds counter");
        let _ = writeln!(out, "process_cpu_seconds_total {cpu}");
    }
    if let Some(rss) = field(21) {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size."
        );
        let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge");
        let _ = writeln!(out, "process_resident_memory_bytes {}", rss * PAGE_BYTES);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(out, "# HELP process_open_fds Open file descriptors.");
        let _ = writeln!(out, "# TYPE process_open_fds gauge");
        let _ = writeln!(out, "process_open_fds {}", fds.count());
    }
    out
}
