//! The servers the binary benches compare, each a child process pinned to
//! core 0 with `taskset` (the load generator takes core 1): the shipped
//! `verge serve --app`, `wasmtime serve`, and a raw hyper hello on the
//! runtime configuration the daemon uses.

use anyhow::Context as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A server child; killed on drop.
pub struct ChildServer {
    child: Child,
    /// Where it serves.
    pub addr: SocketAddr,
    /// Its stderr (verge's access log), when kept.
    pub log: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which stream a server prints its address on.
enum Printed {
    Stdout,
    Stderr,
}

/// Reads lines of `reader` until one holds `http://ADDR`; returns ADDR.
fn address_from(reader: impl std::io::Read) -> anyhow::Result<SocketAddr> {
    let mut lines = BufReader::new(reader).lines();
    for line in lines.by_ref().take(50) {
        let line = line?;
        if let Some(at) = line.find("http://") {
            let rest = &line[at + "http://".len()..];
            let addr = rest.split(['/', ' ', ')']).next().unwrap_or_default();
            return addr
                .parse()
                .with_context(|| format!("no address in {line:?}"));
        }
    }
    anyhow::bail!("the server printed no http:// address")
}

impl ChildServer {
    /// `verge serve --app wasm` on a fresh data dir. With `access_log`, its
    /// stderr (the access log) goes to a file; else `--no-access-log`.
    pub fn verge(binary: &Path, wasm: &Path, access_log: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        Self::verge_in(binary, wasm, access_log, dir)
    }

    /// As [`ChildServer::verge`], on the data dir `dir` (kept compiled
    /// artifacts make a second start fast).
    pub fn verge_in(
        binary: &Path,
        wasm: &Path,
        access_log: bool,
        dir: tempfile::TempDir,
    ) -> anyhow::Result<Self> {
        let log = dir.path().join("stderr.log");
        let mut command = Command::new("taskset");
        command
            .args(["-c", "0"])
            .arg(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--app"])
            .arg(wasm)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?);
        if !access_log {
            command.arg("--no-access-log");
        }
        let mut child = command.spawn().context("starting verge under taskset")?;
        let addr = address_from(child.stdout.take().context("no stdout")?)?;
        Ok(Self {
            child,
            addr,
            log: Some(log),
            _dir: Some(dir),
        })
    }

    /// `wasmtime serve -S cli wasm` (`-S cli`: the guest may import
    /// `wasi:cli`, as wasi-crate and componentize-js components do); it
    /// prints its address on stderr.
    pub fn wasmtime(cli: &Path, wasm: &Path) -> anyhow::Result<Self> {
        let mut command = Command::new(cli);
        command
            .args(["serve", "-S", "cli", "--addr", "127.0.0.1:0"])
            .arg(wasm);
        Self::pinned(command, Printed::Stderr)
    }

    /// The raw hyper hello (`benches/src/bin/hyper-hello.rs`); it prints
    /// its address on stdout.
    pub fn hyper(binary: &Path) -> anyhow::Result<Self> {
        Self::pinned(Command::new(binary), Printed::Stdout)
    }

    /// The plain hyper reverse proxy to `origin`
    /// (`benches/src/bin/hyper-proxy.rs`).
    pub fn hyper_proxy(binary: &Path, origin: SocketAddr) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        command.arg(origin.to_string());
        Self::pinned(command, Printed::Stdout)
    }

    /// Runs `command` under `taskset -c 0` and reads its address from the
    /// stream it prints it on.
    fn pinned(command: Command, printed: Printed) -> anyhow::Result<Self> {
        let mut pinned = Command::new("taskset");
        pinned
            .args(["-c", "0"])
            .arg(command.get_program())
            .args(command.get_args());
        let (stdout, stderr) = match printed {
            Printed::Stdout => (Stdio::piped(), Stdio::null()),
            Printed::Stderr => (Stdio::null(), Stdio::piped()),
        };
        let mut child = pinned
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {:?} under taskset", command.get_program()))?;
        let addr = match printed {
            Printed::Stdout => address_from(child.stdout.take().context("no stdout")?)?,
            Printed::Stderr => address_from(child.stderr.take().context("no stderr")?)?,
        };
        Ok(Self {
            child,
            addr,
            log: None,
            _dir: None,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak, in bytes (`VmRSS`, `VmHWM`).
    pub fn rss(&self) -> (u64, u64) {
        rss_of(self.pid())
    }

    /// The `micros=` of every access-log line written so far (the server's
    /// own time per request).
    pub fn server_micros(&self) -> Vec<u64> {
        let Some(log) = &self.log else {
            return Vec::new();
        };
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|f| f.strip_prefix("micros="))?
                    .parse()
                    .ok()
            })
            .collect()
    }
}

/// Resident memory of process `pid` now and at its peak, in bytes
/// (`VmRSS`, `VmHWM` of `/proc/PID/status`; 0 where absent).
pub fn rss_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
