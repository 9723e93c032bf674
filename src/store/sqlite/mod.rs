//! The embedded SQLite backend.
//!
//! One file in WAL mode with `synchronous=FULL`: a commit is on disk before
//! it is acknowledged. All writes go through one thread ([`writer`]) that
//! batches concurrent writes into one transaction (group commit); reads use a
//! pool of read-only connections ([`readers`]). Because a single writer hands
//! out event sequences in commit order, the event log has no gaps for readers.
//!
//! A server holds an exclusive lock on `<database>.lock`, so a second server
//! on the same file refuses to start; tools (`keys`, `migrate`) do not take it
//! and share the file through SQLite's own locking.

mod audit;
mod deliveries;
mod endpoints;
mod events;
mod keys;
mod migrate;
mod readers;
mod records;
mod sessions;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::{broadcast, watch};

use crate::store::{
    AuditEntry, AuditQuery, AuditStore, ClusterStore, SealedRow, SecretMetaStore, Signal,
};

use crate::store::webhooks::{
    AttemptRecord, AttemptRow, AttemptStats, DeliveryFilter, DeliveryRow, DeliveryStats,
    EndpointSave, PendingDelivery, Recovery, StoredEndpoint,
};
use crate::store::{
    DeliveryStore, Diagnostics, EndpointStore, EventPage, EventQuery, EventStore, KeyStore,
    NewEvent, OpenMode, RecordQuery, RecordStore, RecordWrite, StoreError, StoreHealth, StoredKey,
    StoredRecord,
};
use readers::Readers;
use writer::Writer;

const READERS: usize = 4;

pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
    head: watch::Receiver<i64>,
    next_record_id: AtomicI64,
    /// `journal_mode` and `synchronous` as read back from the writing
    /// connection after it was configured (nothing changes them later).
    settings: (String, String),
    /// Nothing is ever sent: one process uses the database.
    signals: broadcast::Sender<Signal>,
    _lock: Option<File>,
}

impl SqliteStore {
    pub async fn open(path: &Path, mode: OpenMode) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path, mode))
            .await
            .map_err(|_| StoreError::Backend("opening the database panicked".into()))?
    }

    fn open_blocking(path: PathBuf, mode: OpenMode) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|err| {
                StoreError::Config(format!("cannot create {}: {err}", parent.display()))
            })?;
        }
        let lock = match mode {
            OpenMode::Server => Some(take_lock(&path)?),
            OpenMode::Tool => None,
        };
        let conn = Connection::open(&path)
            .map_err(|err| StoreError::Config(format!("cannot open {}: {err}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        prepare_with_retry(&conn)?;
        // Read the settings back from the connection that commits: `synchronous`
        // is per connection, so this is the value every commit runs with.
        let journal_mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        let settings = (
            journal_mode.to_lowercase(),
            synchronous_name(synchronous).to_owned(),
        );

        let next_record_id = records::max_record_id(&conn)? + 1;
        let head_sequence = conn.query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
            [],
            |r| r.get(0),
        )?;
        let (head_tx, head) = watch::channel(head_sequence);
        Ok(SqliteStore {
            writer: Writer::start(conn, head_tx),
            readers: Readers::new(path, READERS),
            head,
            next_record_id: AtomicI64::new(next_record_id),
            settings,
            signals: broadcast::channel(1).0,
            _lock: lock,
        })
    }
}

