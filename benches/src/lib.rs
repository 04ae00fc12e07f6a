//! Shared pieces of the benchmarks: guest building, a baseline hyper server
//! and the bounded loopback load generator.

pub mod baseline;
pub mod binary;
pub mod compare;
pub mod load;
pub mod servers;
pub mod setup;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Pins the current thread to core `index` (no-op if there is no such core).
pub fn pin(index: usize) {
    if let Some(core) = core_affinity::get_core_ids().and_then(|ids| ids.get(index).copied()) {
        core_affinity::set_for_current(core);
    }
}

/// Builds the example and test guests and returns them by package name.
pub fn build_guests() -> anyhow::Result<HashMap<String, PathBuf>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target/guests");
    let mut all = HashMap::new();
    for dir in ["examples", "tests/guests"] {
        let artifacts = verge::guest_build::build(&root.join(dir), Some(&target))?;
        all.extend(artifacts.into_iter().map(|a| (a.package, a.path)));
    }
    Ok(all)
}
