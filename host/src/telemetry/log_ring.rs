//! The last lines each app's guests logged (the `log` interface, stdout
//! and stderr), kept in memory for `verge logs APP [--follow]`.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

/// Lines kept per app: enough to see the last few hundred requests of a
/// chatty function, at most ~4 MiB per app with 4 KiB records.
pub const LOG_RING_LINES: usize = 1000;

/// Longest a follower's poll waits for new lines; under common proxy and
/// load-balancer idle timeouts.
pub const MAX_LOG_WAIT: Duration = Duration::from_secs(25);

/// One guest log line.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LogLine {
    /// Position in the app's log, from 1; lets followers resume.
    pub seq: u64,
    /// When it was written, Unix milliseconds.
    pub unix_ms: u64,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The request that wrote it.
    pub request_id: String,
    /// The text.
    pub message: String,
    /// Set on the one line each request ends with (level `request`): what
    /// the client got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestLine>,
}

/// How one request ended, as `verge logs` shows it beside its guest lines.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RequestLine {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The status the client got.
    pub status: u16,
    /// Time in the host, microseconds.
    pub micros: u64,
    /// The `verge-error` code, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default)]
struct Ring {
    next_seq: u64,
    lines: VecDeque<LogLine>,
}

/// One app's ring buffer; shared by all of its versions.
#[derive(Debug, Default)]
pub struct LogRing {
    ring: Mutex<Ring>,
    grew: Notify,
}

impl LogRing {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends a guest line, dropping the oldest past [`LOG_RING_LINES`].
    pub fn push(&self, level: &'static str, request_id: &str, message: &str) {
        self.append(level, request_id, message.to_owned(), None);
    }

    /// Appends the line a request ends with.
    pub fn push_request(&self, request_id: &str, request: RequestLine) {
        let message = format!(
            "{} {} {} {:.1} ms",
            request.method,
            request.path,
            request.status,
            request.micros as f64 / 1000.0
        );
        self.append("request", request_id, message, Some(request));
    }

    fn append(
        &self,
        level: &'static str,
        request_id: &str,
        message: String,
        request: Option<RequestLine>,
    ) {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        {
            let mut ring = self.lock();
            ring.next_seq += 1;
            let seq = ring.next_seq;
            if ring.lines.len() == LOG_RING_LINES {
                ring.lines.pop_front();
            }
            ring.lines.push_back(LogLine {
                seq,
                unix_ms,
                level,
                request_id: request_id.to_owned(),
                message,
                request,
            });
        }
        self.grew.notify_waiters();
    }

    /// Lines after `seq` (all kept lines for 0), oldest first.
    pub fn after(&self, seq: u64) -> Vec<LogLine> {
        self.lock()
            .lines
            .iter()
            .filter(|line| line.seq > seq)
            .cloned()
            .collect()
    }

    /// Like [`LogRing::after`], but waits up to `wait` (at most
    /// [`MAX_LOG_WAIT`]) for a line when there is none yet.
    pub async fn wait_after(&self, seq: u64, wait: Duration) -> Vec<LogLine> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_LOG_WAIT);
        loop {
            let grew = self.grew.notified();
            tokio::pin!(grew);
            // Registered before the check, so a push in between still wakes us.
            grew.as_mut().enable();
            let lines = self.after(seq);
            if !lines.is_empty() {
                return lines;
            }
            if tokio::time::timeout_at(deadline, grew).await.is_err() {
                return Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn keeps_the_newest_lines_in_order() {
        let ring = LogRing::default();
        for i in 0..LOG_RING_LINES + 5 {
            ring.push("info", "r", &format!("line {i}"));
        }
        let all = ring.after(0);
        assert_eq!(all.len(), LOG_RING_LINES);
        assert_eq!(all[0].message, "line 5");
        assert_eq!(all[0].seq, 6);
        let tail = ring.after(all[all.len() - 2].seq);
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].message, format!("line {}", LOG_RING_LINES + 4));
    }

    #[tokio::test]
    async fn a_follower_wakes_on_a_new_line_and_times_out_without_one() {
        let ring = Arc::new(LogRing::default());
        assert!(
            ring.wait_after(0, Duration::from_millis(20))
                .await
                .is_empty()
        );
        let writer = ring.clone();
        let follower =
            tokio::spawn(async move { ring.wait_after(0, Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        writer.push("warn", "req-1", "hello");
        let lines = follower.await.unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].level, "warn");
        assert_eq!(lines[0].request_id, "req-1");
    }
}
