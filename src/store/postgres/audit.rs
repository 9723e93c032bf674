//! SQL for the audit log (append, list, prune by age).

use deadpool_postgres::ClientWrapper;

use super::conn::{execute, query};
use crate::store::{AuditEntry, AuditQuery, StoreError};

pub async fn append(c: &ClientWrapper, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
    for e in &entries {
        execute(
            c,
            "INSERT INTO audit_log (at, actor_type, actor_id, action, target_type, target_id,
                                    source_ip, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &e.at,
                &e.actor_type,
                &e.actor_id,
                &e.action,
                &e.target_type,
                &e.target_id,
                &e.source_ip,
                &e.detail.as_ref().map(|d| d.to_string()),
            ],
        )
        .await?;
    }
    Ok(())
}

pub async fn list(c: &ClientWrapper, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = query(
        c,
        "SELECT id, at, actor_type, actor_id, action, target_type, target_id, source_ip, detail
         FROM audit_log
         WHERE ($1::BIGINT IS NULL OR id < $1) AND ($2::TEXT IS NULL OR action = $2)
           AND ($3::TEXT IS NULL OR at >= $3)
         ORDER BY id DESC LIMIT $4",
        &[&q.before_id, &q.action, &q.since, &(q.limit as i64)],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let detail: Option<String> = row.get(8);
            AuditEntry {
                id: row.get(0),
                at: row.get(1),
                actor_type: row.get(2),
                actor_id: row.get(3),
                action: row.get(4),
                target_type: row.get(5),
                target_id: row.get(6),
                source_ip: row.get(7),
                detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
            }
        })
        .collect())
}

/// Remove at most `limit` entries older than `before`, skipping rows another
/// process is pruning.
pub async fn prune(c: &ClientWrapper, before: String, limit: i64) -> Result<u64, StoreError> {
    execute(
        c,
        "DELETE FROM audit_log WHERE id IN (
             SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        &[&before, &limit],
    )
    .await
}
