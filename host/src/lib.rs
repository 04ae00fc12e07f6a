//! Verge: a self-hosted, multi-tenant edge-function host on wasmtime.
//!
//! The library behind the `verge` binary. The pieces, in request order:
//! [`server`] accepts and applies HTTP caps, [`tenancy`] routes to a
//! deployment, [`runtime`] runs the guest in a fresh pooled instance under
//! its [`runtime::Limits`], and [`capabilities`] are what the guest can call.

pub mod admin;
pub mod capabilities;
pub mod cli;
pub mod daemon;
pub mod guest_build;
pub mod names;
pub mod runtime;
pub mod server;
pub mod storage;
pub mod telemetry;
pub mod tenancy;
