//! `verge demo`: build the examples and serve them, printing URLs to try.

use super::serve::Tuning;
use crate::daemon::{self, LocalApp};
use anyhow::Context as _;
use clap::Args;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Options of `verge demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address for the data plane.
    #[arg(long, default_value = "127.0.0.1:8080", env = "VERGE_LISTEN")]
    pub listen: SocketAddr,
    /// The examples workspace.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))]
    pub examples: PathBuf,
    #[command(flatten)]
    pub tuning: Tuning,
}

pub(super) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let config = args.tuning.daemon_config(args.listen)?;
    println!(
        "verge: building the examples in {} ...",
        args.examples.display()
    );
    let target_dir = args.examples.join("../target/guests");
    let artifacts = crate::guest_build::build(&args.examples, Some(&target_dir))?;
    let hello = artifacts
        .iter()
        .find(|a| a.package == "hello")
        .context("the examples workspace built no `hello` component")?;
    let app = LocalApp {
        name: hello.package.clone(),
        wasm: hello.path.clone(),
        vars: BTreeMap::new(),
    };
    let mut running = daemon::start(&config, &app).await?;
    println!(
        "verge: serving the hello example on http://{}",
        running.addr
    );
    println!("  try: curl -i http://{}/x", running.addr);
    println!("  stop with Ctrl-C");
    let stop = running.take_stop();
    tokio::spawn(async move {
        super::shutdown_signal().await;
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
    });
    running.wait().await;
    Ok(())
}
