//! The PostgreSQL backend: any number of `chartwire serve` processes on one
//! database.
//!
//! - **Writes** go through one writer task per process with group commit
//!   ([`writer`]). Batches that append events or create deliveries hold the
//!   *append lock* until COMMIT, so sequences and delivery ids become
//!   visible in the order they were given, across processes: the feed has
//!   no gaps and the dispatcher can follow deliveries by id.
//! - **Wake-ups** travel by `LISTEN/NOTIFY` ([`listen`]): the commit that
//!   appends announces the new head; endpoint changes and re-queued
//!   deliveries are announced too. No process polls for new work.
//! - **Sending is split by endpoint** ([`cluster`]): each endpoint is sent to
//!   by the one process holding its lease, which it renews; a lease that is
//!   not renewed expires and another process takes the endpoint over. The
//!   policy (who should hold what) belongs to the dispatcher.
//! - **Reads** use a connection pool; a feed page is read in one
//!   `REPEATABLE READ` snapshot together with the committed head.

mod audit;
mod cluster;
mod conn;
mod deliveries;
mod endpoints;
mod events;
mod keys;
mod listen;
mod migrate;
mod records;
mod sessions;
mod writer;

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio::sync::{Mutex, broadcast, watch};
use tokio_postgres::NoTls;

use crate::store::webhooks::{
    AttemptRecord, AttemptRow, AttemptStats, DeliveryFilter, DeliveryRow, DeliveryStats,
    EndpointSave, PendingDelivery, Recovery, StoredEndpoint,
};
use crate::store::{
    AuditEntry, AuditQuery, AuditStore, ClusterStore, DeliveryStore, Diagnostics, EndpointStore,
    EventPage, EventQuery, EventStore, KeyStore, NewEvent, OpenMode, RecordQuery, RecordStore,
    RecordWrite, SealedRow, SecretMetaStore, Signal, StoreError, StoreHealth, StoredKey,
    StoredRecord, WriterTime,
};
use writer::{Kind, Writer};

/// Connections a server's pool may open unless configured (the writer holds
/// one of them; the listener's connection is apart).
pub const SERVER_POOL: usize = 16;
const TOOL_POOL: usize = 2;
/// Record ids reserved per round trip.
const ID_BLOCK: i64 = 64;
/// Rows one pruning statement removes at most, so a long backlog of old
/// rows never holds the writer (and its batch's writes) for long.
const PRUNE_BATCH: i64 = 2000;

pub struct PostgresStore {
    pool: Pool,
    writer: Writer,
    head: watch::Receiver<i64>,
    signals: broadcast::Sender<Signal>,
    record_ids: Mutex<Vec<i64>>,
    /// `synchronous_commit` and `fsync`, read at start.
    settings: (String, String),
    /// Dropped with the store, which stops the listener.
    _alive: watch::Sender<()>,
}

