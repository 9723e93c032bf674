//! The delivery log: listing deliveries with their attempts, retrying one,
//! and recovering an endpoint from the event log.

use std::sync::Arc;

use serde_json::{Value, json};
use thiserror::Error;

use super::dispatch::DispatcherHandle;
use super::endpoint::{EndpointError, EndpointService};
use crate::audit::Auditor;
use crate::events::{Actor, catalogue};
use crate::records::validate::FieldError;
use crate::store::webhooks::{AttemptRow, AttemptStats, DeliveryFilter, DeliveryRow};
use crate::store::{Store, StoreError};

const ID_PREFIX: &str = "dlv_";
pub const STATUSES: &[&str] = &["pending", "succeeded", "failed", "cancelled"];

#[derive(Debug, Error)]
pub enum DeliveryError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("not possible in the current state")]
    Conflict(Vec<FieldError>),
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn parse_id(text: &str) -> Option<i64> {
    text.strip_prefix(ID_PREFIX)?
        .parse()
        .ok()
        .filter(|n: &i64| *n > 0)
}

fn millis_text(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

pub fn view(row: &DeliveryRow) -> Value {
    json!({
        "id": format!("{ID_PREFIX}{}", row.id),
        "endpoint_id": row.endpoint_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "sequence": row.event_sequence,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at.and_then(millis_text),
        "last_attempt_at": row.last_attempt_at,
        "last_http_status": row.last_http_status,
        "last_error": row.last_error,
        "failure_reason": row.failure_reason,
        "created_at": row.created_at,
        "completed_at": row.completed_at,
    })
}

fn attempt_view(attempt: &AttemptRow) -> Value {
    json!({
        "attempted_at": attempt.attempted_at,
        "duration_ms": attempt.duration_ms,
        "http_status": attempt.http_status,
        "error_kind": attempt.error_kind,
        "response_snippet": attempt.response_snippet,
    })
}

#[derive(Clone)]
pub struct DeliveryService {
    store: Arc<dyn Store>,
    audit: Auditor,
    endpoints: EndpointService,
    dispatcher: DispatcherHandle,
}

impl DeliveryService {
    pub fn new(
        store: Arc<dyn Store>,
        endpoints: EndpointService,
        dispatcher: DispatcherHandle,
    ) -> Self {
        DeliveryService {
            audit: Auditor::new(store.clone()),
            store,
            endpoints,
            dispatcher,
        }
    }

    /// Newest first; `before` is the id of the last delivery of the previous page.
    pub async fn list(
        &self,
        endpoint_id: &str,
        status: Option<String>,
        event_type: Option<String>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<(Vec<Value>, Option<i64>), DeliveryError> {
        self.endpoints.load(endpoint_id).await?;
        let mut rows = self
            .store
            .list_deliveries(DeliveryFilter {
                endpoint_id: endpoint_id.to_owned(),
                status,
                event_type,
                before_id: before,
                limit: limit + 1,
            })
            .await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more {
            rows.last().map(|r| r.id)
        } else {
            None
        };
        Ok((rows.iter().map(view).collect(), next))
    }

    pub async fn get(&self, id: i64) -> Result<Value, DeliveryError> {
        let (row, attempts) = self
            .store
            .get_delivery(id)
            .await?
            .ok_or(DeliveryError::NotFound)?;
        let mut shown = view(&row);
        shown["attempts_log"] = attempts.iter().map(attempt_view).collect();
        Ok(shown)
    }

    /// Attempts and successes per endpoint since `since` (RFC 3339).
    pub async fn attempt_stats(
        &self,
        since: &str,
    ) -> Result<std::collections::HashMap<String, AttemptStats>, DeliveryError> {
        let rows = self.store.attempt_stats(since).await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.endpoint_id.clone(), row))
            .collect())
    }

    /// Attempt again now, whatever the delivery's state (a cancelled one stays cancelled).
    pub async fn retry(&self, id: i64, actor: &Actor) -> Result<Value, DeliveryError> {
        let (row, _) = self
            .store
            .get_delivery(id)
            .await?
            .ok_or(DeliveryError::NotFound)?;
        let endpoint = self.endpoints.load(&row.endpoint_id).await?;
        if endpoint.status != "enabled" {
            return Err(DeliveryError::Conflict(vec![FieldError::new(
                "endpoint_id",
                "endpoint_disabled",
                "the endpoint is disabled; enable it first",
            )]));
        }
        let now = chrono::Utc::now().timestamp_millis();
        if !self.store.requeue_delivery(id, now).await? {
            return Err(DeliveryError::Conflict(vec![FieldError::new(
                "id",
                "cancelled",
                "a cancelled delivery cannot be retried",
            )]));
        }
        self.dispatcher.enqueue(vec![id]);
        let target = format!("{ID_PREFIX}{id}");
        self.audit
            .record(actor, "delivery.retried", Some(("delivery", &target)), None)
            .await;
        self.get(id).await
    }

    /// Re-queue the endpoint's failed deliveries since `since`, and create
    /// deliveries for every matching event since then that has none.
    pub async fn recover(
        &self,
        endpoint_id: &str,
        since: &Value,
        actor: &Actor,
    ) -> Result<Value, DeliveryError> {
        let endpoint = self.endpoints.load(endpoint_id).await?;
        let since = since
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .ok_or_else(|| {
                DeliveryError::Invalid(vec![FieldError::new(
                    "since",
                    "format",
                    "must be an RFC 3339 date-time with an offset",
                )])
            })?;
        if endpoint.status != "enabled" {
            return Err(DeliveryError::Conflict(vec![FieldError::new(
                "endpoint_id",
                "endpoint_disabled",
                "the endpoint is disabled; enable it first",
            )]));
        }
        let since_text = since
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let types = catalogue::expand(&endpoint.events).unwrap_or_default();
        let now = chrono::Utc::now().timestamp_millis();
        let recovery = self
            .store
            .recover(endpoint_id, &since_text, types, now)
            .await?;
        tracing::info!(
            endpoint_id,
            requeued = recovery.requeued.len(),
            created = recovery.created,
            "endpoint recovered"
        );
        self.dispatcher.enqueue(recovery.requeued.clone());
        self.dispatcher.wake();
        let summary = json!({"requeued": recovery.requeued.len(), "created": recovery.created});
        let mut detail = summary.clone();
        detail["since"] = json!(since_text);
        self.audit
            .record(
                actor,
                "endpoint.recovered",
                Some(("endpoint", endpoint_id)),
                Some(detail),
            )
            .await;
        Ok(summary)
    }
}
