//! A real `redis-server` for tests: started on 127.0.0.1 with a free port
//! and a directory of its own (AOF on, fsync always), stopped on drop.
//! Where the machine lacks `redis-server`, the first test to need one
//! installs it with `apt-get` (these machines are Debian, tests run as
//! root), under a lock so parallel test binaries install it once. No test
//! is skipped for want of Redis: a failed install fails the test, saying
//! why.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A Redis on one port and directory, running or stopped; killed on drop.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// TLS only, with this certificate and key (PEM files).
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `redis-server`'s path, installing the package first if it is missing.
fn redis_server() -> &'static Path {
    static FOUND: OnceLock<std::path::PathBuf> = OnceLock::new();
    FOUND.get_or_init(|| {
        let installed = || {
            ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
                .into_iter()
                .map(Path::new)
                .find(|p| p.exists())
                .map(Path::to_path_buf)
        };
        if let Some(path) = installed() {
            return path;
        }
        // One install at a time across test processes: flock(1) on a file.
        let install = "apt-get install -y -q redis-server || (apt-get update -q && apt-get install -y -q redis-server)";
        let status = Command::new("flock")
            .args(["/tmp/verge-tests-apt.lock", "sh", "-c", install])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status();
        match (status, installed()) {
            (_, Some(path)) => path,
            (Ok(status), None) => panic!("installing redis-server with apt-get failed ({status})"),
            (Err(err), None) => panic!("could not run apt-get to install redis-server: {err}"),
        }
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Whether a Redis answers PING on `port`.
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl RedisServer {
    /// Starts a fresh Redis and waits until it answers.
    pub fn start() -> Self {
        for _ in 0..5 {
            let mut server = Self::stopped();
            if server.run() {
                return server;
            }
        }
        panic!("redis-server did not start");
    }

    /// A port and a directory for a Redis that is not running yet: a
    /// client can be pointed at it before it starts.
    pub fn stopped() -> Self {
        Self {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().expect("a temp dir"),
            tls: None,
        }
    }

    /// Starts a Redis that speaks only TLS on its port, with `cert` and
    /// `key` (PEM files), clients unauthenticated; `url()` is `rediss://`.
    pub fn start_tls(cert: &Path, key: &Path) -> Self {
        for _ in 0..5 {
            let mut server = Self::stopped();
            server.tls = Some((cert.to_owned(), key.to_owned()));
            if server.run() {
                return server;
            }
        }
        panic!("redis-server with TLS did not start");
    }

    /// SIGKILLs the server (the AOF keeps what it acknowledged).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port and directory; waits until it
    /// answers.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.run(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    /// Spawns the server; whether it answered within 5 s.
    fn run(&mut self) -> bool {
        let port = self.port.to_string();
        let mut command = Command::new(redis_server());
        command.args(["--bind", "127.0.0.1"]);
        match &self.tls {
            None => command.args(["--port", &port]),
            Some((cert, key)) => command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key),
        };
        let child = command
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            let up = match self.tls {
                None => answers(self.port),
                // A TLS port: listening is all a plain socket can tell.
                Some(_) => TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
            };
            if up {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                break; // the port was taken meanwhile
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    /// How many clients are subscribed to `channel` (`PUBSUB NUMSUB`).
    pub fn subscribers(&self, channel: &str) -> usize {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return 0;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream
            .write_all(format!("PUBSUB NUMSUB {channel}\r\n").as_bytes())
            .is_err()
        {
            return 0;
        }
        let mut reply = vec![0u8; 256];
        let n = stream.read(&mut reply).unwrap_or(0);
        // `*2 $LEN CHANNEL :COUNT`: the count follows the last ':'.
        String::from_utf8_lossy(&reply[..n])
            .rsplit(':')
            .next()
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0)
    }

    /// `redis://127.0.0.1:PORT/` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }
}
