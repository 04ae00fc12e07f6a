//! One request: caps → route → admission → guest → validated response.

use super::body::{BodyBudget, BodyError, GuardedBody, read_all};
use super::client_ip::TrustedProxies;
use super::connection::ConnectionGate;
use super::error::RequestError;
use super::guest_io::{ReadRequest, to_http};
use super::head::{Head, check_declared_length, check_head, options_star};
use super::limits::{ADMISSION_QUEUE_TIMEOUT, ConnectionLimits};
use super::request_id::RequestIds;
use super::{DataBody, full_body};
use crate::capabilities::fetch::{FetchError, OriginBody};
use crate::runtime::{GuestRequest, GuestResponse, RequestContext, Usage};
use crate::telemetry::access_log::{AccessLog, AccessRecord};
use crate::telemetry::metrics::Metrics;
use crate::tenancy::{Deployment, HttpLimits, RouteTable};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "verge-request-id";
/// The response header naming the error on an error page.
pub const ERROR_HEADER: &str = "verge-error";

/// Shared by every connection of one server.
pub struct Dispatcher {
    access_log: Option<AccessLog>,
    metrics: Arc<Metrics>,
    routes: Arc<dyn RouteTable>,
    limits: HttpLimits,
    admission: Arc<super::admission::PoolAdmission>,
    ids: RequestIds,
    trusted_proxies: TrustedProxies,
    connections: Arc<ConnectionGate>,
    body_budget: BodyBudget,
    /// Bytes of whole responses not yet read by their peers.
    response_budget: BodyBudget,
    failure_logs: Arc<crate::telemetry::log_limit::LogLimit>,
}

