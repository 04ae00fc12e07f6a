//! The benches' baseline as a process of its own: a raw hyper hello (no
//! Wasm) on the runtime configuration `verge` serves connections on (a
//! current-thread runtime checking IO every `EVENT_INTERVAL` polls, as
//! `verge::server::cores` builds one per core), printing
//! `serving on http://ADDR`.

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .event_interval(verge::server::cores::EVENT_INTERVAL)
        .build()?;
    runtime.block_on(async {
        let addr = verge_benches::baseline::serve_hello().await?;
        println!("serving on http://{addr}");
        std::future::pending::<()>().await;
        anyhow::Ok(())
    })
}
