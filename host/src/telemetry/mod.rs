//! Telemetry: Prometheus metrics (tracing setup lives in `main.rs`).

pub mod access_log;
pub mod metrics;
