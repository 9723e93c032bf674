//! Persistence behind traits, one per concern.
//!
//! The store owns tables, transactions, durability and the order in which
//! events are numbered. It knows nothing of HTTP and nothing of the domain's
//! policies: it is handed fully formed records and events, checks only what
//! must be checked inside the transaction (versions, that referenced records
//! exist), and reports what happened.
//!
//! Backends: [`sqlite`] (embedded, the default, one process) and
//! [`postgres`] (any number of processes on one database). Every
//! backend-specific trick (SQLite's single writer with group commit;
//! PostgreSQL's append lock, `LISTEN/NOTIFY` and endpoint leases) stays
//! inside its module, behind these traits.

mod error;
pub mod postgres;
pub mod sessions;
pub mod sqlite;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::{broadcast, watch};

pub use error::StoreError;
pub use sessions::{SessionStore, StoredSession};
pub use webhooks::{DeliveryStore, EndpointStore};

/// A record as stored: `body` is the full representation the API returns.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub record_type: String,
    pub id: i64,
    pub version: i64,
    pub body: Value,
}

/// A record that another record points at; it must exist and not be deleted
/// when the write commits.
#[derive(Debug, Clone)]
pub struct Reference {
    pub field: String,
    pub record_type: String,
    pub id: i64,
}

/// The change to one record.
#[derive(Debug, Clone)]
pub enum RecordChange {
    Create {
        id: i64,
        patient_id: Option<i64>,
        body: Value,
        at: String,
    },
    Update {
        id: i64,
        expected_version: i64,
        patient_id: Option<i64>,
        body: Value,
        at: String,
    },
    Delete {
        id: i64,
        expected_version: Option<i64>,
        at: String,
    },
}

/// One write: a record change and the events it produces, committed together.
#[derive(Debug, Clone)]
pub struct RecordWrite {
    pub record_type: String,
    pub change: RecordChange,
    pub references: Vec<Reference>,
    pub events: Vec<NewEvent>,
}

/// An event to append. The store assigns its `sequence`.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub event_type: String,
    pub category: String,
    pub payload_version: i64,
    pub occurred_at: String,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub record_type: Option<String>,
    pub record_id: Option<i64>,
    pub data: Value,
}

/// An event read back from the log.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub sequence: i64,
    pub event: NewEvent,
}

/// Which events a read wants.
#[derive(Debug, Clone)]
pub struct EventQuery {
    /// Only events with a sequence greater than this.
    pub after: i64,
    pub limit: usize,
    /// Exact event type names; `None` means every type.
    pub types: Option<Vec<String>>,
    /// Event categories that may be returned.
    pub categories: Vec<String>,
}

/// One page of the event log, read in one snapshot.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// More matching events exist after the last one returned.
    pub has_more: bool,
    /// Every event up to this sequence has been considered: a reader may
    /// continue from here without missing anything.
    pub scanned_through: i64,
    /// Every event up to this sequence may have been pruned (same snapshot).
    pub pruned_through: i64,
}

/// Which records a list wants.
#[derive(Debug, Clone)]
pub struct RecordQuery {
    pub record_type: String,
    pub after_id: i64,
    pub limit: usize,
    pub patient_id: Option<i64>,
}

/// An API key as stored (the secret itself is never stored, only its hash).
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub id: String,
    pub name: String,
    pub role: String,
    pub key_hash: Vec<u8>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// What the store reports about itself, for `/readyz` and `/metrics`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Diagnostics {
    pub backend: &'static str,
    pub journal_mode: String,
    pub synchronous: String,
    pub commits: u64,
    pub writes: u64,
    pub head_sequence: i64,
    /// Where the writer's time went, when the backend measures it.
    #[serde(skip)]
    pub writer_time: Option<WriterTime>,
}

/// Cumulative time the writer spent per phase of its batches.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriterTime {
    /// BEGIN, the append lock and the statements (one pipelined flight).
    pub statements: std::time::Duration,
    /// Publishing the head and COMMIT (the server's WAL flush).
    pub commit: std::time::Duration,
}

#[async_trait]
pub trait RecordStore: Send + Sync {
    /// Reserve a fresh record id. Ids are never reused; a failed write leaves a gap.
    async fn allocate_record_id(&self) -> Result<i64, StoreError>;
    /// A live (not deleted) record.
    async fn get_record(
        &self,
        record_type: &str,
        id: i64,
    ) -> Result<Option<StoredRecord>, StoreError>;
    async fn list_records(&self, query: RecordQuery) -> Result<Vec<StoredRecord>, StoreError>;
    /// Apply a record change and append its events in one transaction.
    /// Returns the sequences given to the events, in order.
    async fn write_record(&self, write: RecordWrite) -> Result<Vec<i64>, StoreError>;
}

#[async_trait]
pub trait EventStore: Send + Sync {
    async fn read_events(&self, query: EventQuery) -> Result<EventPage, StoreError>;
    /// The highest committed sequence, updated after every commit that appended events.
    fn head(&self) -> watch::Receiver<i64>;
    /// Delete events that occurred before `before` (RFC 3339). Returns how many.
    async fn prune_events(&self, before: &str) -> Result<u64, StoreError>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn insert_key(&self, key: StoredKey) -> Result<(), StoreError>;
    /// Active and revoked keys, ordered by creation, after the key with id `after`.
    async fn list_keys(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<StoredKey>, StoreError>;
    async fn find_key_by_hash(&self, hash: Vec<u8>) -> Result<Option<StoredKey>, StoreError>;
    async fn find_key(&self, id: &str) -> Result<Option<StoredKey>, StoreError>;
    /// Revoke an active key; `keep_one_role` refuses to revoke the last
    /// active key of that role. Returns false when no active key has that id.
    async fn revoke_key(
        &self,
        id: &str,
        at: &str,
        keep_one_role: Option<String>,
    ) -> Result<bool, StoreError>;
    async fn touch_key(&self, id: &str, at: &str) -> Result<(), StoreError>;
}

#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// Fails when the database cannot be reached.
    async fn ping(&self) -> Result<(), StoreError>;
    async fn diagnostics(&self) -> Result<Diagnostics, StoreError>;
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Assigned by the store; 0 when appending.
    pub id: i64,
    pub at: String,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub source_ip: Option<String>,
    /// Small JSON object (counts, reasons); never PHI or secrets.
    pub detail: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only entries with a smaller id (the log lists newest first).
    pub before_id: Option<i64>,
    pub action: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    pub since: Option<String>,
    pub limit: usize,
}