/// Switch to WAL and apply migrations. Two processes opening a new database
/// at the same moment (a server and `keys create`) can see `SQLITE_BUSY`
/// without the busy handler being consulted (the switch to WAL needs an
/// exclusive lock); such a collision is retried for a few seconds.
fn prepare_with_retry(conn: &Connection) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match prepare(conn) {
            Err(StoreError::Unavailable(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn prepare(conn: &Connection) -> Result<(), StoreError> {
    let journal: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Config(format!(
            "SQLite refused WAL mode (journal_mode is {journal})"
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF;")?;
    migrate::apply(conn)
}

fn take_lock(path: &Path) -> Result<File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| StoreError::Config(format!("cannot open the lock file: {err}")))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked(format!(
            "{} is in use by another `chartwire serve`; stop it first or choose another --data-dir",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(err)) => Err(StoreError::Config(format!(
            "cannot lock the database: {err}"
        ))),
    }
}

#[async_trait]
impl RecordStore for SqliteStore {
    async fn allocate_record_id(&self) -> Result<i64, StoreError> {
        // Only the process holding the server lock creates records, so an
        // in-memory counter seeded from the table is enough.
        Ok(self.next_record_id.fetch_add(1, Ordering::Relaxed))
    }

    async fn get_record(
        &self,
        record_type: &str,
        id: i64,
    ) -> Result<Option<StoredRecord>, StoreError> {
        let record_type = record_type.to_owned();
        self.readers
            .read(move |conn| records::get(conn, &record_type, id))
            .await
    }

    async fn list_records(&self, query: RecordQuery) -> Result<Vec<StoredRecord>, StoreError> {
        self.readers
            .read(move |conn| records::list(conn, &query))
            .await
    }

    async fn write_record(&self, write: RecordWrite) -> Result<Vec<i64>, StoreError> {
        self.writer
            .write(move |conn| records::apply(conn, &write))
            .await
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn read_events(&self, query: EventQuery) -> Result<EventPage, StoreError> {
        self.readers
            .read(move |conn| events::read(conn, &query))
            .await
    }

    fn head(&self) -> watch::Receiver<i64> {
        self.head.clone()
    }

    async fn prune_events(&self, before: &str) -> Result<u64, StoreError> {
        let before = before.to_owned();
        self.writer
            .write(move |conn| events::prune(conn, &before))
            .await
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_key(&self, key: StoredKey) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| keys::insert(conn, &key))
            .await
    }

    async fn list_keys(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<StoredKey>, StoreError> {
        self.readers
            .read(move |conn| keys::list(conn, after.as_deref(), limit))
            .await
    }

    async fn find_key_by_hash(&self, hash: Vec<u8>) -> Result<Option<StoredKey>, StoreError> {
        self.readers
            .read(move |conn| keys::find_by_hash(conn, &hash))
            .await
    }

    async fn find_key(&self, id: &str) -> Result<Option<StoredKey>, StoreError> {
        let id = id.to_owned();
        self.readers.read(move |conn| keys::find(conn, &id)).await
    }

    async fn revoke_key(
        &self,
        id: &str,
        at: &str,
        keep_one_role: Option<String>,
    ) -> Result<bool, StoreError> {
        let (id, at) = (id.to_owned(), at.to_owned());
        self.writer
            .write(move |conn| keys::revoke(conn, &id, &at, keep_one_role.as_deref()))
            .await
    }

    async fn touch_key(&self, id: &str, at: &str) -> Result<(), StoreError> {
        let (id, at) = (id.to_owned(), at.to_owned());
        self.writer
            .write(move |conn| keys::touch(conn, &id, &at))
            .await
    }
}

#[async_trait]
impl EndpointStore for SqliteStore {
    async fn save_endpoint(&self, save: EndpointSave) -> Result<Vec<i64>, StoreError> {
        self.writer
            .write(move |conn| endpoints::save(conn, &save))
            .await
    }

    async fn delete_endpoint(
        &self,
        id: &str,
        at: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<i64>, StoreError> {
        let (id, at) = (id.to_owned(), at.to_owned());
        self.writer
            .write(move |conn| endpoints::delete(conn, &id, &at, &events))
            .await
    }

    async fn count_endpoints(&self) -> Result<usize, StoreError> {
        self.readers
            .read(|conn| {
                let n: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM webhook_endpoints WHERE deleted_at IS NULL",
                    [],
                    |r| r.get(0),
                )?;
                Ok(n as usize)
            })
            .await
    }

    async fn get_endpoint(&self, id: &str) -> Result<Option<StoredEndpoint>, StoreError> {
        let id = id.to_owned();
        self.readers
            .read(move |conn| endpoints::get(conn, &id))
            .await
    }

    async fn list_endpoints(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<StoredEndpoint>, StoreError> {
        self.readers
            .read(move |conn| endpoints::list(conn, after.as_deref(), limit))
            .await
    }

    async fn append_endpoint_event(
        &self,
        endpoint_id: &str,
        event: NewEvent,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let endpoint_id = endpoint_id.to_owned();
        self.writer
            .write(move |conn| endpoints::append_for_endpoint(conn, &endpoint_id, &event, now_ms))
            .await
    }
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn pending_deliveries(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        self.readers
            .read(move |conn| deliveries::pending(conn, after_id, limit))
            .await
    }

    async fn pending_by_ids(&self, ids: Vec<i64>) -> Result<Vec<PendingDelivery>, StoreError> {
        self.readers
            .read(move |conn| deliveries::pending_by_ids(conn, &ids))
            .await
    }

    async fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
    ) -> Result<Vec<Option<String>>, StoreError> {
        self.writer
            .write(move |conn| {
                records
                    .iter()
                    .map(|record| deliveries::record_attempt(conn, record))
                    .collect()
            })
            .await
    }

    async fn list_deliveries(
        &self,
        filter: DeliveryFilter,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        self.readers
            .read(move |conn| deliveries::list(conn, &filter))
            .await
    }

    async fn get_delivery(
        &self,
        id: i64,
    ) -> Result<Option<(DeliveryRow, Vec<AttemptRow>)>, StoreError> {
        self.readers
            .read(move |conn| deliveries::get(conn, id))
            .await
    }

    async fn requeue_delivery(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        self.writer
            .write(move |conn| deliveries::requeue(conn, id, now_ms))
            .await
    }

    async fn recover(
        &self,
        endpoint_id: &str,
        since: &str,
        event_types: Vec<String>,
        now_ms: i64,
    ) -> Result<Recovery, StoreError> {
        let (endpoint_id, since) = (endpoint_id.to_owned(), since.to_owned());
        self.writer
            .write(move |conn| {
                deliveries::recover(conn, &endpoint_id, &since, &event_types, now_ms)
            })
            .await
    }

    async fn purge_deliveries(&self, before: &str) -> Result<u64, StoreError> {
        let before = before.to_owned();
        self.writer
            .write(move |conn| deliveries::purge(conn, &before))
            .await
    }

    async fn last_attempted(&self, endpoint_id: &str) -> Result<Option<DeliveryRow>, StoreError> {
        let endpoint_id = endpoint_id.to_owned();
        self.readers
            .read(move |conn| deliveries::last_attempted(conn, &endpoint_id))
            .await
    }

    async fn delivery_stats(&self) -> Result<DeliveryStats, StoreError> {
        self.readers.read(deliveries::stats).await
    }

    async fn attempt_stats(&self, since: &str) -> Result<Vec<AttemptStats>, StoreError> {
        let since = since.to_owned();
        self.readers
            .read(move |conn| deliveries::attempt_stats(conn, &since))
            .await
    }
}

#[async_trait]
impl SecretMetaStore for SqliteStore {
    async fn meta_blob_or_insert(&self, name: &str, value: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let name = name.to_owned();
        self.writer
            .write(move |conn| {
                conn.execute(
                    "INSERT OR IGNORE INTO secret_meta (name, value) VALUES (?1, ?2)",
                    rusqlite::params![name, value],
                )?;
                Ok(conn.query_row(
                    "SELECT value FROM secret_meta WHERE name = ?1",
                    rusqlite::params![name],
                    |r| r.get(0),
                )?)
            })
            .await
    }

    async fn set_meta_blob(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.writer
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO secret_meta (name, value) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    rusqlite::params![name, value],
                )?;
                Ok(())
            })
            .await
    }

    async fn sealed_rows(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<SealedRow>, StoreError> {
        self.readers
            .read(move |conn| endpoints::sealed_rows(conn, after.as_deref(), limit))
            .await
    }

    async fn reseal_row(&self, row: SealedRow) -> Result<bool, StoreError> {
        self.writer
            .write(move |conn| endpoints::reseal_row(conn, &row))
            .await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| audit::append(conn, &entries))
            .await
    }

    async fn list_audit(&self, query: AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.readers
            .read(move |conn| audit::list(conn, &query))
            .await
    }

    async fn prune_audit(&self, before: &str) -> Result<u64, StoreError> {
        let before = before.to_owned();
        self.writer
            .write(move |conn| audit::prune(conn, &before))
            .await
    }
}

#[async_trait]
impl StoreHealth for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.readers
            .read(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await
            .map(|_| ())
    }

    async fn diagnostics(&self) -> Result<Diagnostics, StoreError> {
        let (journal_mode, synchronous) = self.settings.clone();
        Ok(Diagnostics {
            backend: "sqlite",
            journal_mode,
            synchronous,
            commits: self.writer.stats.commits.load(Ordering::Relaxed),
            writes: self.writer.stats.writes.load(Ordering::Relaxed),
            head_sequence: *self.head.borrow(),
            writer_time: None,
        })
    }
}

