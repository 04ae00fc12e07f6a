//! Origin exchanges held open, counted from the moment a fetch is sent
//! until its response body is read to the end or dropped: per request, per
//! tenant and for the whole daemon. The in-flight slots
//! ([`super::MAX_IN_FLIGHT_SUBREQUESTS`]) end when a head arrives, so
//! without these one request held 50 origin sockets with unread bodies,
//! and 100 requests that moved their bodies into `wait_until` opened 4,069
//! sockets in 1.3 s, filled a 4,096-descriptor table and failed another
//! tenant's deploy with "Too many open files".

use super::FetchError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Origin responses one request may hold open (head in, body not yet read
/// to the end or dropped): a fan-out of 32 reads its bodies in any order;
/// the 33rd fetch waits, by the deadline, for one to finish.
pub const MAX_OPEN_ORIGIN_BODIES_PER_REQUEST: usize = 32;

/// Origin exchanges one tenant may hold open on a node, all its requests
/// and their work after the response together: eight requests' full
/// fan-out. Past it the tenant's next fetch waits, by its deadline; other
/// tenants are not affected.
pub const MAX_OPEN_ORIGIN_EXCHANGES_PER_TENANT: usize = 256;

/// Origin exchanges the whole daemon holds open at most, before the
/// open-file limit lowers it (see [`origin_socket_cap`]).
pub const DEFAULT_MAX_ORIGIN_SOCKETS: usize = 8192;

/// The daemon-wide cap for an open-file limit of `open_files` with
/// `reserved` descriptors kept back: a quarter of what is left, so inbound
/// connections, the data files and the pool's idle connections keep the
/// rest (with `ulimit -n 4096`: 960).
pub fn origin_socket_cap(open_files: usize, reserved: usize) -> usize {
    (open_files.saturating_sub(reserved) / 4).clamp(1, DEFAULT_MAX_ORIGIN_SOCKETS)
}

/// A permit of `semaphore` by `deadline` ([`FetchError::Timeout`] past
/// it). The semaphores are never closed; a closed one means none left,
/// said as `none`.
pub(super) async fn permit_by(
    semaphore: Arc<Semaphore>,
    deadline: Instant,
    none: &str,
) -> Result<OwnedSemaphorePermit, FetchError> {
    match tokio::time::timeout_at(deadline, semaphore.acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_closed)) => Err(FetchError::Connection(none.into())),
        Err(_elapsed) => Err(FetchError::Timeout),
    }
}

/// The daemon's count of open origin exchanges, and each tenant's.
#[derive(Debug)]
pub struct OriginSockets {
    global: Arc<Semaphore>,
    cap: Mutex<usize>,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Default for OriginSockets {
    fn default() -> Self {
        Self {
            global: Arc::new(Semaphore::new(DEFAULT_MAX_ORIGIN_SOCKETS)),
            cap: Mutex::new(DEFAULT_MAX_ORIGIN_SOCKETS),
            tenants: Mutex::default(),
        }
    }
}

impl OriginSockets {
    /// Lowers the daemon-wide cap to `cap` (never raises it).
    pub fn limit_to(&self, cap: usize) {
        let mut current = self.cap.lock().unwrap_or_else(PoisonError::into_inner);
        if cap < *current {
            let forgotten = self.global.forget_permits(*current - cap);
            *current -= forgotten;
        }
    }

    /// The daemon-wide cap in force.
    pub fn cap(&self) -> usize {
        *self.cap.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The count of the tenant of `data_key`, shared by all its requests.
    pub fn tenant(&self, data_key: &str) -> Arc<Semaphore> {
        self.tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(data_key.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_OPEN_ORIGIN_EXCHANGES_PER_TENANT)))
            .clone()
    }

    /// Exchanges open daemon-wide now.
    pub fn open(&self) -> usize {
        self.cap().saturating_sub(self.global.available_permits())
    }

    /// The counts for a new request of the tenant with `tenant`'s count.
    pub fn counts(&self, tenant: Option<Arc<Semaphore>>) -> ExchangeCounts {
        ExchangeCounts {
            request: Arc::new(Semaphore::new(MAX_OPEN_ORIGIN_BODIES_PER_REQUEST)),
            tenant,
            global: self.global.clone(),
        }
    }
}

