//! Serving a Verge function that may start its response before it returns
//! (it imports `verge:edge/respond`): like a proxy component, the call runs
//! on a task of its own and the server gets the head as soon as the guest
//! sends it, while the body streams and the guest keeps running under the
//! same limits. A function that returns without starting a response has
//! that response sent the same way. Work after the response follows on the
//! same task.

use super::error::GuestError;
use super::instance::{DEADLINE_SLACK, Function, Pre, Usage, call, conclude};
use super::proxy::ProxyDone;
use super::state::RequestContext;
use crate::capabilities::bindings::http_types::Request;
use crate::capabilities::respond::{StartedBody, StartedResponse};
use tokio::sync::oneshot;
use tokio::time::Instant;

impl Function {
    /// Runs one request of a streaming Verge function. Returns the
    /// response head as soon as the guest starts it (or returns), or the
    /// failure that came first; a written body is capped at `cap` bytes.
    /// `done` is called with the guest's end and its usage, after any work
    /// after the response.
    pub async fn handle_streaming(
        &self,
        req: Request,
        ctx: RequestContext,
        cap: usize,
        done: impl ProxyDone,
    ) -> Result<StartedResponse, GuestError> {
        let Pre::Verge(pre) = &self.pre else {
            done(Ok(()), Usage::default());
            return Err(GuestError::Instantiate(
                "a wasi:http/proxy component is served through handle_proxy".into(),
            ));
        };
        let (limits, metering) = (self.limits, self.metering);
        let mut store = match self.fresh_store(ctx) {
            Ok(store) => store,
            Err(err) => {
                done(Ok(()), Usage::default());
                return Err(err);
            }
        };
        let (start_tx, start_rx) = oneshot::channel();
        let capabilities = &mut store.data_mut().capabilities;
        capabilities.background.allow_defer(pre.deferred.is_some());
        capabilities.respond.begin(start_tx, cap);
        let pre = pre.clone();
        let (finished_tx, finished_rx) = oneshot::channel::<GuestError>();
        let deadline = Instant::now() + limits.wall_clock + DEADLINE_SLACK;
        tokio::spawn(async move {
            let outcome = tokio::time::timeout_at(deadline, call(&pre, &mut store, &req)).await;
            let (outcome, returned) = match outcome {
                Ok(Ok((response, instance))) => (Ok(Ok(())), Some((response, instance))),
                Ok(Err(err)) => (Ok(Err(err)), None),
                Err(elapsed) => (Err(elapsed), None),
            };
            let (result, usage) = conclude(&store, &limits, metering, outcome);
            let respond = &mut store.data_mut().capabilities.respond;
            // A written body ends with the handler; a failure cuts it short.
            respond
                .end_body(result.as_ref().err().map(ToString::to_string))
                .await;
            let unsent = respond.take_start();
            match (&result, unsent) {
                (Err(err), _) => {
                    let _ = finished_tx.send(err.clone());
                }
                (Ok(()), Some(start)) => {
                    if let Some((response, _)) = &returned {
                        let _ = start.send(StartedResponse {
                            status: response.status,
                            headers: response.headers.clone(),
                            body: StartedBody::Whole(response.body.clone()),
                        });
                    }
                }
                (Ok(()), None) => {}
            }
            let after = store.data_mut().capabilities.background.take();
            if let Some((_, instance)) = returned
                && !after.is_empty()
            {
                super::after_response::run(&mut store, instance, pre.deferred, after, deadline)
                    .await;
            }
            drop(store);
            done(result, usage);
        });
        super::proxy::head_or_failure(
            start_rx,
            finished_rx,
            "the function returned without a response",
        )
        .await
    }
}
