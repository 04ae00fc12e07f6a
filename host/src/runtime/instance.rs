//! One loaded function: its `InstancePre` and limits, and the per-request
//! path (fresh store → instantiate → `handle` → classify the outcome).

use super::error::{CallError, GuestError, classify};
use super::limits::{FUEL_YIELD_INTERVAL, Limits};
use super::state::{RequestContext, RequestState};
use crate::capabilities::bindings::FunctionIndices;
use crate::capabilities::bindings::http_types::{Request, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use wasmtime::component::{Component, ComponentExportIndex, Instance, InstancePre};
use wasmtime::{Engine, Store};

/// The measured outcome of one guest call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Fuel consumed.
    pub fuel: u64,
    /// Peak linear memory in bytes.
    pub peak_memory: usize,
}

/// The world a component exports: a Verge function, or a standard
/// `wasi:http/proxy` component.
pub(crate) enum Pre {
    Verge(VergePre),
    Proxy(wasmtime_wasi_http::p2::bindings::ProxyPre<RequestState>),
}

/// A linked Verge function: its exports, its `deferred.run` when it
/// exports `verge:edge/deferred`, and whether it imports
/// `verge:edge/respond` (it may start its response before returning).
#[derive(Clone)]
pub(crate) struct VergePre {
    pre: InstancePre<RequestState>,
    indices: FunctionIndices,
    pub(super) deferred: Option<ComponentExportIndex>,
    streams: bool,
    reads_body: bool,
}

/// The interface whose `run` the host calls after the response when the
/// guest asked with `background.defer`.
pub const DEFERRED_INTERFACE: &str = "verge:edge/deferred@0.1.1";

/// The interface that lets a function start its response early; a
/// component that imports it is served streaming.
pub const RESPOND_INTERFACE: &str = "verge:edge/respond";

/// The interface that hands a function its request body as a stream; the
/// server does not buffer the body of a component that imports it.
pub const INCOMING_INTERFACE: &str = "verge:edge/incoming";

impl VergePre {
    /// Checks that `component` exports the `verge:edge/function` world.
    pub(super) fn new(
        component: &Component,
        pre: InstancePre<RequestState>,
    ) -> wasmtime::Result<Self> {
        let indices = FunctionIndices::new(&pre)?;
        let deferred = component
            .get_export_index(None, DEFERRED_INTERFACE)
            .and_then(|iface| component.get_export_index(Some(&iface), "run"));
        let imports = |interface: &str| {
            component
                .component_type()
                .imports(component.engine())
                .any(|(name, _)| name.split('@').next() == Some(interface))
        };
        Ok(Self {
            pre,
            indices,
            deferred,
            streams: imports(RESPOND_INTERFACE),
            reads_body: imports(INCOMING_INTERFACE),
        })
    }
}

/// The world of a Verge-SDK function.
pub const VERGE_WORLD: &str = "verge:edge/function";
/// The world of a standard `wasi:http` component.
pub const PROXY_WORLD: &str = "wasi:http/proxy";

/// A compiled, linked function ready to serve requests.
pub struct Function {
    name: Arc<str>,
    pub(super) engine: Engine,
    pub(super) pre: Pre,
    pub(super) limits: Limits,
    pub(super) metering: bool,
}

impl Function {
    pub(super) fn new(
        name: &str,
        engine: Engine,
        pre: Pre,
        limits: Limits,
        metering: bool,
    ) -> Self {
        Self {
            name: name.into(),
            engine,
            pre,
            limits,
            metering,
        }
    }

