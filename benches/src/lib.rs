//! Shared pieces of the benchmarks: guest building, a baseline hyper server
//! and the bounded loopback load generator.

pub mod baseline;
pub mod load;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
