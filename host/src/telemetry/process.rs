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

/// One metric in the text format: its HELP and TYPE lines, then the
/// sample (`name` may carry a suffix, as counters' `_total` does).
fn metric(
    out: &mut String,
    family: &str,
    kind: &str,
    help: &str,
    name: &str,
    value: impl std::fmt::Display,
) {
    let _ = writeln!(out, "# HELP {family} {help}");
    let _ = writeln!(out, "# TYPE {family} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

/// A gauge named `name`.
fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    metric(out, name, "gauge", help, name, value);
}

/// The serving runtimes' shape: serving threads and event interval, so a
/// test can tell that the binary serves with the configuration the benches
/// measured.
fn encode_runtime(out: &mut String) {
    gauge(
        out,
        "verge_runtime_workers",
        "Serving threads, one current-thread runtime each.",
        SERVING_THREADS.load(Ordering::Relaxed),
    );
    gauge(
        out,
        "verge_runtime_event_interval",
        "Task polls between IO-driver checks (0: not the serving runtime).",
        RUNTIME_EVENT_INTERVAL.load(Ordering::Relaxed),
    );
    if let Ok((soft, _)) = rlimit::Resource::NOFILE.get() {
        gauge(
            out,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            soft,
        );
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
        metric(
            &mut out,
            "process_cpu_seconds",
            "counter",
            "Total user and system CPU time.",
            "process_cpu_seconds_total",
            cpu,
        );
    }
    if let Some(rss) = field(21) {
        gauge(
            &mut out,
            "process_resident_memory_bytes",
            "Resident memory size.",
            rss * PAGE_BYTES,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            &mut out,
            "process_open_fds",
            "Open file descriptors.",
            fds.count(),
        );
    }
    out
}
