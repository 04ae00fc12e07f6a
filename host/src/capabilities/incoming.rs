//! `verge:edge/incoming`: the request body as a stream. The server does
//! not buffer the body of a function that imports this interface; it hands
//! the guarded body (the app's cap and the read timeouts apply as bytes
//! arrive) to the request, and the guest takes it once as a `body`
//! resource, read like a fetched body.

use super::bindings::verge::edge::incoming as wit;
use super::bindings::verge::edge::incoming_whole as wit_whole;
use super::fetch::OriginBody;
use super::view::{TableView, WithTable};
use super::{PerRequest, RequestScope};
use wasmtime::component::{Linker, Resource};

/// One request's unread body, until the guest takes it. Boxed: most
/// requests have none, and every request's store carries this.
#[derive(Default)]
pub struct IncomingCtx {
    body: Option<Box<OriginBody>>,
}

impl IncomingCtx {
    /// The request's body, to hand out once.
    pub fn new(body: Option<Box<OriginBody>>) -> Self {
        Self { body }
    }
}

impl Clone for IncomingCtx {
    /// A body belongs to one request: a copy has none.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PerRequest for IncomingCtx {
    fn for_request(self, _scope: &RequestScope) -> Self {
        Self::default()
    }
}

/// What incoming host functions get: their context and the table.
pub type IncomingView<'a> = TableView<'a, IncomingCtx>;

impl wit::Host for IncomingView<'_> {
    fn request_body(&mut self) -> wasmtime::Result<Option<Resource<OriginBody>>> {
        match self.ctx.body.take() {
            Some(body) => Ok(Some(self.table.push(*body)?)),
            None => Ok(None),
        }
    }
}

impl wit_whole::Host for IncomingView<'_> {
    /// The same body `request-body` hands out: there is one only when the
    /// function imports `incoming` (the server streamed it).
    fn streamed_body(&mut self) -> wasmtime::Result<Option<Resource<OriginBody>>> {
        wit::Host::request_body(self)
    }
}

/// Links `verge:edge/incoming` and `verge:edge/incoming-whole` into
/// `linker`, over the view `get` projects.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> IncomingView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, WithTable<IncomingCtx>>(linker, get)?;
    wit_whole::add_to_linker::<T, WithTable<IncomingCtx>>(linker, get)
}
