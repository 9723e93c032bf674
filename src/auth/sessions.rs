//! Admin page sessions.
//!
//! A session is opened by presenting a Superadmin API key. The browser gets
//! a random token (32 bytes); only its SHA-256 is stored, with the key it
//! was opened with. A session ends at sign-out, after [`SessionSettings::idle`]
//! without a request, after [`SessionSettings::lifetime`] in any case, and
//! as soon as its key is revoked. Each session has a CSRF token derived from
//! its own token, so forms need no stored state of their own.
//! This module knows no HTTP and no cookies.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::{KeyService, Role};
use crate::audit::Auditor;
use crate::events::Actor;
use crate::ids;
use crate::store::{Store, StoreError, StoredSession};

/// `last_seen_at` is written at most this often per session (or a quarter
/// of the idle limit, if that is shorter), which is also how precisely the
/// idle limit is kept.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// A session unused this long has ended.
    pub idle: Duration,
    /// A session ends this long after sign-in, however busy.
    pub lifetime: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct Session {
    pub key_id: String,
    pub key_name: String,
    /// The token every form of this session must carry.
    pub csrf_token: String,
}

impl Session {
    /// Whether a submitted form's token is this session's.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        tokens_match(presented, &self.csrf_token)
    }
}

/// Whether a presented token is the expected one, in constant time; an
/// empty expected token matches nothing.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    !expected.is_empty()
        && presented.len() == expected.len()
        && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

#[derive(Debug, Error)]
pub enum SessionError {
    #[error("the API key is unknown or revoked")]
    UnknownKey,
    #[error("only superadmin keys may sign in to the admin pages")]
    WrongRole(Role),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<super::AuthError> for SessionError {
    fn from(err: super::AuthError) -> Self {
        match err {
            super::AuthError::Store(err) => SessionError::Store(err),
            _ => SessionError::UnknownKey,
        }
    }
}

#[derive(Clone)]
pub struct SessionService {
    store: Arc<dyn Store>,
    keys: KeyService,
    audit: Auditor,
    settings: SessionSettings,
}

fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The CSRF token of a session: a hash of its token under a fixed label, so
/// it reveals nothing of the token and cannot be made without it.
fn csrf_of(token: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"chartwire admin csrf\0");
    hash.update(token.as_bytes());
    URL_SAFE_NO_PAD.encode(hash.finalize())
}

fn text_at(offset: chrono::Duration) -> String {
    (chrono::Utc::now() + offset).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl SessionService {
    pub fn new(
        store: Arc<dyn Store>,
        keys: KeyService,
        audit: Auditor,
        settings: SessionSettings,
    ) -> Self {
        SessionService {
            store,
            keys,
            audit,
            settings,
        }
    }

    pub fn settings(&self) -> SessionSettings {
        self.settings
    }

    /// Sign in with an API key; returns the new session's token.
    pub async fn open(
        &self,
        api_key: &str,
        source_ip: Option<std::net::IpAddr>,
    ) -> Result<String, SessionError> {
        let Some(principal) = self.keys.authenticate(api_key.trim()).await? else {
            self.audit.failed_authentication(source_ip).await;
            return Err(SessionError::UnknownKey);
        };
        if principal.role != Role::Superadmin {
            return Err(SessionError::WrongRole(principal.role));
        }
        let token = URL_SAFE_NO_PAD.encode(ids::random_bytes(32));
        let now = ids::now_text();
        self.store
            .insert_session(StoredSession {
                token_hash: hash_token(&token),
                key_id: principal.key_id.clone(),
                created_at: now.clone(),
                last_seen_at: now,
                expires_at: text_at(duration(self.settings.lifetime)),
            })
            .await?;
        let actor = Actor::api_key(&principal.key_id).with_ip(source_ip);
        self.audit
            .record(&actor, "admin.signed_in", None, None)
            .await;
        Ok(token)
    }

    /// The session a token belongs to, if it is still good. Counts as
    /// activity for the idle limit.
    pub async fn resolve(&self, token: &str) -> Result<Option<Session>, StoreError> {
        if token.is_empty() || token.len() > 100 {
            return Ok(None);
        }
        let hash = hash_token(token);
        let Some(stored) = self.store.find_session(hash.clone()).await? else {
            return Ok(None);
        };
        let now = ids::now_text();
        let idle_since = text_at(-duration(self.settings.idle));
        if stored.expires_at <= now || stored.last_seen_at <= idle_since {
            self.store.delete_session(hash).await?;
            return Ok(None);
        }
        let Some(key) = self.store.find_key(&stored.key_id).await? else {
            return Ok(None);
        };
        if key.revoked_at.is_some() || key.role != Role::Superadmin.as_str() {
            self.store.delete_session(hash).await?;
            return Ok(None);
        }
        let touch_every = TOUCH_EVERY.min(self.settings.idle / 4);
        if stored.last_seen_at <= text_at(-duration(touch_every)) {
            self.store.touch_session(hash, &now).await?;
        }
        Ok(Some(Session {
            key_id: key.id,
            key_name: key.name,
            csrf_token: csrf_of(token),
        }))
    }

    /// Sign out: the token stops working at once.
    pub async fn close(&self, token: &str, actor: &Actor) -> Result<(), StoreError> {
        if self.store.delete_session(hash_token(token)).await? {
            self.audit
                .record(actor, "admin.signed_out", None, None)
                .await;
        }
        Ok(())
    }

    /// Remove sessions that have ended.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        let idle_before = text_at(-duration(self.settings.idle));
        self.store
            .prune_sessions(&ids::now_text(), &idle_before)
            .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csrf_tokens_depend_on_the_session_token() {
        let a = super::csrf_of("token-a");
        assert_eq!(a, super::csrf_of("token-a"));
        assert_ne!(a, super::csrf_of("token-b"));
        assert!(!a.contains("token"));
        let session = super::Session {
            key_id: "key_1".into(),
            key_name: "n".into(),
            csrf_token: a.clone(),
        };
        assert!(session.csrf_matches(&a));
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches(&super::csrf_of("token-b")));
    }
}
