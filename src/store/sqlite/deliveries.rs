//! SQL for deliveries and their attempts.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::store::webhooks::{
    AttemptOutcome, AttemptRecord, AttemptRow, AttemptStats, DeliveryFilter, DeliveryRow,
    DeliveryStats, PendingDelivery, Recovery,
};
use crate::store::{NewEvent, StoreError};

const PENDING_COLUMNS: &str = "d.id, d.endpoint_id, d.attempts, d.next_attempt_at, d.record_key,
    d.event_sequence, e.id, e.event_type, e.category, e.payload_version, e.occurred_at,
    e.actor_type, e.actor_id, e.record_type, e.record_id, e.data";

fn pending_from_row(row: &Row<'_>) -> rusqlite::Result<PendingDelivery> {
    let event_id: Option<String> = row.get(6)?;
    let event = match event_id {
        Some(id) => Some(NewEvent {
            id,
            event_type: row.get(7)?,
            category: row.get(8)?,
            payload_version: row.get(9)?,
            occurred_at: row.get(10)?,
            actor_type: row.get(11)?,
            actor_id: row.get(12)?,
            record_type: row.get(13)?,
            record_id: row.get(14)?,
            data: serde_json::Value::Null,
        }),
        None => None,
    };
    Ok(PendingDelivery {
        id: row.get(0)?,
        endpoint_id: row.get(1)?,
        attempts: row.get(2)?,
        next_attempt_at: row.get(3)?,
        record_key: row.get(4)?,
        sequence: row.get(5)?,
        event,
        event_data: row.get(15)?,
    })
}

pub fn pending(
    conn: &Connection,
    after_id: i64,
    limit: usize,
) -> Result<Vec<PendingDelivery>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PENDING_COLUMNS} FROM deliveries d
         LEFT JOIN events e ON e.sequence = d.event_sequence
         WHERE d.status = 'pending' AND d.id > ?1 ORDER BY d.id LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![after_id, limit as i64], pending_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn pending_for_endpoint(
    conn: &Connection,
    endpoint_id: &str,
    after_id: i64,
    up_to_id: i64,
    limit: usize,
) -> Result<Vec<PendingDelivery>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PENDING_COLUMNS} FROM deliveries d
         LEFT JOIN events e ON e.sequence = d.event_sequence
         WHERE d.endpoint_id = ?1 AND d.status = 'pending' AND d.id > ?2 AND d.id <= ?3
         ORDER BY d.id LIMIT ?4"
    ))?;
    let rows = stmt
        .query_map(
            params![endpoint_id, after_id, up_to_id, limit as i64],
            pending_from_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn pending_by_ids(conn: &Connection, ids: &[i64]) -> Result<Vec<PendingDelivery>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PENDING_COLUMNS} FROM deliveries d
         LEFT JOIN events e ON e.sequence = d.event_sequence
         WHERE d.status = 'pending' AND d.id = ?1"
    ))?;
    let mut found = Vec::new();
    for id in ids {
        if let Some(row) = stmt.query_row(params![id], pending_from_row).optional()? {
            found.push(row);
        }
    }
    Ok(found)
}

pub fn record_attempt(conn: &Connection, r: &AttemptRecord) -> Result<Option<String>, StoreError> {
    conn.prepare_cached(
        "INSERT INTO delivery_attempts (delivery_id, attempted_at, duration_ms, http_status,
                                        error_kind, response_snippet)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        r.delivery_id,
        r.attempted_at,
        r.duration_ms,
        r.http_status,
        r.error_kind,
        r.response_snippet
    ])?;
    let (status, next_at, reason, completed) = match &r.outcome {
        AttemptOutcome::Succeeded => ("succeeded", None, None, Some(&r.attempted_at)),
        AttemptOutcome::Retry { at } => ("pending", Some(*at), None, None),
        AttemptOutcome::Failed { reason } => {
            ("failed", None, Some(reason.as_str()), Some(&r.attempted_at))
        }
    };
    // Only a pending delivery moves on: one that was cancelled or failed
    // meanwhile (endpoint disabled or deleted) keeps its state.
    conn.prepare_cached(
        "UPDATE deliveries SET attempts = attempts + 1, status = ?2,
             next_attempt_at = COALESCE(?3, next_attempt_at), failure_reason = ?4,
             completed_at = ?5, last_attempt_at = ?6, last_http_status = ?7, last_error = ?8
         WHERE id = ?1 AND status = 'pending'",
    )?
    .execute(params![
        r.delivery_id,
        status,
        next_at,
        reason,
        completed,
        r.attempted_at,
        r.http_status,
        r.error_kind
    ])?;
    if let AttemptOutcome::Succeeded = r.outcome {
        conn.prepare_cached(
            "UPDATE webhook_endpoints SET failing_since = NULL
             WHERE id = ?1 AND failing_since IS NOT NULL",
        )?
        .execute(params![r.endpoint_id])?;
        return Ok(None);
    }
    conn.prepare_cached(
        "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?2) WHERE id = ?1",
    )?
    .execute(params![r.endpoint_id, r.attempted_at])?;
    Ok(conn
        .prepare_cached("SELECT failing_since FROM webhook_endpoints WHERE id = ?1")?
        .query_row(params![r.endpoint_id], |row| row.get(0))
        .optional()?
        .flatten())
}

const ROW_COLUMNS: &str = "id, endpoint_id, event_sequence, event_id, event_type, status, attempts,
    next_attempt_at, last_attempt_at, last_http_status, last_error, failure_reason, created_at,
    completed_at";

