//! Compiling an uploaded component under a budget. A compile cannot be
//! interrupted inside wasmtime (150 KB of nested blocks compiles for 3.7 s,
//! 390 KB for 29 s), so the daemon compiles in a child process of its own
//! binary (`verge compile-worker`), killed when the budget passes or when
//! the uploading client goes away; the child sends back the serialized
//! artifact, which the daemon checks (wasmtime refuses an artifact of
//! another engine) and loads. Without a worker binary (the library in
//! tests), the compile runs on a blocking thread, unbounded.

pub use super::engine::CompileWorker;
use super::engine::{EngineSettings, Runtime, engine_config};
use super::error::LoadError;
use crate::storage::spool::Upload;
use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long one compile may take: 60 s, several times what a 13 MB
/// JavaScript component needs on this machine kind (~13 s), far below the
/// ~26 min a 32 MiB compile bomb could take.
pub const DEFAULT_COMPILE_BUDGET: Duration = Duration::from_secs(60);

/// The serialized artifact of `bytes`, compiled by `runtime`'s worker when
/// it has one (killed past the budget, or when this future is dropped),
/// else on a blocking thread.
pub async fn compile_artifact(
    runtime: Arc<Runtime>,
    upload: &Upload,
) -> Result<Vec<u8>, LoadError> {
    let read = |upload: &Upload| {
        upload
            .bytes()
            .map_err(|err| LoadError::Compile(format!("reading the upload: {err}")))
    };
    let Some(worker) = runtime.compile_worker().cloned() else {
        let bytes = read(upload)?;
        return tokio::task::spawn_blocking(move || {
            let component = runtime.compile(&bytes)?;
            component.serialize().map_err(LoadError::compile)
        })
        .await
        .map_err(|err| LoadError::Compile(format!("the compile thread failed: {err}")))?;
    };
    // The worker reads a spooled upload from its file itself.
    let head = match upload.file() {
        Some(path) => {
            let mut head = [0u8; 8];
            let mut file = std::fs::File::open(path)
                .map_err(|err| LoadError::Compile(format!("reading the upload: {err}")))?;
            let n = file.read(&mut head).unwrap_or(0);
            head[..n].to_vec()
        }
        None => read(upload)?.to_vec(),
    };
    runtime.check_component(&head)?;
    let spawned = tokio::process::Command::from(worker_command(&runtime, &worker)?)
        .kill_on_drop(true)
        .spawn();
    let mut child =
        spawned.map_err(|err| LoadError::Compile(format!("starting the compile worker: {err}")))?;
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(LoadError::Compile("the compile worker has no pipes".into()));
    };
    let piped = child.stdin.take();
    let bytes = match piped {
        Some(_) => read(upload)?,
        None => bytes::Bytes::new(),
    };
    let run = async {
        let feed = async move {
            match piped {
                Some(mut stdin) => {
                    stdin.write_all(&bytes).await?;
                    stdin.shutdown().await
                }
                None => Ok(()),
            }
        };
        let mut artifact = Vec::new();
        let mut message = String::new();
        let (fed, read, _) = tokio::join!(
            feed,
            stdout.read_to_end(&mut artifact),
            stderr.read_to_string(&mut message)
        );
        let status = child.wait().await;
        (fed, read, status, artifact, message)
    };
    match tokio::time::timeout(worker.budget, run).await {
        Err(_elapsed) => Err(LoadError::CompileBudget(worker.budget)),
        Ok((_, _, Ok(status), artifact, _)) if status.success() => Ok(artifact),
        Ok((_, _, _, _, message)) => Err(worker_refusal(&message)),
    }
}

/// `verge compile-worker` for an engine like `runtime`'s, all three pipes
/// piped.
fn worker_command(
    runtime: &Runtime,
    worker: &CompileWorker,
) -> Result<std::process::Command, LoadError> {
    let settings = serde_json::to_string(runtime.settings())
        .map_err(|err| LoadError::Compile(err.to_string()))?;
    let mut command = std::process::Command::new(&worker.binary);
    command
        .args(["compile-worker", "--engine", &settings])
        .arg(if runtime.is_pooling() {
            "--pooling"
        } else {
            "--on-demand"
        })
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Ok(command)
}

/// The serialized artifact of `bytes`, compiled in `runtime`'s worker
/// process when it has one, else in this thread; blocking. For local runs
/// (`verge serve --app`, `verge dev`): the compiler's peak memory (~350 MB
/// for a 13 MB JavaScript component, which glibc keeps mapped afterwards)
/// stays in the child, so the server's RSS is what serving needs. No
/// budget: the developer is compiling their own component.
pub fn compile_artifact_blocking(runtime: &Runtime, bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
    runtime.check_component(bytes)?;
    let Some(worker) = runtime.compile_worker() else {
        return runtime
            .compile(bytes)?
            .serialize()
            .map_err(LoadError::compile);
    };
    let mut child = worker_command(runtime, worker)?
        .spawn()
        .map_err(|err| LoadError::Compile(format!("starting the compile worker: {err}")))?;
    // Feed stdin from a thread so a worker writing its artifact cannot
    // deadlock against us writing the component.
    let stdin = child.stdin.take();
    let output = std::thread::scope(|scope| {
        if let Some(mut stdin) = stdin {
            scope.spawn(move || stdin.write_all(bytes));
        }
        child.wait_with_output()
    })
    .map_err(|err| LoadError::Compile(format!("waiting for the compile worker: {err}")))?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(worker_refusal(&String::from_utf8_lossy(&output.stderr)))
}

/// The worker printed `verge: <the LoadError>` on stderr; keep the reason.
fn worker_refusal(message: &str) -> LoadError {
    let reason = message.trim().trim_start_matches("verge: ");
    let reason = reason.trim_start_matches("the component does not compile: ");
    LoadError::Compile(reason.to_owned())
}

/// `verge compile-worker`: reads a component on stdin, compiles it on an
/// engine built from `settings` exactly as the daemon's, and writes the
/// serialized artifact to stdout; a refusal goes to stderr with exit 1.
pub fn run_worker(settings: &EngineSettings, pooling: bool) -> Result<(), LoadError> {
    // At the lowest priority, before cranelift starts its threads (they
    // inherit it): serving traffic comes first on every core.
    super::lane::lower_priority();
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|err| LoadError::Compile(format!("reading the component: {err}")))?;
    let engine =
        wasmtime::Engine::new(&engine_config(settings, pooling)).map_err(LoadError::engine)?;
    let component =
        wasmtime::component::Component::new(&engine, &bytes).map_err(LoadError::compile)?;
    let artifact = component.serialize().map_err(LoadError::compile)?;
    std::io::stdout()
        .write_all(&artifact)
        .map_err(|err| LoadError::Compile(format!("writing the artifact: {err}")))?;
    Ok(())
}
