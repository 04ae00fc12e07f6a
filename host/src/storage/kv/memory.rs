//! An in-memory backend with the same rules as redb, for unit tests of KV
//! logic (TTL with a controllable clock, quotas, listing) without disk.

use super::logic::{Namespace, Outcome, Table, WriteOp, apply, live, page_from, sweep_one};
use super::{Clock, KeyPage, KvBackend, KvError, check_key, clamp_limit};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Default, Clone)]
struct State {
    values: BTreeMap<Vec<u8>, Vec<u8>>,
    expiry: BTreeSet<(u64, Vec<u8>)>,
    usage: HashMap<String, u64>,
}

impl Table for State {
    fn get_raw(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.values.get(key).cloned())
    }
    fn put_raw(&mut self, key: &[u8], raw: &[u8]) -> Result<(), KvError> {
        self.values.insert(key.to_vec(), raw.to_vec());
        Ok(())
    }
    fn remove_raw(&mut self, key: &[u8]) -> Result<(), KvError> {
        self.values.remove(key);
        Ok(())
    }
    fn index_expiry(&mut self, at_ms: u64, key: &[u8], present: bool) -> Result<(), KvError> {
        if present {
            self.expiry.insert((at_ms, key.to_vec()));
        } else {
            self.expiry.remove(&(at_ms, key.to_vec()));
        }
        Ok(())
    }
    fn usage(&mut self, tenant: &str) -> Result<u64, KvError> {
        Ok(self.usage.get(tenant).copied().unwrap_or(0))
    }
    fn set_usage(&mut self, tenant: &str, bytes: u64) -> Result<(), KvError> {
        self.usage.insert(tenant.to_owned(), bytes);
        Ok(())
    }
}

/// The in-memory backend.
pub struct MemoryKv {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
}

impl MemoryKv {
    /// An empty store on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            clock,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes every entry expired by now; returns how many.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now_ms();
        let mut state = self.state();
        let due: Vec<(u64, Vec<u8>)> = state
            .expiry
            .iter()
            .take_while(|(at, _)| *at <= now)
            .cloned()
            .collect();
        for (at, key) in &due {
            let _ = sweep_one(&mut *state, *at, key);
        }
        due.len()
    }

    /// Stored entries, expired or not (for tests of the sweeper).
    pub fn stored(&self) -> usize {
        self.state().values.len()
    }

    /// A tenant's bytes used.
    pub fn usage(&self, tenant: &str) -> u64 {
        self.state().usage.get(tenant).copied().unwrap_or(0)
    }
}

#[wasmtime_wasi::async_trait]
impl KvBackend for MemoryKv {
    async fn get(&self, ns: &Namespace, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        let now = self.clock.now_ms();
        Ok(self
            .state()
            .values
            .get(&ns.key(key))
            .and_then(|raw| live(raw, now))
            .map(<[u8]>::to_vec))
    }

    async fn write(&self, ns: &Namespace, op: WriteOp) -> Result<Outcome, KvError> {
        let now = self.clock.now_ms();
        apply(&mut *self.state(), ns, &op, now)
    }

    async fn write_all(&self, ns: &Namespace, ops: Vec<WriteOp>) -> Result<usize, KvError> {
        let now = self.clock.now_ms();
        let mut state = self.state();
        // Applied to a copy, kept only if every write applies.
        let mut next = state.clone();
        for op in &ops {
            apply(&mut next, ns, op, now)?;
        }
        *state = next;
        Ok(ops.len())
    }

    async fn sweep_expired(&self) -> Result<(), KvError> {
        MemoryKv::sweep(self);
        Ok(())
    }