fn row_from(row: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    let status: String = row.get(5)?;
    let next: i64 = row.get(7)?;
    Ok(DeliveryRow {
        id: row.get(0)?,
        endpoint_id: row.get(1)?,
        event_sequence: row.get(2)?,
        event_id: row.get(3)?,
        event_type: row.get(4)?,
        next_attempt_at: (status == "pending").then_some(next),
        status,
        attempts: row.get(6)?,
        last_attempt_at: row.get(8)?,
        last_http_status: row.get(9)?,
        last_error: row.get(10)?,
        failure_reason: row.get(11)?,
        created_at: row.get(12)?,
        completed_at: row.get(13)?,
    })
}

pub fn list(conn: &Connection, f: &DeliveryFilter) -> Result<Vec<DeliveryRow>, StoreError> {
    let mut sql = format!("SELECT {ROW_COLUMNS} FROM deliveries WHERE endpoint_id = ?");
    let mut values = vec![SqlValue::Text(f.endpoint_id.clone())];
    if let Some(status) = &f.status {
        sql.push_str(" AND status = ?");
        values.push(SqlValue::Text(status.clone()));
    }
    if let Some(event_type) = &f.event_type {
        sql.push_str(" AND event_type = ?");
        values.push(SqlValue::Text(event_type.clone()));
    }
    if let Some(before) = f.before_id {
        sql.push_str(" AND id < ?");
        values.push(SqlValue::Integer(before));
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    values.push(SqlValue::Integer(f.limit as i64));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(values), row_from)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn get(
    conn: &Connection,
    id: i64,
) -> Result<Option<(DeliveryRow, Vec<AttemptRow>)>, StoreError> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM deliveries WHERE id = ?1"
        ))?
        .query_row(params![id], row_from)
        .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT attempted_at, duration_ms, http_status, error_kind, response_snippet
         FROM delivery_attempts WHERE delivery_id = ?1 ORDER BY id",
    )?;
    let attempts = stmt
        .query_map(params![id], |r| {
            Ok(AttemptRow {
                attempted_at: r.get(0)?,
                duration_ms: r.get(1)?,
                http_status: r.get(2)?,
                error_kind: r.get(3)?,
                response_snippet: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some((row, attempts)))
}

pub fn requeue(conn: &Connection, id: i64, now_ms: i64) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = ?2, failure_reason = NULL,
             completed_at = NULL
         WHERE id = ?1 AND status != 'cancelled'",
        params![id, now_ms],
    )?;
    Ok(changed > 0)
}

pub fn recover(
    conn: &Connection,
    endpoint_id: &str,
    since: &str,
    event_types: &[String],
    now_ms: i64,
) -> Result<Recovery, StoreError> {
    let mut requeued = Vec::new();
    {
        let mut stmt = conn.prepare(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = ?3, failure_reason = NULL,
                 completed_at = NULL
             WHERE endpoint_id = ?1 AND status = 'failed' AND created_at >= ?2
             RETURNING id",
        )?;
        let rows = stmt.query_map(params![endpoint_id, since, now_ms], |r| r.get(0))?;
        for id in rows {
            requeued.push(id?);
        }
    }
    requeued.sort_unstable();
    if event_types.is_empty() {
        return Ok(Recovery {
            requeued,
            created: 0,
        });
    }
    let placeholders = vec!["?"; event_types.len()].join(", ");
    let sql = format!(
        "INSERT OR IGNORE INTO deliveries (endpoint_id, event_sequence, event_id, event_type,
             record_key, status, next_attempt_at, created_at)
         SELECT ?, e.sequence, e.id, e.event_type,
                CASE WHEN e.record_id IS NULL THEN NULL ELSE e.record_type || ':' || e.record_id END,
                'pending', ?, e.occurred_at
         FROM events e WHERE e.occurred_at >= ? AND e.event_type IN ({placeholders})
         ORDER BY e.sequence"
    );
    let mut values = vec![
        SqlValue::Text(endpoint_id.to_owned()),
        SqlValue::Integer(now_ms),
        SqlValue::Text(since.to_owned()),
    ];
    values.extend(event_types.iter().map(|t| SqlValue::Text(t.clone())));
    let created = conn.execute(&sql, params_from_iter(values))? as u64;
    Ok(Recovery { requeued, created })
}

pub fn purge(conn: &Connection, before: &str) -> Result<u64, StoreError> {
    conn.execute(
        "DELETE FROM delivery_attempts WHERE delivery_id IN (
             SELECT id FROM deliveries WHERE status != 'pending' AND completed_at < ?1)",
        params![before],
    )?;
    let removed = conn.execute(
        "DELETE FROM deliveries WHERE status != 'pending' AND completed_at < ?1",
        params![before],
    )?;
    Ok(removed as u64)
}

pub fn stats(conn: &Connection) -> Result<DeliveryStats, StoreError> {
    let (pending, oldest) = conn.query_row(
        "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE status = 'pending'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(DeliveryStats {
        pending,
        oldest_pending_created_at: oldest,
    })
}

pub fn last_attempted(
    conn: &Connection,
    endpoint_id: &str,
) -> Result<Option<DeliveryRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM deliveries
             WHERE endpoint_id = ?1 AND last_attempt_at IS NOT NULL ORDER BY id DESC LIMIT 1"
        ))?
        .query_row(params![endpoint_id], row_from)
        .optional()?)
}

pub fn attempt_stats(conn: &Connection, since: &str) -> Result<Vec<AttemptStats>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.endpoint_id, COUNT(*),
                SUM(CASE WHEN a.http_status BETWEEN 200 AND 299 THEN 1 ELSE 0 END)
         FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE a.attempted_at >= ?1 GROUP BY d.endpoint_id",
    )?;
    let rows = stmt
        .query_map(params![since], |row| {
            Ok(AttemptStats {
                endpoint_id: row.get(0)?,
                attempts: row.get(1)?,
                succeeded: row.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