/// One open exchange's place in each count, given back on drop.
#[derive(Debug)]
pub struct OpenExchange {
    _request: OwnedSemaphorePermit,
    _tenant: Option<OwnedSemaphorePermit>,
    _global: OwnedSemaphorePermit,
}

/// What one request counts its open exchanges against.
#[derive(Debug, Clone)]
pub struct ExchangeCounts {
    /// The request's own ([`MAX_OPEN_ORIGIN_BODIES_PER_REQUEST`]).
    pub request: Arc<Semaphore>,
    /// Its tenant's, when it has one.
    pub tenant: Option<Arc<Semaphore>>,
    /// The daemon's.
    pub global: Arc<Semaphore>,
}

impl ExchangeCounts {
    /// A place in every count: the request's and the tenant's are waited
    /// for by `deadline`; the daemon's is refused at once when full (the
    /// daemon is out of descriptors to spare, and waiting would hold the
    /// guest's slot for nothing).
    pub async fn open(&self, deadline: Instant) -> Result<OpenExchange, FetchError> {
        const NONE: &str = "no origin sockets";
        let request = permit_by(self.request.clone(), deadline, NONE).await?;
        let tenant = match &self.tenant {
            Some(tenant) => Some(permit_by(tenant.clone(), deadline, NONE).await?),
            None => None,
        };
        let global = self.global.clone().try_acquire_owned().map_err(|_| {
            FetchError::Connection("every origin socket this host allows is in use".into())
        })?;
        Ok(OpenExchange {
            _request: request,
            _tenant: tenant,
            _global: global,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_daemon_cap_is_a_quarter_of_the_unreserved_descriptors_within_bounds() {
        assert_eq!(origin_socket_cap(4096, 256), 960);
        assert_eq!(origin_socket_cap(1 << 20, 256), DEFAULT_MAX_ORIGIN_SOCKETS);
        assert_eq!(origin_socket_cap(100, 256), 1);
    }

    #[tokio::test]
    async fn a_request_waits_at_its_cap_and_the_daemon_refuses_past_its_own() {
        let sockets = OriginSockets::default();
        sockets.limit_to(MAX_OPEN_ORIGIN_BODIES_PER_REQUEST + 1);
        assert_eq!(sockets.cap(), MAX_OPEN_ORIGIN_BODIES_PER_REQUEST + 1);
        let counts = sockets.counts(Some(sockets.tenant("t")));
        let soon = || Instant::now() + Duration::from_millis(50);
        let mut held = Vec::new();
        for _ in 0..MAX_OPEN_ORIGIN_BODIES_PER_REQUEST {
            held.push(counts.open(soon()).await.unwrap());
        }
        // At the request's cap: the next one waits, then times out.
        assert_eq!(counts.open(soon()).await.unwrap_err(), FetchError::Timeout);
        assert_eq!(sockets.open(), MAX_OPEN_ORIGIN_BODIES_PER_REQUEST);
        // Another request takes the daemon's last socket; a third is
        // refused at once.
        let other = sockets.counts(Some(sockets.tenant("u")));
        let last = other.open(soon()).await.unwrap();
        let refused = sockets.counts(None).open(soon()).await.unwrap_err();
        assert!(matches!(refused, FetchError::Connection(_)), "{refused:?}");
        // A body finished gives its places back.
        drop(held.pop());
        assert!(counts.open(soon()).await.is_ok());
        drop(last);
    }

    #[tokio::test]
    async fn a_tenant_waits_at_its_cap_while_another_tenant_opens() {
        let sockets = OriginSockets::default();
        let tenant = sockets.tenant("hog");
        let soon = || Instant::now() + Duration::from_millis(50);
        let mut held = Vec::new();
        for _ in 0..MAX_OPEN_ORIGIN_EXCHANGES_PER_TENANT / MAX_OPEN_ORIGIN_BODIES_PER_REQUEST {
            let counts = sockets.counts(Some(tenant.clone()));
            for _ in 0..MAX_OPEN_ORIGIN_BODIES_PER_REQUEST {
                held.push(counts.open(soon()).await.unwrap());
            }
        }
        let next = sockets.counts(Some(tenant.clone())).open(soon()).await;
        assert_eq!(next.unwrap_err(), FetchError::Timeout);
        let neighbour = sockets.counts(Some(sockets.tenant("neighbour")));
        assert!(neighbour.open(soon()).await.is_ok());
    }
}
