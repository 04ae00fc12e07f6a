//! `verge logs APP [--follow]`, like `wrangler tail`: each request's own
//! line (method, path, status, time, `verge-error`) with the guest lines it
//! wrote, filtered by status, text or a sampling rate; with `--follow` new
//! ones as they come (long polls on the admin API).

use super::client::Api;
use clap::Args;
use http::Method;
use serde_json::Value;
use std::collections::HashMap;

/// Options of `verge logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The app.
    pub app: String,
    /// Keep printing new lines until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// Only requests that ended with these statuses: codes (`500`),
    /// classes (`5xx`), `ok` (below 400) or `error` (400 and up);
    /// comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub status: Vec<String>,
    /// Only requests whose path or any of whose lines contain this text.
    #[arg(long)]
    pub search: Option<String>,
    /// Show this fraction of requests (0 to 1), picked by request id.
    #[arg(long, default_value_t = 1.0)]
    pub sampling_rate: f64,
}

/// Seconds each follow poll may wait on the server for a new line.
const FOLLOW_WAIT_SECONDS: u64 = 20;

/// Requests held back waiting for their closing line (still running)
/// before they are shown anyway: bounds what a follower buffers.
const MAX_OPEN_REQUESTS: usize = 1000;

impl LogsArgs {
    fn wants_status(&self, status: u16) -> bool {
        self.status.is_empty()
            || self.status.iter().any(|s| match s.trim() {
                "ok" => status < 400,
                "error" => status >= 400,
                class if class.len() == 3 && class.ends_with("xx") => {
                    class.as_bytes()[0] == b'0' + u8::try_from(status / 100).unwrap_or(0)
                }
                code => code.parse::<u16>().is_ok_and(|c| c == status),
            })
    }

    /// Whether a finished request (its lines, the closing one last) is shown.
    fn shows(&self, lines: &[Value]) -> bool {
        let Some(request) = lines.last().map(|l| &l["request"]) else {
            return false;
        };
        let status = request["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok());
        if !status.is_some_and(|s| self.wants_status(s)) {
            return false;
        }
        if let Some(text) = &self.search
            && !lines.iter().any(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(text.as_str()))
            })
        {
            return false;
        }
        let id = lines[0]["request_id"].as_str().unwrap_or("");
        sampled(id, self.sampling_rate)
    }
}

/// Whether the request `id` falls in the first `rate` of the id space.
fn sampled(id: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    // FNV-1a, then murmur3's finaliser so similar ids spread over the
    // whole range: stable across runs, so one request is in or out
    // wherever it is looked at.
    let mut h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h as f64 / u64::MAX as f64) < rate
}

fn time(line: &Value) -> String {
    let ms = line["unix_ms"].as_u64().unwrap_or(0);
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(at).to_string()
}

fn print_request(lines: &[Value], json: bool) {
    for line in lines {
        if json {
            println!("{line}");
        } else if let Some(request) = line.get("request").filter(|r| !r.is_null()) {
            let error = request["error"]
                .as_str()
                .map(|e| format!(" verge-error={e}"))
                .unwrap_or_default();
            println!(
                "{} {} {} {} {:.1} ms{error} [{}]",
                time(line),
                request["method"].as_str().unwrap_or("?"),
                request["path"].as_str().unwrap_or("?"),
                request["status"],
                request["micros"].as_f64().unwrap_or(0.0) / 1000.0,
                line["request_id"].as_str().unwrap_or("-"),
            );
        }
    }
    if json {
        return;
    }
    for line in lines
        .iter()
        .filter(|l| l.get("request").is_none_or(Value::is_null))
    {
        println!(
            "  {} {:<5} {}",
            time(line),
            line["level"].as_str().unwrap_or("?"),
            line["message"].as_str().unwrap_or("")
        );
    }
}

