//! `verge:edge/kv`: a thin shim from the WIT `store` resource to the
//! storage layer's [`KvBackend`]. A store opens only if the app declared it;
//! the namespace (tenant, store) is fixed at open, so a guest can never name
//! another tenant's data.

use super::bindings::verge::edge::kv as wit;
use super::kv_cache::KvReadCache;
use super::view::{TableView, WithTable};
use super::{PerRequest, RequestScope};
use crate::storage::kv::{KvBackend, KvError, Namespace, Outcome, WriteOp};
use crate::storage::records::tenant_label;
use crate::telemetry::metrics::Metrics;
use std::sync::Arc;
use wasmtime::component::{Linker, Resource};

/// Stores one request may hold open at once.
pub const MAX_OPEN_STORES: usize = 16;

/// What an app may reach in KV. Cheap to clone: shared by every request.
#[derive(Clone)]
pub struct KvCtx {
    backend: Option<Arc<dyn KvBackend>>,
    tenant: Arc<str>,
    /// Declared stores; `None` allows any (local-run mode).
    stores: Option<Arc<[String]>>,
    quota_bytes: u64,
    open: usize,
    metrics: Option<Arc<Metrics>>,
    /// This node's read cache and how old an entry may be for this app.
    read_cache: Option<(Arc<KvReadCache>, std::time::Duration)>,
}

impl Default for KvCtx {
    /// No KV at all: every `open` answers `no-such-store`.
    fn default() -> Self {
        Self {
            backend: None,
            tenant: "".into(),
            stores: Some(Arc::from([])),
            quota_bytes: 0,
            open: 0,
            metrics: None,
            read_cache: None,
        }
    }
}

impl KvCtx {
    /// KV for `tenant`, limited to `stores` (`None`: any store).
    pub fn new(
        backend: Arc<dyn KvBackend>,
        tenant: &str,
        stores: Option<Vec<String>>,
        quota_bytes: u64,
    ) -> Self {
        Self {
            backend: Some(backend),
            tenant: tenant.into(),
            stores: stores.map(Arc::from),
            quota_bytes,
            open: 0,
            metrics: None,
            read_cache: None,
        }
    }

    /// Answers reads from `cache` while its entries are younger than the
    /// duration (`None`: no read cache).
    pub fn with_read_cache(
        mut self,
        cache: Option<(Arc<KvReadCache>, std::time::Duration)>,
    ) -> Self {
        self.read_cache = cache;
        self
    }

    /// Counts every operation in `metrics` (`verge_kv_operations_total`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count<T>(&self, op: &'static str, result: &Result<T, wit::Error>) {
        if let Some(metrics) = &self.metrics {
            let outcome = match result {
                Ok(_) => "ok",
                Err(err) => error_kind(err),
            };
            metrics.kv_op(tenant_label(&self.tenant), op, outcome);
        }
    }
}

fn error_kind(err: &wit::Error) -> &'static str {
    match err {
        wit::Error::NoSuchStore => "no-such-store",
        wit::Error::AccessDenied => "access-denied",
        wit::Error::KeyTooLarge => "key-too-large",
        wit::Error::ValueTooLarge => "value-too-large",
        wit::Error::QuotaExceeded => "quota-exceeded",
        wit::Error::InvalidKey(_) => "invalid-key",
        wit::Error::Other(_) => "other",
    }
}

/// An open store: the guest holds a handle to one of these.
pub struct KvStore {
    ns: Namespace,
}

/// What KV host functions get: their context and the table of open stores.
pub type KvView<'a> = TableView<'a, KvCtx>;

impl PerRequest for KvCtx {
    /// The same stores, none open yet.
    fn for_request(mut self, _scope: &RequestScope) -> Self {
        self.open = 0;
        self
    }
}

/// Links `verge:edge/kv` into `linker`, over the view `get` projects.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> KvView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, WithTable<KvCtx>>(linker, get)
}

impl From<KvError> for wit::Error {
    fn from(err: KvError) -> Self {
        match err {
            KvError::KeyTooLarge => Self::KeyTooLarge,
            KvError::ValueTooLarge => Self::ValueTooLarge,
            KvError::QuotaExceeded => Self::QuotaExceeded,
            KvError::InvalidKey(reason) => Self::InvalidKey(reason),
            KvError::NotAnInteger(reason) => Self::Other(reason),
            KvError::TtlTooLong | KvError::RateLimited(_) => Self::Other(err.to_string()),
            KvError::OutcomeUnknown(detail) => {
                tracing::warn!(detail, "kv write outcome unknown");
                // "outcome unknown: ..." without the store's details.
                Self::Other(
                    KvError::OutcomeUnknown("the store did not answer in time".into()).to_string(),
                )
            }
            KvError::Storage(detail) => {
                // A host failure the guest can degrade around; details stay in the log.
                tracing::error!(detail, "kv storage failure");
                Self::Other("storage failure".into())
            }
        }
    }
}

