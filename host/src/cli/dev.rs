//! `verge dev [DIR]`: the inner loop. Builds the function crate, serves it
//! with the same limits and capabilities as production (embedded KV,
//! fetch, geo when configured), watches the sources and rebuilds and
//! reloads on change without dropping the server. A failed build is shown
//! and the last good version keeps serving.

use super::serve::{DEFAULT_LISTEN, LocalAppArgs, Tuning, local_app, run_until_signal};
use super::settings::DaemonFile;
use crate::daemon::{self, LocalHost};
use crate::guest_build::{self, Artifact};
use anyhow::{Context as _, bail};
use clap::Args;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the sources are checked for changes: fast enough to feel
/// instant, cheap enough (a `stat` per source file) to never show up.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(300);

/// Options of `verge dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// The function crate [default: the current directory].
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Address to serve on.
    #[arg(long, default_value = DEFAULT_LISTEN, env = "VERGE_LISTEN")]
    pub listen: SocketAddr,
    /// Where KV data lives between runs [default: DIR/target/verge-dev].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub local: LocalAppArgs,
    #[command(flatten)]
    pub tuning: Tuning,
}

/// A fingerprint of the crate's sources: paths, sizes and modification
/// times of the files a build reads (`target/` and hidden dirs skipped).
fn fingerprint(dir: &Path) -> u64 {
    fn walk(dir: &Path, hasher: &mut DefaultHasher) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(std::fs::DirEntry::path);
        for entry in entries {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name != ".cargo" || name == "target" {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                walk(&path, hasher);
            } else if name.ends_with(".rs")
                || name.ends_with(".toml")
                || name.ends_with(".wit")
                || name == "Cargo.lock"
            {
                path.hash(hasher);
                meta.len().hash(hasher);
                meta.modified().ok().hash(hasher);
            }
        }
    }
    let mut hasher = DefaultHasher::new();
    walk(dir, &mut hasher);
    hasher.finish()
}

async fn build(dir: &Path) -> anyhow::Result<Artifact> {
    let dir_owned = dir.to_owned();
    let artifacts =
        tokio::task::spawn_blocking(move || guest_build::build(&dir_owned, None)).await??;
    match <[Artifact; 1]>::try_from(artifacts) {
        Ok([artifact]) => Ok(artifact),
        Err(all) => bail!(
            "{} builds {} components; verge dev serves one crate",
            dir.display(),
            all.len()
        ),
    }
}

/// Rebuilds and swaps in the new version; prints the outcome either way.
async fn rebuild(host: &Arc<LocalHost>, args: &DevArgs, data_dir: &Path, url: &str) {
    println!("verge dev: change detected, rebuilding ...");
    let started = Instant::now();
    let artifact = match build(&args.dir).await {
        Ok(artifact) => artifact,
        Err(err) => {
            println!("verge dev: build failed; still serving the last good version:\n{err:#}");
            return;
        }
    };
    let built = started.elapsed();
    let app = match local_app(
        &args.dir,
        artifact.package,
        artifact.path,
        &args.local,
        data_dir,
    ) {
        Ok(app) => app,
        Err(err) => {
            println!("verge dev: {err:#}; still serving the last good version");
            return;
        }
    };
    let host = host.clone();
    match tokio::task::spawn_blocking(move || host.reload(&app)).await {
        Ok(Ok(version)) => println!(
            "verge dev: reload {version} ready on {url} (build {:.1} s, load {} ms)",
            built.as_secs_f64(),
            (started.elapsed() - built).as_millis()
        ),
        Ok(Err(err)) => {
            println!(
                "verge dev: the new build does not load; still serving the last good version:\n{err:#}"
            )
        }
        Err(err) => println!("verge dev: reload failed: {err}"),
    }
}

pub(super) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let dir = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("finding the function crate {}", args.dir.display()))?;
    if dir.is_file() {
        bail!(
            "verge dev builds and watches a function crate, and {} is a file: \
             pass the crate's directory, or serve a built component with \
             `verge serve --app {}`",
            args.dir.display(),
            args.dir.display()
        );
    }
    if !dir.join("Cargo.toml").is_file() {
        return Err(guest_build::BuildError::NotACrate(dir).into());
    }
    let args = DevArgs { dir, ..args };
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| args.dir.join("target/verge-dev"));
    let config = args
        .tuning
        .daemon_config(args.listen, &DaemonFile::default())?;
    println!("verge dev: building {} ...", args.dir.display());
    let mut seen = fingerprint(&args.dir);
    // The first build must succeed before there is anything to serve:
    // until it does, wait for the next change and try again.
    let artifact = loop {
        match build(&args.dir).await {
            Ok(artifact) => break artifact,
            Err(err) => {
                println!("verge dev: build failed; fix it and save to retry:\n{err:#}");
                while fingerprint(&args.dir) == seen {
                    tokio::time::sleep(WATCH_INTERVAL).await;
                }
                seen = fingerprint(&args.dir);
            }
        }
    };
    // The first build may have written Cargo.lock: start watching from here.
    seen = fingerprint(&args.dir);
    let app = local_app(
        &args.dir,
        artifact.package,
        artifact.path,
        &args.local,
        &data_dir,
    )?;
    let running = daemon::start(&config, &app).await?;
    let host = running.local.clone().context("local-run mode has a host")?;
    let url = format!("http://{}", running.addr);
    println!("verge dev: {} ready on {url}", app.name);
    let watcher = {
        let args = DevArgs { ..args };
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCH_INTERVAL).await;
                let now = fingerprint(&args.dir);
                if now != seen {
                    seen = now;
                    rebuild(&host, &args, &data_dir, &url).await;
                    // Edits made during the build trigger the next round.
                }
            }
        })
    };
    let result = run_until_signal(running).await;
    watcher.abort();
    result
}
