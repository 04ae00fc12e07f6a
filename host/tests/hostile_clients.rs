//! Anonymous hostile clients against the `verge` binary (child process):
//! stalled bodies, silent sockets, a full fd table, one IP hoarding
//! connections (the HTTP conformance cases are in `http_conformance.rs`;
//! docs/security.md). Counts
//! and times are bounded; traffic stays on 127.0.0.1.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

mod common;

use common::{Daemon, Options, admin, read_until_closed, start_with, status_of};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The daemon's peak resident set so far (VmHWM), in bytes.
fn peak_rss(d: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

const BUDGET_MIB: u64 = 64;

#[test]
fn forty_stalled_16_mib_bodies_stay_under_the_budget_and_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[connections]\nbuffered_body_mib = {BUDGET_MIB}\nbody_idle_timeout_ms = 2000\nmax_per_ip = 0\n"
    );
    let d = start_with(
        dir.path(),
        &Options {
            config: Some(&config),
            ..Options::default()
        },
    );
    common::deploy(&d, "t", "echo", "echo", "echo.test");
    common::deploy(&d, "t", "hello", "hello", "hello.test");
    common::hello_p99(d.data, 20, &AtomicBool::new(true));
    let before = peak_rss(&d);
    let done = Arc::new(AtomicBool::new(false));
    // Another client keeps being served while the attack runs.
    let watcher = {
        let (addr, done) = (d.data, done.clone());
        std::thread::spawn(move || common::hello_p99(addr, 100, &done))
    };
    let body = vec![b'x'; (16 << 20) - 1];
    let attackers: Vec<_> = (0..40)
        .map(|_| {
            let (addr, body) = (d.data, body.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                let head = format!(
                    "POST / HTTP/1.1\r\nhost: echo.test\r\ncontent-length: {}\r\n\r\n",
                    16 << 20
                );
                let _ = s.write_all(head.as_bytes());
                // Past the budget the server answers 503 and closes while
                // this is still writing: a failed write is expected.
                let _ = s.write_all(&body);
                let sent = Instant::now();
                let (response, closed) = read_until_closed(&mut s, Duration::from_secs(15));
                (status_of(&response), closed, sent.elapsed())
            })
        })
        .collect();
    let results: Vec<_> = attackers.into_iter().map(|t| t.join().unwrap()).collect();
    done.store(true, Ordering::Relaxed);
    let (p99_ms, failed) = watcher.join().unwrap();
    let grown = peak_rss(&d).saturating_sub(before);
    for (status, closed, took) in &results {
        assert!(*closed, "a stalled connection stayed open: {results:?}");
        assert!(
            *status == 408 || *status == 503 || *status == 0,
            "{status}: {results:?}"
        );
        assert!(*took < Duration::from_secs(10), "{took:?}");
    }
    assert!(
        results.iter().any(|(s, _, _)| *s == 408),
        "some bodies fit the budget and then stalled: {results:?}"
    );
    assert!(
        results.iter().any(|(s, _, _)| *s == 503),
        "the budget turned some away: {results:?}"
    );
    // The budget plus room for hyper's buffers and the allocator.
    assert!(
        grown < (BUDGET_MIB + 64) << 20,
        "peak RSS grew {} MiB with a {BUDGET_MIB} MiB budget",
        grown >> 20
    );
    assert_eq!(failed, 0, "the other client had failures");
    assert!(p99_ms < 50.0, "the other client's p99 was {p99_ms:.1} ms");
}

#[test]
fn silent_http1_and_h2_preface_connections_are_closed_at_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(
        dir.path(),
        &Options {
            config: Some("[connections]\nidle_timeout_ms = 1000\nmax_per_ip = 0\n"),
            ..Options::default()
        },
    );
    let started = Instant::now();
    let mut silent: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(d.data).unwrap())
        .collect();
    let mut preface: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(d.data).unwrap();
            s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
            // An empty SETTINGS frame, then silence.
            s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap();
            s
        })
        .collect();
    // A connection that sent one keep-alive request is idle afterwards.
    let mut kept = TcpStream::connect(d.data).unwrap();
    kept.write_all(b"GET / HTTP/1.1\r\nhost: none.test\r\n\r\n")
        .unwrap();
    for s in silent.iter_mut().chain(preface.iter_mut()) {
        let (_, closed) = read_until_closed(s, Duration::from_secs(6));
        assert!(closed, "a silent connection stayed open");
    }
    let (response, closed) = read_until_closed(&mut kept, Duration::from_secs(6));
    assert_eq!(status_of(&response), 404);
    assert!(closed, "an idle keep-alive connection stayed open");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[test]
