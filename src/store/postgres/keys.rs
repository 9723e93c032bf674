//! SQL for API keys.

use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;

use super::conn::{execute, query, query_one, query_opt};
use crate::store::{StoreError, StoredKey};

const COLUMNS: &str = "id, name, role, key_hash, created_at, last_used_at, revoked_at";

fn from_row(row: &Row) -> StoredKey {
    StoredKey {
        id: row.get(0),
        name: row.get(1),
        role: row.get(2),
        key_hash: row.get(3),
        created_at: row.get(4),
        last_used_at: row.get(5),
        revoked_at: row.get(6),
    }
}

pub async fn insert(c: &ClientWrapper, key: StoredKey) -> Result<(), StoreError> {
    execute(
        c,
        "INSERT INTO api_keys (id, name, role, key_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        &[
            &key.id,
            &key.name,
            &key.role,
            &key.key_hash,
            &key.created_at,
        ],
    )
    .await?;
    Ok(())
}

pub async fn list(
    c: &ClientWrapper,
    after: Option<String>,
    limit: usize,
) -> Result<Vec<StoredKey>, StoreError> {
    let rows = query(
        c,
        &format!(
            "SELECT {COLUMNS} FROM api_keys WHERE $1::TEXT IS NULL OR id > $1 ORDER BY id LIMIT $2"
        ),
        &[&after, &(limit as i64)],
    )
    .await?;
    Ok(rows.iter().map(from_row).collect())
}

pub async fn find_by_hash(c: &ClientWrapper, hash: &[u8]) -> Result<Option<StoredKey>, StoreError> {
    let row = query_opt(
        c,
        &format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1"),
        &[&hash],
    )
    .await?;
    Ok(row.as_ref().map(from_row))
}

pub async fn find(c: &ClientWrapper, id: &str) -> Result<Option<StoredKey>, StoreError> {
    let row = query_opt(
        c,
        &format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"),
        &[&id],
    )
    .await?;
    Ok(row.as_ref().map(from_row))
}

pub async fn revoke(
    c: &ClientWrapper,
    id: String,
    at: String,
    keep_one_role: Option<String>,
) -> Result<bool, StoreError> {
    // Serialize revocations, so two processes cannot each revoke one of the
    // last two keys of a role.
    execute(c, "LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE", &[]).await?;
    let role: Option<String> = query_opt(
        c,
        "SELECT role FROM api_keys WHERE id = $1 AND revoked_at IS NULL",
        &[&id],
    )
    .await?
    .map(|r| r.get(0));
    let Some(role) = role else {
        return Ok(false);
    };
    if keep_one_role.as_deref() == Some(role.as_str()) {
        let active: i64 = query_one(
            c,
            "SELECT COUNT(*) FROM api_keys WHERE role = $1 AND revoked_at IS NULL",
            &[&role],
        )
        .await?
        .get(0);
        if active <= 1 {
            return Err(StoreError::LastKeyOfRole(role));
        }
    }
    execute(
        c,
        "UPDATE api_keys SET revoked_at = $2 WHERE id = $1",
        &[&id, &at],
    )
    .await?;
    Ok(true)
}

pub async fn touch(c: &ClientWrapper, id: String, at: String) -> Result<(), StoreError> {
    execute(
        c,
        "UPDATE api_keys SET last_used_at = $2 WHERE id = $1",
        &[&id, &at],
    )
    .await?;
    Ok(())
}