    /// The function's name (for logs).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The world it exports: [`VERGE_WORLD`] or [`PROXY_WORLD`].
    pub fn world(&self) -> &'static str {
        match self.pre {
            Pre::Verge(_) => VERGE_WORLD,
            Pre::Proxy(_) => PROXY_WORLD,
        }
    }

    /// Whether it is a Verge function that may start its response before
    /// returning (served through [`Function::handle_streaming`]).
    pub fn streams(&self) -> bool {
        matches!(&self.pre, Pre::Verge(pre) if pre.streams)
    }

    /// Whether it is a Verge function that reads its request body as a
    /// stream (the server then does not buffer it).
    pub fn reads_body_as_stream(&self) -> bool {
        matches!(&self.pre, Pre::Verge(pre) if pre.reads_body)
    }

    /// Whether it is a `wasi:http/proxy` component (served streaming,
    /// through [`Function::handle_proxy`]).
    pub fn is_proxy(&self) -> bool {
        matches!(self.pre, Pre::Proxy(_))
    }

    /// The limits every request runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs one request in a fresh instance under this function's limits.
    pub async fn handle(
        &self,
        req: Request,
        mut ctx: RequestContext,
    ) -> (Result<Response, GuestError>, Usage) {
        let Pre::Verge(pre) = &self.pre else {
            return (
                Err(GuestError::Instantiate(
                    "a wasi:http/proxy component is served through handle_proxy".into(),
                )),
                Usage::default(),
            );
        };
        let limits = self.limits;
        let admission = std::mem::take(&mut ctx.admission);
        let mut store = match self.fresh_store(ctx) {
            Ok(store) => store,
            Err(err) => return (Err(err), Usage::default()),
        };
        store
            .data_mut()
            .capabilities
            .background
            .allow_defer(pre.deferred.is_some());
        // The epoch deadline stops running wasm; this timer also stops a
        // guest parked in a host call. A tick of slack lets the precise
        // epoch trap win when both fire.
        let deadline = Instant::now() + limits.wall_clock + DEADLINE_SLACK;
        let outcome = tokio::time::timeout_at(deadline, call(pre, &mut store, &req)).await;
        let (outcome, instance) = match outcome {
            Ok(Ok((response, instance))) => (Ok(Ok(response)), Some(instance)),
            Ok(Err(err)) => (Ok(Err(err)), None),
            Err(elapsed) => (Err(elapsed), None),
        };
        let concluded = conclude(&store, &limits, self.metering, outcome);
        let after = store.data_mut().capabilities.background.take();
        if let Some(instance) = instance
            && !after.is_empty()
        {
            let run = pre.deferred;
            super::lane::spawn(async move {
                super::after_response::run(&mut store, instance, run, after, deadline).await;
                drop(admission);
            });
        }
        concluded
    }
}

/// What a finished (or timed-out) guest call comes to: the outcome as the
/// client will see it, and the fuel and peak memory it used.
pub(super) fn conclude<T>(
    store: &Store<RequestState>,
    limits: &Limits,
    metering: bool,
    outcome: Result<Result<T, CallError>, tokio::time::error::Elapsed>,
) -> (Result<T, GuestError>, Usage) {
    let usage = Usage {
        fuel: if metering {
            limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0))
        } else {
            0
        },
        peak_memory: store.data().limiter.peak_memory,
    };
    let result = match outcome {
        Err(_elapsed) => Err(GuestError::Timeout),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(classify(&err, store.data().limiter.memory_denied)),
    };
    // A Rust panic traps; what the guest's panic hook printed says why.
    let result = match (result, store.data().capabilities.log.panic_message()) {
        (Err(GuestError::Trap(_)), Some(panic)) => Err(GuestError::Trap(format!("guest {panic}"))),
        (result, _) => result,
    };
    (result, usage)
}

impl Function {
    /// A fresh store for one request of this function: its state, the
    /// memory limiter, fuel and the epoch deadline set from the limits.
    pub(super) fn fresh_store(
        &self,
        ctx: RequestContext,
    ) -> Result<Store<RequestState>, GuestError> {
        let limits = &self.limits;
        let mut store = Store::new(&self.engine, RequestState::new(limits, ctx));
        store.limiter_async(|state| &mut state.limiter);
        let prepared = (|| -> wasmtime::Result<()> {
            if self.metering {
                store.set_fuel(limits.fuel)?;
                store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))?;
            }
            store.set_epoch_deadline(limits.epoch_ticks());
            store.epoch_deadline_trap();
            Ok(())
        })();
        prepared.map_err(|err| GuestError::Instantiate(format!("{err:#}")))?;
        Ok(store)
    }
}

pub(super) async fn call(
    pre: &VergePre,
    store: &mut Store<RequestState>,
    req: &Request,
) -> Result<(Response, Instance), CallError> {
    let instance = pre
        .pre
        .instantiate_async(&mut *store)
        .await
        .map_err(CallError::Instantiate)?;
    let exports = pre
        .indices
        .load(&mut *store, &instance)
        .map_err(CallError::Instantiate)?;
    let response = exports
        .verge_edge_handler()
        .call_handle(&mut *store, req)
        .await
        .map_err(CallError::Call)?;
    Ok((response, instance))
}

/// How long past the deadline the host waits before giving up on a guest
/// call entirely; exposed for tests of the wall-clock limit.
pub const DEADLINE_SLACK: Duration = super::limits::EPOCH_TICK;
