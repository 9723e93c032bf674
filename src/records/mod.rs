//! Clinical records: the types and their rules ([`schema`], [`validate`]) and
//! the service that creates, reads, changes and deletes them, producing the
//! matching events in the same write.
//!
//! The service knows nothing of HTTP: it takes JSON values and an actor and
//! answers with records or a [`RecordError`]. It reaches the database only
//! through the store traits.

pub mod json_schema;
pub mod schema;
pub mod validate;

use std::sync::Arc;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::events::{self, Actor, Change};
use crate::ids;
use crate::store::{RecordChange, RecordQuery, RecordWrite, Store, StoreError, StoredRecord};
use schema::RecordType;
use validate::{FieldError, Validated};

/// How often a patch without `If-Match` is retried when another write won the race.
const PATCH_ATTEMPTS: usize = 5;

#[derive(Debug, Error)]
pub enum RecordError {
    #[error("the record is invalid")]
    Invalid(Vec<FieldError>),
    #[error("no such record")]
    NotFound,
    #[error("the record is at version {current}, not the expected one")]
    VersionMismatch { current: i64 },
    #[error("the record kept changing while the patch was applied")]
    Contended,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RecordError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => RecordError::NotFound,
            StoreError::VersionConflict { current } => RecordError::VersionMismatch { current },
            StoreError::MissingReference { field } => RecordError::Invalid(vec![FieldError::new(
                field,
                "not_found",
                "points to a record that does not exist or was deleted",
            )]),
            other => RecordError::Store(other),
        }
    }
}

/// A page of records.
pub struct RecordPage {
    pub records: Vec<Value>,
    /// The id to continue after, when there are more.
    pub next_after: Option<i64>,
}

#[derive(Clone)]
pub struct RecordService {
    store: Arc<dyn Store>,
}