impl PostgresStore {
    pub async fn open(
        url: &str,
        mode: OpenMode,
        pool_size: Option<usize>,
    ) -> Result<PostgresStore, StoreError> {
        let config = conn::config(url)?;
        {
            let (client, connection) = config.connect(NoTls).await.map_err(|err| {
                StoreError::Unavailable(format!(
                    "cannot connect to PostgreSQL: {}",
                    StoreError::from(err)
                ))
            })?;
            let driver = tokio::spawn(connection);
            migrate::apply(&client).await?;
            drop(client);
            let _ = driver.await;
        }
        let size = match mode {
            OpenMode::Server => pool_size.unwrap_or(SERVER_POOL),
            OpenMode::Tool => pool_size.unwrap_or(TOOL_POOL),
        }
        .max(2);
        let pool = conn::pool(config.clone(), size)?;
        let (head_sequence, settings) = {
            let c = conn::get(&pool).await?;
            let head = events::head(&c).await?;
            let synchronous: String = c.query_one("SHOW synchronous_commit", &[]).await?.get(0);
            let fsync: String = c.query_one("SHOW fsync", &[]).await?.get(0);
            (head, (synchronous, fsync))
        };
        let (head_tx, head) = watch::channel(head_sequence);
        let (signals, _) = broadcast::channel(4096);
        let (alive, alive_rx) = watch::channel(());
        if mode == OpenMode::Server {
            listen::spawn(config, head_tx.clone(), signals.clone(), alive_rx);
        }
        Ok(PostgresStore {
            writer: Writer::start(pool.clone(), head_tx),
            pool,
            head,
            signals,
            record_ids: Mutex::new(Vec::new()),
            settings,
            _alive: alive,
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        conn::get(&self.pool).await
    }

    /// Run `prune` (which removes at most [`PRUNE_BATCH`] rows) in writes of
    /// its own until it removes fewer; returns how many rows went.
    async fn prune_in_batches<F>(&self, prune: F) -> Result<u64, StoreError>
    where
        F: for<'c> Fn(
                &'c deadpool_postgres::ClientWrapper,
            ) -> futures_util::future::BoxFuture<'c, Result<u64, StoreError>>
            + Send
            + Sync
            + 'static,
    {
        let prune = std::sync::Arc::new(prune);
        let mut removed = 0;
        loop {
            let prune = prune.clone();
            let batch = self.writer.write(Kind::Plain, move |c| prune(c)).await?;
            removed += batch;
            if batch < PRUNE_BATCH as u64 {
                return Ok(removed);
            }
        }
    }
}

#[async_trait]
impl RecordStore for PostgresStore {
    async fn allocate_record_id(&self) -> Result<i64, StoreError> {
        let mut ids = self.record_ids.lock().await;
        if ids.is_empty() {
            let c = self.client().await?;
            let mut block = records::allocate_ids(&c, ID_BLOCK).await?;
            block.reverse();
            *ids = block;
        }
        ids.pop()
            .ok_or_else(|| StoreError::Backend("no record id was reserved".into()))
    }

    async fn get_record(
        &self,
        record_type: &str,
        id: i64,
    ) -> Result<Option<StoredRecord>, StoreError> {
        records::get(&*self.client().await?, record_type, id).await
    }

    async fn list_records(&self, query: RecordQuery) -> Result<Vec<StoredRecord>, StoreError> {
        records::list(&*self.client().await?, &query).await
    }

