//! Deploy propagation through the shipped binary: three `verge serve
//! --cluster` processes on one real `redis-server` (loopback, AOF on,
//! `appendfsync always`). Each of 20 deploys uploads a component never
//! seen before (hello or echo, with a custom section that makes its hash
//! new, so every node fetches and compiles it, as for a real release)
//! through node A, then polls B and C's data planes until both serve it.
//! Reported: the upload's own time on A (compile included) and the
//! propagation from A's answer until B and C both serve, p50 and p99.
//! Then hello on fleet node A against a single node (`verge serve`
//! without `--cluster`), both on core 0, the load on core 1, in
//! alternating rounds of VERGE_BENCH_SECS (default 2) seconds: medians of
//! five.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench"
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use verge_benches::binary::{VergeProcess, build_verge};
use verge_tests::redis_server::RedisServer;

/// Deploys measured.
const DEPLOYS: usize = 20;

/// Longest one propagation may take before the bench gives up.
const GIVE_UP: Duration = Duration::from_secs(10);

/// `bytes` with a custom section `verge-bench` holding `n`: a new hash,
/// the same code.
fn renamed(bytes: &[u8], n: usize) -> Vec<u8> {
    let name = b"verge-bench";
    let payload = n.to_le_bytes();
    let size = 1 + name.len() + payload.len();
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(u8::try_from(size).unwrap());
    out.push(u8::try_from(name.len()).unwrap());
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

/// The body `addr` answers for `web.test/x`.
fn get(addr: SocketAddr) -> String {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return String::new();
    };
    let head = "GET /x HTTP/1.1\r\nhost: web.test\r\nconnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let binary = build_verge()?;
    let guests = verge_benches::build_guests()?;
    let redis = RedisServer::start();
    let key_dir = tempfile::tempdir()?;
    let nodes: Vec<VergeProcess> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let args = verge_tests::fleet_serve_args(key_dir.path(), &redis.url(), name);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            VergeProcess::start(&binary, &args)
        })
        .collect::<Result<_, _>>()?;
    let a = &nodes[0];
    a.tenant("acme", "{}")?;
    a.deploy("acme", "web", "web.test", &guests["hello"])?;
    let sources = [
        (std::fs::read(&guests["hello"])?, "hello from verge"),
        (std::fs::read(&guests["echo"])?, "method=GET"),
    ];
    let (uploads, propagation) = deploys(&nodes, &sources, true)?;
    println!(
        "fleet: upload on A (compile included) p50 {:.1} ms, p99 {:.1} ms",
        quantile(&uploads, 0.5),
        quantile(&uploads, 0.99)
    );
    println!(
        "fleet: propagation to B and C after A answered, {DEPLOYS} deploys of new components: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        quantile(&propagation, 0.5),
        quantile(&propagation, 0.99),
        quantile(&propagation, 1.0)
    );
    // The same two components again: every node has compiled them, so
    // what is left is the message, the read of the control plane and the
    // swap.
    let (_, known) = deploys(&nodes, &sources, false)?;
    println!(
        "fleet: propagation of {DEPLOYS} deploys of components every node compiled before: p50 {:.1} ms, p99 {:.1} ms",
        quantile(&known, 0.5),
        quantile(&known, 0.99)
    );
    hello_against_a_single_node(&binary, a, &guests["hello"])
}

/// Hello through fleet node `fleet` and through a single node, alternating
/// rounds; prints the medians and their ratio.
fn hello_against_a_single_node(
    binary: &std::path::Path,
    fleet: &VergeProcess,
    hello: &std::path::Path,
) -> anyhow::Result<()> {
    let secs: u64 = std::env::var("VERGE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let single = VergeProcess::start(binary, &[])?;
    single.tenant("acme", "{}")?;
    for node in [&single, fleet] {
        node.deploy("acme", "h", "h.test", hello)?;
    }
    verge_benches::pin(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let round = Duration::from_secs(secs);
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut failed = 0;
    for _ in 0..5 {
        for (i, node) in [&single, fleet].iter().enumerate() {
            let result = rt.block_on(verge_benches::load::run(
                node.data, "h.test", "/", 16, round,
            ))?;
            failed += result.failed;
            rates[i].push(result.rps);
        }
    }
    let median = |v: &[f64]| quantile(v, 0.5);
    println!(
        "hello, 16 connections, medians of 5 rounds: single node {:.0} req/s, fleet node {:.0} req/s: the fleet node at {:.1} % of the single node; non-2xx {failed}",
        median(&rates[0]),
        median(&rates[1]),
        100.0 * median(&rates[1]) / median(&rates[0])
    );
    anyhow::ensure!(failed == 0, "failed hello requests");
    Ok(())
}

/// Deploys hello and echo in turn through node A, `DEPLOYS` times, each
/// with a new hash when `new`; the upload times and the propagation times
/// to B and C, in ms.
fn deploys(
    nodes: &[VergeProcess],
    sources: &[(Vec<u8>, &str); 2],
    new: bool,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let a = &nodes[0];
    let mut uploads = Vec::new();
    let mut propagation = Vec::new();
    for n in 0..DEPLOYS {
        // Start from the other guest, so each deploy changes the answer.
        let (bytes, marker) = &sources[(n + 1) % 2];
        let bytes = if new {
            renamed(bytes, n)
        } else {
            renamed(bytes, n % 2)
        };
        let started = Instant::now();
        let (status, text) = a.admin("POST", "/v1/tenants/acme/apps/web/versions", &bytes)?;
        anyhow::ensure!(status == 201, "deploy {n}: {status} {text}");
        let answered = Instant::now();
        uploads.push((answered - started).as_secs_f64() * 1000.0);
        for node in &nodes[1..] {
            while !get(node.data).contains(marker) {
                anyhow::ensure!(answered.elapsed() < GIVE_UP, "deploy {n} never arrived");
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        propagation.push(answered.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((uploads, propagation))
}