/// The TCP peer of a request, put in its extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl Dispatcher {
    /// A dispatcher over `routes` admitting at most `max_in_flight` guest
    /// calls at once (the instance pool's size).
    pub fn new(
        routes: Arc<dyn RouteTable>,
        limits: HttpLimits,
        max_in_flight: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            access_log: None,
            metrics,
            routes,
            limits,
            admission: Arc::new(super::admission::PoolAdmission::new(max_in_flight)),
            ids: RequestIds::default(),
            trusted_proxies: TrustedProxies::default(),
            connections: ConnectionGate::new(ConnectionLimits::default()),
            body_budget: BodyBudget::new(ConnectionLimits::default().buffered_body_bytes),
            response_budget: BodyBudget::new(ConnectionLimits::default().buffered_response_bytes),
            failure_logs: Default::default(),
        }
    }

    /// Applies `limits` to the connections of the listeners serving this
    /// dispatcher and to the request bodies they carry.
    pub fn with_connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.body_budget = BodyBudget::new(limits.buffered_body_bytes);
        self.response_budget = BodyBudget::new(limits.buffered_response_bytes);
        self.connections = ConnectionGate::new(limits);
        self
    }

    /// The connection slots shared by this dispatcher's listeners.
    pub fn connection_gate(&self) -> &Arc<ConnectionGate> {
        &self.connections
    }

    /// `body` under `cap` and this server's body policy; `budgeted` when
    /// the host buffers it (counts against the buffered-body budget).
    pub(super) fn guard_body(
        &self,
        body: Incoming,
        cap: usize,
        budgeted: bool,
    ) -> GuardedBody<Incoming> {
        let budget = budgeted.then(|| self.body_budget.clone());
        GuardedBody::new(body, cap, self.connections.limits().body, budget)
    }

    /// Believes `Forwarded` / `X-Forwarded-For` from these peers when
    /// telling a guest its client's address.
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// Writes one access-log line per request to `log`.
    pub fn with_access_log(mut self, log: Option<AccessLog>) -> Self {
        self.access_log = log;
        self
    }

    /// Serves one request; never fails: every error becomes an error page.
    pub async fn serve(&self, req: Request<Incoming>, local: SocketAddr) -> Response<DataBody> {
        let started = Instant::now();
        // An incoming id is kept only from a trusted proxy (as `Forwarded`
        // is): a client's own would let it duplicate ids in the logs.
        let from_proxy = req
            .extensions()
            .get::<PeerAddr>()
            .is_some_and(|peer| self.trusted_proxies.trusts(peer.0.ip()));
        let incoming_id = req
            .headers()
            .get("x-request-id")
            .filter(|_| from_proxy)
            .and_then(|v| v.to_str().ok());
        let request_id: Arc<str> = self.ids.take_or_make(incoming_id).into();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let (outcome, deployment, usage) = self.run(req, local, &request_id).await;
        let outcome = outcome.and_then(|response| self.charge_response(response));
        let mut response = match outcome {
            Ok(response) => response,
            Err(err) => {
                self.log_failure(&err, deployment.as_deref(), &request_id);
                error_page(&err, &request_id).map(full_body)
            }
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        let (tenant, app, version) = deployment
            .as_deref()
            .map_or(("-", "-", 0), |d| (&*d.tenant, &*d.app, d.version));
        let error = response
            .headers()
            .get(ERROR_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match deployment.as_deref() {
            Some(d) => self.metrics.request_of(
                &d.meters,
                response.status().as_u16(),
                error,
                started.elapsed(),
                usage.fuel,
                usage.peak_memory,
            ),
            None => self.metrics.request(
                tenant,
                app,
                response.status().as_u16(),
                error,
                started.elapsed(),
                usage.fuel,
                usage.peak_memory,
            ),
        }
        if let Some(ring) = deployment.as_deref().and_then(|d| d.logs.as_ref()) {
            ring.push_request(
                &request_id,
                crate::telemetry::log_ring::RequestLine {
                    method: method.as_str().to_owned(),
                    path: path.clone(),
                    status: response.status().as_u16(),
                    micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    error: (!error.is_empty()).then(|| error.to_owned()),
                },
            );
        }
        if let Some(log) = &self.access_log {
            log.record(&AccessRecord {
                request_id: &request_id,
                tenant,
                app,
                version,
                method: method.as_str(),
                path: &path,
                status: response.status().as_u16(),
                error: if error.is_empty() { "-" } else { error },
                micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                fuel: usage.fuel,
                peak_memory: usage.peak_memory,
            });
        }
        response
    }

    async fn run(
        &self,
        req: Request<Incoming>,
        local: SocketAddr,
        request_id: &Arc<str>,
    ) -> (
        Result<Response<DataBody>, RequestError>,
        Option<Arc<Deployment>>,
        Usage,
    ) {
        if req.method() == Method::OPTIONS && req.uri() == "*" {
            return (Ok(options_star()), None, Usage::default());
        }
        let Head {
            host,
            uri,
            header_bytes,
        } = match check_head(&req, &self.limits, local) {
            Ok(head) => head,
            Err(err) => return (Err(err), None, Usage::default()),
        };
        let client_ip = req
            .extensions()
            .get::<PeerAddr>()
            .map(|peer| self.trusted_proxies.client_ip(peer.0.ip(), req.headers()));
        let Some(deployment) = self.routes.resolve(&host, req.uri().path()) else {
            return (Err(RequestError::NoRoute), None, Usage::default());
        };
        // The app's own caps (never above the server's) apply from here on.
        let limits = deployment.http_limits;
        if header_bytes > limits.max_header_bytes {
            return (
                Err(RequestError::HeadersTooLarge),
                Some(deployment),
                Usage::default(),
            );
        }
        if deployment.function.is_proxy() {
            let ctx = deployment.request_context(request_id.clone(), client_ip);
            let response = self.run_proxy(req, uri, &deployment, ctx).await;
            return (response, Some(deployment), Usage::default());
        }
        if deployment.function.streams() {
            let ctx = deployment.request_context(request_id.clone(), client_ip);
            let response = self.run_streaming(req, uri, &deployment, ctx).await;
            return (response, Some(deployment), Usage::default());
        }
        // The buffered body's budget bytes are held until the guest is done.
        let read = match self.read_request(req, uri, &deployment).await {
            Ok(read) => read,
            Err(err) => return (Err(err), Some(deployment), Usage::default()),
        };
        let permits = match self.admit(&deployment).await {
            Ok(permits) => permits,
            Err(err) => return (Err(err), Some(deployment), Usage::default()),
        };
        let in_flight = InFlight::start(self.metrics.clone());
        let mut ctx = deployment.request_context(request_id.clone(), client_ip);
        ctx.request_body = read.stream;
        // Held by the call, and past it by any work after the response.
        ctx.admission = permits;
        let (result, usage) = call_guest(deployment.clone(), read.request, ctx).await;
        drop(in_flight);
        drop(read.reservation);
        let response = result
            .map_err(RequestError::from)
            .and_then(|res| to_http(res, &limits));
        (response.map(|r| r.map(full_body)), Some(deployment), usage)
    }

    /// Charges a whole response's bytes to the response budget until its
    /// body is dropped (written, or its connection closed); past the
    /// budget the response is refused with 503 `overloaded`. A streamed
    /// body is not charged: the connection holds one chunk of it at a time.
    fn charge_response(
        &self,
        response: Response<DataBody>,
    ) -> Result<Response<DataBody>, RequestError> {
        use http_body_util::BodyExt as _;
        use hyper::body::Body as _;
        let Some(bytes) = response.body().size_hint().exact() else {
            return Ok(response);
        };
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        if bytes < super::limits::RESPONSE_CHUNK_BYTES {
            // Small answers are not worth a permit each: the connection and
            // stream caps bound them.
            return Ok(response);
        }
        let held = self
            .response_budget
            .take(bytes)
            .ok_or(RequestError::Overloaded)?;
        Ok(response.map(|body| {
            body.map_frame(move |frame| {
                let _held = &held;
                frame
            })
            .boxed_unsync()
        }))
    }

    /// The metrics this dispatcher records into.
    pub(super) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// App, then tenant, then pool slots (narrowest first, so waiting on
    /// one's own cap holds nothing shared), all within one queue deadline.
    /// A tenant holding little of the pool may take its reserve.
    pub(super) async fn admit(
        &self,
        deployment: &Deployment,
    ) -> Result<Vec<tokio::sync::OwnedSemaphorePermit>, RequestError> {
        let deadline = tokio::time::Instant::now() + ADMISSION_QUEUE_TIMEOUT;
        let slots = deployment.slots.clone();
        let tenant = slots.tenant.clone();
        let gates = [slots.app, slots.tenant];
        let mut permits = Vec::with_capacity(gates.len() + 1);
        for gate in gates.into_iter().flatten() {
            let acquired = match gate.clone().try_acquire_owned() {
                Ok(permit) => Ok(Ok(permit)),
                Err(_) => {
                    self.metrics.admission_wait(true);
                    let waited = tokio::time::timeout_at(deadline, gate.acquire_owned()).await;
                    self.metrics.admission_wait(false);
                    waited
                }
            };
            match acquired {
                Ok(Ok(permit)) => permits.push(permit),
                Ok(Err(_)) | Err(_) => return Err(RequestError::Overloaded),
            }
        }
        // What the tenant holds now, this request's slot included.
        let held = tenant.map_or(0, |tenant| {
            deployment
                .slots
                .tenant_cap
                .saturating_sub(tenant.available_permits())
        });
        let light = self.admission.is_light(held);
        let permit = match self.admission.try_admit(light) {
            Some(permit) => Some(permit),
            None => {
                self.metrics.admission_wait(true);
                let waited = self.admission.admit(light, deadline).await;
                self.metrics.admission_wait(false);
                waited
            }
        };
        permits.push(permit.ok_or(RequestError::Overloaded)?);
        Ok(permits)
    }
}

impl Dispatcher {
    /// The guest's view of `req`: its body read whole under the app's cap,
    /// or, for a function that reads it as a stream (`verge:edge/incoming`),
    /// left unread and returned guarded for the guest to take.
    pub(super) async fn read_request(
        &self,
        req: Request<Incoming>,
        uri: String,
        deployment: &Deployment,
    ) -> Result<ReadRequest, RequestError> {
        let cap = deployment.http_limits.max_request_body_bytes;
        let declared = check_declared_length(&req, cap)?;
        let (parts, body) = req.into_parts();
        let (body, reservation, stream) = if deployment.function.reads_body_as_stream() {
            let deadline = tokio::time::Instant::now() + deployment.function.limits().wall_clock;
            let guarded = self
                .guard_body(body, cap, false)
                .map_err(move |err| match err {
                    BodyError::TooLarge { cap } => FetchError::TooLarge(cap),
                    err if err.is_timeout() => FetchError::Timeout,
                    err => FetchError::Connection(err.to_string()),
                })
                .boxed();
            let stream = Box::new(OriginBody::boxed(guarded, deadline));
            (Vec::new(), Default::default(), Some(stream))
        } else {
            let (body, reservation) = read_all(self.guard_body(body, cap, true), declared).await?;
            (body, reservation, None)
        };
        let headers = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let request = GuestRequest {
            method: parts.method.as_str().to_owned(),
            uri,
            headers,
            body,
        };
        Ok(ReadRequest {
            request,
            reservation,
            stream,
        })
    }
}

/// Runs one guest call, on the serving runtime or, once it turns heavy, on
/// the background lane (`runtime::lane`).
async fn call_guest(
    deployment: Arc<Deployment>,
    req: GuestRequest,
    ctx: RequestContext,
) -> (Result<GuestResponse, crate::runtime::GuestError>, Usage) {
    let signal = ctx.heavy.clone();
    let mark = deployment.slots.heavy.clone();
    // Built only if the lane loses the call, not on every request.
    let lost = || {
        (
            Err(crate::runtime::GuestError::Trap(
                "the call was lost on the background lane".into(),
            )),
            Usage::default(),
        )
    };
    let call = async move { deployment.function.handle(req, ctx).await };
    crate::runtime::lane::run(call, &mark, &signal, lost).await
}

impl Dispatcher {
    /// What a guest running on its own task (a proxy component, a
    /// streaming function) calls when it is done, after its body has
    /// streamed: records its usage, logs a late failure (rate-limited per
    /// app) as `what` failed, and only then lets go of `held` (its
    /// admission and instance slots, its buffered body's bytes).
    pub(super) fn when_guest_done(
        &self,
        deployment: &Deployment,
        held: impl Send + 'static,
        what: &'static str,
    ) -> impl crate::runtime::ProxyDone {
        let (tenant, app) = (deployment.tenant.clone(), deployment.app.clone());
        let meters = deployment.meters.clone();
        let metrics = self.metrics.clone();
        let failure_logs = self.failure_logs.clone();
        move |result: Result<(), crate::runtime::GuestError>, usage: Usage| {
            metrics.usage_of(&meters, usage.fuel, usage.peak_memory);
            if let Err(err) = result {
                let detail = err.to_string();
                if let Some(dropped) = failure_logs.allow(&format!("{tenant}/{app}")) {
                    let summary = crate::telemetry::log_limit::one_line(&detail);
                    tracing::warn!(
                        tenant = &*tenant,
                        app = &*app,
                        error = summary,
                        dropped,
                        "{what} failed"
                    );
                }
                tracing::debug!(
                    tenant = &*tenant,
                    app = &*app,
                    error = detail,
                    "{what} failed"
                );
            }
            drop(held);
        }
    }
}

/// Counts a running guest instance; decrements on drop, including when the
/// client goes away and the request future is dropped mid-call.
/// Counts a running guest in the pool-occupancy gauge while it lives.
pub(super) struct InFlight(Arc<Metrics>);

impl InFlight {
    pub(super) fn start(metrics: Arc<Metrics>) -> Self {
        metrics.instance(true);
        Self(metrics)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.instance(false);
    }
}

impl Dispatcher {
    /// One log line per failed request, naming tenant, app, version and
    /// the `verge-error` code. Server errors at warn with the first line of
    /// the detail, at most [`LINES_PER_WINDOW`](crate::telemetry::log_limit::LINES_PER_WINDOW)
    /// a second per app (the next line says how many were dropped); the
    /// whole detail (a trap's backtrace) and client errors at debug.
    fn log_failure(&self, err: &RequestError, deployment: Option<&Deployment>, request_id: &str) {
        let (status, code) = err.status_and_code();
        let (tenant, app, version) =
            deployment.map_or(("-", "-", 0), |d| (&*d.tenant, &*d.app, d.version));
        let detail = err.to_string();
        let server_error = status.is_server_error();
        if server_error && let Some(dropped) = self.failure_logs.allow(&format!("{tenant}/{app}")) {
            let summary = crate::telemetry::log_limit::one_line(&detail);
            tracing::warn!(
                request_id,
                tenant,
                app,
                version,
                code,
                detail = summary,
                dropped,
                "request failed"
            );
        }
        let what = if server_error {
            "request failed"
        } else {
            "request refused"
        };
        tracing::debug!(request_id, tenant, app, version, code, detail, "{what}");
    }
}

/// A short plain-text error page with the request id.
pub fn error_page(err: &RequestError, request_id: &str) -> Response<Full<Bytes>> {
    let (status, code) = err.status_and_code();
    let body = format!(
        "{} {}\nrequest id: {request_id}\n",
        status.as_u16(),
        err.public_message()
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(ERROR_HEADER, HeaderValue::from_static(code));
    if let Some(secs) = err.retry_after_secs() {
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
