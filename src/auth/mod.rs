//! API keys and roles.
//!
//! A key is `cwk_` followed by 43 base64url characters (32 random bytes). Only
//! its SHA-256 is stored; a presented key is hashed, looked up by hash and the
//! hashes compared in constant time. Roles decide what a key may do; the
//! table of which role may call which route lives with the routes (api).
//! This module knows no HTTP.

pub mod sessions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::audit::Auditor;
use crate::events::Actor;
use crate::ids;
use crate::store::{Store, StoreError, StoredKey};

const KEY_PREFIX: &str = "cwk_";
/// `last_used_at` is written at most this often per key.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// A successful authentication is remembered this long, so most requests
/// need no database read. Revoking through this process forgets the key at
/// once; a revocation made elsewhere (the command line, another process)
/// takes effect within this time.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(1);
/// The cache is emptied when it grows past this many keys.
const AUTH_CACHE_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Superadmin,
    Staff,
    Integration,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Superadmin, Role::Staff, Role::Integration];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Superadmin => "superadmin",
            Role::Staff => "staff",
            Role::Integration => "integration",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub role: Role,
}

/// A key as shown to Superadmins (never the secret or its hash).
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl KeyInfo {
    fn from_stored(key: StoredKey) -> Option<KeyInfo> {
        Some(KeyInfo {
            role: Role::parse(&key.role)?,
            id: key.id,
            name: key.name,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        })
    }
}

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("the name must be 1 to 100 characters")]
    InvalidName,
    #[error("no active key has that id")]
    NotFound,
    #[error("the last active superadmin key cannot be revoked")]
    LastSuperadmin,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn hash_key(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[derive(Clone)]
pub struct KeyService {
    store: Arc<dyn Store>,
    audit: Auditor,
    touched: Arc<Mutex<HashMap<String, Instant>>>,
    recent: Arc<Mutex<RecentKeys>>,
}

/// Key hash → the principal it authenticated and when.
type RecentKeys = HashMap<Vec<u8>, (Principal, Instant)>;

impl KeyService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        KeyService {
            audit: Auditor::new(store.clone()),
            store,
            touched: Arc::new(Mutex::new(HashMap::new())),
            recent: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Create a key; the secret is returned once and never stored.
    pub async fn create(
        &self,
        name: &str,
        role: Role,
        actor: &Actor,
    ) -> Result<(KeyInfo, String), AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(AuthError::InvalidName);
        }
        let secret = format!(
            "{KEY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(ids::random_bytes(32))
        );
        let stored = StoredKey {
            id: ids::sortable("key"),
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            key_hash: hash_key(&secret),
            created_at: ids::now_text(),
            last_used_at: None,
            revoked_at: None,
        };
        self.store.insert_key(stored.clone()).await?;
        let detail = serde_json::json!({"role": role.as_str()});
        self.audit
            .record(
                actor,
                "key.created",
                Some(("api_key", &stored.id)),
                Some(detail),
            )
            .await;
        let info = KeyInfo::from_stored(stored).expect("a role we just wrote");
        Ok((info, secret))
    }

    /// Keys in id order after `after`.
    pub async fn list(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<KeyInfo>, AuthError> {
        let keys = self.store.list_keys(after, limit).await?;
        Ok(keys.into_iter().filter_map(KeyInfo::from_stored).collect())
    }

    /// Revoke a key. Over the API the last superadmin key is kept, so the
    /// practice cannot lock itself out; the command line may revoke any.
    pub async fn revoke(
        &self,
        id: &str,
        keep_last_superadmin: bool,
        actor: &Actor,
    ) -> Result<(), AuthError> {
        let keep = keep_last_superadmin.then(|| Role::Superadmin.as_str().to_owned());
        match self.store.revoke_key(id, &ids::now_text(), keep).await {
            Ok(true) => {
                self.recent
                    .lock()
                    .expect("auth cache lock")
                    .retain(|_, (principal, _)| principal.key_id != id);
                self.audit
                    .record(actor, "key.revoked", Some(("api_key", id)), None)
                    .await;
                Ok(())
            }
            Ok(false) => Err(AuthError::NotFound),
            Err(StoreError::LastKeyOfRole(_)) => Err(AuthError::LastSuperadmin),
            Err(err) => Err(err.into()),
        }
    }

    /// The principal for a presented secret, or `None` when it is unknown or revoked.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>, AuthError> {
        if !secret.starts_with(KEY_PREFIX) || secret.len() > 200 {
            return Ok(None);
        }
        let hash = hash_key(secret);
        if let Some(principal) = self.remembered(&hash) {
            return Ok(Some(principal));
        }
        let Some(key) = self.store.find_key_by_hash(hash.clone()).await? else {
            return Ok(None);
        };
        let same: bool = key.key_hash.ct_eq(&hash).into();
        if !same || key.revoked_at.is_some() {
            return Ok(None);
        }
        let Some(role) = Role::parse(&key.role) else {
            return Ok(None);
        };
        self.touch(&key.id);
        let principal = Principal {
            key_id: key.id,
            role,
        };
        let mut recent = self.recent.lock().expect("auth cache lock");
        if recent.len() >= AUTH_CACHE_MAX {
            recent.clear();
        }
        recent.insert(hash, (principal.clone(), Instant::now()));
        Ok(Some(principal))
    }

    fn remembered(&self, hash: &[u8]) -> Option<Principal> {
        let recent = self.recent.lock().expect("auth cache lock");
        let (principal, since) = recent.get(hash)?;
        (since.elapsed() < AUTH_CACHE_TTL).then(|| principal.clone())
    }

    /// Record the key's use, at most once a minute, without making the caller wait.
    fn touch(&self, id: &str) {
        let now = Instant::now();
        {
            let mut touched = self.touched.lock().expect("touch map lock");
            if let Some(last) = touched.get(id)
                && now.duration_since(*last) < TOUCH_EVERY
            {
                return;
            }
            touched.insert(id.to_owned(), now);
        }
        let store = self.store.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            if let Err(err) = store.touch_key(&id, &ids::now_text()).await {
                tracing::warn!(key_id = %id, error = %err, "could not record a key's last use");
            }
        });
    }
}
