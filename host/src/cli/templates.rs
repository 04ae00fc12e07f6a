//! What `verge new --template T` writes: the function's source, manifest
//! and dependencies for each starting point. `{name}` and `{sdk}` are
//! filled in.

/// One template.
pub struct Template {
    /// Its name for `--template`.
    pub name: &'static str,
    /// One line for `verge new --list`.
    pub about: &'static str,
    /// `[dependencies]` lines.
    pub dependencies: &'static str,
    /// `src/lib.rs`.
    pub lib_rs: &'static str,
    /// `verge.toml`.
    pub manifest: &'static str,
    /// Lines the README adds after the common ones.
    pub readme: &'static str,
}

/// The templates, the default first.
pub const TEMPLATES: &[Template] = &[HTTP, KV_COUNTER, PROXY, WASI_HTTP];

const SDK_DEPENDENCY: &str = r#"verge-sdk = { path = "{sdk}" }"#;

const HTTP: Template = Template {
    name: "http",
    about: "a Verge SDK handler with routes and a config variable (the default)",
    dependencies: SDK_DEPENDENCY,
    lib_rs: r#"//! {name}: a Verge function.

use verge_sdk::{Request, Response};

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    match (req.method().as_str(), req.path()) {
        ("GET", "/") => {
            let greeting = verge_sdk::config::get("greeting").unwrap_or_else(|| "hello".into());
            Response::text(format!("{greeting} from {name}\n"))
        }
        ("GET", "/json") => Response::json(&verge_sdk::serde_json::json!({ "app": "{name}", "path": req.path() })),
        _ => Response::error(404, "not found\n"),
    }
}
"#,
    manifest: r#"# The app manifest `verge deploy` and `verge dev` read.
name = "{name}"
routes = ["{name}.localhost"]
# KV stores the function may open, e.g. ["data"].
kv_stores = []
# Origins it may fetch, e.g. ["https://api.example.com"].
allowed_hosts = []

[config]
greeting = "hello"
"#,
    readme: "",
};

const KV_COUNTER: Template = Template {
    name: "kv-counter",
    about: "counts visits per path in a KV store (atomic increments)",
    dependencies: SDK_DEPENDENCY,
    lib_rs: r#"//! {name}: counts visits per path in KV.

use verge_sdk::{Request, Response, kv::Store};

#[verge_sdk::handler]
fn handle(req: Request) -> Result<Response, verge_sdk::Error> {
    let counts = Store::open("counts")?;
    let visits = counts.increment(&format!("visits:{}", req.path()), 1)?;
    Ok(Response::text(format!("{} has been visited {visits} times\n", req.path())))
}
"#,
    manifest: r#"# The app manifest `verge deploy` and `verge dev` read.
name = "{name}"
routes = ["{name}.localhost"]
# The store the counters live in.
kv_stores = ["counts"]
allowed_hosts = []
"#,
    readme: "Counters live in the `counts` store: `verge kv list --store counts`.\n",
};

const PROXY: Template = Template {
    name: "proxy",
    about: "forwards requests to an origin through the edge cache (fetch + cache)",
    dependencies: SDK_DEPENDENCY,
    lib_rs: r#"//! {name}: a caching proxy in front of `origin`.

use verge_sdk::{Request, Response, config, fetch};

/// Seconds a response without its own `Cache-Control` stays fresh.
const DEFAULT_TTL: u32 = 60;

#[verge_sdk::handler]
fn handle(req: Request) -> Result<Response, verge_sdk::Error> {
    let origin = config::get("origin").ok_or_else(|| verge_sdk::Error::msg("set the `origin` config variable"))?;
    let target = match req.query() {
        Some(query) => format!("{}?{query}", req.path()),
        None => req.path().to_owned(),
    };
    let url = format!("{}{target}", origin.trim_end_matches('/'));
    if req.method() != "GET" {
        // Only GETs are cached; everything else goes straight through.
        return Ok(fetch::forward(&req, url).send()?);
    }
    let response = fetch::get(url)
        .cache(DEFAULT_TTL, Some(300), &["{name}"])
        .send()?;
    Ok(response)
}
"#,
    manifest: r#"# The app manifest `verge deploy` and `verge dev` read.
name = "{name}"
routes = ["{name}.localhost"]
kv_stores = []
# The origin must be listed to be fetched.
allowed_hosts = ["https://example.com"]

[config]
origin = "https://example.com"
"#,
    readme: "Point `origin` (config) and `allowed_hosts` (manifest) at your origin; `verge cache purge --tag {name}` empties its cache.\n",
};

const WASI_HTTP: Template = Template {
    name: "wasi-http",
    about: "a standard wasi:http/proxy component (the `wasi` crate, no Verge SDK)",
    dependencies: r#"wasi = { version = "0.14", features = ["std"] }"#,
    lib_rs: r#"//! {name}: a standard `wasi:http/proxy` component; it runs on Verge and
//! on any other wasi:http host (`wasmtime serve`, Spin).

use std::io::Write as _;
use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasi::http::proxy::export!(Handler);

struct Handler;

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let headers = Fields::new();
        let _ = headers.set("content-type", &[b"text/plain; charset=utf-8".to_vec()]);
        let response = OutgoingResponse::new(headers);
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(mut stream) = body.write() {
            let _ = stream.write_all(format!("hello from {name} at {path}\n").as_bytes());
            let _ = stream.flush();
        }
        let _ = OutgoingBody::finish(body, None);
    }
}
"#,
    manifest: r#"# The app manifest `verge deploy` and `verge dev` read.
name = "{name}"
routes = ["{name}.localhost"]
kv_stores = []
allowed_hosts = []
"#,
    readme: "A `wasi:http/proxy` component: its body streams, and the same `.wasm` runs under `wasmtime serve`.\n",
};

/// The template called `name`.
pub fn find(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}
