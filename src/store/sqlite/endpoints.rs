//! SQL for webhook endpoints and their subscriptions.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::records::append_event;
use crate::store::webhooks::{EndpointSave, StoredEndpoint};
use crate::store::{NewEvent, SealedRow, StoreError};

const COLUMNS: &str = "id, url, events, headers, description, enabled, status, disabled_reason,
    ordering, content, payload_version, rate_limit_per_second, max_in_flight, secret,
    previous_secret, previous_secret_expires_at, failing_since, created_at, updated_at, signature, client_identity";

fn from_row(row: &Row<'_>) -> rusqlite::Result<StoredEndpoint> {
    let events: String = row.get(2)?;
    Ok(StoredEndpoint {
        id: row.get(0)?,
        url: row.get(1)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        headers_sealed: row.get(3)?,
        description: row.get(4)?,
        enabled: row.get(5)?,
        status: row.get(6)?,
        disabled_reason: row.get(7)?,
        ordering: row.get(8)?,
        content: row.get(9)?,
        payload_version: row.get(10)?,
        rate_limit_per_second: row.get(11)?,
        max_in_flight: row.get(12)?,
        secret_sealed: row.get(13)?,
        previous_secret_sealed: row.get(14)?,
        previous_secret_expires_at: row.get(15)?,
        failing_since: row.get(16)?,
        created_at: row.get(17)?,
        updated_at: row.get(18)?,
        signature: row.get(19)?,
        client_identity_sealed: row.get(20)?,
    })
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<StoredEndpoint>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM webhook_endpoints WHERE id = ?1 AND deleted_at IS NULL"
        ))?
        .query_row(params![id], from_row)
        .optional()?)
}

pub fn list(
    conn: &Connection,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<StoredEndpoint>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM webhook_endpoints
         WHERE deleted_at IS NULL AND (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![after, limit as i64], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn save(conn: &Connection, save: &EndpointSave) -> Result<Vec<i64>, StoreError> {
    let e = &save.endpoint;
    if let Some(expected) = &save.expected_updated_at {
        let current: Option<String> = conn
            .query_row(
                "SELECT updated_at FROM webhook_endpoints WHERE id = ?1 AND deleted_at IS NULL",
                params![e.id],
                |r| r.get(0),
            )
            .optional()?;
        match current {
            None => return Err(StoreError::NotFound),
            Some(current) if &current != expected => {
                return Err(StoreError::VersionConflict { current: 0 });
            }
            Some(_) => {}
        }
    }
    conn.prepare_cached(
        "INSERT INTO webhook_endpoints (id, url, events, headers, description, enabled, status,
             disabled_reason, ordering, content, payload_version, rate_limit_per_second,
             max_in_flight, secret, previous_secret, previous_secret_expires_at, failing_since,
             created_at, updated_at, signature, client_identity)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)
         ON CONFLICT (id) DO UPDATE SET url = excluded.url, events = excluded.events,
             headers = excluded.headers, description = excluded.description,
             enabled = excluded.enabled, status = excluded.status,
             disabled_reason = excluded.disabled_reason, ordering = excluded.ordering,
             content = excluded.content, payload_version = excluded.payload_version,
             rate_limit_per_second = excluded.rate_limit_per_second,
             max_in_flight = excluded.max_in_flight, secret = excluded.secret,
             previous_secret = excluded.previous_secret,
             previous_secret_expires_at = excluded.previous_secret_expires_at,
             failing_since = excluded.failing_since, updated_at = excluded.updated_at,
             signature = excluded.signature, client_identity = excluded.client_identity",
    )?
    .execute(params![
        e.id,
        e.url,
        serde_json::to_string(&e.events).unwrap_or_else(|_| "[]".into()),
        e.headers_sealed,
        e.description,
        e.enabled,
        e.status,
        e.disabled_reason,
        e.ordering,
        e.content,
        e.payload_version,
        e.rate_limit_per_second,
        e.max_in_flight,
        e.secret_sealed,
        e.previous_secret_sealed,
        e.previous_secret_expires_at,
        e.failing_since,
        e.created_at,
        e.updated_at,
        e.signature,
        e.client_identity_sealed,
    ])?;
    conn.prepare_cached("DELETE FROM endpoint_subscriptions WHERE endpoint_id = ?1")?
        .execute(params![e.id])?;
    let mut subscribe = conn.prepare_cached(
        "INSERT OR IGNORE INTO endpoint_subscriptions (event_type, endpoint_id) VALUES (?1, ?2)",
    )?;
    for event_type in &save.subscriptions {
        subscribe.execute(params![event_type, e.id])?;
    }
    if let Some(reason) = &save.fail_pending {
        conn.prepare_cached(
            "UPDATE deliveries SET status = 'failed', failure_reason = ?2, completed_at = ?3
             WHERE endpoint_id = ?1 AND status = 'pending'",
        )?
        .execute(params![e.id, reason, e.updated_at])?;
    }
    save.events
        .iter()
        .map(|event| append_event(conn, event))
        .collect()
}

pub fn delete(
    conn: &Connection,
    id: &str,
    at: &str,
    events: &[NewEvent],
) -> Result<Vec<i64>, StoreError> {
    let changed = conn.execute(
        "UPDATE webhook_endpoints SET deleted_at = ?2, updated_at = ?2, enabled = 0,
             status = 'disabled', disabled_reason = 'deleted'
         WHERE id = ?1 AND deleted_at IS NULL",
        params![id, at],
    )?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    conn.execute(
        "DELETE FROM endpoint_subscriptions WHERE endpoint_id = ?1",
        params![id],
    )?;
    conn.execute(
        "UPDATE deliveries SET status = 'cancelled', failure_reason = 'endpoint_deleted',
             completed_at = ?2
         WHERE endpoint_id = ?1 AND status = 'pending'",
        params![id, at],
    )?;
    events
        .iter()
        .map(|event| append_event(conn, event))
        .collect()
}

/// Append `event` without subscriptions and deliver it to one endpoint.
pub fn append_for_endpoint(
    conn: &Connection,
    endpoint_id: &str,
    event: &NewEvent,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let sequence = append_event(conn, event)?;
    conn.execute(
        "INSERT INTO deliveries (endpoint_id, event_sequence, event_id, event_type, status,
                                 next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6)",
        params![
            endpoint_id,
            sequence,
            event.id,
            event.event_type,
            now_ms,
            event.occurred_at
        ],
    )?;
    Ok(sequence)
}

pub fn sealed_rows(
    conn: &Connection,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<SealedRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, updated_at, headers, secret, previous_secret, client_identity
         FROM webhook_endpoints WHERE ?1 IS NULL OR id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![after, limit as i64], |r| {
            Ok(SealedRow {
                id: r.get(0)?,
                updated_at: r.get(1)?,
                headers: r.get(2)?,
                secret: r.get(3)?,
                previous_secret: r.get(4)?,
                client_identity: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn reseal_row(conn: &Connection, row: &SealedRow) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE webhook_endpoints SET headers = ?3, secret = ?4, previous_secret = ?5, client_identity = ?6
         WHERE id = ?1 AND updated_at = ?2",
        params![row.id, row.updated_at, row.headers, row.secret, row.previous_secret, row.client_identity],
    )?;
    Ok(changed == 1)
}
