//! A bounded loopback load generator: N keep-alive HTTP/1.1 connections,
//! each sending requests back to back for a fixed time (and at most a fixed
//! count), recording every latency.

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Hard cap on requests per run, so a run always ends.
pub const MAX_REQUESTS_PER_RUN: u64 = 5_000_000;

/// What one run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Successful (2xx) requests.
    pub ok: u64,
    /// Requests that failed or were not 2xx.
    pub failed: u64,
    /// Requests per second over the measured window.
    pub rps: f64,
    /// Median latency in µs.
    pub p50_us: u64,
    /// 99th percentile latency in µs.
    pub p99_us: u64,
}

/// Loads `addr` + `path` (with `Host: host`) with `connections` connections
/// for `duration`.
/// Only loopback addresses are accepted.
pub async fn run(
    addr: SocketAddr,
    host: &str,
    path: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "load is only sent to loopback addresses"
    );
    let deadline = Instant::now() + duration;
    let per_conn_cap = MAX_REQUESTS_PER_RUN / connections.max(1) as u64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (host, path) = (host.to_owned(), path.to_owned());
        tasks.push(tokio::spawn(async move {
            one_connection(addr, &host, &path, deadline, per_conn_cap).await
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        let (h, o, f) = task.await??;
        hist.add(h)?;
        ok += o;
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(LoadResult {
        ok,
        failed,
        rps: ok as f64 / elapsed,
        p50_us: hist.value_at_quantile(0.50),
        p99_us: hist.value_at_quantile(0.99),
    })
}

async fn one_connection(
    addr: SocketAddr,
    host: &str,
    path: &str,
    deadline: Instant,
    cap: u64,
) -> anyhow::Result<(Histogram<u64>, u64, u64)> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    // Origin-form, so the Host header (not the address) picks the route.
    let uri: http::Uri = path.parse()?;
    let (mut ok, mut failed) = (0u64, 0u64);
    while Instant::now() < deadline && ok + failed < cap {
        let req = http::Request::get(uri.clone())
            .header(http::header::HOST, host)
            .body(Empty::<Bytes>::new())?;
        let t = Instant::now();
        match sender.send_request(req).await {
            Ok(res) => {
                let success = res.status().is_success();
                let _ = res.into_body().collect().await;
                hist.record(
                    u64::try_from(t.elapsed().as_micros())
                        .unwrap_or(u64::MAX)
                        .max(1),
                )?;
                if success { ok += 1 } else { failed += 1 }
            }
            Err(_) => {
                failed += 1;
                break;
            }
        }
    }
    Ok((hist, ok, failed))
}
