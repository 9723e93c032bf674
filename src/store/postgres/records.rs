//! SQL for records and for appending events (with their deliveries).

use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::conn::{query, query_one, query_opt};
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

/// Events as column arrays, for `unnest`, borrowing their text (only the
/// data is serialized).
#[derive(Default)]
struct EventColumns<'a> {
    id: Vec<&'a str>,
    event_type: Vec<&'a str>,
    category: Vec<&'a str>,
    payload_version: Vec<i64>,
    occurred_at: Vec<&'a str>,
    actor_type: Vec<&'a str>,
    actor_id: Vec<Option<&'a str>>,
    record_type: Vec<Option<&'a str>>,
    record_id: Vec<Option<i64>>,
    data: Vec<String>,
}

impl<'a> EventColumns<'a> {
    fn of(events: impl IntoIterator<Item = &'a NewEvent>) -> EventColumns<'a> {
        let mut columns = EventColumns::default();
        for e in events {
            columns.id.push(&e.id);
            columns.event_type.push(&e.event_type);
            columns.category.push(&e.category);
            columns.payload_version.push(e.payload_version);
            columns.occurred_at.push(&e.occurred_at);
            columns.actor_type.push(&e.actor_type);
            columns.actor_id.push(e.actor_id.as_deref());
            columns.record_type.push(e.record_type.as_deref());
            columns.record_id.push(e.record_id);
            columns.data.push(e.data.to_string());
        }
        columns
    }

    /// The ten columns as statement parameters, in the order both record
    /// statements take them.
    fn params(&self) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.id,
            &self.event_type,
            &self.category,
            &self.payload_version,
            &self.occurred_at,
            &self.actor_type,
            &self.actor_id,
            &self.record_type,
            &self.record_id,
            &self.data,
        ]
    }
}

/// The deliveries of the events a statement's `ev` CTE appended: one per
/// enabled endpoint subscribed to each event's type, ids in (sequence,
/// endpoint) order.
const DELIVERIES: &str = "d AS (
    INSERT INTO deliveries (id, endpoint_id, event_sequence, event_id, event_type,
                            record_key, status, next_attempt_at, created_at)
    SELECT nextval('delivery_ids'), x.* FROM (
        SELECT s.endpoint_id, ev.sequence, ev.id, ev.event_type,
               CASE WHEN ev.record_id IS NULL THEN NULL
                    ELSE ev.record_type || ':' || ev.record_id END,
               'pending', (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT,
               ev.occurred_at
        FROM ev JOIN endpoint_subscriptions s ON s.event_type = ev.event_type
        JOIN webhook_endpoints wh ON wh.id = s.endpoint_id
        WHERE wh.status = 'enabled' AND wh.deleted_at IS NULL
        ORDER BY ev.sequence, s.endpoint_id) x)";

/// One record write is one statement (one round trip): the reference and
/// version checks, the change, its events and their deliveries. The checks
/// do not raise errors: they gate the change and are reported back, so a
/// refused write leaves nothing behind and aborts nothing.
///
/// Parameters: $1 id, $2 record type, $3 patient id, $4 body, $5 time,
/// $6/$7 the references (types, ids), $8..$17 the events' columns, $18 the
/// expected version; `typed` gives each a type whether the change uses it
/// or not.
fn statement(change: &str, current: &str, gate: &str) -> String {
    format!(
        "WITH typed AS (SELECT $1::BIGINT, $2::TEXT, $3::BIGINT, $4::TEXT, $5::TEXT, $18::BIGINT),
         refs AS (
             SELECT count(*) = cardinality($6::TEXT[]) AS ok
             FROM unnest($6::TEXT[], $7::BIGINT[]) AS x(t, i)
             WHERE EXISTS (SELECT 1 FROM records r
                           WHERE r.id = x.i AND r.record_type = x.t AND r.deleted_at IS NULL)),
         cur AS ({current}),
         gate AS (SELECT {gate} AS go),
         change AS ({change}),
         ev AS (
             INSERT INTO events (sequence, id, event_type, category, payload_version, occurred_at,
                                 actor_type, actor_id, record_type, record_id, data)
             SELECT nextval('event_sequences'), e.id, e.event_type, e.category, e.payload_version,
                    e.occurred_at, e.actor_type, e.actor_id, e.record_type, e.record_id, e.data
             FROM (SELECT * FROM unnest($8::TEXT[], $9::TEXT[], $10::TEXT[], $11::BIGINT[],
                                        $12::TEXT[], $13::TEXT[], $14::TEXT[], $15::TEXT[],
                                        $16::BIGINT[], $17::TEXT[]) WITH ORDINALITY
                       AS u(id, event_type, category, payload_version, occurred_at, actor_type,
                            actor_id, record_type, record_id, data, n)
                   WHERE (SELECT go FROM gate) ORDER BY n) e
             RETURNING sequence, id, event_type, occurred_at, record_type, record_id),
         {DELIVERIES}
         SELECT (SELECT ok FROM refs), (SELECT version FROM cur),
                ARRAY(SELECT sequence FROM ev ORDER BY sequence)"
    )
}