    async fn write_record(&self, write: RecordWrite) -> Result<Vec<i64>, StoreError> {
        if matches!(write.change, crate::store::RecordChange::Create { .. }) {
            return self.writer.create(write).await;
        }
        self.writer
            .write(Kind::Statement, move |c| {
                Box::pin(records::apply(c, write.clone()))
            })
            .await
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn read_events(&self, query: EventQuery) -> Result<EventPage, StoreError> {
        events::read(&*self.client().await?, &query).await
    }

    fn head(&self) -> watch::Receiver<i64> {
        self.head.clone()
    }

    async fn prune_events(&self, before: &str) -> Result<u64, StoreError> {
        let before = before.to_owned();
        self.writer
            .write(Kind::Plain, move |c| {
                let before = before.clone();
                Box::pin(async move { events::prune(c, &before).await })
            })
            .await
    }
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn insert_key(&self, key: StoredKey) -> Result<(), StoreError> {
        self.writer
            .write(Kind::Plain, move |c| Box::pin(keys::insert(c, key.clone())))
            .await
    }

    async fn list_keys(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<StoredKey>, StoreError> {
        keys::list(&*self.client().await?, after, limit).await
    }

    async fn find_key_by_hash(&self, hash: Vec<u8>) -> Result<Option<StoredKey>, StoreError> {
        keys::find_by_hash(&*self.client().await?, &hash).await
    }

    async fn find_key(&self, id: &str) -> Result<Option<StoredKey>, StoreError> {
        keys::find(&*self.client().await?, id).await
    }

    async fn revoke_key(
        &self,
        id: &str,
        at: &str,
        keep_one_role: Option<String>,
    ) -> Result<bool, StoreError> {
        let (id, at) = (id.to_owned(), at.to_owned());
        self.writer
            .write(Kind::Plain, move |c| {
                Box::pin(keys::revoke(
                    c,
                    id.clone(),
                    at.clone(),
                    keep_one_role.clone(),
                ))
            })
            .await
    }

    async fn touch_key(&self, id: &str, at: &str) -> Result<(), StoreError> {
        let (id, at) = (id.to_owned(), at.to_owned());
        self.writer
            .write(Kind::Plain, move |c| {
                Box::pin(keys::touch(c, id.clone(), at.clone()))
            })
            .await
    }
}

#[async_trait]
impl EndpointStore for PostgresStore {
    async fn save_endpoint(&self, save: EndpointSave) -> Result<Vec<i64>, StoreError> {
        self.writer
            .write(Kind::Appends, move |c| {
                Box::pin(endpoints::save(c, save.clone()))
            })
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
            .write(Kind::Appends, move |c| {
                Box::pin(endpoints::delete(c, id.clone(), at.clone(), events.clone()))
            })
            .await
    }

    async fn get_endpoint(&self, id: &str) -> Result<Option<StoredEndpoint>, StoreError> {
        endpoints::get(&*self.client().await?, id).await
    }

    async fn count_endpoints(&self) -> Result<usize, StoreError> {
        endpoints::count(&*self.client().await?).await
    }

    async fn list_endpoints(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<StoredEndpoint>, StoreError> {
        endpoints::list(&*self.client().await?, after, limit).await
    }

    async fn append_endpoint_event(
        &self,
        endpoint_id: &str,
        event: NewEvent,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let endpoint_id = endpoint_id.to_owned();
        self.writer
            .write(Kind::Appends, move |c| {
                Box::pin(endpoints::append_for_endpoint(
                    c,
                    endpoint_id.clone(),
                    event.clone(),
                    now_ms,
                ))
            })
            .await
    }
}

#[async_trait]
impl DeliveryStore for PostgresStore {
    async fn pending_deliveries(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        deliveries::pending(&*self.client().await?, after_id, limit).await
    }

    async fn pending_by_ids(&self, ids: Vec<i64>) -> Result<Vec<PendingDelivery>, StoreError> {
        deliveries::pending_by_ids(&*self.client().await?, ids).await
    }

    async fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
    ) -> Result<Vec<Option<String>>, StoreError> {
        self.writer
            .write(Kind::Pipelined, move |c| {
                Box::pin(deliveries::record_attempts(c, records.clone()))
            })
            .await
    }

    async fn list_deliveries(
        &self,
        filter: DeliveryFilter,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        deliveries::list(&*self.client().await?, &filter).await
    }

    async fn get_delivery(
        &self,
        id: i64,
    ) -> Result<Option<(DeliveryRow, Vec<AttemptRow>)>, StoreError> {
        deliveries::get(&*self.client().await?, id).await
    }

    async fn requeue_delivery(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        self.writer
            .write(Kind::Plain, move |c| {
                Box::pin(deliveries::requeue(c, id, now_ms))
            })
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
        // Creates deliveries: under the append lock, like every insert of one.
        self.writer
            .write(Kind::Appends, move |c| {
                Box::pin(deliveries::recover(
                    c,
                    endpoint_id.clone(),
                    since.clone(),
                    event_types.clone(),
                    now_ms,
                ))
            })
            .await
    }

    async fn purge_deliveries(&self, before: &str) -> Result<u64, StoreError> {
        let before = before.to_owned();
        self.prune_in_batches(move |c| Box::pin(deliveries::purge(c, before.clone(), PRUNE_BATCH)))
            .await
    }

    async fn delivery_stats(&self) -> Result<DeliveryStats, StoreError> {
        deliveries::stats(&*self.client().await?).await
    }

    async fn last_attempted(&self, endpoint_id: &str) -> Result<Option<DeliveryRow>, StoreError> {
        deliveries::last_attempted(&*self.client().await?, endpoint_id).await
    }

    async fn attempt_stats(&self, since: &str) -> Result<Vec<AttemptStats>, StoreError> {
        deliveries::attempt_stats(&*self.client().await?, since).await
    }
}

#[async_trait]
impl SecretMetaStore for PostgresStore {
    async fn meta_blob_or_insert(&self, name: &str, value: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let name = name.to_owned();
        self.writer
            .write(Kind::Plain, move |c| {
                let (name, value) = (name.clone(), value.clone());
                Box::pin(async move {
                    conn::execute(
                        c,
                        "INSERT INTO secret_meta (name, value) VALUES ($1, $2)
                         ON CONFLICT (name) DO NOTHING",
                        &[&name, &value],
                    )
                    .await?;
                    let row = conn::query_one(
                        c,
                        "SELECT value FROM secret_meta WHERE name = $1",
                        &[&name],
                    )
                    .await?;
                    Ok(row.get(0))
                })
            })
            .await
    }

    async fn set_meta_blob(&self, name: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.writer
            .write(Kind::Plain, move |c| {
                let (name, value) = (name.clone(), value.clone());
                Box::pin(async move {
                    conn::execute(
                        c,
                        "INSERT INTO secret_meta (name, value) VALUES ($1, $2)
                         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                        &[&name, &value],
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn sealed_rows(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<SealedRow>, StoreError> {
        endpoints::sealed_rows(&*self.client().await?, after, limit).await
    }

    async fn reseal_row(&self, row: SealedRow) -> Result<bool, StoreError> {
        self.writer
            .write(Kind::Plain, move |c| {
                Box::pin(endpoints::reseal_row(c, row.clone()))
            })
            .await
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        self.writer
            .write(Kind::Plain, move |c| {
                Box::pin(audit::append(c, entries.clone()))
            })
            .await
    }

    async fn list_audit(&self, query: AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        audit::list(&*self.client().await?, &query).await
    }

    async fn prune_audit(&self, before: &str) -> Result<u64, StoreError> {
        let before = before.to_owned();
        self.prune_in_batches(move |c| Box::pin(audit::prune(c, before.clone(), PRUNE_BATCH)))
            .await
    }
}

#[async_trait]
impl ClusterStore for PostgresStore {
    fn shared(&self) -> bool {
        true
    }

    fn signals(&self) -> broadcast::Receiver<Signal> {
        self.signals.subscribe()
    }

    async fn heartbeat(&self, process: &str, ttl: Duration) -> Result<Vec<String>, StoreError> {
        cluster::heartbeat(&*self.client().await?, process, ttl).await
    }

    async fn hold_endpoints(
        &self,
        process: &str,
        wanted: Vec<String>,
        ttl: Duration,
    ) -> Result<Vec<String>, StoreError> {
        cluster::hold(&*self.client().await?, process, wanted, ttl).await
    }

    async fn release_endpoints(&self, process: &str) -> Result<(), StoreError> {
        cluster::release_all(&*self.client().await?, process).await
    }

    async fn enabled_endpoints(&self) -> Result<Vec<String>, StoreError> {
        cluster::enabled_endpoints(&*self.client().await?).await
    }

    async fn pending_for_endpoint(
        &self,
        endpoint_id: &str,
        after_id: i64,
        up_to_id: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        deliveries::pending_for_endpoint(
            &*self.client().await?,
            endpoint_id,
            after_id,
            up_to_id,
            limit,
        )
        .await
    }
}

#[async_trait]
impl StoreHealth for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let check = async {
            let c = self.client().await?;
            c.simple_query("SELECT 1").await?;
            Ok(())
        };
        tokio::time::timeout(Duration::from_secs(2), check)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "the database did not answer".into(),
                ))
            })
    }

    async fn diagnostics(&self) -> Result<Diagnostics, StoreError> {
        let (synchronous, fsync) = self.settings.clone();
        Ok(Diagnostics {
            backend: "postgres",
            journal_mode: if fsync == "on" {
                "wal"
            } else {
                "wal-without-fsync"
            }
            .to_owned(),
            synchronous,
            commits: self.writer.stats.commits.load(Ordering::Relaxed),
            writes: self.writer.stats.writes.load(Ordering::Relaxed),
            head_sequence: *self.head.borrow(),
            writer_time: Some(WriterTime {
                statements: Duration::from_micros(
                    self.writer.stats.statement_micros.load(Ordering::Relaxed),
                ),
                commit: Duration::from_micros(
                    self.writer.stats.commit_micros.load(Ordering::Relaxed),
                ),
            }),
        })
    }
}
