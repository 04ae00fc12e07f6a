//! `verge logs APP [--follow]`: the app's recent guest log lines, and with
//! `--follow` new ones as they come (long polls on the admin API).

use super::client::Api;
use clap::Args;
use http::Method;
use serde_json::Value;

/// Options of `verge logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The app.
    pub app: String,
    /// Keep printing new lines until interrupted.
    #[arg(long, short)]
    pub follow: bool,
}

/// Seconds each follow poll may wait on the server for a new line.
const FOLLOW_WAIT_SECONDS: u64 = 20;

fn print_line(line: &Value, json: bool) {
    if json {
        println!("{line}");
        return;
    }
    let ms = line["unix_ms"].as_u64().unwrap_or(0);
    println!(
        "{}.{:03} {:<5} [{}] {}",
        ms / 1000,
        ms % 1000,
        line["level"].as_str().unwrap_or("?"),
        line["request_id"].as_str().unwrap_or("-"),
        line["message"].as_str().unwrap_or("")
    );
}

pub(super) async fn run(api: &Api, args: LogsArgs) -> anyhow::Result<()> {
    let path = format!("/v1/tenants/{}/apps/{}/logs", api.tenant()?, args.app);
    let mut after = 0;
    let mut wait = 0;
    loop {
        let url = format!("{path}?after={after}&wait={wait}");
        let answer = tokio::select! {
            answer = api.call(Method::GET, &url, None) => answer?,
            () = super::shutdown_signal() => return Ok(()),
        };
        for line in answer["lines"].as_array().into_iter().flatten() {
            print_line(line, api.json);
        }
        after = answer["next"].as_u64().unwrap_or(after);
        if !args.follow {
            return Ok(());
        }
        wait = FOLLOW_WAIT_SECONDS;
    }
}
