//! SQL for reading and pruning the event log.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use crate::store::{EventPage, EventQuery, NewEvent, StoreError, StoredEvent};

const PRUNED_THROUGH: &str = "events_pruned_through";

/// Read one page in a single snapshot, so that `scanned_through` is exact.
pub fn read(conn: &Connection, query: &EventQuery) -> Result<EventPage, StoreError> {
    conn.execute_batch("BEGIN")?;
    let page = read_in_snapshot(conn, query);
    conn.execute_batch("COMMIT")?;
    page
}

fn read_in_snapshot(conn: &Connection, query: &EventQuery) -> Result<EventPage, StoreError> {
    // The highest sequence ever given (it survives pruning), in this snapshot.
    let head: i64 = conn.query_row(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
        [],
        |r| r.get(0),
    )?;
    let mut sql = String::from(
        "SELECT sequence, id, event_type, category, payload_version, occurred_at,
                actor_type, actor_id, record_type, record_id, data
         FROM events WHERE sequence > ?",
    );
    let mut values: Vec<SqlValue> = vec![SqlValue::Integer(query.after)];
    push_in_list(&mut sql, &mut values, "category", &query.categories);
    if let Some(types) = &query.types {
        push_in_list(&mut sql, &mut values, "event_type", types);
    }
    sql.push_str(" ORDER BY sequence LIMIT ?");
    values.push(SqlValue::Integer(query.limit as i64 + 1));

    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(values), |row| {
        Ok((
            row.get::<_, i64>(0)?,
            NewEvent {
                id: row.get(1)?,
                event_type: row.get(2)?,
                category: row.get(3)?,
                payload_version: row.get(4)?,
                occurred_at: row.get(5)?,
                actor_type: row.get(6)?,
                actor_id: row.get(7)?,
                record_type: row.get(8)?,
                record_id: row.get(9)?,
                data: serde_json::Value::Null,
            },
            row.get::<_, String>(10)?,
        ))
    })?;
    let mut events = Vec::new();
    for row in rows {
        let (sequence, mut event, data) = row?;
        event.data = serde_json::from_str(&data)
            .map_err(|_| StoreError::Backend("stored event data is not JSON".into()))?;
        events.push(StoredEvent { sequence, event });
    }
    let has_more = events.len() > query.limit;
    events.truncate(query.limit);
    let scanned_through = match (has_more, events.last()) {
        (true, Some(last)) => last.sequence,
        _ => head.max(query.after),
    };
    Ok(EventPage {
        events,
        has_more,
        scanned_through,
        pruned_through: pruned_through(conn)?,
    })
}

fn push_in_list(sql: &mut String, values: &mut Vec<SqlValue>, column: &str, items: &[String]) {
    if items.is_empty() {
        sql.push_str(" AND 0");
        return;
    }
    sql.push_str(&format!(" AND {column} IN ("));
    for (i, item) in items.iter().enumerate() {
        sql.push_str(if i == 0 { "?" } else { ", ?" });
        values.push(SqlValue::Text(item.clone()));
    }
    sql.push(')');
}

/// Delete events older than `before`, remembering the highest sequence removed.
pub fn prune(conn: &Connection, before: &str) -> Result<u64, StoreError> {
    let highest: Option<i64> = conn
        .query_row(
            "SELECT MAX(sequence) FROM events WHERE occurred_at < ?1",
            params![before],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let Some(highest) = highest else {
        return Ok(0);
    };
    let removed = conn.execute("DELETE FROM events WHERE sequence <= ?1", params![highest])?;
    conn.execute(
        "INSERT INTO store_meta (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)",
        params![PRUNED_THROUGH, highest],
    )?;
    Ok(removed as u64)
}

pub fn pruned_through(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .query_row(
            "SELECT value FROM store_meta WHERE name = ?1",
            params![PRUNED_THROUGH],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}
