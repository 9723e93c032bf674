//! Store types and the trait for admin page sessions.
//!
//! A session row holds the SHA-256 of the browser's session token, never the
//! token. The store keeps the rows and their times; whether a session is
//! still good (idle limit, the key behind it) is decided by `auth`.

use async_trait::async_trait;

use super::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub token_hash: Vec<u8>,
    /// The API key the session was opened with.
    pub key_id: String,
    pub created_at: String,
    pub last_seen_at: String,
    /// The absolute end, whatever the activity.
    pub expires_at: String,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn insert_session(&self, session: StoredSession) -> Result<(), StoreError>;
    async fn find_session(&self, token_hash: Vec<u8>) -> Result<Option<StoredSession>, StoreError>;
    async fn touch_session(&self, token_hash: Vec<u8>, at: &str) -> Result<(), StoreError>;
    /// False when there was no such session.
    async fn delete_session(&self, token_hash: Vec<u8>) -> Result<bool, StoreError>;
    /// Delete sessions that ended before `now` or were last seen before
    /// `idle_before`; returns how many went.
    async fn prune_sessions(&self, now: &str, idle_before: &str) -> Result<u64, StoreError>;
}
