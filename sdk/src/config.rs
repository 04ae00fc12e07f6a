//! Per-app configuration: variables and secrets set at deploy time.
//!
//! ```no_run
//! let greeting = verge_sdk::config::get("greeting").unwrap_or_else(|| "hello".into());
//! ```

use crate::wit::verge::edge::config as wit;

/// The value of the variable or secret `name`, or `None` when it is not set.
pub fn get(name: impl AsRef<str>) -> Option<String> {
    wit::get(name.as_ref())
}
