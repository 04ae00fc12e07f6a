//! Telemetry: Prometheus metrics (tracing setup lives in `main.rs`).

pub mod metrics;