/// Several record creates as one statement (the batch's creates share one
/// executor start-up and one round trip). Each create keeps its own
/// reference check: a create whose reference points nowhere changes nothing
/// and is reported, the others go ahead. Events get sequences in the order
/// of the writes. The caller holds the append lock.
static CREATE_MANY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "
    WITH w AS (
        SELECT * FROM unnest($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[])
            WITH ORDINALITY AS w(id, record_type, patient_id, body, at, n)),
    bad AS (
        SELECT DISTINCT x.n FROM unnest($6::BIGINT[], $7::TEXT[], $8::BIGINT[]) AS x(n, t, i)
        WHERE NOT EXISTS (SELECT 1 FROM records r
                          WHERE r.id = x.i AND r.record_type = x.t AND r.deleted_at IS NULL)),
    ok AS (SELECT w.* FROM w WHERE NOT EXISTS (SELECT 1 FROM bad WHERE bad.n = w.n)),
    ins AS (
        INSERT INTO records (id, record_type, version, patient_id, body, created_at, updated_at)
        SELECT id, record_type, 1, patient_id, body, at, at FROM ok ORDER BY n),
    u AS (
        SELECT * FROM unnest($9::BIGINT[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::BIGINT[],
                             $14::TEXT[], $15::TEXT[], $16::TEXT[], $17::TEXT[], $18::BIGINT[],
                             $19::TEXT[]) WITH ORDINALITY
            AS u(n, id, event_type, category, payload_version, occurred_at, actor_type,
                 actor_id, record_type, record_id, data, k)),
    ev AS (
        INSERT INTO events (sequence, id, event_type, category, payload_version, occurred_at,
                            actor_type, actor_id, record_type, record_id, data)
        SELECT nextval('event_sequences'), e.id, e.event_type, e.category, e.payload_version,
               e.occurred_at, e.actor_type, e.actor_id, e.record_type, e.record_id, e.data
        FROM (SELECT * FROM u WHERE EXISTS (SELECT 1 FROM ok WHERE ok.n = u.n) ORDER BY k) e
        RETURNING sequence, id, event_type, occurred_at, record_type, record_id),
    {DELIVERIES}
    SELECT w.n, EXISTS (SELECT 1 FROM bad WHERE bad.n = w.n),
           ARRAY(SELECT ev.sequence FROM ev JOIN u ON u.id = ev.id
                 WHERE u.n = w.n ORDER BY ev.sequence)
    FROM w ORDER BY w.n"
    )
});

/// Apply several creates inside the caller's transaction (which holds the
/// append lock). The outer error is a failed statement (the transaction is
/// aborted); each inner result is one create's: its event sequences, or the
/// reference it lacks.
pub async fn create_many(
    c: &ClientWrapper,
    writes: &[&RecordWrite],
) -> Result<Vec<Result<Vec<i64>, StoreError>>, StoreError> {
    let mut ids = Vec::with_capacity(writes.len());
    let mut types = Vec::with_capacity(writes.len());
    let mut patients = Vec::with_capacity(writes.len());
    let mut bodies = Vec::with_capacity(writes.len());
    let mut ats = Vec::with_capacity(writes.len());
    let (mut ref_n, mut ref_types, mut ref_ids) = (Vec::new(), Vec::new(), Vec::new());
    let mut ev_n: Vec<i64> = Vec::new();
    for (n, write) in (1i64..).zip(writes) {
        let RecordChange::Create {
            id,
            patient_id,
            body,
            at,
        } = &write.change
        else {
            return Err(StoreError::Backend(
                "create_many was given a change that is not a create".into(),
            ));
        };
        ids.push(*id);
        types.push(write.record_type.as_str());
        patients.push(*patient_id);
        bodies.push(body.to_string());
        ats.push(at.as_str());
        for reference in &write.references {
            ref_n.push(n);
            ref_types.push(reference.record_type.as_str());
            ref_ids.push(reference.id);
        }
        ev_n.extend(std::iter::repeat_n(n, write.events.len()));
    }
    let ev = EventColumns::of(writes.iter().flat_map(|write| &write.events));
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &ids, &types, &patients, &bodies, &ats, &ref_n, &ref_types, &ref_ids, &ev_n,
    ];
    params.extend(ev.params());
    let rows = query(c, &CREATE_MANY, &params).await?;
    if rows.len() != writes.len() {
        return Err(StoreError::Backend("a batch of creates lost a row".into()));
    }
    let mut outcomes = Vec::with_capacity(writes.len());
    for (row, write) in rows.iter().zip(writes) {
        let refused: bool = row.get(1);
        if refused {
            outcomes.push(Err(missing_reference(c, write).await));
        } else {
            outcomes.push(Ok(row.get::<_, Vec<i64>>(2)));
        }
    }
    Ok(outcomes)
}