#[async_trait]
pub trait SecretMetaStore: Send + Sync {
    /// The value stored under `name`, storing `value` first if there is none.
    async fn meta_blob_or_insert(&self, name: &str, value: Vec<u8>) -> Result<Vec<u8>, StoreError>;
    async fn set_meta_blob(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError>;
    /// Every sealed value of every endpoint row (deleted ones too), by id after `after`.
    async fn sealed_rows(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<SealedRow>, StoreError>;
    /// Replace a row's sealed values; false when the row changed since it was read.
    async fn reseal_row(&self, row: SealedRow) -> Result<bool, StoreError>;
}

/// The sealed values of one endpoint row.
#[derive(Debug, Clone)]
pub struct SealedRow {
    pub id: String,
    /// The row's `updated_at` when read (guards against concurrent changes).
    pub updated_at: String,
    pub headers: Option<Vec<u8>>,
    pub secret: Vec<u8>,
    pub previous_secret: Option<Vec<u8>>,
    pub client_identity: Option<Vec<u8>>,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn append_audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError>;
    async fn list_audit(&self, query: AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
    /// Delete entries older than `before`; returns how many.
    async fn prune_audit(&self, before: &str) -> Result<u64, StoreError>;
}

/// A change another process made that this one must react to. On a
/// backend used by one process only, nothing is ever sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// An endpoint was created, changed or deleted.
    EndpointChanged(String),
    /// These deliveries are pending again (retry, recover).
    Requeued(Vec<i64>),
    /// Signals may have been missed (the database connection was lost):
    /// reload what they would have said.
    Resync,
}

/// What several processes sharing one database need to split the sending
/// of webhooks: a heartbeat per process and a lease per endpoint.
#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Whether other processes may use this database at the same time.
    fn shared(&self) -> bool;
    /// Changes made by any process (including this one) that the store
    /// learns of after they commit.
    fn signals(&self) -> broadcast::Receiver<Signal>;
    /// Register or renew `process`; returns the processes seen within `ttl`.
    async fn heartbeat(&self, process: &str, ttl: Duration) -> Result<Vec<String>, StoreError>;
    /// Hold exactly the leases of `wanted` endpoints that are free, expired
    /// or already held by `process` (for `ttl`), release the others it
    /// holds; returns the endpoints held.
    async fn hold_endpoints(
        &self,
        process: &str,
        wanted: Vec<String>,
        ttl: Duration,
    ) -> Result<Vec<String>, StoreError>;
    /// Give up every lease of `process`.
    async fn release_endpoints(&self, process: &str) -> Result<(), StoreError>;
    /// Ids of the endpoints that may be sent to (live and enabled).
    async fn enabled_endpoints(&self) -> Result<Vec<String>, StoreError>;
    /// One endpoint's pending deliveries with ids in `(after_id, up_to_id]`.
    async fn pending_for_endpoint(
        &self,
        endpoint_id: &str,
        after_id: i64,
        up_to_id: i64,
        limit: usize,
    ) -> Result<Vec<webhooks::PendingDelivery>, StoreError>;
}

/// Everything the domain needs from a backend.
pub trait Store:
    RecordStore
    + EventStore
    + ClusterStore
    + KeyStore
    + EndpointStore
    + DeliveryStore
    + AuditStore
    + SecretMetaStore
    + SessionStore
    + StoreHealth
{
}

impl<T> Store for T where
    T: RecordStore
        + EventStore
        + ClusterStore
        + KeyStore
        + EndpointStore
        + DeliveryStore
        + AuditStore
        + SecretMetaStore
        + SessionStore
        + StoreHealth
{
}

/// How a process uses the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The server: takes the data directory's lock, so only one runs on it.
    Server,
    /// A command-line tool (`keys`, `migrate`) that may run beside the server.
    Tool,
}

/// Which backend a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite://") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// Open the database named by `url` (`sqlite://PATH` or `postgres://…`)
/// and apply migrations.
pub async fn open(url: &str, mode: OpenMode) -> Result<Arc<dyn Store>, StoreError> {
    open_with(url, mode, None).await
}

/// [`open`] with the most connections a PostgreSQL pool may open (`None`:
/// the backend's default for `mode`; SQLite ignores it).
pub async fn open_with(
    url: &str,
    mode: OpenMode,
    pool_size: Option<usize>,
) -> Result<Arc<dyn Store>, StoreError> {
    match Backend::of(url) {
        Some(Backend::Sqlite) => {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            let store = sqlite::SqliteStore::open(path.as_ref(), mode).await?;
            Ok(Arc::new(store))
        }
        Some(Backend::Postgres) => {
            let store = postgres::PostgresStore::open(url, mode, pool_size).await?;
            Ok(Arc::new(store))
        }
        None => Err(StoreError::Config(
            "database URL must start with sqlite:// (e.g. sqlite://./chartwire-data/chartwire.db) \
             or postgres://"
                .into(),
        )),
    }
}