fn synchronous_name(level: i64) -> &'static str {
    match level {
        0 => "off",
        1 => "normal",
        2 => "full",
        3 => "extra",
        _ => "unknown",
    }
}

/// One server per database file: it sends to every endpoint itself.
#[async_trait]
impl ClusterStore for SqliteStore {
    fn shared(&self) -> bool {
        false
    }

    fn signals(&self) -> broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }

    async fn heartbeat(&self, process: &str, _ttl: Duration) -> Result<Vec<String>, StoreError> {
        Ok(vec![process.to_owned()])
    }

    async fn hold_endpoints(
        &self,
        _process: &str,
        wanted: Vec<String>,
        _ttl: Duration,
    ) -> Result<Vec<String>, StoreError> {
        Ok(wanted)
    }

    async fn release_endpoints(&self, _process: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn enabled_endpoints(&self) -> Result<Vec<String>, StoreError> {
        self.readers
            .read(|conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT id FROM webhook_endpoints
                     WHERE deleted_at IS NULL AND status = 'enabled' ORDER BY id",
                )?;
                let ids = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(ids)
            })
            .await
    }

    async fn pending_for_endpoint(
        &self,
        endpoint_id: &str,
        after_id: i64,
        up_to_id: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let endpoint_id = endpoint_id.to_owned();
        self.readers
            .read(move |conn| {
                deliveries::pending_for_endpoint(conn, &endpoint_id, after_id, up_to_id, limit)
            })
            .await
    }
}
