//! Helpers shared by the tests that run the `verge` binary.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first line the child prints on stdout (its ready line).
pub fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        BufReader::new(stdout).read_line(&mut line).unwrap();
    }
    line
}

/// One HTTP/1.1 request with `Connection: close` and `extra` header lines
/// (each ending in CRLF); returns (status, body).
pub fn request(
    addr: impl std::net::ToSocketAddrs,
    method: &str,
    path: &str,
    host: &str,
    extra: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

pub const TOKEN: &str = "verge_op_process-test-token";

/// Every example and test guest by package name, built once per process.
pub fn guests() -> std::collections::HashMap<String, PathBuf> {
    static BUILT: std::sync::OnceLock<std::collections::HashMap<String, PathBuf>> =
        std::sync::OnceLock::new();
    BUILT.get_or_init(build_guests).clone()
}

fn build_guests() -> std::collections::HashMap<String, PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut all = std::collections::HashMap::new();
    for dir in ["examples", "tests/guests"] {
        let built =
            verge::guest_build::build(&root.join(dir), Some(&root.join("target/guests"))).unwrap();
        all.extend(built.into_iter().map(|a| (a.package, a.path)));
    }
    all
}

pub struct Daemon {
    pub child: Child,
    pub data: SocketAddr,
    pub admin: SocketAddr,
    pub ready_ms: u64,
}

impl Drop for Daemon {
    /// A failing test must not leave its daemon running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(data_dir: &Path) -> Daemon {
    start_with(data_dir, &Options::default())
}

/// How a test daemon is started beyond the defaults.
#[derive(Default)]
pub struct Options<'a> {
    /// A config file's text (written into the data dir).
    pub config: Option<&'a str>,
    /// Soft and hard open-file limit for the child (`ulimit -n`).
    pub nofile: Option<u64>,
    /// Extra `verge serve` flags.
    pub args: &'a [&'a str],
    /// Where the daemon's stderr goes (with `RUST_LOG=info`); discarded
    /// when `None`.
    pub stderr: Option<&'a Path>,
    /// Logs as JSON lines (`--log-format json`).
    pub json_logs: bool,
}

pub fn start_with(data_dir: &Path, options: &Options) -> Daemon {
    let mut command = match options.nofile {
        // The shell sets both limits, then becomes the daemon.
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(env!("CARGO_BIN_EXE_verge"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_verge")),
    };
    if options.json_logs {
        command.args(["--log-format", "json"]);
    }
    command.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--pool-instances",
        "64",
    ]);
    command.arg("--data-dir").arg(data_dir).args(options.args);
    if let Some(text) = options.config {
        let file = data_dir.join("verge-test.toml");
        std::fs::write(&file, text).unwrap();
        command.arg("--config").arg(file);
    }
    let stderr = match options.stderr {
        Some(path) => {
            command.env("RUST_LOG", "info");
            Stdio::from(std::fs::File::create(path).unwrap())
        }
        None => {
            command.env("RUST_LOG", "warn");
            Stdio::null()
        }
    };
    let mut child = command
        .env("VERGE_ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let line = first_line(&mut child);
    // "verge: serving N apps on http://A (admin API on http://B), ready in M ms"
    let addr = |after: &str| -> SocketAddr {
        let rest = &line[line.find(after).unwrap_or_else(|| panic!("{line}")) + after.len()..];
        rest.split([' ', ')']).next().unwrap().parse().unwrap()
    };
    let ready_ms = line
        .rsplit("ready in ")
        .next()
        .unwrap()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap();
    Daemon {
        data: addr("on http://"),
        admin: addr("admin API on http://"),
        ready_ms,
        child,
    }
}

/// One request to the daemon, with the operator token.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let auth = format!("authorization: Bearer {TOKEN}\r\n");
    request(addr, method, path, host, &auth, body)
}

