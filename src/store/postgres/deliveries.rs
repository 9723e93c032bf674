//! SQL for deliveries and their attempts. Outcomes are written set-wise
//! (a few statements per batch, whatever its size); re-queued deliveries are
//! announced to every process (`q:<ids>`), so whichever process sends to the
//! endpoint picks them up.

use std::collections::HashMap;

use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;

use super::conn::{execute, query, query_opt};
use super::writer::CHANNEL;
use crate::store::webhooks::{
    AttemptOutcome, AttemptRecord, AttemptRow, AttemptStats, DeliveryFilter, DeliveryRow,
    DeliveryStats, PendingDelivery, Recovery,
};
use crate::store::{NewEvent, StoreError};

const PENDING: &str = "SELECT d.id, d.endpoint_id, d.attempts, d.next_attempt_at, d.record_key,
    d.event_sequence, e.id, e.event_type, e.category, e.payload_version, e.occurred_at,
    e.actor_type, e.actor_id, e.record_type, e.record_id, e.data
    FROM deliveries d LEFT JOIN events e ON e.sequence = d.event_sequence";

fn pending_from(row: &Row) -> PendingDelivery {
    let event_id: Option<String> = row.get(6);
    let event = event_id.map(|id| NewEvent {
        id,
        event_type: row.get(7),
        category: row.get(8),
        payload_version: row.get(9),
        occurred_at: row.get(10),
        actor_type: row.get(11),
        actor_id: row.get(12),
        record_type: row.get(13),
        record_id: row.get(14),
        data: serde_json::Value::Null,
    });
    PendingDelivery {
        id: row.get(0),
        endpoint_id: row.get(1),
        attempts: row.get(2),
        next_attempt_at: row.get(3),
        record_key: row.get(4),
        sequence: row.get(5),
        event,
        event_data: row.get(15),
    }
}

pub async fn pending(
    c: &ClientWrapper,
    after_id: i64,
    limit: usize,
) -> Result<Vec<PendingDelivery>, StoreError> {
    let rows = query(
        c,
        &format!("{PENDING} WHERE d.status = 'pending' AND d.id > $1 ORDER BY d.id LIMIT $2"),
        &[&after_id, &(limit as i64)],
    )
    .await?;
    Ok(rows.iter().map(pending_from).collect())
}

pub async fn pending_by_ids(
    c: &ClientWrapper,
    ids: Vec<i64>,
) -> Result<Vec<PendingDelivery>, StoreError> {
    let rows = query(
        c,
        &format!("{PENDING} WHERE d.status = 'pending' AND d.id = ANY($1) ORDER BY d.id"),
        &[&ids],
    )
    .await?;
    Ok(rows.iter().map(pending_from).collect())
}

pub async fn pending_for_endpoint(
    c: &ClientWrapper,
    endpoint_id: &str,
    after_id: i64,
    up_to_id: i64,
    limit: usize,
) -> Result<Vec<PendingDelivery>, StoreError> {
    let rows = query(
        c,
        &format!(
            "{PENDING} WHERE d.endpoint_id = $1 AND d.status = 'pending' AND d.id > $2
             AND d.id <= $3 ORDER BY d.id LIMIT $4"
        ),
        &[&endpoint_id, &after_id, &up_to_id, &(limit as i64)],
    )
    .await?;
    Ok(rows.iter().map(pending_from).collect())
}

pub async fn record_attempts(
    c: &ClientWrapper,
    records: Vec<AttemptRecord>,
) -> Result<Vec<Option<String>>, StoreError> {
    let mut ids = Vec::with_capacity(records.len());
    let mut attempted = Vec::with_capacity(records.len());
    let mut durations = Vec::with_capacity(records.len());
    let mut http = Vec::with_capacity(records.len());
    let mut errors = Vec::with_capacity(records.len());
    let mut snippets = Vec::with_capacity(records.len());
    let mut statuses = Vec::with_capacity(records.len());
    let mut next_at: Vec<Option<i64>> = Vec::with_capacity(records.len());
    let mut reasons: Vec<Option<String>> = Vec::with_capacity(records.len());
    let mut completed: Vec<Option<String>> = Vec::with_capacity(records.len());
    for r in &records {
        ids.push(r.delivery_id);
        attempted.push(r.attempted_at.clone());
        durations.push(r.duration_ms);
        http.push(r.http_status);
        errors.push(r.error_kind.clone());
        snippets.push(r.response_snippet.clone());
        let (status, next, reason, done) = match &r.outcome {
            AttemptOutcome::Succeeded => ("succeeded", None, None, Some(r.attempted_at.clone())),
            AttemptOutcome::Retry { at } => ("pending", Some(*at), None, None),
            AttemptOutcome::Failed { reason } => (
                "failed",
                None,
                Some(reason.clone()),
                Some(r.attempted_at.clone()),
            ),
        };
        statuses.push(status.to_owned());
        next_at.push(next);
        reasons.push(reason);
        completed.push(done);
    }
    // The three statements do not depend on each other: they go out in one
    // flight (one round trip instead of three).
    let insert_params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&ids, &attempted, &durations, &http, &errors, &snippets];
    let update_params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
        &ids, &statuses, &next_at, &reasons, &completed, &attempted, &http, &errors,
    ];
    let insert = execute(
        c,
        "INSERT INTO delivery_attempts (delivery_id, attempted_at, duration_ms, http_status,
                                        error_kind, response_snippet)
         SELECT * FROM unnest($1::BIGINT[], $2::TEXT[], $3::FLOAT8[], $4::BIGINT[], $5::TEXT[],
                              $6::TEXT[])",
        &insert_params,
    );
    // Only a pending delivery moves on: one that was cancelled or failed
    // meanwhile (endpoint disabled or deleted) keeps its state.
    let update = execute(
        c,
        "UPDATE deliveries d SET attempts = d.attempts + 1, status = u.status,
             next_attempt_at = COALESCE(u.next_at, d.next_attempt_at), failure_reason = u.reason,
             completed_at = u.completed, last_attempt_at = u.attempted,
             last_http_status = u.http, last_error = u.error
         FROM unnest($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
                     $7::BIGINT[], $8::TEXT[])
              AS u(id, status, next_at, reason, completed, attempted, http, error)
         WHERE d.id = u.id AND d.status = 'pending'",
        &update_params,
    );
    let (_, _, after) =
        futures_util::future::try_join3(insert, update, failing_since(c, &records)).await?;
    Ok(after)
}

