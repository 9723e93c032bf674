//! SQL for admin sessions, and their part of the store's traits.

use async_trait::async_trait;

use super::PostgresStore;
use super::conn::{execute, query_opt};
use super::writer::Kind;
use crate::store::StoreError;
use crate::store::sessions::{SessionStore, StoredSession};

#[async_trait]
impl SessionStore for PostgresStore {
    async fn insert_session(&self, session: StoredSession) -> Result<(), StoreError> {
        self.writer
            .write(Kind::Plain, move |c| {
                let s = session.clone();
                Box::pin(async move {
                    execute(
                        c,
                        "INSERT INTO admin_sessions
                             (token_hash, key_id, created_at, last_seen_at, expires_at)
                         VALUES ($1, $2, $3, $4, $5)",
                        &[
                            &s.token_hash,
                            &s.key_id,
                            &s.created_at,
                            &s.last_seen_at,
                            &s.expires_at,
                        ],
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn find_session(&self, token_hash: Vec<u8>) -> Result<Option<StoredSession>, StoreError> {
        let row = query_opt(
            &*self.client().await?,
            "SELECT token_hash, key_id, created_at, last_seen_at, expires_at
             FROM admin_sessions WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?;
        Ok(row.map(|r| StoredSession {
            token_hash: r.get(0),
            key_id: r.get(1),
            created_at: r.get(2),
            last_seen_at: r.get(3),
            expires_at: r.get(4),
        }))
    }

    async fn touch_session(&self, token_hash: Vec<u8>, at: &str) -> Result<(), StoreError> {
        let at = at.to_owned();
        self.writer
            .write(Kind::Plain, move |c| {
                let (hash, at) = (token_hash.clone(), at.clone());
                Box::pin(async move {
                    execute(
                        c,
                        "UPDATE admin_sessions SET last_seen_at = $2 WHERE token_hash = $1",
                        &[&hash, &at],
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn delete_session(&self, token_hash: Vec<u8>) -> Result<bool, StoreError> {
        self.writer
            .write(Kind::Plain, move |c| {
                let hash = token_hash.clone();
                Box::pin(async move {
                    let n = execute(
                        c,
                        "DELETE FROM admin_sessions WHERE token_hash = $1",
                        &[&hash],
                    )
                    .await?;
                    Ok(n > 0)
                })
            })
            .await
    }

    async fn prune_sessions(&self, now: &str, idle_before: &str) -> Result<u64, StoreError> {
        let (now, idle_before) = (now.to_owned(), idle_before.to_owned());
        self.writer
            .write(Kind::Plain, move |c| {
                let (now, idle_before) = (now.clone(), idle_before.clone());
                Box::pin(async move {
                    execute(
                        c,
                        "DELETE FROM admin_sessions WHERE expires_at < $1 OR last_seen_at < $2",
                        &[&now, &idle_before],
                    )
                    .await
                })
            })
            .await
    }
}