pub(super) async fn run(api: &Api, args: LogsArgs) -> anyhow::Result<()> {
    let path = format!("/v1/tenants/{}/apps/{}/logs", api.tenant()?, args.app);
    let mut after = 0;
    let mut wait = 0;
    // Lines of requests still running, by request id, in arrival order.
    let mut open: Vec<(String, Vec<Value>)> = Vec::new();
    loop {
        let url = format!("{path}?after={after}&wait={wait}");
        let answer = tokio::select! {
            answer = api.call(Method::GET, &url, None) => answer?,
            () = super::shutdown_signal() => return Ok(()),
        };
        let mut index: HashMap<String, usize> = open
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.clone(), i))
            .collect();
        for line in answer["lines"].as_array().into_iter().flatten() {
            let id = line["request_id"].as_str().unwrap_or("-").to_owned();
            let at = *index.entry(id.clone()).or_insert_with(|| {
                open.push((id, Vec::new()));
                open.len() - 1
            });
            open[at].1.push(line.clone());
        }
        let mut still_open = Vec::new();
        let overflow = open.len().saturating_sub(MAX_OPEN_REQUESTS);
        for (i, (id, lines)) in open.drain(..).enumerate() {
            let finished = lines
                .last()
                .is_some_and(|l| l.get("request").is_some_and(|r| !r.is_null()));
            if finished {
                if args.shows(&lines) {
                    print_request(&lines, api.json);
                }
            } else if i < overflow || !args.follow {
                // Never finished in view (older than the ring, or cut off):
                // shown only when nothing filters.
                if args.status.is_empty() && args.search.is_none() {
                    print_request(&lines, api.json);
                }
            } else {
                still_open.push((id, lines));
            }
        }
        open = still_open;
        after = answer["next"].as_u64().unwrap_or(after);
        if !args.follow {
            return Ok(());
        }
        wait = FOLLOW_WAIT_SECONDS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(status: &[&str], search: Option<&str>) -> LogsArgs {
        LogsArgs {
            app: "a".into(),
            follow: false,
            status: status.iter().map(|s| (*s).to_owned()).collect(),
            search: search.map(str::to_owned),
            sampling_rate: 1.0,
        }
    }

    fn request(id: &str, status: u16, guest: &str) -> Vec<Value> {
        vec![
            serde_json::json!({ "request_id": id, "level": "info", "message": guest, "unix_ms": 0 }),
            serde_json::json!({ "request_id": id, "level": "request", "message": "GET /x",
                "unix_ms": 0, "request": { "method": "GET", "path": "/x", "status": status, "micros": 10 } }),
        ]
    }

    #[test]
    fn status_filters_take_codes_classes_ok_and_error() {
        assert!(args(&["500"], None).shows(&request("r", 500, "")));
        assert!(!args(&["500"], None).shows(&request("r", 502, "")));
        assert!(args(&["5xx"], None).shows(&request("r", 502, "")));
        assert!(!args(&["5xx"], None).shows(&request("r", 404, "")));
        assert!(args(&["error"], None).shows(&request("r", 404, "")));
        assert!(args(&["ok"], None).shows(&request("r", 200, "")));
        assert!(!args(&["ok"], None).shows(&request("r", 500, "")));
        assert!(args(&[], None).shows(&request("r", 500, "")));
    }

    #[test]
    fn search_looks_at_every_line_and_sampling_is_stable() {
        assert!(args(&[], Some("boom")).shows(&request("r", 200, "a boom here")));
        assert!(!args(&[], Some("boom")).shows(&request("r", 200, "quiet")));
        let ids: Vec<String> = (0..1000).map(|i| format!("req-{i}")).collect();
        let kept = ids.iter().filter(|id| sampled(id, 0.25)).count();
        assert!((150..350).contains(&kept), "{kept}");
        assert_eq!(sampled("req-7", 0.25), sampled("req-7", 0.25));
        assert!(ids.iter().all(|id| sampled(id, 1.0)));
    }
}