/// Apply the batch's outcomes, in order, to each endpoint's `failing_since`
/// (cleared by a success, set by the first failure after one); returns the
/// value after each record.
async fn failing_since(
    c: &ClientWrapper,
    records: &[AttemptRecord],
) -> Result<Vec<Option<String>>, StoreError> {
    let mut endpoint_ids: Vec<String> = records.iter().map(|r| r.endpoint_id.clone()).collect();
    endpoint_ids.sort();
    endpoint_ids.dedup();
    let rows = query(
        c,
        "SELECT id, failing_since FROM webhook_endpoints WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        &[&endpoint_ids],
    )
    .await?;
    let before: HashMap<String, Option<String>> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut state = before.clone();
    let mut after = Vec::with_capacity(records.len());
    for r in records {
        let Some(since) = state.get_mut(&r.endpoint_id) else {
            after.push(None);
            continue;
        };
        match r.outcome {
            AttemptOutcome::Succeeded => *since = None,
            _ => {
                if since.is_none() {
                    *since = Some(r.attempted_at.clone());
                }
            }
        }
        after.push(since.clone());
    }
    let (changed_ids, changed_values): (Vec<String>, Vec<Option<String>>) = state
        .into_iter()
        .filter(|(id, value)| before.get(id) != Some(value))
        .unzip();
    if !changed_ids.is_empty() {
        execute(
            c,
            "UPDATE webhook_endpoints w SET failing_since = u.since
             FROM unnest($1::TEXT[], $2::TEXT[]) AS u(id, since) WHERE w.id = u.id",
            &[&changed_ids, &changed_values],
        )
        .await?;
    }
    Ok(after)
}

const ROW: &str = "SELECT id, endpoint_id, event_sequence, event_id, event_type, status, attempts,
    next_attempt_at, last_attempt_at, last_http_status, last_error, failure_reason, created_at,
    completed_at FROM deliveries";

fn row_from(row: &Row) -> DeliveryRow {
    let status: String = row.get(5);
    let next: i64 = row.get(7);
    DeliveryRow {
        id: row.get(0),
        endpoint_id: row.get(1),
        event_sequence: row.get(2),
        event_id: row.get(3),
        event_type: row.get(4),
        next_attempt_at: (status == "pending").then_some(next),
        status,
        attempts: row.get(6),
        last_attempt_at: row.get(8),
        last_http_status: row.get(9),
        last_error: row.get(10),
        failure_reason: row.get(11),
        created_at: row.get(12),
        completed_at: row.get(13),
    }
}

