//! `verge:edge/config`: per-app variables and secrets, read-only to guests.

use crate::runtime::{RequestState, RequestStateLinker, bindings::verge::edge::config as wit};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::HasSelf;

/// The variables one app can read. Cheap to clone: shared by every request.
#[derive(Debug, Clone, Default)]
pub struct ConfigCtx {
    vars: Arc<BTreeMap<String, String>>,
}

impl ConfigCtx {
    /// A context over `vars`.
    pub fn new(vars: BTreeMap<String, String>) -> Self {
        Self {
            vars: Arc::new(vars),
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

impl wit::Host for ConfigCtx {
    fn get(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(ConfigCtx::get(self, &name).map(str::to_owned))
    }
}

pub(super) fn add_to_linker(linker: &mut RequestStateLinker) -> wasmtime::Result<()> {
    wit::add_to_linker::<RequestState, HasSelf<ConfigCtx>>(linker, |state| &mut state.config)
}
