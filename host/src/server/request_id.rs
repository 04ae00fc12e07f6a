//! Request ids: taken from a well-formed incoming `x-request-id`, otherwise
//! generated (unique per process, not guessable across restarts).

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// Longest incoming id accepted; longer ones are replaced.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Generates request ids: a per-process random key mixed with a counter.
pub struct RequestIds {
    key: u64,
    counter: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        Self {
            key: RandomState::new().hash_one(std::process::id()),
            counter: AtomicU64::new(1),
        }
    }
}

impl RequestIds {
    /// The incoming id if it is safe to echo, else a fresh one.
    pub fn take_or_make(&self, incoming: Option<&str>) -> String {
        match incoming {
            Some(id) if is_well_formed(id) => id.to_owned(),
            _ => self.make(),
        }
    }

    /// A fresh id: 16 hex digits.
    pub fn make(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}", mix(n ^ self.key))
    }
}

fn is_well_formed(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// SplitMix64's finaliser: a bijection, so distinct counters give distinct ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_well_formed_ids_and_replaces_others() {
        let ids = RequestIds::default();
        assert_eq!(ids.take_or_make(Some("abc-123_x.y")), "abc-123_x.y");
        assert_eq!(ids.take_or_make(Some("a b")).len(), 16);
        assert_eq!(ids.take_or_make(Some(&"a".repeat(65))).len(), 16);
        assert_eq!(ids.take_or_make(Some(&"a".repeat(64))).len(), 64);
        assert_ne!(ids.make(), ids.make());
    }
}