impl RecordService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        RecordService { store }
    }

    pub async fn create(
        &self,
        kind: &'static RecordType,
        body: &Value,
        actor: &Actor,
    ) -> Result<Value, RecordError> {
        let Validated { fields, references } =
            validate::for_create(kind, body).map_err(RecordError::Invalid)?;
        let mut fields = fields;
        let now = ids::now_text();
        complete_signature(kind, &mut fields, None, &now);
        let id = self.store.allocate_record_id().await?;
        let record = represent(kind, id, 1, &fields, &now, &now);
        let events =
            events::for_record_change(kind, Change::Created, &record, None, None, actor, &now);
        self.store
            .write_record(RecordWrite {
                record_type: kind.name.to_owned(),
                change: RecordChange::Create {
                    id,
                    patient_id: patient_id(&fields),
                    body: record.clone(),
                    at: now,
                },
                references,
                events,
            })
            .await?;
        Ok(record)
    }

    pub async fn get(&self, kind: &'static RecordType, id: i64) -> Result<Value, RecordError> {
        Ok(self.load(kind, id).await?.body)
    }

    async fn load(&self, kind: &'static RecordType, id: i64) -> Result<StoredRecord, RecordError> {
        self.store
            .get_record(kind.name, id)
            .await?
            .ok_or(RecordError::NotFound)
    }

    pub async fn list(
        &self,
        kind: &'static RecordType,
        after_id: i64,
        limit: usize,
        patient_id: Option<i64>,
    ) -> Result<RecordPage, RecordError> {
        let mut records = self
            .store
            .list_records(RecordQuery {
                record_type: kind.name.to_owned(),
                after_id,
                limit: limit + 1,
                patient_id,
            })
            .await?;
        let more = records.len() > limit;
        records.truncate(limit);
        let next_after = if more {
            records.last().map(|r| r.id)
        } else {
            None
        };
        Ok(RecordPage {
            records: records.into_iter().map(|r| r.body).collect(),
            next_after,
        })
    }

    /// Apply a JSON merge patch. With `if_match`, the record must be at that
    /// version; without it, a concurrent change is retried on the new state.
    pub async fn patch(
        &self,
        kind: &'static RecordType,
        id: i64,
        patch: &Value,
        if_match: Option<i64>,
        actor: &Actor,
    ) -> Result<Value, RecordError> {
        for _ in 0..PATCH_ATTEMPTS {
            let current = self.load(kind, id).await?;
            if let Some(expected) = if_match
                && expected != current.version
            {
                return Err(RecordError::VersionMismatch {
                    current: current.version,
                });
            }
            match self.patch_once(kind, &current, patch, actor).await {
                Err(RecordError::VersionMismatch { current }) if if_match.is_none() => {
                    tracing::debug!(
                        record_id = id,
                        current,
                        "patch raced another write; retrying"
                    );
                }
                other => return other,
            }
        }
        Err(RecordError::Contended)
    }

    async fn patch_once(
        &self,
        kind: &'static RecordType,
        current: &StoredRecord,
        patch: &Value,
        actor: &Actor,
    ) -> Result<Value, RecordError> {
        let Validated {
            mut fields,
            references,
        } = validate::for_patch(kind, &current.body, patch).map_err(RecordError::Invalid)?;
        let now = ids::now_text();
        complete_signature(kind, &mut fields, current.body.get("status"), &now);
        let changed: Vec<String> = kind
            .fields
            .iter()
            .filter(|spec| current.body.get(spec.name) != fields.get(spec.name))
            .map(|spec| spec.name.to_owned())
            .collect();
        if changed.is_empty() {
            // Nothing changes: no new version, no event.
            return Ok(current.body.clone());
        }
        let created_at = current
            .body
            .get("created_at")
            .and_then(Value::as_str)
            .unwrap_or(&now)
            .to_owned();
        let record = represent(
            kind,
            current.id,
            current.version + 1,
            &fields,
            &created_at,
            &now,
        );
        let events = events::for_record_change(
            kind,
            Change::Modified,
            &record,
            Some(changed),
            current.body.get("status"),
            actor,
            &now,
        );
        self.store
            .write_record(RecordWrite {
                record_type: kind.name.to_owned(),
                change: RecordChange::Update {
                    id: current.id,
                    expected_version: current.version,
                    patient_id: patient_id(&fields),
                    body: record.clone(),
                    at: now,
                },
                references,
                events,
            })
            .await?;
        Ok(record)
    }

    /// Soft-delete: the row stays as a tombstone; reads answer not found.
    /// The `.deleted` event carries the last state, so a concurrent change
    /// without `If-Match` makes the delete start again from the new state.
    pub async fn delete(
        &self,
        kind: &'static RecordType,
        id: i64,
        if_match: Option<i64>,
        actor: &Actor,
    ) -> Result<(), RecordError> {
        for _ in 0..PATCH_ATTEMPTS {
            let current = self.load(kind, id).await?;
            if let Some(expected) = if_match
                && expected != current.version
            {
                return Err(RecordError::VersionMismatch {
                    current: current.version,
                });
            }
            let now = ids::now_text();
            let events = events::for_record_change(
                kind,
                Change::Deleted,
                &current.body,
                None,
                None,
                actor,
                &now,
            );
            let write = RecordWrite {
                record_type: kind.name.to_owned(),
                change: RecordChange::Delete {
                    id,
                    expected_version: Some(current.version),
                    at: now,
                },
                references: Vec::new(),
                events,
            };
            match self
                .store
                .write_record(write)
                .await
                .map_err(RecordError::from)
            {
                Err(RecordError::VersionMismatch { .. }) if if_match.is_none() => continue,
                other => return other.map(|_| ()),
            }
        }
        Err(RecordError::Contended)
    }
}

/// An encounter that becomes signed without a `signed_at` gets the current time.
fn complete_signature(
    kind: &RecordType,
    fields: &mut Map<String, Value>,
    previous_status: Option<&Value>,
    now: &str,
) {
    let entering_signed = fields.get("status").and_then(Value::as_str) == Some("signed")
        && previous_status.and_then(Value::as_str) != Some("signed");
    if kind.field("signed_at").is_some()
        && entering_signed
        && fields.get("signed_at").is_none_or(Value::is_null)
    {
        fields.insert("signed_at".into(), Value::from(now));
    }
}

fn patient_id(fields: &Map<String, Value>) -> Option<i64> {
    fields.get("patient_id").and_then(Value::as_i64)
}

/// The record as the API returns it: `object`, `id`, `version`, every field
/// (unset ones as `null`), `created_at`, `updated_at`.
fn represent(
    kind: &RecordType,
    id: i64,
    version: i64,
    fields: &Map<String, Value>,
    created_at: &str,
    updated_at: &str,
) -> Value {
    let mut map = Map::new();
    map.insert("object".into(), Value::from(kind.name));
    map.insert("id".into(), Value::from(id));
    map.insert("version".into(), Value::from(version));
    for spec in kind.fields {
        let value = fields.get(spec.name).cloned().unwrap_or(Value::Null);
        map.insert(spec.name.to_owned(), value);
    }
    map.insert("created_at".into(), Value::from(created_at));
    map.insert("updated_at".into(), Value::from(updated_at));
    Value::Object(map)
}
