//! Fetches in flight. `fetch.start` runs each exchange as its own task, so
//! several origins answer at once while the guest computes or waits; the
//! guest holds a [`PendingFetch`] handle. The request's [`Budget`] is
//! shared by those tasks: every origin request (redirect hops included)
//! takes one subrequest from it, and one of a few in-flight slots while it
//! runs.

use super::body::OriginBody;
use super::client::read_whole;
use super::{FetchError, Inbound};
use crate::telemetry::metrics::Metrics;
use http::HeaderMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Fetches one request may have in flight at once: Workers allows 6
/// simultaneous open connections per request. Enough to fan out to a few
/// origins; a guest looping over `start` cannot open hundreds of sockets.
/// A start past it waits for a slot instead of failing.
pub const MAX_IN_FLIGHT_SUBREQUESTS: usize = 6;

/// One request's subrequest budget and in-flight slots, shared by its
/// fetch tasks.
#[derive(Debug)]
pub struct Budget {
    max: u32,
    used: AtomicU32,
    slots: Arc<Semaphore>,
    /// Its open exchanges' counts (none without a client).
    exchanges: Option<super::sockets::ExchangeCounts>,
}

impl Budget {
    /// A budget of `max` subrequests.
    pub(super) fn new(max: u32, exchanges: Option<super::sockets::ExchangeCounts>) -> Arc<Self> {
        Arc::new(Self {
            max,
            used: AtomicU32::new(0),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT_SUBREQUESTS)),
            exchanges,
        })
    }

    /// What one origin exchange holds, waited for by `deadline` in this
    /// order: a place among the open exchanges of the request, its tenant
    /// and the daemon (kept until the response body is done), then one of
    /// the request's in-flight slots (until the head is in). Taken by the
    /// fetch's own task, so a guest that starts more than the caps before
    /// reading anything never waits on itself.
    pub(super) async fn places(
        &self,
        deadline: Instant,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<(Option<super::sockets::OpenExchange>, Held), FetchError> {
        let open = match &self.exchanges {
            Some(counts) => Some(counts.open(deadline).await?),
            None => None,
        };
        let slot =
            super::sockets::permit_by(self.slots.clone(), deadline, "no fetch slots").await?;
        Ok((open, Held::new(slot, metrics)))
    }

    /// Counts one subrequest, or refuses it when the budget is spent.
    pub(super) fn take(&self) -> Result<(), FetchError> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < self.max).then_some(used + 1)
            })
            .map(|_| ())
            .map_err(|_| FetchError::TooManySubrequests(self.max))
    }

    /// Subrequests taken so far.
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }
}

/// What a fetch holds until its response head is in: one of the request's
/// slots and its count in `verge_fetch_in_flight`.
pub struct Held {
    _slot: OwnedSemaphorePermit,
    _gauge: InFlightGauge,
}

impl Held {
    pub(super) fn new(slot: OwnedSemaphorePermit, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            _slot: slot,
            _gauge: InFlightGauge::start(metrics),
        }
    }
}

/// Counts a running fetch in `verge_fetch_in_flight` while it lives,
/// aborted ones included.
pub(super) struct InFlightGauge(Option<Arc<Metrics>>);

impl InFlightGauge {
    pub(super) fn start(metrics: Option<Arc<Metrics>>) -> Self {
        if let Some(metrics) = &metrics {
            metrics.fetch_in_flight(true);
        }
        Self(metrics)
    }
}

impl Drop for InFlightGauge {
    fn drop(&mut self) {
        if let Some(metrics) = &self.0 {
            metrics.fetch_in_flight(false);
        }
    }
}

/// What a fetch task comes to: a whole response (from the cache), or a
/// response head with its body still to read.
pub enum Fetched {
    /// Read whole.
    Whole(Inbound),
    /// The head; the body streams.
    Open {
        /// The status code.
        status: u16,
        /// Header fields, hop-by-hop ones removed.
        headers: HeaderMap,
        /// The body, unread.
        body: OriginBody,
    },
}

/// A fetch in flight: the task running it, and its outcome once in.
/// Dropping it aborts the task, which closes the origin connection.
pub struct PendingFetch {
    task: JoinHandle<Result<Fetched, FetchError>>,
    outcome: Option<Result<Fetched, FetchError>>,
}

impl PendingFetch {
    /// Runs `exchange` as a task on the current runtime.
    pub(super) fn spawn(
        exchange: impl Future<Output = Result<Fetched, FetchError>> + Send + 'static,
    ) -> Self {
        Self {
            task: tokio::spawn(exchange),
            outcome: None,
        }
    }

    /// Whether the response head (or the error) is in.
    pub fn is_ready(&self) -> bool {
        self.outcome.is_some() || self.task.is_finished()
    }

    /// Ready once the outcome is in (kept for [`PendingFetch::outcome`]).
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.outcome.is_some() {
            return Poll::Ready(());
        }
        match Pin::new(&mut self.task).poll(cx) {
            Poll::Ready(joined) => {
                self.outcome = Some(joined.unwrap_or_else(|err| {
                    Err(FetchError::Connection(format!(
                        "the fetch task ended: {err}"
                    )))
                }));
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Waits for the response head and returns it with the body unread.
    pub async fn head(mut self) -> Result<Fetched, FetchError> {
        poll_fn(|cx| self.poll_ready(cx)).await;
        self.outcome
            .take()
            .unwrap_or_else(|| Err(FetchError::Connection("the fetch has no outcome".into())))
    }

    /// Waits for the whole response, body included (capped).
    pub async fn outcome(self) -> Result<Inbound, FetchError> {
        match self.head().await? {
            Fetched::Whole(inbound) => Ok(inbound),
            Fetched::Open {
                status,
                headers,
                body,
            } => {
                let deadline = body.deadline();
                Ok(Inbound {
                    status,
                    headers,
                    body: read_whole(body, deadline).await?,
                })
            }
        }
    }
}

impl Drop for PendingFetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