const LIVE: &str = "SELECT version FROM records
    WHERE id = $1 AND record_type = $2 AND deleted_at IS NULL";

/// Apply `write` inside the caller's transaction (which holds the append
/// lock); returns the event sequences.
pub async fn apply(c: &ClientWrapper, write: RecordWrite) -> Result<Vec<i64>, StoreError> {
    let ref_types: Vec<&str> = write
        .references
        .iter()
        .map(|r| r.record_type.as_str())
        .collect();
    let ref_ids: Vec<i64> = write.references.iter().map(|r| r.id).collect();
    let ev = EventColumns::of(&write.events);
    let record_type = write.record_type.as_str();
    let (sql, id, expected, p3, p4, p5): (
        String,
        i64,
        Option<i64>,
        Option<i64>,
        Option<String>,
        &str,
    ) = match &write.change {
        RecordChange::Create {
            id,
            patient_id,
            body,
            at,
        } => (
            statement(
                "INSERT INTO records (id, record_type, version, patient_id, body, created_at,
                                          updated_at)
                     SELECT $1, $2, 1, $3, $4, $5, $5 WHERE (SELECT go FROM gate)",
                "SELECT NULL::BIGINT AS version",
                "(SELECT ok FROM refs)",
            ),
            *id,
            None,
            *patient_id,
            Some(body.to_string()),
            at,
        ),
        RecordChange::Update {
            id,
            expected_version,
            patient_id,
            body,
            at,
        } => (
            statement(
                "UPDATE records SET version = version + 1, patient_id = $3, body = $4,
                         updated_at = $5
                     WHERE id = $1 AND record_type = $2 AND (SELECT go FROM gate)",
                LIVE,
                "(SELECT ok FROM refs) AND COALESCE((SELECT version FROM cur) = $18, FALSE)",
            ),
            *id,
            Some(*expected_version),
            *patient_id,
            Some(body.to_string()),
            at,
        ),
        RecordChange::Delete {
            id,
            expected_version,
            at,
        } => (
            statement(
                "UPDATE records SET deleted_at = $5
                     WHERE id = $1 AND record_type = $2 AND (SELECT go FROM gate)",
                LIVE,
                "(SELECT ok FROM refs) AND EXISTS (SELECT 1 FROM cur)
                     AND ($18::BIGINT IS NULL OR (SELECT version FROM cur) = $18)",
            ),
            *id,
            *expected_version,
            None,
            None,
            at,
        ),
    };
    let head: [&(dyn ToSql + Sync); 7] = [&id, &record_type, &p3, &p4, &p5, &ref_types, &ref_ids];
    let params: Vec<&(dyn ToSql + Sync)> = head
        .into_iter()
        .chain(ev.params())
        .chain([&expected as &(dyn ToSql + Sync)])
        .collect();
    let row = query_one(c, &sql, &params).await?;
    let refs_ok: bool = row.get(0);
    let current: Option<i64> = row.get(1);
    let sequences: Vec<i64> = row.get(2);
    if !refs_ok {
        return Err(missing_reference(c, &write).await);
    }
    match (&write.change, current) {
        (RecordChange::Create { .. }, _) => Ok(sequences),
        (_, None) => Err(StoreError::NotFound),
        (_, Some(current)) if expected.is_some_and(|e| e != current) => {
            Err(StoreError::VersionConflict { current })
        }
        _ => Ok(sequences),
    }
}

/// Which reference of a refused write points nowhere (the rare path).
async fn missing_reference(c: &ClientWrapper, write: &RecordWrite) -> StoreError {
    for reference in &write.references {
        match query_opt(c, LIVE, &[&reference.id, &reference.record_type]).await {
            Ok(Some(_)) => continue,
            Ok(None) => {
                return StoreError::MissingReference {
                    field: reference.field.clone(),
                };
            }
            Err(err) => return err,
        }
    }
    StoreError::Backend("a reference check failed without a missing reference".into())
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
