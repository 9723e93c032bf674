//! Store types and traits for webhook endpoints and deliveries.
//!
//! Endpoint rows carry sealed secrets as opaque bytes; the store never
//! opens them. Deliveries are created by the store in the same transaction
//! as their event, for every enabled endpoint subscribed to its type.

use async_trait::async_trait;

use super::{NewEvent, StoreError};

/// An endpoint as stored.
#[derive(Debug, Clone)]
pub struct StoredEndpoint {
    pub id: String,
    pub url: String,
    /// The patterns as the admin gave them.
    pub events: Vec<String>,
    pub headers_sealed: Option<Vec<u8>>,
    pub description: Option<String>,
    pub enabled: bool,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub ordering: String,
    pub content: String,
    pub payload_version: i64,
    pub rate_limit_per_second: Option<i64>,
    pub max_in_flight: i64,
    /// `hmac` or `ed25519`.
    pub signature: String,
    /// Sealed client certificate chain and key (mTLS), if any.
    pub client_identity_sealed: Option<Vec<u8>>,
    pub secret_sealed: Vec<u8>,
    pub previous_secret_sealed: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<String>,
    pub failing_since: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Save an endpoint (insert or replace) with its expanded subscriptions and
/// the events the change produces, in one transaction.
#[derive(Debug, Clone)]
pub struct EndpointSave {
    pub endpoint: StoredEndpoint,
    pub subscriptions: Vec<String>,
    pub events: Vec<NewEvent>,
    /// When set, every pending delivery of the endpoint ends as `failed`
    /// with this reason (the endpoint stops receiving).
    pub fail_pending: Option<String>,
    /// For an update: the `updated_at` the change was computed from, so a
    /// concurrent change is detected rather than overwritten.
    pub expected_updated_at: Option<String>,
}

/// A pending delivery with what is needed to send it.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    pub id: i64,
    pub endpoint_id: String,
    pub attempts: i64,
    /// Unix milliseconds.
    pub next_attempt_at: i64,
    pub record_key: Option<String>,
    pub sequence: i64,
    /// The event, with `data` left as `Null`; `None` when it was pruned
    /// before it could be delivered.
    pub event: Option<NewEvent>,
    /// The event's `data` as stored (JSON text): parsed only by whoever
    /// renders the body, once per event however many endpoints get it.
    pub event_data: Option<String>,
}

/// What became of one attempt.
#[derive(Debug, Clone)]
pub enum AttemptOutcome {
    Succeeded,
    /// Try again at this Unix-millisecond time.
    Retry {
        at: i64,
    },
    /// No more attempts.
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub endpoint_id: String,
    pub attempted_at: String,
    pub duration_ms: f64,
    pub http_status: Option<i64>,
    pub error_kind: Option<String>,
    pub response_snippet: Option<String>,
    pub outcome: AttemptOutcome,
}

/// A delivery as listed in the log.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: i64,
    pub endpoint_id: String,
    pub event_sequence: i64,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_attempt_at: Option<String>,
    pub last_http_status: Option<i64>,
    pub last_error: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub attempted_at: String,
    pub duration_ms: f64,
    pub http_status: Option<i64>,
    pub error_kind: Option<String>,
    pub response_snippet: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub endpoint_id: String,
    pub status: Option<String>,
    pub event_type: Option<String>,
    /// Only deliveries with a smaller id (the log lists newest first).
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// What `recover` did.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Failed deliveries set back to pending.
    pub requeued: Vec<i64>,
    /// Deliveries created for events that had none.
    pub created: u64,
}

/// One endpoint's attempts in a period, for the admin page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptStats {
    pub endpoint_id: String,
    pub attempts: i64,
    /// Attempts answered with a 2xx status.
    pub succeeded: i64,
}

/// Counts for metrics.
#[derive(Debug, Clone, Default)]
pub struct DeliveryStats {
    pub pending: i64,
    /// When the oldest pending delivery was created (RFC 3339), if any.
    pub oldest_pending_created_at: Option<String>,
}

#[async_trait]
pub trait EndpointStore: Send + Sync {
    /// Returns the sequences of the appended events.
    async fn save_endpoint(&self, save: EndpointSave) -> Result<Vec<i64>, StoreError>;
    /// Mark deleted, drop subscriptions, cancel pending deliveries.
    async fn delete_endpoint(
        &self,
        id: &str,
        at: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<i64>, StoreError>;
    async fn get_endpoint(&self, id: &str) -> Result<Option<StoredEndpoint>, StoreError>;
    /// How many live endpoints there are.
    async fn count_endpoints(&self) -> Result<usize, StoreError>;
    /// Live endpoints in id order after `after`.
    async fn list_endpoints(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<StoredEndpoint>, StoreError>;
    /// Append an event and a delivery of it to this endpoint only.
    async fn append_endpoint_event(
        &self,
        endpoint_id: &str,
        event: NewEvent,
        now_ms: i64,
    ) -> Result<i64, StoreError>;
}

#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Pending deliveries with an id above `after_id`, in id order, with their events.
    async fn pending_deliveries(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError>;
    /// These deliveries, if still pending, with their events.
    async fn pending_by_ids(&self, ids: Vec<i64>) -> Result<Vec<PendingDelivery>, StoreError>;
    /// Record attempts, in one write. Returns, for each, the endpoint's
    /// `failing_since` afterwards.
    async fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
    ) -> Result<Vec<Option<String>>, StoreError>;
    async fn list_deliveries(&self, filter: DeliveryFilter)
    -> Result<Vec<DeliveryRow>, StoreError>;
    async fn get_delivery(
        &self,
        id: i64,
    ) -> Result<Option<(DeliveryRow, Vec<AttemptRow>)>, StoreError>;
    /// Make a delivery pending and due at `now_ms`. False when there is no such delivery.
    async fn requeue_delivery(&self, id: i64, now_ms: i64) -> Result<bool, StoreError>;
    /// Requeue the endpoint's failed deliveries created since `since`, and
    /// create deliveries for every event since then of the given types that
    /// has none, in sequence order.
    async fn recover(
        &self,
        endpoint_id: &str,
        since: &str,
        event_types: Vec<String>,
        now_ms: i64,
    ) -> Result<Recovery, StoreError>;
    /// Delete finished deliveries (and their attempts) completed before `before`.
    async fn purge_deliveries(&self, before: &str) -> Result<u64, StoreError>;
    async fn delivery_stats(&self) -> Result<DeliveryStats, StoreError>;
    /// The endpoint's most recent delivery that has been attempted.
    async fn last_attempted(&self, endpoint_id: &str) -> Result<Option<DeliveryRow>, StoreError>;
    /// Attempts made since `since` (RFC 3339), per endpoint that made any.
    async fn attempt_stats(&self, since: &str) -> Result<Vec<AttemptStats>, StoreError>;
}
