//! Work after the response (`verge:edge/background`): once the client has
//! its response, the request's store keeps going in a task of its own to
//! let handed-over fetches finish and to call the guest's `deferred.run`.
//! It is the same store, so the request's fuel, memory and subrequest
//! budgets still hold, and everything stops at the request's deadline: the
//! store, its pending fetches and its pool slot are dropped then at the
//! latest.

use super::error::{CallError, classify};
use super::state::RequestState;
use crate::capabilities::background::AfterResponse;
use crate::capabilities::log::Level;
use tokio::time::Instant;
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, Instance};

/// Runs `work` and whatever more the guest leaves while doing it, until
/// `deadline`.
pub(super) async fn run(
    store: &mut Store<RequestState>,
    instance: Instance,
    deferred: Option<ComponentExportIndex>,
    work: AfterResponse,
    deadline: Instant,
) {
    let finished =
        tokio::time::timeout_at(deadline, run_all(store, instance, deferred, work)).await;
    if finished.is_err() {
        report(store, "background work stopped at the request's deadline");
        count(store, "deadline", "timeout");
    }
}

async fn run_all(
    store: &mut Store<RequestState>,
    instance: Instance,
    deferred: Option<ComponentExportIndex>,
    mut work: AfterResponse,
) {
    // `deferred.run` runs once; fetches it hands over are waited for too.
    let mut deferred = deferred;
    loop {
        if work.deferred
            && let Some(index) = deferred.take()
        {
            store.data_mut().capabilities.background.allow_defer(false);
            run_deferred(store, instance, index).await;
        }
        for fetch in std::mem::take(&mut work.fetches) {
            match fetch.outcome().await {
                Ok(inbound) => {
                    let line = format!("background fetch done: {}", inbound.status);
                    store.data().capabilities.log.write(Level::Debug, &line);
                    count(store, "fetch", "ok");
                }
                Err(err) => {
                    report(store, &format!("background fetch failed: {err}"));
                    count(store, "fetch", err.kind());
                }
            }
        }
        work = store.data_mut().capabilities.background.take();
        if work.fetches.is_empty() {
            return;
        }
    }
}

/// Calls the guest's `deferred.run`; a trap (CPU or memory budget, a
/// panic) is logged and ends it.
async fn run_deferred(
    store: &mut Store<RequestState>,
    instance: Instance,
    index: ComponentExportIndex,
) {
    let func = match instance.get_typed_func::<(), ()>(&mut *store, index) {
        Ok(func) => func,
        Err(err) => {
            report(store, &format!("deferred.run has the wrong type: {err:#}"));
            return;
        }
    };
    match func.call_async(&mut *store, ()).await {
        Ok(()) => count(store, "deferred", "ok"),
        Err(err) => {
            let why = classify(&CallError::Call(err), store.data().limiter.memory_denied);
            report(store, &format!("deferred work stopped: {why}"));
            count(store, "deferred", why.kind());
        }
    }
}

/// Logs a background failure with the request's id (the app's log and the
/// host's).
fn report(store: &Store<RequestState>, message: &str) {
    store.data().capabilities.log.write(Level::Warn, message);
}

fn count(store: &Store<RequestState>, op: &'static str, outcome: &'static str) {
    if let Some((metrics, tenant)) = store.data().capabilities.fetch.metered() {
        metrics.background(tenant, op, outcome);
    }
}
