//! The benches' baseline as a process of its own: a raw hyper hello (no
//! Wasm) on the serving runtime configuration `verge` uses
//! (`verge::daemon::runtime_builder`), printing `serving on http://ADDR`.

fn main() -> anyhow::Result<()> {
    let runtime = verge::daemon::runtime_builder().build()?;
    runtime.block_on(async {
        let addr = verge_benches::baseline::serve_hello().await?;
        println!("serving on http://{addr}");
        std::future::pending::<()>().await;
        anyhow::Ok(())
    })
}
