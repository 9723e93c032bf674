//! SQL for records and for appending events (with their deliveries).

use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;

use super::conn::{execute, query, query_one, query_opt};
use crate::store::{NewEvent, RecordChange, RecordQuery, RecordWrite, StoreError, StoredRecord};

fn parse_body(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Backend("a stored body is not JSON".into()))
}

fn record_from(record_type: &str, row: &Row) -> Result<StoredRecord, StoreError> {
    Ok(StoredRecord {
        record_type: record_type.to_owned(),
        id: row.get(0),
        version: row.get(1),
        body: parse_body(row.get(2))?,
    })
}

pub async fn get(
    c: &ClientWrapper,
    record_type: &str,
    id: i64,
) -> Result<Option<StoredRecord>, StoreError> {
    let row = query_opt(
        c,
        "SELECT id, version, body FROM records
         WHERE id = $1 AND record_type = $2 AND deleted_at IS NULL",
        &[&id, &record_type],
    )
    .await?;
    row.map(|row| record_from(record_type, &row)).transpose()
}

pub async fn list(c: &ClientWrapper, q: &RecordQuery) -> Result<Vec<StoredRecord>, StoreError> {
    let rows = query(
        c,
        "SELECT id, version, body FROM records
         WHERE record_type = $1 AND id > $2 AND deleted_at IS NULL
           AND ($3::BIGINT IS NULL OR patient_id = $3)
         ORDER BY id LIMIT $4",
        &[
            &q.record_type,
            &q.after_id,
            &q.patient_id,
            &(q.limit as i64),
        ],
    )
    .await?;
    rows.iter()
        .map(|row| record_from(&q.record_type, row))
        .collect()
}

/// Reserve `count` record ids at once.
pub async fn allocate_ids(c: &ClientWrapper, count: i64) -> Result<Vec<i64>, StoreError> {
    let rows = query(
        c,
        "SELECT nextval('record_ids') FROM generate_series(1, $1::BIGINT)",
        &[&count],
    )
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The current version of a live record, locked until the transaction ends.
async fn live_version(
    c: &ClientWrapper,
    record_type: &str,
    id: i64,
    lock: bool,
) -> Result<Option<i64>, StoreError> {
    let sql = if lock {
        "SELECT version FROM records WHERE id = $1 AND record_type = $2 AND deleted_at IS NULL
         FOR UPDATE"
    } else {
        // A referenced record must stay alive until this write commits.
        "SELECT version FROM records WHERE id = $1 AND record_type = $2 AND deleted_at IS NULL
         FOR KEY SHARE"
    };
    Ok(query_opt(c, sql, &[&id, &record_type])
        .await?
        .map(|r| r.get(0)))
}

/// Apply `write` inside the caller's transaction; returns the event sequences.
pub async fn apply(c: &ClientWrapper, write: RecordWrite) -> Result<Vec<i64>, StoreError> {
    for reference in &write.references {
        if live_version(c, &reference.record_type, reference.id, false)
            .await?
            .is_none()
        {
            return Err(StoreError::MissingReference {
                field: reference.field.clone(),
            });
        }
    }
    match &write.change {
        RecordChange::Create {
            id,
            patient_id,
            body,
            at,
        } => {
            execute(
                c,
                "INSERT INTO records (id, record_type, version, patient_id, body, created_at, updated_at)
                 VALUES ($1, $2, 1, $3, $4, $5, $5)",
                &[id, &write.record_type, patient_id, &body.to_string(), at],
            )
            .await?;
        }
        RecordChange::Update {
            id,
            expected_version,
            patient_id,
            body,
            at,
        } => {
            check_version(c, &write.record_type, *id, Some(*expected_version)).await?;
            execute(
                c,
                "UPDATE records SET version = version + 1, patient_id = $3, body = $4, updated_at = $5
                 WHERE id = $1 AND record_type = $2",
                &[id, &write.record_type, patient_id, &body.to_string(), at],
            )
            .await?;
        }
        RecordChange::Delete {
            id,
            expected_version,
            at,
        } => {
            check_version(c, &write.record_type, *id, *expected_version).await?;
            execute(
                c,
                "UPDATE records SET deleted_at = $3 WHERE id = $1 AND record_type = $2",
                &[id, &write.record_type, at],
            )
            .await?;
        }
    }
    let mut sequences = Vec::with_capacity(write.events.len());
    for event in &write.events {
        sequences.push(append_event(c, event).await?);
    }
    Ok(sequences)
}

async fn check_version(
    c: &ClientWrapper,
    record_type: &str,
    id: i64,
    expected: Option<i64>,
) -> Result<(), StoreError> {
    match (live_version(c, record_type, id, true).await?, expected) {
        (None, _) => Err(StoreError::NotFound),
        (Some(current), Some(expected)) if current != expected => {
            Err(StoreError::VersionConflict { current })
        }
        _ => Ok(()),
    }
}

/// Append one event and, in the same statement, a delivery for every enabled
/// endpoint subscribed to its type. The caller holds the append lock.
pub async fn append_event(c: &ClientWrapper, event: &NewEvent) -> Result<i64, StoreError> {
    let record_key = match (&event.record_type, event.record_id) {
        (Some(kind), Some(id)) => Some(format!("{kind}:{id}")),
        _ => None,
    };
    let row = query_one(
        c,
        "WITH ev AS (
             INSERT INTO events (sequence, id, event_type, category, payload_version, occurred_at,
                                 actor_type, actor_id, record_type, record_id, data)
             VALUES (nextval('event_sequences'), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             RETURNING sequence),
         d AS (
             INSERT INTO deliveries (id, endpoint_id, event_sequence, event_id, event_type,
                                     record_key, status, next_attempt_at, created_at)
             SELECT nextval('delivery_ids'), s.endpoint_id, ev.sequence, $1, $2, $11, 'pending',
                    (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT, $5
             FROM ev, endpoint_subscriptions s
             JOIN webhook_endpoints e ON e.id = s.endpoint_id
             WHERE s.event_type = $2 AND e.status = 'enabled' AND e.deleted_at IS NULL
             ORDER BY s.endpoint_id)
         SELECT sequence FROM ev",
        &[
            &event.id,
            &event.event_type,
            &event.category,
            &event.payload_version,
            &event.occurred_at,
            &event.actor_type,
            &event.actor_id,
            &event.record_type,
            &event.record_id,
            &event.data.to_string(),
            &record_key,
        ],
    )
    .await?;
    Ok(row.get(0))
}