fn with_ulimit_1024_and_1100_silent_connections_the_admin_api_still_answers() {
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
    if soft < 4096 {
        rlimit::Resource::NOFILE.set(hard.min(4096), hard).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(
        dir.path(),
        &Options {
            config: Some("[connections]\nidle_timeout_ms = 60000\nmax_per_ip = 0\n"),
            nofile: Some(1024),
            ..Options::default()
        },
    );
    let started = Instant::now();
    let held: Vec<TcpStream> = (0..1100)
        .map(|_| TcpStream::connect_timeout(&d.data, Duration::from_secs(5)).unwrap())
        .collect();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "past the cap the kernel's queue holds the rest: {:?}",
        started.elapsed()
    );
    // Let the accept loop take all it will.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let (status, body) = admin(&d, "GET", "/healthz", b"");
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let (status, metrics) = admin(&d, "GET", "/metrics", b"");
    assert_eq!(status, 200);
    let value = |name: &str| -> f64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("process_max_fds"), 1024.0);
    assert!(value("process_open_fds") < 1024.0 - 100.0, "{metrics}");
    drop(held);
    // Freed slots serve again.
    let (status, _) = common::request(d.data, "GET", "/", "none.test", "", b"").unwrap();
    assert_eq!(status, 404);
}

#[test]
fn one_ip_gets_its_connection_cap_and_the_next_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(
        dir.path(),
        &Options {
            config: Some("[connections]\nmax_per_ip = 8\n"),
            ..Options::default()
        },
    );
    let ask = |s: &mut TcpStream| -> u16 {
        if s.write_all(b"GET / HTTP/1.1\r\nhost: none.test\r\n\r\n")
            .is_err()
        {
            return 0;
        }
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1024];
        match s.read(&mut buf) {
            Ok(n) => status_of(&buf[..n]),
            Err(_) => 0,
        }
    };
    let mut open: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(d.data).unwrap())
        .collect();
    for s in &mut open {
        assert_eq!(ask(s), 404, "at the cap, every connection is served");
    }
    let mut ninth = TcpStream::connect(d.data).unwrap();
    assert_eq!(ask(&mut ninth), 0, "one past the cap is closed");
    open.pop();
    std::thread::sleep(Duration::from_millis(200));
    let mut again = TcpStream::connect(d.data).unwrap();
    assert_eq!(ask(&mut again), 404, "a freed slot is given again");
}

#[test]
fn the_binary_serves_with_the_runtime_configuration_the_benches_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(dir.path(), &Options::default());
    let (_, metrics) = admin(&d, "GET", "/metrics", b"");
    let line = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name}: {metrics}"))
            .to_owned()
    };
    assert_eq!(
        line("verge_runtime_event_interval"),
        format!(
            "verge_runtime_event_interval {}",
            verge::daemon::EVENT_INTERVAL
        )
    );
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(
        line("verge_runtime_workers"),
        format!("verge_runtime_workers {cores}")
    );
    // The operator's thread count, and connections spread over them.
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(
        dir.path(),
        &Options {
            config: Some("[connections]\nserving_threads = 3\n"),
            ..Options::default()
        },
    );
    let (_, metrics) = admin(&d, "GET", "/metrics", b"");
    assert!(
        metrics.lines().any(|l| l == "verge_runtime_workers 3"),
        "{metrics}"
    );
    let pid = d.child.id();
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("verge-serve-"))
        .count();
    assert_eq!(threads, 3, "one thread per serving runtime");
}

