//! A per-key rate limit for log lines a remote party can cause (a failing
//! guest, a client sending garbage): at most [`LINES_PER_WINDOW`] lines per
//! key per [`WINDOW`], and the first line after a quiet spell says how many
//! were dropped. A tenant whose function fails on every request cannot
//! fill the operator's disk with logs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines one key may log per window.
pub const LINES_PER_WINDOW: u32 = 10;

/// The window: one second.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Keys remembered at once; past it the table starts afresh (a flood of
/// distinct keys then logs at most this many lines per window more).
const MAX_KEYS: usize = 10_000;

#[derive(Debug)]
struct Window {
    started: Instant,
    lines: u32,
    dropped: u64,
}

/// The limiter.
#[derive(Debug, Default)]
pub struct LogLimit {
    keys: Mutex<HashMap<String, Window>>,
}

impl LogLimit {
    /// Whether a line for `key` may be logged now: `Some(dropped)` with the
    /// number of lines dropped since the last one that was, or `None`.
    pub fn allow(&self, key: &str) -> Option<u64> {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() >= MAX_KEYS && !keys.contains_key(key) {
            keys.clear();
        }
        let window = keys.entry(key.to_owned()).or_insert(Window {
            started: now,
            lines: 0,
            dropped: 0,
        });
        if now.duration_since(window.started) >= WINDOW {
            window.started = now;
            window.lines = 0;
        }
        if window.lines >= LINES_PER_WINDOW {
            window.dropped += 1;
            return None;
        }
        window.lines += 1;
        Some(std::mem::take(&mut window.dropped))
    }
}

/// A multi-line error (a trap with its wasm backtrace) as one line: the
/// first line without the backtrace header, then the root cause (the last
/// line's last `: `-separated part).
pub fn one_line(detail: &str) -> String {
    let mut lines = detail.lines();
    let first = lines.next().unwrap_or_default();
    match lines.last() {
        None => first.to_owned(),
        Some(last) => {
            let head = first.trim_end_matches("wasm backtrace:").trim_end();
            let head = head.trim_end_matches(" at").trim_end_matches(':');
            let cause = last.rsplit(": ").next().unwrap_or(last).trim();
            format!("{head}: {cause}")
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_backtrace_becomes_one_line_with_its_cause() {
        let detail = "the function failed: error while executing at wasm backtrace:\n    0: 0x1 - f\n    1: 0x2 - g: wasm trap: unreachable";
        assert_eq!(
            super::one_line(detail),
            "the function failed: error while executing: unreachable"
        );
        assert_eq!(super::one_line("plain"), "plain");
    }

    use super::*;

    #[test]
    fn a_key_logs_up_to_its_limit_per_window_and_counts_the_rest() {
        let limit = LogLimit::default();
        for _ in 0..LINES_PER_WINDOW {
            assert_eq!(limit.allow("t/a"), Some(0));
        }
        assert_eq!(limit.allow("t/a"), None, "one past the limit");
        assert_eq!(limit.allow("t/a"), None);
        assert_eq!(limit.allow("t/b"), Some(0), "other keys are not affected");
        std::thread::sleep(WINDOW);
        assert_eq!(
            limit.allow("t/a"),
            Some(2),
            "the next window says what was dropped"
        );
    }
}
