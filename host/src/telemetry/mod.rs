//! Telemetry: Prometheus metrics, the access log and the per-app guest
//! log rings (tracing setup lives in `main.rs`).

pub mod access_log;
pub mod log_limit;
pub mod log_ring;
pub mod metrics;
pub mod process;
