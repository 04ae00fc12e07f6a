//! The view host functions get when their capability keeps resources (KV
//! stores, pending fetches, bodies, writers): the capability's context and
//! the request's resource table, borrowed together from the store data.
//! One generic type, so each capability only names `TableView<'_, ItsCtx>`.

use std::marker::PhantomData;
use wasmtime::component::{HasData, ResourceTable};

/// A capability context `C` and the request's resource table.
pub struct TableView<'a, C> {
    pub(super) ctx: &'a mut C,
    pub(super) table: &'a mut ResourceTable,
}

impl<'a, C> TableView<'a, C> {
    /// The view over `ctx`, keeping resources in `table`.
    pub fn new(ctx: &'a mut C, table: &'a mut ResourceTable) -> Self {
        Self { ctx, table }
    }
}

/// The `HasData` that links an interface over [`TableView`]s of `C`.
pub struct WithTable<C>(PhantomData<C>);

impl<C: Send + 'static> HasData for WithTable<C> {
    type Data<'a> = TableView<'a, C>;
}
