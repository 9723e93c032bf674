//! SQL for the audit log (append, list, prune by age).

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row, params, params_from_iter};

use crate::store::{AuditEntry, AuditQuery, StoreError};

pub fn append(conn: &Connection, entries: &[AuditEntry]) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO audit_log (at, actor_type, actor_id, action, target_type, target_id, source_ip, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for e in entries {
        insert.execute(params![
            e.at,
            e.actor_type,
            e.actor_id,
            e.action,
            e.target_type,
            e.target_id,
            e.source_ip,
            e.detail.as_ref().map(|d| d.to_string()),
        ])?;
    }
    Ok(())
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    let detail: Option<String> = row.get(8)?;
    Ok(AuditEntry {
        id: row.get(0)?,
        at: row.get(1)?,
        actor_type: row.get(2)?,
        actor_id: row.get(3)?,
        action: row.get(4)?,
        target_type: row.get(5)?,
        target_id: row.get(6)?,
        source_ip: row.get(7)?,
        detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
    })
}

pub fn list(conn: &Connection, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
    let mut sql = String::from(
        "SELECT id, at, actor_type, actor_id, action, target_type, target_id, source_ip, detail
         FROM audit_log WHERE 1",
    );
    let mut values = Vec::new();
    if let Some(before) = q.before_id {
        sql.push_str(" AND id < ?");
        values.push(SqlValue::Integer(before));
    }
    if let Some(action) = &q.action {
        sql.push_str(" AND action = ?");
        values.push(SqlValue::Text(action.clone()));
    }
    if let Some(since) = &q.since {
        sql.push_str(" AND at >= ?");
        values.push(SqlValue::Text(since.clone()));
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    values.push(SqlValue::Integer(q.limit as i64));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(values), from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn prune(conn: &Connection, before: &str) -> Result<u64, StoreError> {
    Ok(conn.execute("DELETE FROM audit_log WHERE at < ?1", params![before])? as u64)
}
