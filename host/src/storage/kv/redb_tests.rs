//! Unit tests of the redb backend: group commit, durability and the sweeper.

use super::super::ManualClock;
use super::super::SystemClock;
use super::*;

#[tokio::test]
async fn the_sweeper_removes_expired_keys_and_frees_quota() -> Result<(), KvError> {
    let dir = tempfile::tempdir().map_err(storage)?;
    let clock = Arc::new(ManualClock::at(1_000));
    let kv = RedbKv::open(&dir.path().join("kv.redb"), clock.clone())?;
    let ns = Namespace {
        tenant: "t".into(),
        store: "s".into(),
        quota_bytes: u64::MAX,
    };
    for i in 0..50 {
        let op = WriteOp::Set {
            key: format!("k{i}"),
            value: vec![1; 100],
            ttl: Some(5),
        };
        kv.write(&ns, op).await?;
    }
    kv.write(
        &ns,
        WriteOp::Set {
            key: "keep".into(),
            value: vec![1; 100],
            ttl: None,
        },
    )
    .await?;
    let before = kv.usage("t").await?;
    kv.sweep_now().await?;
    assert_eq!(kv.usage("t").await?, before, "nothing expired yet");
    clock.set(1_000 + 5_000);
    kv.sweep_now().await?;
    let after = kv.usage("t").await?;
    assert_eq!(
        after,
        (ns.key("keep").len() + 8 + 100) as u64,
        "only `keep` is left"
    );
    assert_eq!(kv.list(&ns, "", None, 1000).await?.keys, vec!["keep"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_increments_are_atomic_and_survive_reopen() -> Result<(), KvError> {
    let dir = tempfile::tempdir().map_err(storage)?;
    let path = dir.path().join("kv.redb");
    let kv = Arc::new(RedbKv::open(&path, Arc::new(SystemClock))?);
    let ns = Namespace {
        tenant: "t".into(),
        store: "s".into(),
        quota_bytes: u64::MAX,
    };
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (kv, ns) = (kv.clone(), ns.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..200 {
                let op = WriteOp::Increment {
                    key: "n".into(),
                    delta: 1,
                    ttl: None,
                };
                kv.write(&ns, op).await?;
            }
            Ok::<_, KvError>(())
        }));
    }
    for task in tasks {
        task.await.map_err(storage)??;
    }
    assert_eq!(kv.get(&ns, "n").await?, Some(b"3200".to_vec()));
    drop(kv);
    let kv = RedbKv::open(&path, Arc::new(SystemClock))?;
    assert_eq!(kv.get(&ns, "n").await?, Some(b"3200".to_vec()));
    Ok(())
}
