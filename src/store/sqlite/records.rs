//! SQL for records and the events a record write appends.

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{NewEvent, RecordChange, RecordQuery, RecordWrite, StoreError, StoredRecord};

fn parse_body(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Backend("a stored body is not JSON".into()))
}

pub fn get(
    conn: &Connection,
    record_type: &str,
    id: i64,
) -> Result<Option<StoredRecord>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT version, body FROM records
             WHERE id = ?1 AND record_type = ?2 AND deleted_at IS NULL",
        )?
        .query_row(params![id, record_type], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })
        .optional()?;
    row.map(|(version, body)| {
        Ok(StoredRecord {
            record_type: record_type.to_owned(),
            id,
            version,
            body: parse_body(&body)?,
        })
    })
    .transpose()
}

pub fn list(conn: &Connection, query: &RecordQuery) -> Result<Vec<StoredRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, version, body FROM records
         WHERE record_type = ?1 AND id > ?2 AND deleted_at IS NULL
           AND (?3 IS NULL OR patient_id = ?3)
         ORDER BY id LIMIT ?4",
    )?;
    let rows = stmt.query_map(
        params![
            query.record_type,
            query.after_id,
            query.patient_id,
            query.limit as i64
        ],
        |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
            ))
        },
    )?;
    let mut records = Vec::new();
    for row in rows {
        let (id, version, body) = row?;
        records.push(StoredRecord {
            record_type: query.record_type.clone(),
            id,
            version,
            body: parse_body(&body)?,
        });
    }
    Ok(records)
}

/// The current version of a live record, or `None`.
fn live_version(conn: &Connection, record_type: &str, id: i64) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT version FROM records WHERE id = ?1 AND record_type = ?2 AND deleted_at IS NULL",
        )?
        .query_row(params![id, record_type], |row| row.get(0))
        .optional()?)
}

/// Apply `write` inside the caller's transaction; returns the event sequences.
pub fn apply(conn: &Connection, write: &RecordWrite) -> Result<Vec<i64>, StoreError> {
    for reference in &write.references {
        if live_version(conn, &reference.record_type, reference.id)?.is_none() {
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
            conn.prepare_cached(
                "INSERT INTO records (id, record_type, version, patient_id, body, created_at, updated_at)
                 VALUES (?1, ?2, 1, ?3, ?4, ?5, ?5)",
            )?
            .execute(params![id, write.record_type, patient_id, body.to_string(), at])?;
        }
        RecordChange::Update {
            id,
            expected_version,
            patient_id,
            body,
            at,
        } => {
            check_version(conn, &write.record_type, *id, Some(*expected_version))?;
            conn.prepare_cached(
                "UPDATE records SET version = version + 1, patient_id = ?3, body = ?4, updated_at = ?5
                 WHERE id = ?1 AND record_type = ?2",
            )?
            .execute(params![id, write.record_type, patient_id, body.to_string(), at])?;
        }
        RecordChange::Delete {
            id,
            expected_version,
            at,
        } => {
            check_version(conn, &write.record_type, *id, *expected_version)?;
            conn.prepare_cached(
                "UPDATE records SET deleted_at = ?3 WHERE id = ?1 AND record_type = ?2",
            )?
            .execute(params![id, write.record_type, at])?;
        }
    }
    write
        .events
        .iter()
        .map(|event| append_event(conn, event))
        .collect()
}

fn check_version(
    conn: &Connection,
    record_type: &str,
    id: i64,
    expected: Option<i64>,
) -> Result<(), StoreError> {
    match (live_version(conn, record_type, id)?, expected) {
        (None, _) => Err(StoreError::NotFound),
        (Some(current), Some(expected)) if current != expected => {
            Err(StoreError::VersionConflict { current })
        }
        _ => Ok(()),
    }
}

pub fn append_event(conn: &Connection, event: &NewEvent) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO events (id, event_type, category, payload_version, occurred_at,
                             actor_type, actor_id, record_type, record_id, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        event.id,
        event.event_type,
        event.category,
        event.payload_version,
        event.occurred_at,
        event.actor_type,
        event.actor_id,
        event.record_type,
        event.record_id,
        event.data.to_string(),
    ])?;
    let sequence = conn.last_insert_rowid();
    // A delivery for every enabled endpoint subscribed to this type, in the
    // event's own transaction: durable exactly when the event is.
    let record_key = match (&event.record_type, event.record_id) {
        (Some(kind), Some(id)) => Some(format!("{kind}:{id}")),
        _ => None,
    };
    conn.prepare_cached(
        "INSERT INTO deliveries (endpoint_id, event_sequence, event_id, event_type, record_key,
                                 status, next_attempt_at, created_at)
         SELECT s.endpoint_id, ?1, ?2, ?3, ?4, 'pending',
                CAST(unixepoch('subsec') * 1000 AS INTEGER), ?5
         FROM endpoint_subscriptions s
         JOIN webhook_endpoints e ON e.id = s.endpoint_id
         WHERE s.event_type = ?3 AND e.status = 'enabled' AND e.deleted_at IS NULL",
    )?
    .execute(params![
        sequence,
        event.id,
        event.event_type,
        record_key,
        event.occurred_at
    ])?;
    Ok(sequence)
}

pub fn max_record_id(conn: &Connection) -> Result<i64, StoreError> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(id), 0) FROM records", [], |row| {
            row.get(0)
        })?,
    )
}
