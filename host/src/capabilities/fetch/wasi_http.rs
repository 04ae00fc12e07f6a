//! Outbound `wasi:http` requests from proxy-world components go through the
//! same gates as `fetch`: the app's allow-list, the host's address policy,
//! the subrequest budget and the request's deadline. The request body is
//! read whole (capped), the response arrives whole (capped).

use super::{
    FetchCtx, FetchError, MAX_FETCH_RESPONSE_BYTES, Outbound, strip_hop_by_hop, strip_inbound,
};
use http_body_util::{BodyExt, Full, Limited};
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
        let checked = self.client().and_then(|client| {
            super::check_allowed(&self.allow, request.uri())?;
            self.budget().take()?;
            Ok(client)
        });
        let deadline = self.deadline_within(options.and_then(|o| o.first_byte_timeout));
        Box::new(async move {
            let client = checked.map_err(to_error)?;
            let (mut parts, body) = request.into_parts();
            let body = Limited::new(body, MAX_FETCH_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|_| Error::HttpRequestBodySize(None))?
                .to_bytes();
            strip_hop_by_hop(&mut parts.headers);
            parts.headers.remove(http::header::HOST);
            let outbound = Outbound {
                method: parts.method,
                uri: parts.uri,
                headers: parts.headers,
                body,
            };
            let inbound = strip_inbound(client.send(outbound, deadline).await.map_err(to_error)?);
            let mut response = http::Response::new(
                Full::new(inbound.body)
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            *response.status_mut() =
                http::StatusCode::from_u16(inbound.status).map_err(|_| Error::HttpProtocolError)?;
            *response.headers_mut() = inbound.headers;
            let done: Done = Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}
