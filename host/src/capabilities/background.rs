//! `verge:edge/background`: work that finishes after the response is sent
//! (Workers' `ctx.waitUntil`). The guest hands over started fetches and
//! asks for its `deferred.run` export to be called; the runtime does both
//! once the response is on its way, in the same store, so the request's
//! fuel, wall-clock and subrequest budgets still hold
//! (`runtime::instance`).

use super::bindings::verge::edge::background as wit;
use super::fetch::PendingFetch;
use super::view::{TableView, WithTable};
use super::{PerRequest, RequestScope};
use wasmtime::component::{Linker, Resource};

/// The work one request leaves for after its response.
#[derive(Default)]
pub struct BackgroundCtx {
    /// Fetches handed over with `wait-until`, in order. Bounded by the
    /// subrequest budget: each was a start.
    fetches: Vec<PendingFetch>,
    /// Whether the guest asked for `deferred.run`.
    deferred: bool,
    /// Whether the component exports `verge:edge/deferred`.
    can_defer: bool,
}

impl Clone for BackgroundCtx {
    /// Work belongs to one request: a copy starts with none.
    fn clone(&self) -> Self {
        Self {
            can_defer: self.can_defer,
            ..Self::default()
        }
    }
}

impl PerRequest for BackgroundCtx {
    fn for_request(self, _scope: &RequestScope) -> Self {
        self.clone()
    }
}

/// What is left to do once the response is sent.
#[derive(Default)]
pub struct AfterResponse {
    /// Fetches to let finish.
    pub fetches: Vec<PendingFetch>,
    /// Whether to call the guest's `deferred.run`.
    pub deferred: bool,
}

impl AfterResponse {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.fetches.is_empty() && !self.deferred
    }
}

impl BackgroundCtx {
    /// Lets `defer` succeed: the component exports `verge:edge/deferred`.
    pub fn allow_defer(&mut self, exported: bool) {
        self.can_defer = exported;
    }

    /// Takes the work the guest left, leaving none.
    pub fn take(&mut self) -> AfterResponse {
        AfterResponse {
            fetches: std::mem::take(&mut self.fetches),
            deferred: std::mem::take(&mut self.deferred),
        }
    }
}

/// What background host functions get: their context and the table that
/// holds pending fetches.
pub type BackgroundView<'a> = TableView<'a, BackgroundCtx>;

impl wit::Host for BackgroundView<'_> {
    fn wait_until(&mut self, work: Resource<PendingFetch>) -> wasmtime::Result<()> {
        let fetch = self.table.delete(work)?;
        self.ctx.fetches.push(fetch);
        Ok(())
    }

    fn defer(&mut self) -> wasmtime::Result<Result<(), String>> {
        if !self.ctx.can_defer {
            return Ok(Err(
                "this component does not export verge:edge/deferred (build it with the Verge SDK)"
                    .into(),
            ));
        }
        self.ctx.deferred = true;
        Ok(Ok(()))
    }
}

/// Links `verge:edge/background` into `linker`, over the view `get`
/// projects.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> BackgroundView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, WithTable<BackgroundCtx>>(linker, get)
}
