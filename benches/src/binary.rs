//! The shipped `verge` binary as the benches' server: built with the bench
//! profile (release settings; a no-op when up to date), started as a child
//! process pinned to core 0 with `taskset`, driven over its admin API.

use anyhow::Context as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The operator token the benches' daemons use.
pub const BENCH_TOKEN: &str = "verge_op_bench-token";

/// Builds the `verge` binary with the bench profile (release settings; the
/// artifacts `cargo bench` already built are reused) and returns its path.
pub fn build_verge() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--profile",
            "bench",
            "-p",
            "verge",
            "--bin",
            "verge",
        ])
        .current_dir(&root)
        .status()
        .context("running cargo build for the verge binary")?;
    anyhow::ensure!(status.success(), "cargo build of the verge binary failed");
    Ok(root.join("target/release/verge"))
}

/// A running `verge serve` child; killed on drop.
pub struct VergeProcess {
    child: Child,
    /// The data-plane address.
    pub data: SocketAddr,
    /// The admin API address.
    pub admin: SocketAddr,
    /// Milliseconds from spawning the process to its ready line.
    pub spawn_to_ready_ms: f64,
    /// The ready line it printed.
    pub ready_line: String,
    data_dir: Option<tempfile::TempDir>,
}

impl Drop for VergeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl VergeProcess {
    /// Starts `verge serve` on a fresh data dir, pinned to core 0, with
    /// `args` added; waits for its ready line.
    pub fn start(binary: &Path, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_in(binary, tempfile::tempdir()?, args)
    }

    /// SIGKILLs the daemon and starts it again on the same data dir.
    pub fn restart(mut self, binary: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = self.data_dir.take().context("no data dir")?;
        Self::start_in(binary, dir, args)
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `verge serve` on `data_dir`, as [`VergeProcess::start`].
    pub fn start_in(
        binary: &Path,
        data_dir: tempfile::TempDir,
        args: &[&str],
    ) -> anyhow::Result<Self> {
        let spawned = std::time::Instant::now();
        let mut child = Command::new("taskset")
            .args(["-c", "0"])
            .arg(binary)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(args)
            .env("VERGE_ADMIN_TOKEN", BENCH_TOKEN)
            .env("RUST_LOG", "error")
            .envs(std::env::var("VERGE_BENCH_WORKERS").map(|w| ("TOKIO_WORKER_THREADS", w)))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting verge under taskset")?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            BufReader::new(stdout).read_line(&mut line)?;
        }
        let spawn_to_ready_ms = spawned.elapsed().as_secs_f64() * 1000.0;
        // "verge: serving N apps on http://A (admin API on http://B), ready in M ms"
        let addr = |after: &str| -> anyhow::Result<SocketAddr> {
            let at = line
                .find(after)
                .with_context(|| format!("no {after:?} in the ready line {line:?}"))?;
            let rest = &line[at + after.len()..];
            Ok(rest.split([' ', ')']).next().unwrap_or_default().parse()?)
        };
        Ok(Self {
            data: addr("on http://")?,
            admin: addr("admin API on http://")?,
            spawn_to_ready_ms,
            ready_line: line.trim().to_owned(),
            child,
            data_dir: Some(data_dir),
        })
    }

    /// One admin request with the operator token; returns status and body.
    pub fn admin(&self, method: &str, path: &str, body: &[u8]) -> anyhow::Result<(u16, String)> {
        let mut stream = TcpStream::connect(self.admin)?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer {BENCH_TOKEN}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out)?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
        Ok((status, body.unwrap_or_default()))
    }

    /// Creates tenant `name` with `limits` (a JSON object of overrides).
    pub fn tenant(&self, name: &str, limits: &str) -> anyhow::Result<()> {
        let body = format!(r#"{{"name":"{name}","limits":{limits}}}"#);
        let (status, text) = self.admin("POST", "/v1/tenants", body.as_bytes())?;
        anyhow::ensure!(status == 201, "creating tenant {name}: {status} {text}");
        Ok(())
    }

    /// Deploys `wasm` as `tenant`/`app` on `route` and activates it.
    pub fn deploy(&self, tenant: &str, app: &str, route: &str, wasm: &Path) -> anyhow::Result<()> {
        let manifest = format!(r#"{{"routes":["{route}"]}}"#);
        self.deploy_manifest(tenant, app, &manifest, wasm)
    }

    /// Deploys `wasm` as `tenant`/`app` with `manifest` (JSON) and
    /// activates it.
    pub fn deploy_manifest(
        &self,
        tenant: &str,
        app: &str,
        manifest: &str,
        wasm: &Path,
    ) -> anyhow::Result<()> {
        let path = format!("/v1/tenants/{tenant}/apps/{app}");
        let (status, text) = self.admin("PUT", &path, manifest.as_bytes())?;
        anyhow::ensure!(status == 200, "creating {app}: {status} {text}");
        let bytes = std::fs::read(wasm)?;
        let (status, text) = self.admin("POST", &format!("{path}/versions"), &bytes)?;
        anyhow::ensure!(status == 201, "deploying {app}: {status} {text}");
        Ok(())
    }
}
