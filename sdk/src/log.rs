//! Leveled logs into the app's log stream, tagged by the host with the
//! request id. `println!` and `eprintln!` work too (as info and warn).
//!
//! ```no_run
//! verge_sdk::log::info("cache miss");
//! verge_sdk::log::write(verge_sdk::log::Level::Error, format!("bad input: {}", 42));
//! ```

use crate::wit::verge::edge::log as wit;

pub use wit::Level;

/// Writes one record at `level`.
pub fn write(level: Level, message: impl AsRef<str>) {
    wit::write(level, message.as_ref());
}

/// Writes one record at debug level.
pub fn debug(message: impl AsRef<str>) {
    write(Level::Debug, message);
}

/// Writes one record at info level.
pub fn info(message: impl AsRef<str>) {
    write(Level::Info, message);
}

/// Writes one record at warn level.
pub fn warn(message: impl AsRef<str>) {
    write(Level::Warn, message);
}

/// Writes one record at error level.
pub fn error(message: impl AsRef<str>) {
    write(Level::Error, message);
}
