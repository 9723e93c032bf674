//! Secrets at rest: the master key and sealing under it.
//!
//! Every secret the database keeps (webhook signing keys, custom header
//! values, client keys) is sealed with XChaCha20-Poly1305. A sealed value is
//! `2 ‖ key id (8 bytes) ‖ 24-byte random nonce ‖ ciphertext+tag`, so it
//! names the key it was made with. A [`MasterKey`] is a keyring: the current
//! key seals, any key of the ring opens what it sealed — which is how a
//! rotation keeps the old key usable until every row is re-sealed.
//!
//! Keys come from `CHARTWIRE_MASTER_KEY` (base64 of 32 bytes) or from
//! `<data-dir>/master.key`, created with mode 0600 at first start; during a
//! rotation `<data-dir>/master.key.next` (or `CHARTWIRE_NEW_MASTER_KEY`) is
//! the current key and the old one stays in the ring. This module knows
//! nothing of what it seals.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::ids;

const SEAL_VERSION: u8 = 2;
const LEGACY_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
pub const KEY_FILE: &str = "master.key";
pub const NEXT_KEY_FILE: &str = "master.key.next";
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
    #[error(
        "no master key: with PostgreSQL every process must use the same key, so it is never \
         generated; set CHARTWIRE_MASTER_KEY (base64 of 32 bytes) or put it in <data-dir>/master.key"
    )]
    Missing,
    #[error("a sealed value could not be opened (wrong master key or damaged data)")]
    Unseal,
}

/// One 32-byte key and its id.
#[derive(Clone)]
struct Key {
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn new(bytes: &[u8]) -> Result<Key, SecretsError> {
        if bytes.len() != 32 {
            return Err(SecretsError::BadKey);
        }
        let digest = Sha256::new()
            .chain_update(b"chartwire master key id\0")
            .chain_update(bytes)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        let cipher = XChaCha20Poly1305::new_from_slice(bytes).map_err(|_| SecretsError::BadKey)?;
        Ok(Key { id, cipher })
    }

    fn decrypt(&self, nonce: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, SecretsError> {
        self.cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| SecretsError::Unseal)
    }
}

/// The keyring secrets are sealed under: the current key first.
#[derive(Clone)]
pub struct MasterKey {
    keys: Vec<Key>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({} key(s))", self.keys.len())
    }
}

fn decode(text: &str) -> Result<Vec<u8>, SecretsError> {
    STANDARD
        .decode(text.trim())
        .map_err(|_| SecretsError::BadKey)
}

fn read_key_file(path: &Path) -> Result<Option<Vec<u8>>, SecretsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => decode(&text).map(Some),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(SecretsError::KeyFile(err.to_string())),
    }
}

impl MasterKey {
    /// A new random key, as base64 (what `CHARTWIRE_MASTER_KEY` takes).
    pub fn generate_base64() -> String {
        STANDARD.encode(ids::random_bytes(32))
    }

