//! SQL for webhook endpoints and their subscriptions. Every change is
//! announced to all processes (`e:<id>` on the notification channel) so the
//! process that sends to the endpoint reloads it.

use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;

use super::conn::{execute, query, query_one, query_opt};
use super::records::append_event;
use super::writer::CHANNEL;
use crate::store::webhooks::{EndpointSave, StoredEndpoint};
use crate::store::{NewEvent, SealedRow, StoreError};

const COLUMNS: &str = "id, url, events, headers, description, enabled, status, disabled_reason,
    ordering, content, payload_version, rate_limit_per_second, max_in_flight, secret,
    previous_secret, previous_secret_expires_at, failing_since, created_at, updated_at, signature,
    client_identity";

fn from_row(row: &Row) -> StoredEndpoint {
    let events: String = row.get(2);
    StoredEndpoint {
        id: row.get(0),
        url: row.get(1),
        events: serde_json::from_str(&events).unwrap_or_default(),
        headers_sealed: row.get(3),
        description: row.get(4),
        enabled: row.get(5),
        status: row.get(6),
        disabled_reason: row.get(7),
        ordering: row.get(8),
        content: row.get(9),
        payload_version: row.get(10),
        rate_limit_per_second: row.get(11),
        max_in_flight: row.get(12),
        secret_sealed: row.get(13),
        previous_secret_sealed: row.get(14),
        previous_secret_expires_at: row.get(15),
        failing_since: row.get(16),
        created_at: row.get(17),
        updated_at: row.get(18),
        signature: row.get(19),
        client_identity_sealed: row.get(20),
    }
}

/// Tell every process (at COMMIT) that an endpoint changed.
pub async fn announce(c: &ClientWrapper, id: &str) -> Result<(), StoreError> {
    let payload = format!("e:{id}");
    query(c, "SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await?;
    Ok(())
}

pub async fn get(c: &ClientWrapper, id: &str) -> Result<Option<StoredEndpoint>, StoreError> {
    let row = query_opt(
        c,
        &format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL"),
        &[&id],
    )
    .await?;
    Ok(row.as_ref().map(from_row))
}

pub async fn list(
    c: &ClientWrapper,
    after: Option<String>,
    limit: usize,
) -> Result<Vec<StoredEndpoint>, StoreError> {
    let rows = query(
        c,
        &format!(
            "SELECT {COLUMNS} FROM webhook_endpoints
             WHERE deleted_at IS NULL AND ($1::TEXT IS NULL OR id > $1) ORDER BY id LIMIT $2"
        ),
        &[&after, &(limit as i64)],
    )
    .await?;
    Ok(rows.iter().map(from_row).collect())
}

pub async fn count(c: &ClientWrapper) -> Result<usize, StoreError> {
    let n: i64 = query_one(
        c,
        "SELECT COUNT(*) FROM webhook_endpoints WHERE deleted_at IS NULL",
        &[],
    )
    .await?
    .get(0);
    Ok(n as usize)
}

pub async fn save(c: &ClientWrapper, save: EndpointSave) -> Result<Vec<i64>, StoreError> {
    let e = &save.endpoint;
    if let Some(expected) = &save.expected_updated_at {
        let current: Option<String> = query_opt(
            c,
            "SELECT updated_at FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL
             FOR UPDATE",
            &[&e.id],
        )
        .await?
        .map(|r| r.get(0));
        match current {
            None => return Err(StoreError::NotFound),
            Some(current) if &current != expected => {
                return Err(StoreError::VersionConflict { current: 0 });
            }
            Some(_) => {}
        }
    }
    let events_json = serde_json::to_string(&e.events).unwrap_or_else(|_| "[]".into());
    execute(
        c,
        "INSERT INTO webhook_endpoints (id, url, events, headers, description, enabled, status,
             disabled_reason, ordering, content, payload_version, rate_limit_per_second,
             max_in_flight, secret, previous_secret, previous_secret_expires_at, failing_since,
             created_at, updated_at, signature, client_identity)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                 $19, $20, $21)
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
        &[
            &e.id,
            &e.url,
            &events_json,
            &e.headers_sealed,
            &e.description,
            &e.enabled,
            &e.status,
            &e.disabled_reason,
            &e.ordering,
            &e.content,
            &e.payload_version,
            &e.rate_limit_per_second,
            &e.max_in_flight,
            &e.secret_sealed,
            &e.previous_secret_sealed,
            &e.previous_secret_expires_at,
            &e.failing_since,
            &e.created_at,
            &e.updated_at,
            &e.signature,
            &e.client_identity_sealed,
        ],
    )
    .await?;
    execute(
        c,
        "DELETE FROM endpoint_subscriptions WHERE endpoint_id = $1",
        &[&e.id],
    )
    .await?;
    execute(
        c,
        "INSERT INTO endpoint_subscriptions (event_type, endpoint_id)
         SELECT DISTINCT t, $2 FROM unnest($1::TEXT[]) AS t",
        &[&save.subscriptions, &e.id],
    )
    .await?;
    if let Some(reason) = &save.fail_pending {
        execute(
            c,
            "UPDATE deliveries SET status = 'failed', failure_reason = $2, completed_at = $3
             WHERE endpoint_id = $1 AND status = 'pending'",
            &[&e.id, reason, &e.updated_at],
        )
        .await?;
    }
    let mut sequences = Vec::with_capacity(save.events.len());
    for event in &save.events {
        sequences.push(append_event(c, event).await?);
    }
    announce(c, &e.id).await?;
    Ok(sequences)
}