type WitResult<T> = wasmtime::Result<Result<T, wit::Error>>;

impl KvView<'_> {
    fn backend(&self) -> Result<Arc<dyn KvBackend>, wit::Error> {
        self.ctx.backend.clone().ok_or(wit::Error::NoSuchStore)
    }

    fn ns(&self, store: &Resource<KvStore>) -> wasmtime::Result<Namespace> {
        Ok(self.table.get(store)?.ns.clone())
    }

    async fn write(&mut self, store: &Resource<KvStore>, op: WriteOp) -> WitResult<Outcome> {
        let ns = self.ns(store)?;
        let backend = match self.backend() {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        let name = match &op {
            WriteOp::Set { .. } => "set",
            WriteOp::Delete { .. } => "delete",
            WriteOp::Increment { .. } => "increment",
            WriteOp::CompareAndSwap { .. } => "compare-and-swap",
        };
        let result = backend.write(&ns, op).await.map_err(wit::Error::from);
        self.ctx.count(name, &result);
        Ok(result)
    }
}

impl wit::Host for KvView<'_> {}

impl wit::HostStore for KvView<'_> {
    async fn open(&mut self, name: String) -> WitResult<Resource<KvStore>> {
        let declared = match &self.ctx.stores {
            None => true,
            Some(stores) => stores.contains(&name),
        };
        if !declared || self.ctx.backend.is_none() {
            return Ok(Err(wit::Error::NoSuchStore));
        }
        if self.ctx.open >= MAX_OPEN_STORES {
            return Ok(Err(wit::Error::Other(format!(
                "at most {MAX_OPEN_STORES} stores open per request"
            ))));
        }
        let ns = Namespace {
            tenant: self.ctx.tenant.to_string(),
            store: name,
            quota_bytes: self.ctx.quota_bytes,
        };
        self.ctx.open += 1;
        Ok(Ok(self.table.push(KvStore { ns })?))
    }

    async fn get(&mut self, store: Resource<KvStore>, key: String) -> WitResult<Option<Vec<u8>>> {
        let ns = self.ns(&store)?;
        let backend = match self.backend() {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(hit) =
            (self.ctx.read_cache.as_ref()).and_then(|(cache, ttl)| cache.lookup(&ns, &key, *ttl))
        {
            let result = Ok(hit);
            self.ctx.count("get", &result);
            return Ok(result);
        }
        let result = backend.get(&ns, &key).await.map_err(wit::Error::from);
        if let (Some((cache, _)), Ok(value)) = (&self.ctx.read_cache, &result) {
            cache.fill(&ns, &key, value.as_deref());
        }
        self.ctx.count("get", &result);
        Ok(result)
    }

    async fn set(
        &mut self,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
        ttl: Option<u32>,
    ) -> WitResult<()> {
        Ok(self
            .write(&store, WriteOp::Set { key, value, ttl })
            .await?
            .map(|_| ()))
    }

    async fn delete(&mut self, store: Resource<KvStore>, key: String) -> WitResult<()> {
        Ok(self
            .write(&store, WriteOp::Delete { key })
            .await?
            .map(|_| ()))
    }

    async fn list(
        &mut self,
        store: Resource<KvStore>,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> WitResult<wit::KeyPage> {
        let ns = self.ns(&store)?;
        let backend = match self.backend() {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        let page = backend
            .list(&ns, &prefix, cursor.as_deref(), limit)
            .await
            .map(|p| wit::KeyPage {
                keys: p.keys,
                cursor: p.cursor,
            })
            .map_err(wit::Error::from);
        self.ctx.count("list", &page);
        Ok(page)
    }

    async fn increment(
        &mut self,
        store: Resource<KvStore>,
        key: String,
        delta: i64,
        ttl: Option<u32>,
    ) -> WitResult<i64> {
        Ok(self
            .write(&store, WriteOp::Increment { key, delta, ttl })
            .await?
            .map(|o| match o {
                Outcome::Counter(n) => n,
                Outcome::Done | Outcome::Swapped(_) => 0,
            }))
    }

    async fn compare_and_swap(
        &mut self,
        store: Resource<KvStore>,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
        ttl: Option<u32>,
    ) -> WitResult<bool> {
        let op = WriteOp::CompareAndSwap {
            key,
            expected,
            new,
            ttl,
        };
        Ok(self
            .write(&store, op)
            .await?
            .map(|o| matches!(o, Outcome::Swapped(true))))
    }

    async fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        self.ctx.open = self.ctx.open.saturating_sub(1);
        Ok(())
    }
}
