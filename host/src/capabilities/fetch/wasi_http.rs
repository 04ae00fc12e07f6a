//! Outbound `wasi:http` requests from proxy-world components go through the
//! same gates as `fetch`: the app's allow-list, the host's address policy,
//! the subrequest budget and the request's deadline. Both bodies stream:
//! the guest's request body goes to the origin as the guest writes it, and
//! the response body reaches the guest as it arrives (read by the
//! deadline), so neither is held whole in host memory. wasmtime-wasi-http
//! runs each outgoing request on a task of its own, so a guest's requests
//! run at once, but each takes one of the request's in-flight slots until
//! its response head is in, as a `fetch` does (at most
//! `MAX_IN_FLIGHT_SUBREQUESTS`, 6: they used to skip the slot, 50 at once).

use super::body::OriginBody;
use super::{FetchCtx, FetchError, strip_hop_by_hop};
use http_body_util::BodyExt;
use std::future::Future;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

fn to_error(err: FetchError) -> Error {
    match err {
        FetchError::Denied(why) => {
            tracing::debug!(why, "outbound wasi:http request denied");
            Error::HttpRequestDenied
        }
        FetchError::Timeout => Error::ConnectionTimeout,
        FetchError::Dns(why) => Error::DnsError {
            rcode: Some(why),
            info_code: None,
        },
        FetchError::Connection(why) => Error::InternalError(Some(why)),
        FetchError::TooManySubrequests(limit) => {
            Error::InternalError(Some(format!("more than {limit} subrequests")))
        }
        FetchError::TooLarge(limit) => Error::HttpResponseBodySize(u64::try_from(limit).ok()),
        FetchError::InvalidRequest(why) => Error::InternalError(Some(why)),
    }
}

type Done = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for FetchCtx {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Done,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, Done), Error>> + Send> {
        drop(fut);
        let budget = self.budget();
        let checked = self.client().and_then(|client| {
            super::check_allowed(&self.allow, request.uri())?;
            budget.take()?;
            Ok(client)
        });
        let deadline = self.deadline_within(options.and_then(|o| o.first_byte_timeout));
        let metrics = self.metered().map(|(m, _)| m.clone());
        Box::new(async move {
            let client = checked.map_err(to_error)?;
            let (open, held) = budget.places(deadline, metrics).await.map_err(to_error)?;
            let (mut parts, body) = request.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            parts.headers.remove(http::header::HOST);
            let body = body
                .map_err(|err| Box::new(err) as Box<dyn std::error::Error + Send + Sync>)
                .boxed_unsync();
            let request = http::Request::from_parts(parts, body);
            let response = client
                .open_streaming(request, deadline)
                .await
                .map_err(to_error)?;
            drop(held);
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let body = OriginBody::streaming(body, deadline)
                .holding(open)
                .map_err(to_error)
                .boxed_unsync();
            let done: Done = Box::new(async { Ok(()) });
            Ok((http::Response::from_parts(parts, body), done))
        })
    }
}
