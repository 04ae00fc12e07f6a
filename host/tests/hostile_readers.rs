//! Anonymous clients that ask for large responses and never read them,
//! against the `verge` binary (child process): HTTP/1 connections that
//! never read, an HTTP/2 connection that opens no window (and answers
//! every ping), and a streamed response nobody reads. Each is bounded by the
//! buffered-response budget and dropped once its peer has taken nothing for
//! `RESPONSE_STALL_TIMEOUT` (10 s), while another client keeps being
//! served. Counts and times are bounded; traffic stays on 127.0.0.1.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

mod common;

use common::{Daemon, Options, start_with};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `RESPONSE_STALL_TIMEOUT` in `host/src/server/limits.rs`.
const STALL: Duration = verge::server::limits::RESPONSE_STALL_TIMEOUT;

/// The buffered-response budget these daemons run with.
const BUDGET_MIB: u64 = 128;

/// Each response asked for: 16 MiB.
const RESPONSE_MIB: u64 = 16;

fn daemon(dir: &std::path::Path) -> Daemon {
    let config = format!("[connections]\nbuffered_response_mib = {BUDGET_MIB}\nmax_per_ip = 0\n");
    let d = start_with(
        dir,
        &Options {
            config: Some(&config),
            ..Options::default()
        },
    );
    common::deploy(&d, "t", "huge-response", "huge", "huge.test");
    common::deploy(&d, "t", "stream-probe", "stream", "stream.test");
    common::deploy(&d, "t", "hello", "hello", "hello.test");
    d
}

/// The daemon's resident set now (VmRSS), in bytes.
fn rss(d: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// Whether the server closed `stream`: reads (which frees the server's
/// buffers, so only after the stall time) until EOF, a reset or `limit`,
/// and returns how many bytes came and whether it was closed.
fn drained_and_closed(stream: &mut TcpStream, limit: Duration) -> (usize, bool, u16) {
    let deadline = Instant::now() + limit;
    let mut total = 0;
    let mut status = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (total, false, status);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (total, true, status),
            Ok(n) => {
                if total == 0 && n >= 12 {
                    status = std::str::from_utf8(&buf[9..12])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                }
                total += n;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (total, false, status);
            }
            Err(_) => return (total, true, status),
        }
    }
}

/// A connection whose receive buffer is 4 KiB, as a client that reads
/// nothing would leave it: the kernel holds almost nothing for it.
fn small_window(addr: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(addr).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// A watcher thread measuring another client's hello while `attack` runs.
fn while_served<T>(d: &Daemon, attack: impl FnOnce() -> T) -> (T, f64, usize) {
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (addr, done) = (d.data, done.clone());
        std::thread::spawn(move || common::hello_p99(addr, 100, &done))
    };
    let out = attack();
    done.store(true, Ordering::Relaxed);
    let (p99, failed) = watcher.join().unwrap();
    (out, p99, failed)
}

/// Sends `count` requests for `host_path` on 4 KiB-window sockets that
/// are never read.
fn unread(d: &Daemon, count: usize, request: &str) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut s = small_window(d.data);
            s.write_all(request.as_bytes()).unwrap();
            s
        })
        .collect()
}

/// How long after its response is pinned a silent connection may stay:
/// the stall window and a half (when it is checked), and slack.
fn dropped_within() -> Duration {
    STALL + STALL / 2 + Duration::from_secs(4)
}

