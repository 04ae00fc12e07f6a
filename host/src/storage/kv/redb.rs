//! The durable backend: `kv.redb`. One writer thread takes queued writes,
//! applies up to [`MAX_GROUP_OPS`] of them in one write transaction, commits
//! (fsync), and only then answers each caller: group commit. Reads use read
//! transactions on the blocking pool. A sweeper queues a sweep of expired
//! keys every [`SWEEP_INTERVAL`] through the same writer.

use super::logic::{Namespace, Outcome, Table, WriteOp, apply, live, page_from, sweep_one};
use super::{Clock, KeyPage, KvBackend, KvError, check_key, clamp_limit};
use arc_swap::ArcSwapOption;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

const VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv_values");
/// Key: expiry ms (8 bytes BE) ++ stored key.
const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("kv_expiry");
const USAGE: TableDefinition<&str, u64> = TableDefinition::new("kv_usage");

/// One exported entry: (stored key, expiry ms or 0, value).
pub type ExportedEntry = (Vec<u8>, u64, Vec<u8>);

/// Most writes committed together: bounds one transaction's size and the
/// latency of the last write in a group.
pub const MAX_GROUP_OPS: usize = 1024;
/// Writes queued before callers wait (backpressure on the writer).
pub const WRITE_QUEUE_DEPTH: usize = 8192;
/// How often expired keys are swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Most expired keys removed per sweep, so a sweep never stalls writes.
pub const MAX_SWEEP_KEYS: usize = 1000;

fn storage(err: impl std::fmt::Display) -> KvError {
    KvError::Storage(err.to_string())
}

enum Job {
    Write {
        ns: Namespace,
        op: WriteOp,
        reply: oneshot::Sender<Result<Outcome, KvError>>,
    },
    Sweep {
        reply: Option<oneshot::Sender<Result<Outcome, KvError>>>,
    },
    /// All or nothing, in a transaction of its own.
    Batch {
        ns: Namespace,
        ops: Vec<WriteOp>,
        reply: oneshot::Sender<Result<usize, KvError>>,
    },
}

/// The open database, swapped for a fresh handle after a storage fault.
struct Shared {
    path: PathBuf,
    db: ArcSwapOption<Database>,
    /// The last storage fault, until the database reopened.
    fault: Mutex<Option<String>>,
    last_attempt: Mutex<Option<Instant>>,
}

/// After a failed commit (a full disk, say) redb refuses every later
/// transaction until the file is opened again; how often the writer tries.
const REOPEN_INTERVAL: Duration = Duration::from_millis(500);

/// How long a reopen waits for reads still holding the old handle.
const REOPEN_DRAIN: Duration = Duration::from_secs(5);

impl Shared {
    fn fail(&self, err: &KvError) {
        let path = self.path.display().to_string();
        let message = match err.to_string() {
            text if text.contains(&path) => text,
            text => format!("{path}: {text}"),
        };
        tracing::error!(error = message, "kv storage fault; reopening the database");
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
    }

    fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The open database, reopening it first after a fault (at most every
    /// [`REOPEN_INTERVAL`]).
    fn current(&self) -> Result<Arc<Database>, KvError> {
        if self.fault().is_none()
            && let Some(db) = self.db.load_full()
        {
            return Ok(db);
        }
        {
            let mut last = self.last_attempt.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| at.elapsed() < REOPEN_INTERVAL) {
                return Err(self.unavailable());
            }
            *last = Some(Instant::now());
        }
        if let Some(old) = self.db.swap(None) {
            let deadline = Instant::now() + REOPEN_DRAIN;
            while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(old);
        }
        match guarded(&self.path, || Database::create(&self.path).map_err(storage)) {
            Ok(db) => {
                let db = Arc::new(db);
                self.db.store(Some(db.clone()));
                *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = None;
                tracing::info!(file = %self.path.display(), "kv database reopened");
                Ok(db)
            }
            Err(err) => {
                self.fail(&err);
                Err(self.unavailable())
            }
        }
    }

    fn unavailable(&self) -> KvError {
        KvError::Storage(
            self.fault()
                .unwrap_or_else(|| format!("{}: unavailable", self.path.display())),
        )
    }
}

/// The redb backend.
pub struct RedbKv {
    db: Arc<Shared>,
    queue: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    clock: Arc<dyn Clock>,
}

