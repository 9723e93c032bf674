//! SQL for reading and pruning the event log.

use deadpool_postgres::ClientWrapper;

use super::conn::{execute, query, query_one};
use crate::store::{EventPage, EventQuery, NewEvent, StoreError, StoredEvent};

/// Read one page in a single snapshot: the committed head (written under the
/// append lock, so every sequence up to it is visible), the events, and the
/// pruning floor.
pub async fn read(c: &ClientWrapper, q: &EventQuery) -> Result<EventPage, StoreError> {
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let page = read_in_snapshot(c, q).await;
    let end = if page.is_ok() { "COMMIT" } else { "ROLLBACK" };
    c.batch_execute(end).await?;
    page
}

async fn read_in_snapshot(c: &ClientWrapper, q: &EventQuery) -> Result<EventPage, StoreError> {
    let meta = query_one(
        c,
        "SELECT (SELECT value FROM store_meta WHERE name = 'events_head'),
                (SELECT value FROM store_meta WHERE name = 'events_pruned_through')",
        &[],
    )
    .await?;
    let head: i64 = meta.get(0);
    let pruned_through: i64 = meta.get(1);
    // Only up to the committed head: a sequence above it belongs to a
    // transaction that is still committing (never the case under the append
    // lock, but the bound costs nothing and keeps the contract obvious).
    let rows = query(
        c,
        "SELECT sequence, id, event_type, category, payload_version, occurred_at,
                actor_type, actor_id, record_type, record_id, data
         FROM events
         WHERE sequence > $1 AND sequence <= $2 AND category = ANY($3)
           AND ($4::TEXT[] IS NULL OR event_type = ANY($4))
         ORDER BY sequence LIMIT $5",
        &[
            &q.after,
            &head,
            &q.categories,
            &q.types,
            &(q.limit as i64 + 1),
        ],
    )
    .await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let data: &str = row.get(10);
        events.push(StoredEvent {
            sequence: row.get(0),
            event: NewEvent {
                id: row.get(1),
                event_type: row.get(2),
                category: row.get(3),
                payload_version: row.get(4),
                occurred_at: row.get(5),
                actor_type: row.get(6),
                actor_id: row.get(7),
                record_type: row.get(8),
                record_id: row.get(9),
                data: serde_json::from_str(data)
                    .map_err(|_| StoreError::Backend("stored event data is not JSON".into()))?,
            },
        });
    }
    let has_more = events.len() > q.limit;
    events.truncate(q.limit);
    let scanned_through = match (has_more, events.last()) {
        (true, Some(last)) => last.sequence,
        _ => head.max(q.after),
    };
    Ok(EventPage {
        events,
        has_more,
        scanned_through,
        pruned_through,
    })
}

/// Delete events older than `before`, remembering the highest sequence removed.
pub async fn prune(c: &ClientWrapper, before: &str) -> Result<u64, StoreError> {
    let highest: Option<i64> = query_one(
        c,
        "SELECT MAX(sequence) FROM events WHERE occurred_at < $1",
        &[&before],
    )
    .await?
    .get(0);
    let Some(highest) = highest else {
        return Ok(0);
    };
    let removed = execute(c, "DELETE FROM events WHERE sequence <= $1", &[&highest]).await?;
    execute(
        c,
        "UPDATE store_meta SET value = GREATEST(value, $1) WHERE name = 'events_pruned_through'",
        &[&highest],
    )
    .await?;
    Ok(removed)
}

/// The committed head, read from the database (after a reconnection).
pub async fn head(c: &ClientWrapper) -> Result<i64, StoreError> {
    Ok(query_one(
        c,
        "SELECT value FROM store_meta WHERE name = 'events_head'",
        &[],
    )
    .await?
    .get(0))
}
