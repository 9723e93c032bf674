//! Writes with group commit, as on SQLite, but across processes.
//!
//! Each process has one writer task owning one connection. Concurrent
//! writes queue up while a commit is in flight and are then committed
//! together: one transaction, a savepoint per write when there are several
//! (a failing write is rolled back alone), one COMMIT, and only then is
//! every caller answered.
//!
//! A batch that appends events or creates deliveries first takes the
//! *append lock* (`pg_advisory_xact_lock`, held until COMMIT), so event
//! sequences and delivery ids are handed out and become visible in the same
//! order in every process: a reader following `sequence > cursor` (or the
//! dispatcher following `id > last`) never skips a row that commits later.
//! Before committing, such a batch writes the new head into `store_meta` and
//! announces it with `pg_notify`, delivered to every process at COMMIT.
//!
//! When the connection is lost the batch fails with `Unavailable` (the API
//! answers 503) and the next batch takes a fresh connection from the pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::{ClientWrapper, Object, Pool};
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::SimpleQueryMessage;

use super::conn;
use crate::store::StoreError;

pub const MAX_BATCH: usize = 256;
const QUEUE_DEPTH: usize = 8192;
/// The advisory lock key that serializes appends (any fixed number).
pub const APPEND_LOCK: i64 = 0x6368_6172_7477;
/// The channel every process listens on.
pub const CHANNEL: &str = "chartwire";

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// Runs one write; returns its completion and whether the write succeeded.
type Run =
    Box<dyn for<'c> FnOnce(&'c ClientWrapper, bool) -> BoxFuture<'c, (Completion, bool)> + Send>;

struct Job {
    appends: bool,
    run: Run,
}

/// Counters the writer keeps, read by diagnostics and metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
}

#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
    pub stats: Arc<WriterStats>,
}

/// Whether a write appends to the event log or creates deliveries (and so
/// must hold the append lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Appends,
    Plain,
}

impl Writer {
    pub fn start(pool: Pool, head: watch::Sender<i64>) -> Writer {
        let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(WriterStats::default());
        tokio::spawn(run(pool, jobs, head, stats.clone()));
        Writer { queue, stats }
    }

    /// Run `work` in the next batch; resolves once the batch has committed.
    pub async fn write<T, F>(&self, kind: Kind, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c ClientWrapper) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let run: Run = Box::new(move |c: &ClientWrapper, savepoint: bool| {
            Box::pin(async move {
                let outcome = if savepoint {
                    in_savepoint(c, work).await
                } else {
                    work(c).await
                };
                let ok = outcome.is_ok();
                let completion = Box::new(move |commit: Result<(), StoreError>| {
                    let result = match (commit, outcome) {
                        (_, Err(err)) => Err(err),
                        (Err(err), Ok(_)) => Err(err),
                        (Ok(()), Ok(value)) => Ok(value),
                    };
                    let _ = reply.send(result);
                }) as Completion;
                (completion, ok)
            })
        });
        let job = Job {
            appends: kind == Kind::Appends,
            run,
        };
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the database connection failed before the commit".into())
        })?
    }
}

async fn in_savepoint<'c, T, F>(c: &'c ClientWrapper, work: F) -> Result<T, StoreError>
where
    F: FnOnce(&'c ClientWrapper) -> BoxFuture<'c, Result<T, StoreError>>,
{
    c.batch_execute("SAVEPOINT write").await?;
    match work(c).await {
        Ok(value) => {
            c.batch_execute("RELEASE write").await?;
            Ok(value)
        }
        Err(err) => {
            c.batch_execute("ROLLBACK TO write; RELEASE write").await?;
            Err(err)
        }
    }
}

async fn run(
    pool: Pool,
    mut jobs: mpsc::Receiver<Job>,
    head: watch::Sender<i64>,
    stats: Arc<WriterStats>,
) {
    let mut connection: Option<Object> = None;
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if connection.as_ref().is_none_or(|c| c.is_closed()) {
            match conn::get(&pool).await {
                Ok(c) => connection = Some(c),
                Err(err) => {
                    tracing::warn!(error = %err, "the writer has no database connection");
                    // Dropping the jobs answers every caller `Unavailable`.
                    batch.clear();
                    connection = None;
                    continue;
                }
            }
        }
        let c = connection.as_ref().expect("connected above");
        let count = batch.len() as u64;
        let (completions, commit) = commit_batch(c, batch.drain(..)).await;
        match &commit {
            Ok(Some(sequence)) => {
                head.send_if_modified(|current| {
                    let moved = *sequence > *current;
                    if moved {
                        *current = *sequence;
                    }
                    moved
                });
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %err, "a write batch failed to commit");
                if conn::lost_connection(err) {
                    connection = None;
                }
            }
        }
        if commit.is_ok() {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats.writes.fetch_add(count, Ordering::Relaxed);
        }
        for completion in completions {
            let outcome = match &commit {
                Ok(_) => Ok(()),
                Err(err) => Err(StoreError::Unavailable(err.to_string())),
            };
            completion(outcome);
        }
    }
}

/// Run one batch; returns each job's completion and, on success, the new
/// head sequence when the batch appended.
async fn commit_batch(
    c: &ClientWrapper,
    batch: impl Iterator<Item = Job>,
) -> (Vec<Completion>, Result<Option<i64>, StoreError>) {
    let jobs: Vec<Job> = batch.collect();
    let appends = jobs.iter().any(|job| job.appends);
    let begin = if appends {
        format!("BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK})")
    } else {
        "BEGIN".to_owned()
    };
    if let Err(err) = c.batch_execute(&begin).await {
        return (Vec::new(), Err(err.into()));
    }
    // A write alone in its batch runs without a savepoint (two round trips
    // fewer); if it fails, the whole transaction is rolled back.
    let alone = jobs.len() == 1;
    let mut completions = Vec::with_capacity(jobs.len());
    let mut all_ok = true;
    for job in jobs {
        let (completion, ok) = (job.run)(c, !alone).await;
        all_ok &= ok;
        completions.push(completion);
    }
    if alone && !all_ok {
        // The caller gets its own error; nothing was written.
        let _ = c.batch_execute("ROLLBACK").await;
        return (completions, Ok(None));
    }
    let result = finish(c, appends).await;
    if result.is_err() && !c.is_closed() {
        let _ = c.batch_execute("ROLLBACK").await;
    }
    (completions, result)
}

/// Publish the head (when the batch appended) and commit, in one round trip.
async fn finish(c: &ClientWrapper, appends: bool) -> Result<Option<i64>, StoreError> {
    if !appends {
        c.batch_execute("COMMIT").await?;
        return Ok(None);
    }
    let sql = format!(
        "WITH u AS (UPDATE store_meta SET value = GREATEST(value,
                        (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM event_sequences))
                    WHERE name = 'events_head' RETURNING value)
         SELECT value, pg_notify('{CHANNEL}', 'h:' || value) FROM u;
         COMMIT"
    );
    let messages = c.simple_query(&sql).await?;
    let head = messages.iter().find_map(|message| match message {
        SimpleQueryMessage::Row(row) => row.get(0).and_then(|v| v.parse::<i64>().ok()),
        _ => None,
    });
    Ok(head)
}