impl Drop for RedbKv {
    /// Closes the queue and waits for the writer to finish its last group,
    /// so the file is closed (and can be reopened) when this returns.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

struct WriteTables<'t> {
    values: redb::Table<'t, &'static [u8], &'static [u8]>,
    expiry: redb::Table<'t, &'static [u8], ()>,
    usage: redb::Table<'t, &'static str, u64>,
}

fn expiry_key(at_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut out = at_ms.to_be_bytes().to_vec();
    out.extend_from_slice(key);
    out
}

impl Table for WriteTables<'_> {
    fn get_raw(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .values
            .get(key)
            .map_err(storage)?
            .map(|v| v.value().to_vec()))
    }
    fn put_raw(&mut self, key: &[u8], raw: &[u8]) -> Result<(), KvError> {
        self.values.insert(key, raw).map_err(storage)?;
        Ok(())
    }
    fn remove_raw(&mut self, key: &[u8]) -> Result<(), KvError> {
        self.values.remove(key).map_err(storage)?;
        Ok(())
    }
    fn index_expiry(&mut self, at_ms: u64, key: &[u8], present: bool) -> Result<(), KvError> {
        let k = expiry_key(at_ms, key);
        if present {
            self.expiry.insert(k.as_slice(), ()).map_err(storage)?;
        } else {
            self.expiry.remove(k.as_slice()).map_err(storage)?;
        }
        Ok(())
    }
    fn usage(&mut self, tenant: &str) -> Result<u64, KvError> {
        Ok(self
            .usage
            .get(tenant)
            .map_err(storage)?
            .map_or(0, |v| v.value()))
    }
    fn set_usage(&mut self, tenant: &str, bytes: u64) -> Result<(), KvError> {
        self.usage.insert(tenant, bytes).map_err(storage)?;
        Ok(())
    }
}

