//! Echoes what the host passed in: method, URI, headers, body size, a config
//! variable; logs through the log interface and stdout.

use verge_sdk::{Request, Response};

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    verge_sdk::log::info(format!("echo {}", req.path()));
    println!("stdout line from echo");
    eprintln!("stderr line from echo");
    let headers: Vec<String> = req
        .headers()
        .iter()
        .map(|(n, v)| format!("{}={}", n, v.to_str().unwrap_or("?")))
        .collect();
    let greeting = verge_sdk::config::get("greeting").unwrap_or_else(|| "<unset>".into());
    Response::text(format!(
        "method={}\nuri={}\nbody={}\ngreeting={}\nheaders={}\n",
        req.method(),
        req.uri(),
        req.body().len(),
        greeting,
        headers.join(";")
    ))
    .with_header("x-echo", "1")
}
