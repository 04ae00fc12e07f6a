//! Interleaved comparison rounds: each round loads every server for the
//! same time, one after another, so this VM's drift hits them alike; the
//! figure of record is the median round.

use crate::load::{self, LoadResult};
use std::net::SocketAddr;
use std::time::Duration;

/// How a comparison runs, from the environment: `VERGE_BENCH_ROUNDS`
/// (default 5) rounds of `VERGE_BENCH_SECS` (default 2) seconds per server.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Rounds.
    pub rounds: usize,
    /// Seconds per server per round.
    pub secs: u64,
}

impl Plan {
    /// The plan the environment asks for.
    pub fn from_env() -> Self {
        let var = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(default)
        };
        Self {
            rounds: usize::try_from(var("VERGE_BENCH_ROUNDS", 5)).unwrap_or(5),
            secs: var("VERGE_BENCH_SECS", 2),
        }
    }
}

/// One server's results over the rounds.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its label.
    pub name: String,
    /// One result per round.
    pub rounds: Vec<LoadResult>,
}

impl Series {
    /// Median requests/s.
    pub fn median_rps(&self) -> f64 {
        median(self.rounds.iter().map(|r| r.rps).collect())
    }

    /// Median p99 in µs.
    pub fn median_p99_us(&self) -> f64 {
        median(self.rounds.iter().map(|r| r.p99_us as f64).collect())
    }

    /// Failed requests over all rounds.
    pub fn failed(&self) -> u64 {
        self.rounds.iter().map(|r| r.failed).sum()
    }
}

/// Failed requests over all rounds of every series.
pub fn failed(series: &[Series]) -> u64 {
    series.iter().map(Series::failed).sum()
}

/// The median of `values` (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Median over rounds of `a`'s requests/s divided by `b`'s, same round.
pub fn median_ratio(a: &Series, b: &Series) -> f64 {
    median(
        a.rounds
            .iter()
            .zip(&b.rounds)
            .map(|(x, y)| x.rps / y.rps.max(1.0))
            .collect(),
    )
}

/// Loads each `(name, addr)` with `connections` connections for the plan,
/// interleaved, after a 1 s warm-up each; prints every round.
pub fn run(
    load_rt: &tokio::runtime::Runtime,
    plan: Plan,
    connections: usize,
    path: &str,
    servers: &[(&str, SocketAddr)],
) -> anyhow::Result<Vec<Series>> {
    let with_host: Vec<(&str, SocketAddr, String)> = servers
        .iter()
        .map(|(name, addr)| (*name, *addr, "bench.local".to_owned()))
        .collect();
    run_hosts(load_rt, plan, connections, path, &with_host)
}

/// As [`run`], each server with the `Host` header its requests carry.
pub fn run_hosts(
    load_rt: &tokio::runtime::Runtime,
    plan: Plan,
    connections: usize,
    path: &str,
    servers: &[(&str, SocketAddr, String)],
) -> anyhow::Result<Vec<Series>> {
    let once = |addr, host: &str, secs| {
        load_rt.block_on(load::run(
            addr,
            host,
            path,
            connections,
            Duration::from_secs(secs),
        ))
    };
    for (_, addr, host) in servers {
        once(*addr, host, 1)?;
    }
    let mut series: Vec<Series> = servers
        .iter()
        .map(|(name, _, _)| Series {
            name: (*name).to_owned(),
            rounds: Vec::new(),
        })
        .collect();
    for round in 0..plan.rounds {
        let mut line = format!("  round {round}:");
        for ((_, addr, host), s) in servers.iter().zip(series.iter_mut()) {
            let r = once(*addr, host, plan.secs)?;
            line += &format!(
                " | {} {:.0} req/s p50 {} µs p99 {} µs",
                s.name, r.rps, r.p50_us, r.p99_us
            );
            s.rounds.push(r);
        }
        println!("{line}");
    }
    Ok(series)
}
