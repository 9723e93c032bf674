//! SQL for admin sessions, and their part of the store's traits.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::store::StoreError;
use crate::store::sessions::{SessionStore, StoredSession};

fn from_row(row: &Row<'_>) -> rusqlite::Result<StoredSession> {
    Ok(StoredSession {
        token_hash: row.get(0)?,
        key_id: row.get(1)?,
        created_at: row.get(2)?,
        last_seen_at: row.get(3)?,
        expires_at: row.get(4)?,
    })
}

fn insert(conn: &Connection, s: &StoredSession) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO admin_sessions (token_hash, key_id, created_at, last_seen_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        s.token_hash,
        s.key_id,
        s.created_at,
        s.last_seen_at,
        s.expires_at
    ])?;
    Ok(())
}

fn find(conn: &Connection, hash: &[u8]) -> Result<Option<StoredSession>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT token_hash, key_id, created_at, last_seen_at, expires_at
             FROM admin_sessions WHERE token_hash = ?1",
        )?
        .query_row(params![hash], from_row)
        .optional()?)
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, session: StoredSession) -> Result<(), StoreError> {
        self.writer.write(move |conn| insert(conn, &session)).await
    }

    async fn find_session(&self, token_hash: Vec<u8>) -> Result<Option<StoredSession>, StoreError> {
        self.readers.read(move |conn| find(conn, &token_hash)).await
    }

    async fn touch_session(&self, token_hash: Vec<u8>, at: &str) -> Result<(), StoreError> {
        let at = at.to_owned();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE admin_sessions SET last_seen_at = ?2 WHERE token_hash = ?1",
                )?
                .execute(params![token_hash, at])?;
                Ok(())
            })
            .await
    }

    async fn delete_session(&self, token_hash: Vec<u8>) -> Result<bool, StoreError> {
        self.writer
            .write(move |conn| {
                let n = conn
                    .prepare_cached("DELETE FROM admin_sessions WHERE token_hash = ?1")?
                    .execute(params![token_hash])?;
                Ok(n > 0)
            })
            .await
    }

    async fn prune_sessions(&self, now: &str, idle_before: &str) -> Result<u64, StoreError> {
        let (now, idle_before) = (now.to_owned(), idle_before.to_owned());
        self.writer
            .write(move |conn| {
                let n = conn.execute(
                    "DELETE FROM admin_sessions WHERE expires_at < ?1 OR last_seen_at < ?2",
                    params![now, idle_before],
                )?;
                Ok(n as u64)
            })
            .await
    }
}
