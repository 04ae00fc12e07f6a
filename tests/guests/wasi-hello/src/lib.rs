//! The smallest standard `wasi:http/proxy` component, built with the `wasi`
//! crate alone (no Verge imports): 200 `hello from wasi:http PATH`. The
//! benches serve these same bytes with `verge serve` and `wasmtime serve`.

use std::io::Write as _;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasi::http::proxy::export!(Hello);

struct Hello;

impl wasi::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let headers = Fields::new();
        let _ = headers.set("content-type", &[b"text/plain".to_vec()]);
        let response = OutgoingResponse::new(headers);
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(mut stream) = body.write() {
            let _ = stream.write_all(format!("hello from wasi:http {path}\n").as_bytes());
            let _ = stream.flush();
        }
        let _ = OutgoingBody::finish(body, None);
    }
}
