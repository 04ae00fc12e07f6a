//! Work after the response, like Workers' `ctx.waitUntil`: hand over a
//! started fetch, or a closure to run once the client has its response.
//!
//! ```no_run
//! use verge_sdk::{Request, Response, fetch, kv};
//!
//! #[verge_sdk::handler]
//! fn handle(req: Request) -> Response {
//!     // The client does not wait for the analytics beacon...
//!     if let Ok(beacon) = fetch::post("https://analytics.example/hit").body(req.path()).start() {
//!         verge_sdk::wait_until(beacon);
//!     }
//!     // ...nor for this counter.
//!     verge_sdk::wait_until(|| {
//!         if let Ok(store) = kv::Store::open("stats") {
//!             let _ = store.increment("hits", 1);
//!         }
//!     });
//!     Response::text("hi")
//! }
//! ```
//!
//! The work runs in the same instance under the request's CPU, memory,
//! wall-clock and subrequest budgets; whatever is still running at the
//! request's deadline is stopped. Failures go to the app's log with the
//! request id.

use crate::fetch::Pending;
use crate::wit::verge::edge::background as wit;
use std::cell::RefCell;

type Deferred = Box<dyn FnOnce()>;

thread_local! {
    /// Closures to run after the response, in order.
    static DEFERRED: RefCell<Vec<Deferred>> = const { RefCell::new(Vec::new()) };
}

/// Something [`wait_until`] can finish after the response: a [`Pending`]
/// fetch, or a closure.
pub trait WaitUntil {
    /// Hands `self` to the host.
    fn hand_over(self);
}

impl WaitUntil for Pending {
    fn hand_over(self) {
        wit::wait_until(self.0);
    }
}

impl<F: FnOnce() + 'static> WaitUntil for F {
    fn hand_over(self) {
        let first = DEFERRED.with(|queue| {
            let mut queue = queue.borrow_mut();
            queue.push(Box::new(self));
            queue.len() == 1
        });
        if first && let Err(why) = wit::defer() {
            // Not deferrable here: do the work now rather than lose it.
            crate::log::warn(format!("wait_until runs its work at once: {why}"));
            run_deferred();
        }
    }
}

/// Finishes `work` after the response is sent.
pub fn wait_until(work: impl WaitUntil) {
    work.hand_over();
}

/// Runs every deferred closure, those they defer in turn included. Called
/// by the host through the `deferred` export.
pub fn run_deferred() {
    while let Some(work) = DEFERRED.with(|queue| {
        let mut queue = queue.borrow_mut();
        (!queue.is_empty()).then(|| queue.remove(0))
    }) {
        work();
    }
}
