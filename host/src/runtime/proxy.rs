//! Serving a standard `wasi:http/proxy` component: the request streams in,
//! the response streams out, and the guest keeps running while its body is
//! written, under the same fuel, memory and wall-clock limits as a Verge
//! function. Outbound `wasi:http` calls go through the fetch gates (see
//! `capabilities::fetch::wasi_http`).

use super::error::CallError;
use super::error::GuestError;
use super::instance::{DEADLINE_SLACK, Function, Pre, Usage, conclude};
use super::state::RequestContext;
use bytes::Bytes;
use hyper::body::Body;
use tokio::sync::oneshot;
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// How a proxy-world request went once its guest finished (which may be
/// after the response head was sent, while the body streamed): called on
/// the guest's own task, so finishing a request costs no second task.
pub trait ProxyDone: FnOnce(Result<(), GuestError>, Usage) + Send + 'static {}

impl<F: FnOnce(Result<(), GuestError>, Usage) + Send + 'static> ProxyDone for F {}

impl Function {
    /// Runs one request through a `wasi:http/proxy` component. Returns the
    /// response head as soon as the guest sets it (its body streams while
    /// the guest runs), or the error if the guest failed first; `done` is
    /// called with the guest's end and its usage.
    pub async fn handle_proxy<B>(
        &self,
        req: http::Request<B>,
        https: bool,
        ctx: RequestContext,
        done: impl ProxyDone,
    ) -> Result<http::Response<HyperOutgoingBody>, GuestError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let Pre::Proxy(pre) = &self.pre else {
            done(Ok(()), Usage::default());
            return Err(GuestError::Instantiate(
                "not a wasi:http/proxy component".into(),
            ));
        };
        let limits = self.limits;
        let metering = self.metering;
        let mut store = match self.fresh_store(ctx) {
            Ok(store) => store,
            Err(err) => {
                done(Ok(()), Usage::default());
                return Err(err);
            }
        };
        let (response_tx, response_rx) = oneshot::channel();
        let scheme = if https { Scheme::Https } else { Scheme::Http };
        let resources = {
            let mut http = store.data_mut().http();
            http.new_incoming_request(scheme, req)
                .and_then(|req| Ok((req, http.new_response_outparam(response_tx)?)))
        };
        let (request, outparam) = match resources {
            Ok(pair) => pair,
            Err(err) => {
                done(Ok(()), Usage::default());
                return Err(GuestError::Instantiate(format!("{err:#}")));
            }
        };
        let pre = pre.clone();
        let (finished_tx, finished_rx) = oneshot::channel::<GuestError>();
        tokio::spawn(async move {
            let run = async {
                let proxy = pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(CallError::Instantiate)?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, outparam)
                    .await
                    .map_err(CallError::Call)
            };
            let outcome = tokio::time::timeout(limits.wall_clock + DEADLINE_SLACK, run).await;
            let (result, usage) = conclude(&store, &limits, metering, outcome);
            if let Err(err) = &result {
                let _ = finished_tx.send(err.clone());
            }
            drop(store);
            done(result, usage);
        });
        // The head, or the failure that came first.
        match head_or_failure(
            response_rx,
            finished_rx,
            "the component returned without setting a response",
        )
        .await?
        {
            Ok(response) => Ok(response),
            Err(code) => Err(answered_with_error(&code)),
        }
    }
}

/// What a call running on its own task sends first: its response head on
/// `head`, or its failure on `finished`. A head channel dropped unsent
/// means the task has ended, and its failure (if any) is the reason;
/// `missing` says what happened when there is none.
pub(super) async fn head_or_failure<T>(
    head: oneshot::Receiver<T>,
    mut finished: oneshot::Receiver<GuestError>,
    missing: &'static str,
) -> Result<T, GuestError> {
    let no_response = || GuestError::Trap(missing.into());
    tokio::select! {
        biased;
        head = head => match head {
            Ok(head) => Ok(head),
            Err(_dropped) => Err((&mut finished).await.unwrap_or_else(|_| no_response())),
        },
        failed = &mut finished => Err(failed.unwrap_or_else(|_| no_response())),
    }
}

fn answered_with_error(code: &ErrorCode) -> GuestError {
    GuestError::Trap(format!("the component answered with error {code:?}"))
}
