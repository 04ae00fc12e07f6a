//! Uploads written to a temporary file as they arrive (`uploads/` under the
//! data dir) and hashed on the way, so a 32 MiB component is never held
//! in memory while it uploads; the file is renamed into
//! `components/<sha256>.wasm` when the deploy is accepted, and removed
//! otherwise.

use super::StorageError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt as _;

/// A component as a deploy brings it: in memory (the library's callers),
/// or spooled to a file (the admin API).
pub enum Upload {
    /// Bytes in memory.
    Bytes(bytes::Bytes),
    /// A spooled file.
    Spooled(Spooled),
}

impl From<Vec<u8>> for Upload {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Bytes(bytes.into())
    }
}

impl From<Spooled> for Upload {
    fn from(spooled: Spooled) -> Self {
        Self::Spooled(spooled)
    }
}

impl Upload {
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Self::Bytes(bytes) => bytes.len(),
            Self::Spooled(spooled) => spooled.len,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its sha256, lower-case hex.
    pub fn sha256(&self) -> String {
        match self {
            Self::Bytes(bytes) => super::sha256_hex(bytes),
            Self::Spooled(spooled) => spooled.sha256.clone(),
        }
    }

    /// Its bytes (read from the file when spooled).
    pub fn bytes(&self) -> Result<bytes::Bytes, StorageError> {
        match self {
            Self::Bytes(bytes) => Ok(bytes.clone()),
            Self::Spooled(spooled) => std::fs::read(&spooled.path)
                .map(Into::into)
                .map_err(|e| StorageError::io(format!("reading {}", spooled.path.display()), e)),
        }
    }

    /// The spooled file, when there is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::Bytes(_) => None,
            Self::Spooled(spooled) => Some(&spooled.path),
        }
    }
}

/// A finished spooled upload; its file is removed on drop unless it was
/// moved into place.
pub struct Spooled {
    path: PathBuf,
    sha256: String,
    len: usize,
}

impl Spooled {
    /// Moves the file to `dest` (same file system): the upload becomes the
    /// stored component.
    pub fn persist(mut self, dest: &Path) -> Result<(), StorageError> {
        std::fs::rename(&self.path, dest).map_err(|e| {
            StorageError::io(
                format!("moving {} to {}", self.path.display(), dest.display()),
                e,
            )
        })?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// An upload being written.
pub struct SpoolWriter {
    file: tokio::fs::File,
    hasher: Sha256,
    spooled: Spooled,
}

impl SpoolWriter {
    /// A new file in `dir` (created exclusively, under a random name).
    pub async fn create(dir: &Path) -> Result<Self, StorageError> {
        let mut name = [0u8; 12];
        getrandom::fill(&mut name).map_err(|e| {
            StorageError::io("naming an upload", std::io::Error::other(e.to_string()))
        })?;
        let path = dir.join(format!("{}.part", hex::encode(name)));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| StorageError::io(format!("creating {}", path.display()), e))?;
        Ok(Self {
            file,
            hasher: Sha256::new(),
            spooled: Spooled {
                path,
                sha256: String::new(),
                len: 0,
            },
        })
    }

    /// Appends `chunk`.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        self.hasher.update(chunk);
        self.spooled.len += chunk.len();
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| StorageError::io(format!("writing {}", self.spooled.path.display()), e))
    }

    /// Flushes and syncs the file; the upload is complete.
    pub async fn finish(mut self) -> Result<Spooled, StorageError> {
        let path = self.spooled.path.display().to_string();
        self.file
            .flush()
            .await
            .and(self.file.sync_all().await)
            .map_err(|e| StorageError::io(format!("syncing {path}"), e))?;
        self.spooled.sha256 = hex::encode(self.hasher.finalize_reset());
        Ok(self.spooled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_spooled_upload_hashes_as_it_goes_and_is_removed_unless_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SpoolWriter::create(dir.path()).await.unwrap();
        writer.write(b"hello ").await.unwrap();
        writer.write(b"world").await.unwrap();
        let spooled = writer.finish().await.unwrap();
        let upload = Upload::from(spooled);
        assert_eq!(upload.sha256(), crate::storage::sha256_hex(b"hello world"));
        assert_eq!(upload.len(), 11);
        assert_eq!(&upload.bytes().unwrap()[..], b"hello world");
        let path = upload.file().unwrap().to_owned();
        drop(upload);
        assert!(!path.exists(), "dropped uploads leave no file");

        let mut writer = SpoolWriter::create(dir.path()).await.unwrap();
        writer.write(b"kept").await.unwrap();
        let dest = dir.path().join("kept.wasm");
        writer.finish().await.unwrap().persist(&dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"kept");
    }
}
