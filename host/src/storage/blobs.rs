//! Content-addressed component files and their compiled (AOT) artifacts:
//! `components/<sha256>.wasm` and `compiled/<sha256>-<engine>.cwasm`.
//! Files are written to a temporary name, synced, then renamed, so a crash
//! never leaves a half-written file under a real name.

use super::StorageError;
pub use super::sha256_hex;

use std::io::Write;
use std::path::{Path, PathBuf};

/// The component and artifact directories under the data dir.
#[derive(Debug, Clone)]
pub struct BlobStore {
    components: PathBuf,
    compiled: PathBuf,
    uploads: PathBuf,
}

impl BlobStore {
    /// Creates the directories under `data_dir` if needed.
    pub fn open(data_dir: &Path) -> Result<Self, StorageError> {
        let components = data_dir.join("components");
        let compiled = data_dir.join("compiled");
        let uploads = data_dir.join("uploads");
        for dir in [&components, &compiled, &uploads] {
            std::fs::create_dir_all(dir)
                .map_err(|e| StorageError::io(format!("creating {}", dir.display()), e))?;
        }
        // Uploads cut short by a crash are of no use.
        if let Ok(entries) = std::fs::read_dir(&uploads) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Self {
            components,
            compiled,
            uploads,
        })
    }

    /// Where the component with this hash lives.
    pub fn component_path(&self, sha256: &str) -> PathBuf {
        self.components.join(format!("{sha256}.wasm"))
    }

    /// Where its compiled artifact for engine `engine_key` lives.
    pub fn compiled_path(&self, sha256: &str, engine_key: &str) -> PathBuf {
        self.compiled.join(format!("{sha256}-{engine_key}.cwasm"))
    }

    /// Where uploads are spooled while they arrive.
    pub fn uploads_dir(&self) -> &Path {
        &self.uploads
    }

    /// Stores an upload under its hash (a no-op if present): a spooled
    /// file is moved into place, bytes are written.
    pub fn put_upload(
        &self,
        sha256: &str,
        upload: super::spool::Upload,
    ) -> Result<PathBuf, StorageError> {
        let path = self.component_path(sha256);
        if !path.exists() {
            match upload {
                super::spool::Upload::Spooled(spooled) => spooled.persist(&path)?,
                super::spool::Upload::Bytes(bytes) => write_atomically(&path, &bytes)?,
            }
        }
        Ok(path)
    }

    /// Stores component bytes under their hash (a no-op if present).
    pub fn put_component(&self, sha256: &str, bytes: &[u8]) -> Result<PathBuf, StorageError> {
        let path = self.component_path(sha256);
        if !path.exists() {
            write_atomically(&path, bytes)?;
        }
        Ok(path)
    }

    /// Reads a stored component.
    pub fn component(&self, sha256: &str) -> Result<Vec<u8>, StorageError> {
        let path = self.component_path(sha256);
        std::fs::read(&path).map_err(|e| StorageError::io(format!("reading {}", path.display()), e))
    }

    /// Stores a compiled artifact.
    pub fn put_compiled(
        &self,
        sha256: &str,
        engine_key: &str,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        write_atomically(&self.compiled_path(sha256, engine_key), bytes)
    }
}

/// Writes `bytes` to `path` via a synced temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        StorageError::io(format!("writing {}", path.display()), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_by_hash() -> Result<(), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageError::io("tempdir", e))?;
        let blobs = BlobStore::open(dir.path())?;
        let hash = sha256_hex(b"abc");
        assert_eq!(
            hash,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        blobs.put_component(&hash, b"abc")?;
        assert_eq!(blobs.component(&hash)?, b"abc");
        Ok(())
    }
}
