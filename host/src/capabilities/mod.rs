//! The `verge:edge` interfaces, one module each: a context type carried in
//! the request's store, the WIT `Host` impl over it, and `add_to_linker`.

pub mod config;
pub mod kv;
pub mod log;

use crate::runtime::RequestStateLinker;

/// Links every capability this host provides.
pub(crate) fn add_to_linker(linker: &mut RequestStateLinker) -> wasmtime::Result<()> {
    config::add_to_linker(linker)?;
    kv::add_to_linker(linker)?;
    log::add_to_linker(linker)?;
    Ok(())
}
