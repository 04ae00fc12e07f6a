//! Async outbound through the shipped binary: one `verge serve` child on
//! core 0 (admin API, loopback origins allowed), origins and the client on
//! core 1.
//!
//! - Aggregation: `examples/aggregate` fanning out to three origins that
//!   each answer after 50 ms, against the sum of the same three requests
//!   made one after another in the same run (`VERGE_BENCH_REQUESTS`
//!   requests each, default 40; every request a new id, so a cache miss).
//! - Pass-through: a 64 MiB origin body through `Response::from_stream`
//!   (the `stream-probe` guest) against a plain hyper reverse proxy child
//!   on the same core, interleaved rounds (`VERGE_BENCH_ROUNDS`, default
//!   5); MB/s each, and the daemon's RSS growth while it streams.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use verge_benches::binary::VergeProcess;
use verge_benches::compare::median;
use verge_benches::servers::{ChildServer, rss_of};
use verge_tests::origin::Origin;

type Http = Client<HttpConnector, Empty<Bytes>>;

/// What one GET took: status, body bytes, time to the last byte, and the
/// highest RSS of `watch` (a pid) seen while the body arrived.
struct Got {
    status: u16,
    bytes: usize,
    took: Duration,
    peak_rss: u64,
}

async fn get(client: &Http, addr: SocketAddr, host: &str, path: &str, watch: Option<u32>) -> Got {
    let started = Instant::now();
    let req = http::Request::get(format!("http://{addr}{path}"))
        .header("host", host)
        .body(Empty::new())
        .unwrap();
    let res = client.request(req).await.expect("response");
    let status = res.status().as_u16();
    let mut body = res.into_body();
    let (mut bytes, mut peak_rss, mut frames) = (0, 0, 0u32);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body").into_data() {
            bytes += data.len();
        }
        frames += 1;
        if let Some(pid) = watch
            && frames % 16 == 0
        {
            peak_rss = peak_rss.max(rss_of(pid).0);
        }
    }
    Got {
        status,
        bytes,
        took: started.elapsed(),
        peak_rss,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let at = ((values.len() as f64 - 1.0) * p).round() as usize;
    values.get(at).copied().unwrap_or(0.0)
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let verge = verge_benches::binary::build_verge()?;
    let guests = verge_benches::build_guests()?;
    verge_benches::pin(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let origins = [Origin::start().await, Origin::start().await, Origin::start().await];
        let daemon = VergeProcess::start(
            &verge,
            &[
                "--allow-outbound-cidr",
                "127.0.0.1/32",
                "--max-response-body-mib",
                "128",
                "--no-access-log",
            ],
        )?;
        daemon.tenant("bench", "{}")?;
        let parts = ["profile", "posts", "stats"];
        let config: Vec<String> = parts
            .iter()
            .zip(&origins)
            .map(|(part, o)| format!(r#""{part}-url":"{}""#, o.url("/slow?ms=50&id={id}")))
            .collect();
        let allowed: Vec<String> = origins.iter().map(|o| format!(r#""http://{}""#, o.addr)).collect();
        let manifest = format!(
            r#"{{"routes":["agg.bench"],"allowed_hosts":[{}],"config":{{{},"part-timeout-ms":"2000"}}}}"#,
            allowed.join(","),
            config.join(",")
        );
        daemon.deploy_manifest("bench", "aggregate", &manifest, &guests["aggregate"])?;
        let manifest = format!(
            r#"{{"routes":["pass.bench"],"allowed_hosts":[{}],"limits":{{"max_response_body_bytes":134217728}}}}"#,
            allowed[0]
        );
        daemon.deploy_manifest("bench", "pass", &manifest, &guests["stream-probe"])?;
        let client: Http = Client::builder(TokioExecutor::new()).build_http();

        // Aggregation against the sum of its three parts.
        let requests = env_or("VERGE_BENCH_REQUESTS", 40);
        let (mut sums, mut aggregated) = (Vec::new(), Vec::new());
        for i in 0..requests {
            let started = Instant::now();
            for origin in &origins {
                let got = get(&client, origin.addr, "origin", &format!("/slow?ms=50&id=s{i}"), None).await;
                anyhow::ensure!(got.status == 200, "origin answered {}", got.status);
            }
            sums.push(ms(started.elapsed()));
            let got = get(&client, daemon.data, "agg.bench", &format!("/users/u{i}"), None).await;
            anyhow::ensure!(got.status == 200, "aggregate answered {}", got.status);
            aggregated.push(ms(got.took));
        }
        let (sum50, agg50, agg99) = (
            percentile(sums.clone(), 0.5),
            percentile(aggregated.clone(), 0.5),
            percentile(aggregated, 0.99),
        );
        println!(
            "aggregation, three 50 ms origins, {requests} requests: p50 {agg50:.1} ms, p99 {agg99:.1} ms; the three one after another p50 {sum50:.1} ms ({:.0}% of the sum)",
            100.0 * agg50 / sum50
        );

        // Pass-through against a plain hyper reverse proxy.
        let proxy = ChildServer::hyper_proxy(env!("CARGO_BIN_EXE_hyper-proxy").as_ref(), origins[0].addr)?;
        let body = "/stream?chunks=64&size=1048576";
        let escaped = verge_tests::query_value(&origins[0].url(body));
        let through_verge = format!("/stream-probe?mode=pass&url={escaped}");
        let rounds = env_or("VERGE_BENCH_ROUNDS", 5);
        let idle_rss = rss_of(daemon.pid()).0;
        let (mut verge_mbs, mut proxy_mbs, mut peak) = (Vec::new(), Vec::new(), idle_rss);
        let mbs = |got: &Got| got.bytes as f64 / (1 << 20) as f64 / got.took.as_secs_f64();
        for _ in 0..rounds {
            let got = get(&client, daemon.data, "pass.bench", &through_verge, Some(daemon.pid())).await;
            anyhow::ensure!(got.status == 200 && got.bytes == 64 << 20, "verge passed {} bytes ({})", got.bytes, got.status);
            peak = peak.max(got.peak_rss);
            verge_mbs.push(mbs(&got));
            let got = get(&client, proxy.addr, "proxy", body, None).await;
            anyhow::ensure!(got.status == 200 && got.bytes == 64 << 20, "the proxy passed {} bytes", got.bytes);
            proxy_mbs.push(mbs(&got));
        }
        let (v, p) = (median(verge_mbs), median(proxy_mbs));
        println!(
            "pass-through of 64 MiB, {rounds} rounds: verge {v:.0} MB/s, hyper reverse proxy {p:.0} MB/s ({:.0}%); daemon RSS {} MiB idle, {} MiB at most while streaming (+{} MiB)",
            100.0 * v / p,
            idle_rss >> 20,
            peak >> 20,
            peak.saturating_sub(idle_rss) >> 20
        );
        anyhow::Ok(())
    })
}