impl RedbKv {
    /// Opens (or creates) `path` and starts the writer and sweeper threads.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, KvError> {
        let db = guarded(path, || {
            let db = Database::create(path)
                .map_err(|e| KvError::Storage(super::super::open_failure(path, e)))?;
            let tx = db.begin_write().map_err(storage)?;
            tx.open_table(VALUES).map_err(storage)?;
            tx.open_table(EXPIRY).map_err(storage)?;
            tx.open_table(USAGE).map_err(storage)?;
            tx.commit().map_err(storage)?;
            Ok(db)
        })
        .map_err(|err| name_file(path, err))?;
        let db = Arc::new(Shared {
            path: path.to_owned(),
            db: ArcSwapOption::from_pointee(db),
            fault: Mutex::new(None),
            last_attempt: Mutex::new(None),
        });
        let (queue, jobs) = mpsc::channel(WRITE_QUEUE_DEPTH);
        let (writer_db, writer_clock) = (db.clone(), clock.clone());
        let writer = std::thread::Builder::new()
            .name("verge-kv-writer".into())
            .spawn(move || writer(&writer_db, &*writer_clock, jobs))
            .map_err(storage)?;
        let weak = queue.downgrade();
        std::thread::Builder::new()
            .name("verge-kv-sweeper".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(SWEEP_INTERVAL);
                    let Some(queue) = weak.upgrade() else { return };
                    // A full queue means a busy writer: skip this sweep.
                    let _ = queue.try_send(Job::Sweep { reply: None });
                }
            })
            .map_err(storage)?;
        Ok(Self {
            db,
            queue: Some(queue),
            writer: Some(writer),
            clock,
        })
    }

    /// Sweeps expired keys now (the sweeper does this every second).
    pub async fn sweep_now(&self) -> Result<(), KvError> {
        let (reply, answer) = oneshot::channel();
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| KvError::Storage("the kv writer stopped".into()))?;
        queue
            .send(Job::Sweep { reply: Some(reply) })
            .await
            .map_err(storage)?;
        answer.await.map_err(storage)?.map(|_| ())
    }

    /// Bytes a tenant's keys and values use.
    pub async fn usage(&self, tenant: &str) -> Result<u64, KvError> {
        let tenant = tenant.to_owned();
        self.read(move |db, _| {
            let tx = db.begin_read().map_err(storage)?;
            let table = tx.open_table(USAGE).map_err(storage)?;
            Ok(table
                .get(tenant.as_str())
                .map_err(storage)?
                .map_or(0, |v| v.value()))
        })
        .await
    }

    /// Up to `limit` live entries after stored key `after`, in key order:
    /// (stored key `tenant\0store\0key`, expiry in ms or 0, value). For
    /// `verge cluster import`, which copies a data dir into Redis.
    pub async fn export_page(
        &self,
        after: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<ExportedEntry>, KvError> {
        self.read(move |db, now| {
            let tx = db.begin_read().map_err(storage)?;
            let table = tx.open_table(VALUES).map_err(storage)?;
            let range = match &after {
                Some(after) => table.range::<&[u8]>((
                    std::ops::Bound::Excluded(after.as_slice()),
                    std::ops::Bound::Unbounded,
                )),
                None => table.range::<&[u8]>(..),
            };
            let mut out = Vec::new();
            for entry in range.map_err(storage)? {
                let (key, raw) = entry.map_err(storage)?;
                let (expiry, payload) = super::logic::decode(raw.value());
                if expiry == 0 || expiry > now {
                    out.push((key.value().to_vec(), expiry, payload.to_vec()));
                }
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database, u64) -> Result<T, KvError> + Send + 'static,
    ) -> Result<T, KvError> {
        let (shared, now) = (self.db.clone(), self.clock.now_ms());
        tokio::task::spawn_blocking(move || {
            let db = shared.current()?;
            guarded(&shared.path, || f(&db, now)).map_err(|err| name_file(&shared.path, err))
        })
        .await
        .map_err(storage)?
    }
}

/// `f` with redb's panics on corrupt pages turned into storage errors.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, KvError>) -> Result<T, KvError> {
    crate::storage::guard_corruption(path, f, KvError::Storage)
}

/// A storage error with the file it happened in.
fn name_file(path: &Path, err: KvError) -> KvError {
    match err {
        KvError::Storage(msg) if !msg.contains(&*path.to_string_lossy()) => {
            KvError::Storage(format!("{}: {msg}", path.display()))
        }
        other => other,
    }
}

fn writer(shared: &Shared, clock: &dyn Clock, mut jobs: mpsc::Receiver<Job>) {
    let mut held: Option<Job> = None;
    while let Some(first) = held.take().or_else(|| jobs.blocking_recv()) {
        let db = shared.current();
        if let Job::Batch { ns, ops, reply } = first {
            let result = db.and_then(|db| {
                guarded(&shared.path, || {
                    commit_batch(&db, &ns, &ops, clock.now_ms())
                })
            });
            if let Err(err @ KvError::Storage(_)) = &result {
                shared.fail(err);
            }
            let _ = reply.send(result.map_err(|err| name_file(&shared.path, err)));
            continue;
        }
        let mut group = vec![first];
        while group.len() < MAX_GROUP_OPS {
            match jobs.try_recv() {
                // A batch commits alone, after this group.
                Ok(job @ Job::Batch { .. }) => {
                    held = Some(job);
                    break;
                }
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let now = clock.now_ms();
        match db.and_then(|db| guarded(&shared.path, || commit_group(&db, &group, now))) {
            Ok(outcomes) => {
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    match job {
                        Job::Write { reply, .. } | Job::Sweep { reply: Some(reply) } => {
                            let _ = reply.send(outcome);
                        }
                        Job::Sweep { reply: None } | Job::Batch { .. } => {}
                    }
                }
            }
            Err(err) => {
                shared.fail(&err);
                let err = name_file(&shared.path, err);
                tracing::error!(error = %err, "kv commit failed; the group's writes were not stored");
                for job in group {
                    match job {
                        Job::Write { reply, .. } | Job::Sweep { reply: Some(reply) } => {
                            let _ = reply.send(Err(err.clone()));
                        }
                        Job::Sweep { reply: None } | Job::Batch { .. } => {}
                    }
                }
            }
        }
    }
}

/// Applies a group in one transaction. A storage error anywhere aborts the
/// whole group (nothing acknowledged); rule errors fail only their write.
fn commit_group(
    db: &Database,
    group: &[Job],
    now: u64,
) -> Result<Vec<Result<Outcome, KvError>>, KvError> {
    let tx = db.begin_write().map_err(storage)?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut tables = WriteTables {
            values: tx.open_table(VALUES).map_err(storage)?,
            expiry: tx.open_table(EXPIRY).map_err(storage)?,
            usage: tx.open_table(USAGE).map_err(storage)?,
        };
        for job in group {
            let outcome = match job {
                Job::Write { ns, op, .. } => apply(&mut tables, ns, op, now),
                Job::Sweep { .. } => sweep(&mut tables, now).map(|_| Outcome::Done),
                Job::Batch { .. } => Err(KvError::Storage("a batch in a group".into())),
            };
            if let Err(err @ KvError::Storage(_)) = &outcome {
                return Err(err.clone());
            }
            outcomes.push(outcome);
        }
    }
    tx.commit().map_err(storage)?;
    Ok(outcomes)
}

/// Applies `ops` in one transaction of their own: the first refusal
/// aborts it (nothing is written), else one commit for all.
fn commit_batch(
    db: &Database,
    ns: &Namespace,
    ops: &[WriteOp],
    now: u64,
) -> Result<usize, KvError> {
    let tx = db.begin_write().map_err(storage)?;
    {
        let mut tables = WriteTables {
            values: tx.open_table(VALUES).map_err(storage)?,
            expiry: tx.open_table(EXPIRY).map_err(storage)?,
            usage: tx.open_table(USAGE).map_err(storage)?,
        };
        for op in ops {
            apply(&mut tables, ns, op, now)?;
        }
    }
    tx.commit().map_err(storage)?;
    Ok(ops.len())
}

fn sweep(tables: &mut WriteTables<'_>, now: u64) -> Result<usize, KvError> {
    let end = (now.saturating_add(1)).to_be_bytes();
    let mut due = Vec::new();
    for entry in tables.expiry.range(..end.as_slice()).map_err(storage)? {
        let (key, ()) = entry
            .map(|(k, v)| (k.value().to_vec(), v.value()))
            .map_err(storage)?;
        due.push(key);
        if due.len() == MAX_SWEEP_KEYS {
            break;
        }
    }
    for key in &due {
        let Some((at, stored)) = key.split_first_chunk::<8>() else {
            continue;
        };
        sweep_one(tables, u64::from_be_bytes(*at), stored)?;
    }
    Ok(due.len())
}

#[wasmtime_wasi::async_trait]
impl KvBackend for RedbKv {
    async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        let stored = ns.key(key);
        self.read(move |db, now| {
            let tx = db.begin_read().map_err(storage)?;
            let table = tx.open_table(VALUES).map_err(storage)?;
            let value = table.get(stored.as_slice()).map_err(storage)?;
            Ok(value.and_then(|raw| live(raw.value(), now).map(<[u8]>::to_vec)))
        })
        .await
    }

    async fn write(&self, ns: &Namespace, op: WriteOp) -> Result<Outcome, KvError> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Write {
            ns: ns.clone(),
            op,
            reply,
        };
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| KvError::Storage("the kv writer stopped".into()))?;
        queue
            .send(job)
            .await
            .map_err(|_| KvError::Storage("the kv writer stopped".into()))?;
        answer
            .await
            .map_err(|_| KvError::Storage("the kv writer stopped".into()))?
    }

    fn fault(&self) -> Option<String> {
        self.db.fault()
    }

    async fn write_all(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<usize, KvError> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Batch {
            ns: ns.clone(),
            ops,
            reply,
        };
        let stopped = || KvError::Storage("the kv writer stopped".into());
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        queue.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn sweep_expired(&self) -> Result<(), KvError> {
        self.sweep_now().await
    }

    async fn list(
        &self,
        ns: &Namespace,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KeyPage, KvError> {
        let start = ns.key(prefix);
        let ns_len = ns.prefix().len();
        let cursor = cursor.map(str::to_owned);
        self.read(move |db, now| {
            let tx = db.begin_read().map_err(storage)?;
            let table = tx.open_table(VALUES).map_err(storage)?;
            let range = table.range(start.as_slice()..).map_err(storage)?;
            let entries = range.map(|e| {
                e.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))
                    .map_err(storage)
            });
            page_from(
                entries,
                ns_len,
                &start,
                cursor.as_deref(),
                clamp_limit(limit),
                now,
            )
        })
        .await
    }
}

#[cfg(test)]
#[path = "redb_tests.rs"]
mod tests;