pub async fn list(c: &ClientWrapper, f: &DeliveryFilter) -> Result<Vec<DeliveryRow>, StoreError> {
    let rows = query(
        c,
        &format!(
            "{ROW} WHERE endpoint_id = $1 AND ($2::TEXT IS NULL OR status = $2)
               AND ($3::TEXT IS NULL OR event_type = $3) AND ($4::BIGINT IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5"
        ),
        &[
            &f.endpoint_id,
            &f.status,
            &f.event_type,
            &f.before_id,
            &(f.limit as i64),
        ],
    )
    .await?;
    Ok(rows.iter().map(row_from).collect())
}

pub async fn get(
    c: &ClientWrapper,
    id: i64,
) -> Result<Option<(DeliveryRow, Vec<AttemptRow>)>, StoreError> {
    let Some(row) = query_opt(c, &format!("{ROW} WHERE id = $1"), &[&id]).await? else {
        return Ok(None);
    };
    let attempts = query(
        c,
        "SELECT attempted_at, duration_ms, http_status, error_kind, response_snippet
         FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id",
        &[&id],
    )
    .await?;
    let attempts = attempts
        .iter()
        .map(|r| AttemptRow {
            attempted_at: r.get(0),
            duration_ms: r.get(1),
            http_status: r.get(2),
            error_kind: r.get(3),
            response_snippet: r.get(4),
        })
        .collect();
    Ok(Some((row_from(&row), attempts)))
}

/// Tell every process (at COMMIT) that these deliveries are pending again.
async fn announce_requeued(c: &ClientWrapper, ids: &[i64]) -> Result<(), StoreError> {
    // A notification carries at most 8,000 bytes.
    for chunk in ids.chunks(500) {
        let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
        let payload = format!("q:{}", list.join(","));
        query(c, "SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await?;
    }
    Ok(())
}

pub async fn requeue(c: &ClientWrapper, id: i64, now_ms: i64) -> Result<bool, StoreError> {
    let changed = execute(
        c,
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, failure_reason = NULL,
             completed_at = NULL
         WHERE id = $1 AND status != 'cancelled'",
        &[&id, &now_ms],
    )
    .await?;
    if changed > 0 {
        announce_requeued(c, &[id]).await?;
    }
    Ok(changed > 0)
}

pub async fn recover(
    c: &ClientWrapper,
    endpoint_id: String,
    since: String,
    event_types: Vec<String>,
    now_ms: i64,
) -> Result<Recovery, StoreError> {
    let rows = query(
        c,
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $3, failure_reason = NULL,
             completed_at = NULL
         WHERE endpoint_id = $1 AND status = 'failed' AND created_at >= $2
         RETURNING id",
        &[&endpoint_id, &since, &now_ms],
    )
    .await?;
    let mut requeued: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    requeued.sort_unstable();
    announce_requeued(c, &requeued).await?;
    if event_types.is_empty() {
        return Ok(Recovery {
            requeued,
            created: 0,
        });
    }
    // Under the append lock (the caller's batch holds it), so the new ids
    // are above every id any process has seen.
    let created = execute(
        c,
        "INSERT INTO deliveries (id, endpoint_id, event_sequence, event_id, event_type,
             record_key, status, next_attempt_at, created_at)
         SELECT nextval('delivery_ids'), $1, s.sequence, s.id, s.event_type, s.record_key,
                'pending', $2, s.occurred_at
         FROM (SELECT e.sequence, e.id, e.event_type, e.occurred_at,
                      CASE WHEN e.record_id IS NULL THEN NULL
                           ELSE e.record_type || ':' || e.record_id END AS record_key
               FROM events e
               WHERE e.occurred_at >= $3 AND e.event_type = ANY($4)
                 AND NOT EXISTS (SELECT 1 FROM deliveries x
                                 WHERE x.endpoint_id = $1 AND x.event_sequence = e.sequence)
               ORDER BY e.sequence) s",
        &[&endpoint_id, &now_ms, &since, &event_types],
    )
    .await?;
    Ok(Recovery { requeued, created })
}

/// Remove at most `limit` finished deliveries (and their attempts) completed
/// before `before`. Rows another process is purging are skipped, not
/// waited for, so pruners on several processes split the work.
pub async fn purge(c: &ClientWrapper, before: String, limit: i64) -> Result<u64, StoreError> {
    execute(
        c,
        "WITH doomed AS (
             SELECT id FROM deliveries WHERE status != 'pending' AND completed_at < $1
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED),
         attempts AS (
             DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM doomed))
         DELETE FROM deliveries WHERE id IN (SELECT id FROM doomed)",
        &[&before, &limit],
    )
    .await
}

pub async fn stats(c: &ClientWrapper) -> Result<DeliveryStats, StoreError> {
    let row = query(
        c,
        "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE status = 'pending'",
        &[],
    )
    .await?;
    let row = &row[0];
    Ok(DeliveryStats {
        pending: row.get(0),
        oldest_pending_created_at: row.get(1),
    })
}

pub async fn last_attempted(
    c: &ClientWrapper,
    endpoint_id: &str,
) -> Result<Option<DeliveryRow>, StoreError> {
    let row = query_opt(
        c,
        &format!(
            "{ROW} WHERE endpoint_id = $1 AND last_attempt_at IS NOT NULL ORDER BY id DESC LIMIT 1"
        ),
        &[&endpoint_id],
    )
    .await?;
    Ok(row.as_ref().map(row_from))
}

pub async fn attempt_stats(
    c: &ClientWrapper,
    since: &str,
) -> Result<Vec<AttemptStats>, StoreError> {
    let rows = query(
        c,
        "SELECT d.endpoint_id, COUNT(*),
                COUNT(*) FILTER (WHERE a.http_status BETWEEN 200 AND 299)
         FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
         WHERE a.attempted_at >= $1 GROUP BY d.endpoint_id",
        &[&since],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| AttemptStats {
            endpoint_id: r.get(0),
            attempts: r.get(1),
            succeeded: r.get(2),
        })
        .collect())
}