pub async fn delete(
    c: &ClientWrapper,
    id: String,
    at: String,
    events: Vec<NewEvent>,
) -> Result<Vec<i64>, StoreError> {
    let changed = execute(
        c,
        "UPDATE webhook_endpoints SET deleted_at = $2, updated_at = $2, enabled = FALSE,
             status = 'disabled', disabled_reason = 'deleted'
         WHERE id = $1 AND deleted_at IS NULL",
        &[&id, &at],
    )
    .await?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    execute(
        c,
        "DELETE FROM endpoint_subscriptions WHERE endpoint_id = $1",
        &[&id],
    )
    .await?;
    execute(
        c,
        "UPDATE deliveries SET status = 'cancelled', failure_reason = 'endpoint_deleted',
             completed_at = $2
         WHERE endpoint_id = $1 AND status = 'pending'",
        &[&id, &at],
    )
    .await?;
    execute(
        c,
        "DELETE FROM endpoint_leases WHERE endpoint_id = $1",
        &[&id],
    )
    .await?;
    let mut sequences = Vec::with_capacity(events.len());
    for event in &events {
        sequences.push(append_event(c, event).await?);
    }
    announce(c, &id).await?;
    Ok(sequences)
}

/// Append `event` without subscriptions and deliver it to one endpoint.
pub async fn append_for_endpoint(
    c: &ClientWrapper,
    endpoint_id: String,
    event: NewEvent,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let sequence = append_event(c, &event).await?;
    execute(
        c,
        "INSERT INTO deliveries (id, endpoint_id, event_sequence, event_id, event_type, status,
                                 next_attempt_at, created_at)
         VALUES (nextval('delivery_ids'), $1, $2, $3, $4, 'pending', $5, $6)",
        &[
            &endpoint_id,
            &sequence,
            &event.id,
            &event.event_type,
            &now_ms,
            &event.occurred_at,
        ],
    )
    .await?;
    Ok(sequence)
}

pub async fn sealed_rows(
    c: &ClientWrapper,
    after: Option<String>,
    limit: usize,
) -> Result<Vec<SealedRow>, StoreError> {
    let rows = query(
        c,
        "SELECT id, updated_at, headers, secret, previous_secret, client_identity
         FROM webhook_endpoints WHERE $1::TEXT IS NULL OR id > $1 ORDER BY id LIMIT $2",
        &[&after, &(limit as i64)],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| SealedRow {
            id: r.get(0),
            updated_at: r.get(1),
            headers: r.get(2),
            secret: r.get(3),
            previous_secret: r.get(4),
            client_identity: r.get(5),
        })
        .collect())
}

pub async fn reseal_row(c: &ClientWrapper, row: SealedRow) -> Result<bool, StoreError> {
    let changed = execute(
        c,
        "UPDATE webhook_endpoints SET headers = $3, secret = $4, previous_secret = $5,
             client_identity = $6
         WHERE id = $1 AND updated_at = $2",
        &[
            &row.id,
            &row.updated_at,
            &row.headers,
            &row.secret,
            &row.previous_secret,
            &row.client_identity,
        ],
    )
    .await?;
    if changed == 1 {
        announce(c, &row.id).await?;
    }
    Ok(changed == 1)
}