/// A request body fed by hand; stalls while its sender is held.
struct Fed(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl hyper::body::Body for Fed {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

#[test]
fn thirty_stalled_h2_streams_of_10_mib_on_one_connection_stay_under_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        format!("[connections]\nbuffered_body_mib = {BUDGET_MIB}\nbody_idle_timeout_ms = 2000\n");
    let d = start_with(
        dir.path(),
        &Options {
            config: Some(&config),
            ..Options::default()
        },
    );
    common::deploy(&d, "t", "echo", "echo", "echo.test");
    let before = peak_rss(&d);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = d.data;
    let started = Instant::now();
    let statuses: Vec<u16> = rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .timer(hyper_util::rt::TokioTimer::new())
                .handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let streams: Vec<_> = (0..30)
            .map(|_| {
                let mut sender = sender.clone();
                tokio::spawn(async move {
                    let (tx, rx) = tokio::sync::mpsc::channel(2);
                    let request = http::Request::post("http://echo.test/")
                        .header("content-length", 10 << 20)
                        .body(Fed(rx))
                        .unwrap();
                    let feeder = tokio::spawn(async move {
                        for i in 0..10 {
                            let len = if i == 9 { (1 << 20) - 1 } else { 1 << 20 };
                            if tx.send(bytes::Bytes::from(vec![b'x'; len])).await.is_err() {
                                return;
                            }
                        }
                        // Stall: hold the sender without sending more.
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        drop(tx);
                    });
                    let response =
                        tokio::time::timeout(Duration::from_secs(15), sender.send_request(request))
                            .await;
                    feeder.abort();
                    match response {
                        Ok(Ok(response)) => response.status().as_u16(),
                        Ok(Err(_)) => 1,
                        Err(_) => 0,
                    }
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for stream in streams {
            statuses.push(stream.await.unwrap());
        }
        statuses
    });
    let grown = peak_rss(&d).saturating_sub(before);
    assert!(
        statuses.iter().all(|s| *s == 408 || *s == 503),
        "every stalled stream is answered: {statuses:?}"
    );
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        grown < (BUDGET_MIB + 64) << 20,
        "peak RSS grew {} MiB with a {BUDGET_MIB} MiB budget",
        grown >> 20
    );
}

#[test]
fn twenty_concurrent_32_mib_uploads_stay_under_the_upload_budget() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(dir.path(), &Options::default());
    for t in 0..5 {
        let body = format!(r#"{{"name":"u{t}"}}"#);
        assert_eq!(admin(&d, "POST", "/v1/tenants", body.as_bytes()).0, 201);
        let manifest = format!(r#"{{"routes":["u{t}.test"]}}"#);
        let path = format!("/v1/tenants/u{t}/apps/site");
        assert_eq!(admin(&d, "PUT", &path, manifest.as_bytes()).0, 200);
    }
    let before = peak_rss(&d);
    let upload = vec![0u8; 32 << 20];
    let uploads: Vec<_> = (0..20)
        .map(|i| {
            let (addr, upload) = (d.admin, upload.clone());
            std::thread::spawn(move || {
                let path = format!("/v1/tenants/u{}/apps/site/versions", i % 5);
                let auth = format!("authorization: Bearer {}\r\n", common::TOKEN);
                common::request(addr, "POST", &path, "a", &auth, &upload)
                    .map(|(s, _)| s)
                    .unwrap_or(0)
            })
        })
        .collect();
    let statuses: Vec<u16> = uploads.into_iter().map(|t| t.join().unwrap()).collect();
    let grown = peak_rss(&d).saturating_sub(before);
    // Each is refused: not a component (400), or no upload slot (429).
    assert!(
        statuses.iter().all(|s| *s == 400 || *s == 429 || *s == 0),
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
    let spool = dir.path().join("uploads");
    let left = std::fs::read_dir(&spool).map_or(0, |d| d.count());
    assert_eq!(
        left,
        0,
        "refused uploads leave no file in {}",
        spool.display()
    );
    // Uploads are spooled to files as they arrive, four at most at once:
    // the daemon holds none of the 640 MiB sent.
    let budget = 48u64 << 20;
    assert!(
        grown < budget,
        "peak RSS grew {} MiB for 20 concurrent uploads",
        grown >> 20
    );
}
