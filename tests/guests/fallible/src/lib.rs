//! A handler that uses `?` on the SDK's errors and on a std error; each
//! path fails a different way, `/ok` does not.

use verge_sdk::{Request, Response, kv::Store};

#[verge_sdk::handler]
fn handle(req: Request) -> Result<Response, verge_sdk::Error> {
    match req.path().rsplit('/').next().unwrap_or("") {
        "kv" => {
            // An empty key: `key-too-large`.
            Store::open("data")?.set("", "v")?;
        }
        "fetch" => {
            // Not on the allow-list: `denied`.
            verge_sdk::fetch::get("https://denied.example/").send()?;
        }
        "parse" => {
            let _: u32 = "not a number".parse()?;
        }
        "custom" => return Err(verge_sdk::Error::new(404, "no such thing")),
        _ => {}
    }
    Ok(Response::text("ok\n"))
}