pub fn admin(d: &Daemon, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    http(d.admin, method, path, "admin", body).unwrap()
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

/// Runs the `verge` CLI against daemon `d`; returns (success, stdout, stderr).
pub fn cli(d: &Daemon, token: &str, args: &[&str]) -> (bool, String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_verge"))
        .args(args)
        .env("VERGE_URL", format!("http://{}", d.admin))
        .env("VERGE_TOKEN", token)
        .env("CARGO_TARGET_DIR", root.join("target/guests"))
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Deploys test guest `guest` as app `app` of tenant `tenant` (created
/// when new) on `route`, activated.
pub fn deploy(d: &Daemon, tenant: &str, guest: &str, app: &str, route: &str) {
    let wasm = std::fs::read(&guests()[guest]).unwrap();
    let body = format!(r#"{{"name":"{tenant}"}}"#);
    let (status, _) = admin(d, "POST", "/v1/tenants", body.as_bytes());
    assert!(status == 201 || status == 409, "{status}");
    let manifest = format!(r#"{{"routes":["{route}"]}}"#);
    let path = format!("/v1/tenants/{tenant}/apps/{app}");
    assert_eq!(admin(d, "PUT", &path, manifest.as_bytes()).0, 200);
    let (status, body) = admin(d, "POST", &format!("{path}/versions"), &wasm);
    assert_eq!(status, 201, "{body}");
}

/// A valid component whose one core function is `depth` nested `block`s:
/// small on the wire, slow to compile (the compile-bomb shape).
pub fn nested_blocks_component(depth: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(body.len(), out);
        out.extend_from_slice(body);
    }
    let mut code = vec![0u8]; // no locals
    for _ in 0..depth {
        code.extend_from_slice(&[0x02, 0x40]); // block (empty type)
    }
    code.extend(std::iter::repeat_n(0x0b, depth + 1)); // the ends, then the body's
    let mut bodies = vec![1u8];
    leb(code.len(), &mut bodies);
    bodies.extend_from_slice(&code);
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut module); // one type: [] -> []
    section(3, &[1, 0], &mut module); // one function of type 0
    section(10, &bodies, &mut module);
    let mut component = b"\0asm\x0d\0\x01\0".to_vec();
    section(1, &module, &mut component); // a core module section
    component
}

/// What one CLI run gives: success, stdout, stderr.
pub struct CliRun {
    pub ok: bool,
    pub out: String,
    pub err: String,
}

/// Runs the `verge` CLI with exactly `env` (besides PATH and HOME-less
/// defaults: no VERGE_* from the test's own environment), feeding `stdin`.
pub fn cli_env(env: &[(&str, &str)], stdin: &[u8], args: &[&str]) -> CliRun {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut command = Command::new(env!("CARGO_BIN_EXE_verge"));
    command
        .args(args)
        .env_remove("VERGE_URL")
        .env_remove("VERGE_TOKEN")
        .env_remove("VERGE_PROFILE")
        .env_remove("VERGE_TENANT")
        .env("CARGO_TARGET_DIR", root.join("target/guests"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    CliRun {
        ok: out.status.success(),
        out: text(&out.stdout),
        err: text(&out.stderr),
    }
}

/// Runs the CLI against `d` as `token`, with `stdin`.
pub fn cli_in(d: &Daemon, token: &str, stdin: &[u8], args: &[&str]) -> CliRun {
    let url = format!("http://{}", d.admin);
    cli_env(&[("VERGE_URL", &url), ("VERGE_TOKEN", token)], stdin, args)
}

/// The `verge` binary for CLI runs that build guests: builds share the
/// repository's guest target dir, so the SDK and its dependencies compile
/// once per checkout, not once per test run.
pub fn verge_building() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_verge"));
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests");
    cmd.env("CARGO_TARGET_DIR", target).env("RUST_LOG", "warn");
    cmd
}

/// Runs `verge serve` on `dir` expecting it to refuse within 30 s;
/// returns stderr.
pub fn refused_start(dir: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_verge"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("VERGE_ADMIN_TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the start was not refused within 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(!status.success(), "the start was not refused");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    stderr
}

/// Sequential hello requests until `done` is set (at least `min`): the
/// p99 in ms and how many failed.
pub fn hello_p99(
    addr: SocketAddr,
    min: usize,
    done: &std::sync::atomic::AtomicBool,
) -> (f64, usize) {
    let mut times = Vec::new();
    let mut failed = 0;
    while times.len() < min || !done.load(std::sync::atomic::Ordering::Relaxed) {
        let started = std::time::Instant::now();
        match request(addr, "GET", "/", "hello.test", "", b"") {
            Ok((200, _)) => {}
            _ => failed += 1,
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(5));
    }
    times.sort_by(f64::total_cmp);
    let n = times.len();
    (times[(n * 99 / 100).min(n - 1)], failed)
}

/// Reads until EOF or `limit`; returns what came and whether the peer
/// closed within `limit`.
pub fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (out, false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return (out, false),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return (out, false),
            // A reset is a close too.
            Err(_) => return (out, true),
        }
    }
}

/// The status code of a raw HTTP/1.1 response (0 if none).
pub fn status_of(response: &[u8]) -> u16 {
    String::from_utf8_lossy(response)
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