    async fn list(
        &self,
        ns: &Namespace,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<KeyPage, KvError> {
        let now = self.clock.now_ms();
        let start = ns.key(prefix);
        let state = self.state();
        let entries = state.values.range(start.clone()..).map(Ok);
        page_from(
            entries,
            ns.prefix().len(),
            &start,
            cursor,
            clamp_limit(limit),
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::ManualClock;
    use super::*;

    fn ns(tenant: &str) -> Namespace {
        Namespace {
            tenant: tenant.into(),
            store: "s".into(),
            quota_bytes: 10_000,
        }
    }

    fn set(key: &str, value: &[u8], ttl: Option<u32>) -> WriteOp {
        WriteOp::Set {
            key: key.into(),
            value: value.to_vec(),
            ttl,
        }
    }

    #[tokio::test]
    async fn ttl_expires_on_read_and_the_sweeper_reclaims_space() -> Result<(), KvError> {
        let clock = Arc::new(ManualClock::at(1_000_000));
        let kv = MemoryKv::new(clock.clone());
        let a = ns("a");
        kv.write(&a, set("k", b"v", Some(10))).await?;
        kv.write(&a, set("forever", b"v", None)).await?;
        clock.set(1_000_000 + 9_999);
        assert_eq!(
            kv.get(&a, "k").await?,
            Some(b"v".to_vec()),
            "1 ms before expiry"
        );
        clock.set(1_000_000 + 10_000);
        assert_eq!(kv.get(&a, "k").await?, None, "at expiry");
        assert_eq!(kv.list(&a, "", None, 10).await?.keys, vec!["forever"]);
        let used = kv.usage("a");
        assert_eq!(kv.sweep(), 1);
        assert_eq!(kv.stored(), 1);
        assert!(kv.usage("a") < used);
        Ok(())
    }

    #[tokio::test]
    async fn increment_keeps_the_first_ttl_and_refuses_non_integers() -> Result<(), KvError> {
        let clock = Arc::new(ManualClock::at(0));
        let kv = MemoryKv::new(clock.clone());
        let a = ns("a");
        let inc = |d, ttl| WriteOp::Increment {
            key: "c".into(),
            delta: d,
            ttl,
        };
        assert_eq!(kv.write(&a, inc(5, Some(60))).await?, Outcome::Counter(5));
        clock.set(30_000);
        assert_eq!(kv.write(&a, inc(-2, Some(60))).await?, Outcome::Counter(3));
        clock.set(60_000);
        assert_eq!(
            kv.get(&a, "c").await?,
            None,
            "the window started at the first increment"
        );
        assert_eq!(
            kv.write(&a, inc(1, None)).await?,
            Outcome::Counter(1),
            "a new window"
        );
        kv.write(&a, set("c", b"abc", None)).await?;
        assert!(matches!(
            kv.write(&a, inc(1, None)).await,
            Err(KvError::NotAnInteger(_))
        ));
        kv.write(&a, set("c", i64::MAX.to_string().as_bytes(), None))
            .await?;
        assert!(matches!(
            kv.write(&a, inc(1, None)).await,
            Err(KvError::NotAnInteger(_))
        ));
        Ok(())
    }

    #[tokio::test]
    async fn compare_and_swap_and_quota_and_isolation() -> Result<(), KvError> {
        let kv = MemoryKv::new(Arc::new(ManualClock::at(0)));
        let (a, b) = (ns("a"), ns("b"));
        let cas = |expected: Option<&[u8]>, new: &[u8]| WriteOp::CompareAndSwap {
            key: "k".into(),
            expected: expected.map(<[u8]>::to_vec),
            new: new.to_vec(),
            ttl: None,
        };
        assert_eq!(kv.write(&a, cas(None, b"1")).await?, Outcome::Swapped(true));
        assert_eq!(
            kv.write(&a, cas(None, b"2")).await?,
            Outcome::Swapped(false),
            "exists"
        );
        assert_eq!(
            kv.write(&a, cas(Some(b"9"), b"2")).await?,
            Outcome::Swapped(false)
        );
        assert_eq!(
            kv.write(&a, cas(Some(b"1"), b"2")).await?,
            Outcome::Swapped(true)
        );
        assert_eq!(
            kv.get(&b, "k").await?,
            None,
            "tenant b does not see a's key"
        );
        assert!(kv.list(&b, "", None, 10).await?.keys.is_empty());
        // Quota: 10,000 bytes including keys and the 8-byte expiry header.
        let big = vec![0u8; 9_000];
        kv.write(&b, set("big", &big, None)).await?;
        assert_eq!(
            kv.write(&b, set("big2", &big, None)).await,
            Err(KvError::QuotaExceeded)
        );
        kv.write(&b, set("big", b"small", None)).await?;
        assert!(
            kv.write(&b, set("big2", &big, None)).await.is_ok(),
            "space was freed"
        );
        Ok(())
    }

    #[tokio::test]
    async fn list_pages_with_a_cursor_and_clamps_the_limit() -> Result<(), KvError> {
        let kv = MemoryKv::new(Arc::new(ManualClock::at(0)));
        let a = Namespace {
            quota_bytes: u64::MAX,
            ..ns("a")
        };
        for i in 0..25 {
            kv.write(&a, set(&format!("p/{i:02}"), b"", None)).await?;
        }
        kv.write(&a, set("q", b"", None)).await?;
        let first = kv.list(&a, "p/", None, 10).await?;
        assert_eq!(first.keys.len(), 10);
        assert_eq!(first.cursor.as_deref(), Some("p/09"));
        let second = kv.list(&a, "p/", first.cursor.as_deref(), 10).await?;
        assert_eq!(second.keys.first().map(String::as_str), Some("p/10"));
        let last = kv.list(&a, "p/", Some("p/19"), 10).await?;
        assert_eq!((last.keys.len(), last.cursor), (5, None));
        assert_eq!(
            kv.list(&a, "p/", None, 0).await?.keys.len(),
            1,
            "0 is clamped to 1"
        );
        assert_eq!(kv.list(&a, "", None, u32::MAX).await?.keys.len(), 26);
        Ok(())
    }

    #[tokio::test]
    async fn keys_at_and_past_the_limits() -> Result<(), KvError> {
        let kv = MemoryKv::new(Arc::new(ManualClock::at(0)));
        let a = Namespace {
            quota_bytes: u64::MAX,
            ..ns("a")
        };
        let at = "k".repeat(super::super::MAX_KEY_BYTES);
        assert!(kv.write(&a, set(&at, b"v", None)).await.is_ok());
        assert_eq!(
            kv.write(&a, set(&format!("{at}k"), b"v", None)).await,
            Err(KvError::KeyTooLarge)
        );
        assert_eq!(
            kv.write(&a, set("", b"v", None)).await,
            Err(KvError::KeyTooLarge)
        );
        assert!(matches!(
            kv.write(&a, set("a\0b", b"v", None)).await,
            Err(KvError::InvalidKey(_))
        ));
        let value = vec![0u8; super::super::MAX_VALUE_BYTES];
        assert!(kv.write(&a, set("v", &value, None)).await.is_ok());
        let past = vec![0u8; super::super::MAX_VALUE_BYTES + 1];
        assert_eq!(
            kv.write(&a, set("v", &past, None)).await,
            Err(KvError::ValueTooLarge)
        );
        assert_eq!(
            kv.write(&a, set("t", b"", Some(super::super::MAX_TTL_SECONDS + 1)))
                .await,
            Err(KvError::TtlTooLong)
        );
        Ok(())
    }
}