    pub fn from_base64(text: &str) -> Result<MasterKey, SecretsError> {
        MasterKey::from_bytes(&decode(text)?)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, SecretsError> {
        Ok(MasterKey {
            keys: vec![Key::new(bytes)?],
        })
    }

    /// Keep `older` in the ring: it opens what it sealed, but seals nothing.
    pub fn with_older(mut self, older: MasterKey) -> MasterKey {
        self.keys.extend(older.keys);
        self
    }

    /// The ring in force: `CHARTWIRE_MASTER_KEY` (and, during a rotation,
    /// `CHARTWIRE_NEW_MASTER_KEY` as the current key) if given; otherwise
    /// `<data_dir>/master.key` (created 0600 when missing) with
    /// `master.key.next` current when a rotation is under way.
    pub fn load_or_create(
        from_env: Option<&str>,
        data_dir: &Path,
    ) -> Result<MasterKey, SecretsError> {
        MasterKey::load(from_env, data_dir, true)
    }

    /// Like [`MasterKey::load_or_create`], but a missing key is an error
    /// (several processes share the database: one of them must not invent
    /// a key of its own).
    pub fn load_existing(
        from_env: Option<&str>,
        data_dir: &Path,
    ) -> Result<MasterKey, SecretsError> {
        MasterKey::load(from_env, data_dir, false)
    }

    fn load(
        from_env: Option<&str>,
        data_dir: &Path,
        create: bool,
    ) -> Result<MasterKey, SecretsError> {
        if let Some(text) = from_env {
            let base = MasterKey::from_base64(text)?;
            return match std::env::var("CHARTWIRE_NEW_MASTER_KEY") {
                Ok(next) => Ok(MasterKey::from_base64(&next)?.with_older(base)),
                Err(_) => Ok(base),
            };
        }
        let path = data_dir.join(KEY_FILE);
        let base = match read_key_file(&path)? {
            Some(bytes) => MasterKey::from_bytes(&bytes)?,
            None if !create => return Err(SecretsError::Missing),
            None => {
                std::fs::create_dir_all(data_dir)
                    .map_err(|e| SecretsError::KeyFile(e.to_string()))?;
                write_private(&path, &STANDARD.encode(ids::random_bytes(32)))
                    .map_err(|e| SecretsError::KeyFile(e.to_string()))?;
                // Another process may have won the race: read back what is there.
                let bytes = read_key_file(&path)?.ok_or(SecretsError::BadKey)?;
                MasterKey::from_bytes(&bytes)?
            }
        };
        match read_key_file(&data_dir.join(NEXT_KEY_FILE))? {
            Some(next) => Ok(MasterKey::from_bytes(&next)?.with_older(base)),
            None => Ok(base),
        }
    }

    fn current(&self) -> &Key {
        &self.keys[0]
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let key = self.current();
        let nonce = ids::random_bytes(NONCE_LEN);
        let ciphertext = key
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext)
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory data");
        let mut sealed = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + ciphertext.len());
        sealed.push(SEAL_VERSION);
        sealed.extend_from_slice(&key.id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Open with whichever key of the ring sealed it.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretsError> {
        match sealed.first() {
            Some(&SEAL_VERSION) if sealed.len() > 1 + KEY_ID_LEN + NONCE_LEN => {
                let id = &sealed[1..1 + KEY_ID_LEN];
                let key = self
                    .keys
                    .iter()
                    .find(|k| k.id == id)
                    .ok_or(SecretsError::Unseal)?;
                let rest = &sealed[1 + KEY_ID_LEN..];
                key.decrypt(&rest[..NONCE_LEN], &rest[NONCE_LEN..])
            }
            // Sealed before values named their key: try each key.
            Some(&LEGACY_VERSION) if sealed.len() > 1 + NONCE_LEN => self
                .keys
                .iter()
                .find_map(|k| {
                    k.decrypt(&sealed[1..1 + NONCE_LEN], &sealed[1 + NONCE_LEN..])
                        .ok()
                })
                .ok_or(SecretsError::Unseal),
            _ => Err(SecretsError::Unseal),
        }
    }

    pub fn open_text(&self, sealed: &[u8]) -> Result<String, SecretsError> {
        String::from_utf8(self.open(sealed)?).map_err(|_| SecretsError::Unseal)
    }

    /// Whether `sealed` was made with the current key.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.first() == Some(&SEAL_VERSION)
            && sealed.get(1..1 + KEY_ID_LEN) == Some(&self.current().id[..])
    }

    /// Open with the ring, seal again with the current key (unchanged when
    /// already current).
    pub fn reseal(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretsError> {
        if self.is_current(sealed) {
            return Ok(sealed.to_vec());
        }
        Ok(self.seal(&self.open(sealed)?))
    }

    /// Whether `sealed` is the check value sealed under a key of the ring.
    pub fn verifies(&self, sealed: &[u8]) -> bool {
        self.open(sealed).is_ok_and(|plain| plain == CHECK_VALUE)
    }

    /// A fresh check value for the current key, to keep in the database.
    pub fn check_value(&self) -> Vec<u8> {
        self.seal(CHECK_VALUE)
    }
}

/// Create `path` with mode 0600 (refusing to overwrite an existing file).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
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
    fn sealing_round_trips_names_its_key_and_detects_the_wrong_key() {
        let key = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let sealed = key.seal(b"Bearer abc");
        assert!(!sealed.windows(10).any(|w| w == b"Bearer abc"));
        assert_eq!(key.open(&sealed).unwrap(), b"Bearer abc");
        assert_ne!(key.seal(b"x"), key.seal(b"x"), "fresh nonce each time");
        let other = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(key.is_current(&sealed) && !other.is_current(&sealed));
    }

    #[test]
    fn a_ring_opens_old_values_and_reseals_them_under_the_new_key() {
        let old = MasterKey::from_bytes(&[1u8; 32]).unwrap();
        let sealed = old.seal(b"secret");
        let ring = MasterKey::from_bytes(&[2u8; 32])
            .unwrap()
            .with_older(old.clone());
        assert_eq!(ring.open(&sealed).unwrap(), b"secret");
        let resealed = ring.reseal(&sealed).unwrap();
        assert!(ring.is_current(&resealed));
        assert!(
            old.open(&resealed).is_err(),
            "the new value is under the new key"
        );
        let new_only = MasterKey::from_bytes(&[2u8; 32]).unwrap();
        assert_eq!(new_only.open(&resealed).unwrap(), b"secret");
        assert!(ring.verifies(&old.check_value()) && !new_only.verifies(&old.check_value()));
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
