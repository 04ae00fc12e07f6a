//! Persistent state, free of WIT types: the control-plane records in
//! `control.redb` and the content-addressed component files.

pub mod blobs;
pub mod bus;
pub mod control;
pub mod control_redis;
pub mod kv;
pub mod records;
pub mod redis_link;
pub mod secrets;
pub mod spool;

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A storage failure. These are host problems (disk, corruption), never
/// the caller's mistake.
#[derive(Debug, Error)]
pub enum StorageError {
    /// redb failed.
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A stored record did not decode.
    #[error("corrupt record {key}: {source}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A data file is corrupt or will not open (the message names it).
    #[error("{0}")]
    Corrupted(String),
    /// A failure in a data file, with the file's name.
    #[error("{path}: {message}")]
    InFile {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        message: String,
    },
    /// The fleet's Redis did not answer or refused: the change was not
    /// made anywhere.
    #[error("{0}")]
    Unavailable(String),
    /// Another node changed the control plane first; nothing was written.
    #[error("{0}")]
    Conflict(String),
    /// The blocking task running the operation died.
    #[error("storage task failed: {0}")]
    Task(String),
}

/// Runs `f` over the redb file `path`, turning a panic inside redb (it
/// panics on some corrupt pages instead of returning an error) into a
/// storage error that names the file and the way out.
pub fn guard_corruption<T, E>(
    path: &std::path::Path,
    f: impl FnOnce() -> Result<T, E>,
    wrap: impl FnOnce(String) -> E,
) -> Result<T, E> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown");
            Err(wrap(format!(
                "{} is corrupt ({why}); restore it from a backup",
                path.display()
            )))
        }
    }
}

impl StorageError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(err: $t) -> Self {
                Self::Db(err.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Why a database file would not open, naming the file: another process
/// holding it (a second daemon on the same data dir) is said so.
pub fn open_failure(path: &std::path::Path, err: redb::DatabaseError) -> String {
    match err {
        redb::DatabaseError::DatabaseAlreadyOpen => format!(
            "{} is locked by another process (is another verge running on this data dir?): stop it, or give this one its own --data-dir",
            path.display()
        ),
        other => format!("{}: {other}", path.display()),
    }
}

/// sha256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
