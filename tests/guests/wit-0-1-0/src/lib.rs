//! A function built against `verge:edge@0.1.0`, the WIT before async
//! outbound (a frozen copy in `wit/`), without the SDK: hosts on later
//! 0.1.x versions must keep deploying and running it unchanged.
//! `/wit-0-1-0?url=URL` fetches URL with the blocking `send` and answers
//! `0.1.0 STATUS BODY`; without `url`, `0.1.0 hello`.

wit_bindgen::generate!({ path: "wit", world: "verge:edge/function" });

use exports::verge::edge::handler::Guest;
use verge::edge::fetch;
use verge::edge::http_types::{Request, Response};

struct Function;

impl Guest for Function {
    fn handle(req: Request) -> Response {
        verge::edge::log::write(verge::edge::log::Level::Info, "built against 0.1.0");
        let url = req
            .uri
            .split_once("url=")
            .map(|(_, url)| url.split('&').next().unwrap_or_default().to_owned());
        let body = match url {
            None => "0.1.0 hello".to_owned(),
            Some(url) => {
                let out = Request {
                    method: "GET".into(),
                    uri: url,
                    headers: Vec::new(),
                    body: Vec::new(),
                };
                let options = fetch::Options {
                    timeout_ms: None,
                    follow_redirects: false,
                    cache: None,
                };
                match fetch::send(&out, &options) {
                    Ok(res) => format!("0.1.0 {} {}", res.status, String::from_utf8_lossy(&res.body)),
                    Err(err) => format!("0.1.0 error {err:?}"),
                }
            }
        };
        Response {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.into_bytes(),
        }
    }
}

export!(Function);
