//! SQL for API keys.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::{StoreError, StoredKey};

const COLUMNS: &str = "id, name, role, key_hash, created_at, last_used_at, revoked_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<StoredKey> {
    Ok(StoredKey {
        id: row.get(0)?,
        name: row.get(1)?,
        role: row.get(2)?,
        key_hash: row.get(3)?,
        created_at: row.get(4)?,
        last_used_at: row.get(5)?,
        revoked_at: row.get(6)?,
    })
}

pub fn insert(conn: &Connection, key: &StoredKey) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO api_keys (id, name, role, key_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        key.id,
        key.name,
        key.role,
        key.key_hash,
        key.created_at
    ])?;
    Ok(())
}

pub fn list(
    conn: &Connection,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<StoredKey>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE ?1 IS NULL OR id > ?1 ORDER BY id LIMIT ?2"
    ))?;
    let keys = stmt
        .query_map(params![after, limit as i64], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(keys)
}

pub fn find_by_hash(conn: &Connection, hash: &[u8]) -> Result<Option<StoredKey>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE key_hash = ?1"
        ))?
        .query_row(params![hash], from_row)
        .optional()?)
}

pub fn find(conn: &Connection, id: &str) -> Result<Option<StoredKey>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"))?
        .query_row(params![id], from_row)
        .optional()?)
}

pub fn revoke(
    conn: &Connection,
    id: &str,
    at: &str,
    keep_one_role: Option<&str>,
) -> Result<bool, StoreError> {
    let role: Option<String> = conn
        .query_row(
            "SELECT role FROM api_keys WHERE id = ?1 AND revoked_at IS NULL",
            params![id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(role) = role else {
        return Ok(false);
    };
    if keep_one_role == Some(role.as_str()) {
        let active: i64 = conn.query_row(
            "SELECT COUNT(*) FROM api_keys WHERE role = ?1 AND revoked_at IS NULL",
            params![role],
            |r| r.get(0),
        )?;
        if active <= 1 {
            return Err(StoreError::LastKeyOfRole(role));
        }
    }
    conn.execute(
        "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1",
        params![id, at],
    )?;
    Ok(true)
}

pub fn touch(conn: &Connection, id: &str, at: &str) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")?
        .execute(params![id, at])?;
    Ok(())
}