#[test]
fn forty_http1_clients_that_never_read_16_mib_are_bounded_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    common::hello_p99(d.data, 20, &AtomicBool::new(true));
    let before = rss(&d);
    let started = Instant::now();
    let request = format!("GET /?mib={RESPONSE_MIB} HTTP/1.1\r\nhost: huge.test\r\n\r\n");
    let sockets = unread(&d, 40, &request);
    // Every response is made (or refused with 503) and pinned by its
    // peer. (Making forty 16 MiB answers at once is the guests' own CPU,
    // not what this test measures.)
    std::thread::sleep(Duration::from_secs(3));
    let held = rss(&d).saturating_sub(before);
    let ((), p99_ms, failed) = while_served(&d, || {
        std::thread::sleep(dropped_within().saturating_sub(started.elapsed()));
    });
    let (mut cut, mut refused) = (0, 0);
    for mut s in sockets {
        let (got, closed, status) = drained_and_closed(&mut s, Duration::from_secs(5));
        assert!(closed, "a connection that read nothing stayed open");
        match status {
            200 if got < (RESPONSE_MIB << 20) as usize => cut += 1,
            503 => refused += 1,
            other => panic!("{other}: {got} bytes, whole"),
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = rss(&d).saturating_sub(before);
    println!(
        "h1: RSS +{} MiB held, +{} MiB after, other client's p99 {p99_ms:.1} ms, {cut} cut, {refused} refused",
        held >> 20,
        after >> 20
    );
    // The budget takes 8 answers of 16 MiB; the rest are refused (503).
    assert!(cut >= 4 && refused >= 24, "{cut} cut, {refused} refused");
    // Dropped connections give their memory back.
    assert!(after < 64 << 20, "RSS still +{} MiB", after >> 20);
    assert!(
        held < (BUDGET_MIB + 96) << 20,
        "RSS grew {} MiB with a {BUDGET_MIB} MiB response budget",
        held >> 20
    );
    assert_eq!(failed, 0, "the other client had failures");
    assert!(p99_ms < 50.0, "the other client's p99 was {p99_ms:.1} ms");
}

#[test]
fn an_h2_connection_with_a_zero_window_is_bounded_and_dropped_though_it_answers_pings() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    common::hello_p99(d.data, 20, &AtomicBool::new(true));
    let before = rss(&d);
    let addr = d.data;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (conn, streams, started) = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        // A window of 0: the server may send headers, never data. The
        // client answers the server's pings (hyper does).
        let (sender, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .timer(hyper_util::rt::TokioTimer::new())
                .initial_stream_window_size(0)
                .initial_connection_window_size(65_535)
                .handshake::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::rt::TokioIo::new(
                    tcp,
                ))
                .await
                .unwrap();
        let started = Instant::now();
        let conn = tokio::spawn(conn);
        let streams: Vec<_> = (0..100)
            .map(|_| {
                let mut sender = sender.clone();
                tokio::spawn(async move {
                    let request =
                        http::Request::get(format!("http://huge.test/?mib={RESPONSE_MIB}"))
                            .body(http_body_util::Empty::new())
                            .unwrap();
                    // Hold the body unread until the connection ends.
                    if let Ok(response) = sender.send_request(request).await {
                        tokio::time::sleep(STALL * 3).await;
                        drop(response);
                    }
                })
            })
            .collect();
        (conn, streams, started)
    });
    // The responses are made (or refused) and pinned by the zero window.
    std::thread::sleep(Duration::from_secs(3));
    let held = rss(&d).saturating_sub(before);
    let (ended_after, p99_ms, failed) = while_served(&d, || {
        rt.block_on(async {
            let ended = tokio::time::timeout(dropped_within(), conn).await;
            assert!(ended.is_ok(), "the zero-window connection stayed open");
            let ended_after = started.elapsed();
            for stream in streams {
                stream.abort();
            }
            ended_after
        })
    });
    println!(
        "h2: RSS +{} MiB held, dropped after {ended_after:?}, other client's p99 {p99_ms:.1} ms",
        held >> 20
    );
    assert!(
        ended_after < dropped_within(),
        "dropped after {ended_after:?}"
    );
    assert!(
        held < (BUDGET_MIB + 96) << 20,
        "RSS grew {} MiB with a {BUDGET_MIB} MiB response budget",
        held >> 20
    );
    assert_eq!(failed, 0, "the other client had failures");
    assert!(p99_ms < 50.0, "the other client's p99 was {p99_ms:.1} ms");
}

#[test]
fn streamed_responses_nobody_reads_are_dropped_within_the_stall_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    // 24 MiB in 64 KiB chunks: far more than the socket buffers.
    let request = "GET /?mode=big&kb=24576 HTTP/1.1\r\nhost: stream.test\r\n\r\n";
    let sockets = unread(&d, 20, request);
    std::thread::sleep(dropped_within());
    for mut s in sockets {
        let (got, closed, _) = drained_and_closed(&mut s, Duration::from_secs(5));
        assert!(closed, "a streamed response nobody read stayed open");
        assert!(got < 24 << 20, "the whole stream came: {got} bytes");
    }
}
