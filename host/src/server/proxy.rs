//! The data-plane path of a `wasi:http/proxy` component: the request body
//! streams in under the app's cap, the response streams out under its cap
//! (a body past it is cut and logged), and the instance and admission
//! slots stay held until the guest has finished writing.

use super::body::BodyError;
use super::dispatch::{Dispatcher, InFlight};
use super::error::RequestError;
use super::head::check_declared_length;
use super::{BoxError, DataBody};
use crate::runtime::RequestContext;
use crate::tenancy::Deployment;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

impl Dispatcher {
    /// Admits and runs one request through a proxy-world component.
    pub(super) async fn run_proxy(
        &self,
        req: Request<Incoming>,
        uri: String,
        deployment: &Deployment,
        ctx: RequestContext,
    ) -> Result<Response<DataBody>, RequestError> {
        let limits = deployment.http_limits;
        check_declared_length(&req, limits.max_request_body_bytes)?;
        let https = uri.starts_with("https://");
        let (mut parts, body) = req.into_parts();
        parts.uri = uri
            .parse()
            .map_err(|_| RequestError::BadRequest("the request URI is not valid".into()))?;
        // Streamed to the guest, not buffered by the host: timed, capped,
        // outside the buffered-body budget.
        let body = self
            .guard_body(body, limits.max_request_body_bytes, false)
            .map_err(|err| match err {
                BodyError::TooLarge { .. } => wasmtime_wasi_http::Error::HttpRequestBodySize(None),
                err => wasmtime_wasi_http::Error::InternalError(Some(err.to_string())),
            });
        let request = Request::from_parts(parts, body);
        let permits = self.admit(deployment).await?;
        let in_flight = InFlight::start(self.metrics().clone());
        // Slots are released, and usage and late failures recorded, when
        // the guest is done (after the body has streamed), on its own task.
        let done = self.when_guest_done(deployment, (in_flight, permits), "proxy component");
        let head = deployment
            .function
            .handle_proxy(request, https, ctx, done)
            .await;
        let response = head.map_err(RequestError::from)?;
        let cap = limits.max_response_body_bytes;
        let (tenant, app) = (deployment.tenant.clone(), deployment.app.clone());
        Ok(response.map(move |body| {
            Limited::new(body, cap)
                .map_err(move |err| -> BoxError {
                    if err.is::<http_body_util::LengthLimitError>() {
                        tracing::warn!(
                            tenant = &*tenant,
                            app = &*app,
                            cap,
                            "response body over the cap; the response was cut"
                        );
                    }
                    err
                })
                .boxed_unsync()
        }))
    }
}
