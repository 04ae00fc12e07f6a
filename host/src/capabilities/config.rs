//! `verge:edge/config`: per-app variables and secrets, read-only to guests.

use super::bindings::verge::edge::config as wit;
use super::{PerRequest, RequestScope};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

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

impl PerRequest for ConfigCtx {
    /// The same variables: nothing in them is per request.
    fn for_request(self, _scope: &RequestScope) -> Self {
        self
    }
}

/// Links `verge:edge/config` into `linker`, over the context `get` projects.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ConfigCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<ConfigCtx>>(linker, get)
}
