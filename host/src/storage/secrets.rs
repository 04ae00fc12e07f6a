//! Secrets at rest: each app secret is sealed with ChaCha20-Poly1305
//! (`ring`) under an operator-held 256-bit key before it is written to
//! `control.redb`, with the secret's place (`tenant/app/name`) as
//! associated data so a sealed value cannot be moved to another app. The
//! key lives in a file the operator provides (`--secrets-key-file`), or one
//! generated on first start into the data dir (mode 0600). Rotation: start
//! once with the new key and `--previous-secrets-key-file OLD`; every
//! secret is resealed under the new key at start.

use super::StorageError;
use base64::Engine as _;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::Digest as _;
use std::path::Path;

/// Bytes of a key: ChaCha20-Poly1305 takes 256 bits.
pub const KEY_BYTES: usize = 32;

/// The key file generated in the data dir when the operator gives none.
pub const DEFAULT_KEY_FILE: &str = "secrets.key";

/// What a sealed value starts with: the format, then the key's id.
const SEALED_PREFIX: &str = "sealed1:";

/// One key and its id (the first 8 bytes of its sha256, in hex).
struct Key {
    aead: LessSafeKey,
    id: String,
}

impl Key {
    fn new(bytes: &[u8]) -> Result<Self, String> {
        let aead = UnboundKey::new(&CHACHA20_POLY1305, bytes).map_err(|_| {
            format!(
                "a secrets key is {KEY_BYTES} bytes ({} hex digits)",
                2 * KEY_BYTES
            )
        })?;
        let id = hex::encode(&sha2::Sha256::digest(bytes)[..8]);
        Ok(Self {
            aead: LessSafeKey::new(aead),
            id,
        })
    }
}

/// Seals and opens secret values.
pub struct SecretBox {
    current: Key,
    previous: Option<Key>,
}

fn bad_key(path: &Path, why: impl std::fmt::Display) -> StorageError {
    StorageError::io(
        format!("the secrets key file {}", path.display()),
        std::io::Error::other(why.to_string()),
    )
}

/// Reads a key file: 64 hex digits (surrounding whitespace ignored).
fn read_key(path: &Path) -> Result<Key, StorageError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        StorageError::io(
            format!("reading the secrets key file {}", path.display()),
            e,
        )
    })?;
    let bytes = hex::decode(text.trim()).map_err(|e| bad_key(path, format!("not hex: {e}")))?;
    Key::new(&bytes).map_err(|e| bad_key(path, e))
}

impl SecretBox {
    /// The key in `path`, generated there (mode 0600) when `create` and the
    /// file does not exist.
    pub fn open_key_file(path: &Path, create: bool) -> Result<Self, StorageError> {
        if create && !path.exists() {
            let mut bytes = [0u8; KEY_BYTES];
            getrandom::fill(&mut bytes)
                .map_err(|e| bad_key(path, format!("no randomness for a key: {e}")))?;
            super::blobs::write_atomically(path, format!("{}\n", hex::encode(bytes)).as_bytes())?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| StorageError::io(format!("restricting {}", path.display()), e))?;
            }
            tracing::info!(file = %path.display(), "generated a secrets key");
        }
        Ok(Self {
            current: read_key(path)?,
            previous: None,
        })
    }

    /// Also opens values sealed under the key in `path` (rotation).
    pub fn with_previous_key_file(mut self, path: &Path) -> Result<Self, StorageError> {
        self.previous = Some(read_key(path)?);
        Ok(self)
    }

    /// `value` sealed for `place` under the current key.
    pub fn seal(&self, place: &str, value: &str) -> Result<String, StorageError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| {
            StorageError::io("sealing a secret", std::io::Error::other(e.to_string()))
        })?;
        let mut sealed = value.as_bytes().to_vec();
        self.current
            .aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(place.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| {
                StorageError::io("sealing a secret", std::io::Error::other("seal failed"))
            })?;
        let mut payload = nonce.to_vec();
        payload.extend_from_slice(&sealed);
        let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(payload);
        Ok(format!("{SEALED_PREFIX}{}:{encoded}", self.current.id))
    }

    /// The value of a stored secret of `place`; a value stored before
    /// secrets were sealed is returned as it is.
    pub fn open(&self, place: &str, stored: &str) -> Result<String, StorageError> {
        let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_owned());
        };
        let failed = |why: &str| {
            StorageError::io(
                format!("opening the secret {place}"),
                std::io::Error::other(why.to_owned()),
            )
        };
        let (id, encoded) = rest.split_once(':').ok_or_else(|| failed("malformed"))?;
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|key| key.id == id)
            .ok_or_else(|| {
                failed("sealed under another key: start with --previous-secrets-key-file")
            })?;
        let payload = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(encoded)
            .map_err(|_| failed("malformed"))?;
        let (nonce, sealed) = payload
            .split_at_checked(NONCE_LEN)
            .ok_or_else(|| failed("malformed"))?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| failed("malformed"))?;
        let mut in_out = sealed.to_vec();
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(place.as_bytes()), &mut in_out)
            .map_err(|_| failed("it does not open with its key (tampered, or moved)"))?;
        String::from_utf8(plain.to_vec()).map_err(|_| failed("not UTF-8"))
    }

    /// Whether `stored` should be sealed again: in clear (from before
    /// sealing) or under a key other than the current one.
    pub fn needs_reseal(&self, stored: &str) -> bool {
        stored
            .strip_prefix(SEALED_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_none_or(|(id, _)| id != self.current.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_file(dir: &Path, name: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        SecretBox::open_key_file(&path, true).unwrap();
        path
    }

    #[test]
    fn a_sealed_secret_opens_only_in_its_place_and_under_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let old = key_file(dir.path(), "old.key");
        let new = key_file(dir.path(), "new.key");
        let boxed = SecretBox::open_key_file(&old, false).unwrap();
        let sealed = boxed.seal("t/app/TOKEN", "s3cret").unwrap();
        assert!(!sealed.contains("s3cret"), "{sealed}");
        assert_eq!(boxed.open("t/app/TOKEN", &sealed).unwrap(), "s3cret");
        assert!(
            boxed.open("t/other/TOKEN", &sealed).is_err(),
            "moved to another app"
        );
        assert!(!boxed.needs_reseal(&sealed));
        assert!(boxed.needs_reseal("in clear"));
        assert_eq!(boxed.open("t/app/X", "in clear").unwrap(), "in clear");

        let rotated = SecretBox::open_key_file(&new, false).unwrap();
        assert!(
            rotated.open("t/app/TOKEN", &sealed).is_err(),
            "without the old key"
        );
        assert!(rotated.needs_reseal(&sealed));
        let rotated = rotated.with_previous_key_file(&old).unwrap();
        assert_eq!(rotated.open("t/app/TOKEN", &sealed).unwrap(), "s3cret");
        let resealed = rotated.seal("t/app/TOKEN", "s3cret").unwrap();
        assert!(!rotated.needs_reseal(&resealed));
    }

    #[test]
    fn a_bad_key_file_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.key");
        std::fs::write(&path, "abcd").unwrap();
        let err = SecretBox::open_key_file(&path, false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("short.key") && err.contains("32 bytes"),
            "{err}"
        );
    }
}
