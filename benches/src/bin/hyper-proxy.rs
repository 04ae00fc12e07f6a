//! The pass-through bench's baseline as a process of its own: a plain
//! hyper reverse proxy (no Wasm) to the origin given as its one argument,
//! on the runtime configuration `verge` serves connections on, printing
//! `serving on http://ADDR`.

fn main() -> anyhow::Result<()> {
    let origin: std::net::SocketAddr = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: hyper-proxy ORIGIN_ADDR"))?
        .parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .event_interval(verge::server::cores::EVENT_INTERVAL)
        .build()?;
    runtime.block_on(async {
        let addr = verge_benches::baseline::serve_proxy(origin).await?;
        println!("serving on http://{addr}");
        std::future::pending::<()>().await;
        anyhow::Ok(())
    })
}
