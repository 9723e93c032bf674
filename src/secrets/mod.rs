//! Secrets at rest: the master key and sealing under it.
//!
//! Every secret the database keeps (webhook signing secrets, custom header
//! values) is sealed with XChaCha20-Poly1305 under the master key. A sealed
//! value is `version byte ‖ 24-byte random nonce ‖ ciphertext+tag`. The key
//! comes from `CHARTWIRE_MASTER_KEY` (base64 of 32 bytes) or from
//! `<data-dir>/master.key`, created with mode 0600 at first start.
//! This module knows nothing of what it seals.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use thiserror::Error;

use crate::ids;

const SEAL_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const KEY_FILE: &str = "master.key";
/// Sealed and kept in the database: opening it proves the key is the one
/// the database's secrets were sealed with.
const CHECK_VALUE: &[u8] = b"chartwire master key check v1";
/// The name the check value is kept under.
pub const CHECK_NAME: &str = "master_key_check";

#[derive(Debug, Error)]
pub enum SecretsError {
    #[error("the master key must be base64 of exactly 32 bytes")]
    BadKey,
    #[error("cannot read or create the master key file: {0}")]
    KeyFile(String),
    #[error("a sealed value could not be opened (wrong master key or damaged data)")]
    Unseal,
}

/// The key every secret is sealed under.
#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    pub fn from_base64(text: &str) -> Result<MasterKey, SecretsError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SecretsError::BadKey)?;
        MasterKey::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, SecretsError> {
        if bytes.len() != 32 {
            return Err(SecretsError::BadKey);
        }
        let cipher = XChaCha20Poly1305::new_from_slice(bytes).map_err(|_| SecretsError::BadKey)?;
        Ok(MasterKey { cipher })
    }

    /// The key from `CHARTWIRE_MASTER_KEY` if given, else from
    /// `<data_dir>/master.key`, created (0600) when missing.
    pub fn load_or_create(
        from_env: Option<&str>,
        data_dir: &Path,
    ) -> Result<MasterKey, SecretsError> {
        if let Some(text) = from_env {
            return MasterKey::from_base64(text);
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => MasterKey::from_base64(&text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir)
                    .map_err(|e| SecretsError::KeyFile(e.to_string()))?;
                let text = STANDARD.encode(ids::random_bytes(32));
                write_private(&path, &text).map_err(|e| SecretsError::KeyFile(e.to_string()))?;
                // Another process may have won the race: read back what is there.
                let stored = std::fs::read_to_string(&path)
                    .map_err(|e| SecretsError::KeyFile(e.to_string()))?;
                MasterKey::from_base64(&stored)
            }
            Err(err) => Err(SecretsError::KeyFile(err.to_string())),
        }
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes = ids::random_bytes(NONCE_LEN);
        let nonce = XNonce::from_slice(&nonce_bytes);
        let ciphertext = self
            .cipher
            .encrypt(nonce, plaintext)
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory data");
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(SEAL_VERSION);
        sealed.extend_from_slice(&nonce_bytes);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretsError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != SEAL_VERSION {
            return Err(SecretsError::Unseal);
        }
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        self.cipher
            .decrypt(nonce, &sealed[1 + NONCE_LEN..])
            .map_err(|_| SecretsError::Unseal)
    }

    /// Whether `sealed` is the check value sealed under this key.
    pub fn verifies(&self, sealed: &[u8]) -> bool {
        self.open(sealed).is_ok_and(|plain| plain == CHECK_VALUE)
    }

    /// A fresh check value for this key, to keep in the database.
    pub fn check_value(&self) -> Vec<u8> {
        self.seal(CHECK_VALUE)
    }

    pub fn open_text(&self, sealed: &[u8]) -> Result<String, SecretsError> {
        String::from_utf8(self.open(sealed)?).map_err(|_| SecretsError::Unseal)
    }
}

/// Create `path` with mode 0600 (refusing to overwrite an existing file).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_round_trips_and_detects_the_wrong_key() {
        let key = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let sealed = key.seal(b"Bearer abc");
        assert!(!sealed.windows(10).any(|w| w == b"Bearer abc"));
        assert_eq!(key.open(&sealed).unwrap(), b"Bearer abc");
        assert_ne!(key.seal(b"x"), key.seal(b"x"), "fresh nonce each time");
        let other = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.open(&sealed).is_err());
    }

    #[test]
    fn the_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = MasterKey::load_or_create(None, dir.path()).unwrap();
        let sealed = first.seal(b"s");
        let again = MasterKey::load_or_create(None, dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"s");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
