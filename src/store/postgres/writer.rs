//! Writes with group commit, as on SQLite, but across processes.
//!
//! Each process has one writer task owning one connection. Concurrent
//! writes queue up while a commit is in flight and are then committed
//! together in one transaction with one COMMIT; only then is every caller
//! answered. Round trips are what a write costs here, so writes made of a
//! single statement (every record write) are *pipelined*: all of them are
//! sent at once and the writer waits once. The server runs them one after
//! the other, exactly as if they had been sent one by one.
//!
//! A write that refuses (version conflict, missing reference, …) does so
//! before it changes anything and raises no SQL error, so it leaves the
//! batch intact. When a statement fails all the same, the batch is rolled
//! back and every write in it is run again in a transaction of its own, so
//! the failing one fails alone.
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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use deadpool_postgres::{ClientWrapper, Object, Pool};
use futures_util::future::{BoxFuture, join_all};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::SimpleQueryMessage;

use super::{conn, records};
use crate::store::{RecordWrite, StoreError};

pub const MAX_BATCH: usize = 256;
const QUEUE_DEPTH: usize = 8192;
/// The advisory lock key that serializes appends (any fixed number).
pub const APPEND_LOCK: i64 = 0x6368_6172_7477;
/// The channel every process listens on.
pub const CHANNEL: &str = "chartwire";

/// How one run of a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Done,
    /// Refused before changing anything (the caller gets its error).
    Refused,
    /// A statement failed: the transaction is aborted.
    Failed,
}

type Attempt = Box<dyn for<'c> FnMut(&'c ClientWrapper) -> BoxFuture<'c, Ran> + Send>;
type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

struct Job {
    kind: Kind,
    attempt: Attempt,
    finish: Finish,
}

/// A record create: a batch's creates run together as one statement.
struct Create {
    write: RecordWrite,
    reply: oneshot::Sender<Result<Vec<i64>, StoreError>>,
}

enum Work {
    Job(Job),
    Create(Create),
}

/// What a batch's creates came to: each create's own result, or `None`
/// when their statement failed (the transaction is aborted).
type Created = Option<Vec<Result<Vec<i64>, StoreError>>>;

/// Counters the writer keeps, read by diagnostics and metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
    /// Time in the first flight of a batch (BEGIN, append lock, statements).
    pub statement_micros: AtomicU64,
    /// Time in the last flight (head, notify, COMMIT).
    pub commit_micros: AtomicU64,
}

fn add_elapsed(counter: &AtomicU64, since: std::time::Instant) {
    counter.fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
}

#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Work>,
    pub stats: Arc<WriterStats>,
}

/// What a write does, which decides how it is batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One statement that may append events or create deliveries:
    /// pipelined with the others, under the append lock.
    Statement,
    /// Several statements that append events or create deliveries.
    Appends,
    /// Several statements that do neither.
    Plain,
    /// Statements that neither append nor read what another write of the
    /// batch changes (recording attempt outcomes): pipelined with the
    /// batch's single statements; they need no append lock of their own.
    Pipelined,
}

impl Kind {
    fn appends(self) -> bool {
        matches!(self, Kind::Statement | Kind::Appends)
    }
}

impl Writer {
    pub fn start(pool: Pool, head: watch::Sender<i64>) -> Writer {
        let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(WriterStats::default());
        tokio::spawn(run(pool, jobs, head, stats.clone()));
        Writer { queue, stats }
    }

    /// Create a record (with its events) in the next batch, together with
    /// the batch's other creates; resolves once the batch has committed.
    pub async fn create(&self, write: RecordWrite) -> Result<Vec<i64>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Work::Create(Create { write, reply }))
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the database connection failed before the commit".into())
        })?
    }

    /// Run `work` in the next batch; resolves once the batch has committed.
    /// `work` may run twice (see the module's documentation); only the
    /// outcome of the run that counts is returned.
    pub async fn write<T, F>(&self, kind: Kind, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c ClientWrapper) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + Sync
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let slot: Arc<Mutex<Option<Result<T, StoreError>>>> = Arc::new(Mutex::new(None));
        let work = Arc::new(work);
        let written = slot.clone();
        let attempt: Attempt = Box::new(move |c: &ClientWrapper| {
            let (work, written) = (work.clone(), written.clone());
            Box::pin(async move {
                let outcome = work(c).await;
                let ran = match &outcome {
                    Ok(_) => Ran::Done,
                    Err(StoreError::Backend(_) | StoreError::Unavailable(_)) => Ran::Failed,
                    Err(_) => Ran::Refused,
                };
                *written.lock().expect("write slot") = Some(outcome);
                ran
            })
        });
        let finish: Finish = Box::new(move |commit: Result<(), StoreError>| {
            let outcome = slot.lock().expect("write slot").take();
            let result = match (commit, outcome) {
                (_, Some(Err(err))) => Err(err),
                (Err(err), _) => Err(err),
                (Ok(()), Some(Ok(value))) => Ok(value),
                (Ok(()), None) => Err(StoreError::Backend("a write never ran".into())),
            };
            let _ = reply.send(result);
        });
        let job = Job {
            kind,
            attempt,
            finish,
        };
        self.queue
            .send(Work::Job(job))
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the database connection failed before the commit".into())
        })?
    }
}

async fn run(
    pool: Pool,
    mut queue: mpsc::Receiver<Work>,
    head: watch::Sender<i64>,
    stats: Arc<WriterStats>,
) {
    let mut connection: Option<Object> = None;
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut creates: Vec<Create> = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        while let Some(work) = next.take() {
            match work {
                Work::Job(job) => batch.push(job),
                Work::Create(create) => creates.push(create),
            }
            if batch.len() + creates.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if connection.as_ref().is_none_or(|c| c.is_closed()) {
            match writer_connection(&pool).await {
                Ok(c) => connection = Some(c),
                Err(err) => {
                    tracing::warn!(error = %err, "the writer has no database connection");
                    for job in batch.drain(..) {
                        (job.finish)(Err(err_copy(&err)));
                    }
                    for create in creates.drain(..) {
                        let _ = create.reply.send(Err(err_copy(&err)));
                    }
                    connection = None;
                    continue;
                }
            }
        }
        let c = connection.as_ref().expect("connected above");
        let count = (batch.len() + creates.len()) as u64;
        let commits = commit_batch(
            c,
            std::mem::take(&mut batch),
            std::mem::take(&mut creates),
            &head,
            &stats,
        )
        .await;
        if c.is_closed() {
            connection = None;
        }
        stats.commits.fetch_add(commits, Ordering::Relaxed);
        stats.writes.fetch_add(count, Ordering::Relaxed);
    }
}

/// A connection for the writer, which keeps it until it closes (it never
/// goes back to the readers). Its statements run with generic plans: they
/// are the same few statements every time, and planning a record write
/// anew (which PostgreSQL's heuristics choose once endpoints subscribe)
/// costs more than executing it.
async fn writer_connection(pool: &Pool) -> Result<Object, StoreError> {
    let c = conn::get(pool).await?;
    c.batch_execute("SET plan_cache_mode = force_generic_plan")
        .await?;
    Ok(c)
}

fn err_copy(err: &StoreError) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

/// Commit `jobs` and `creates` together, or — if a statement failed — each
/// on its own. Every write is answered; returns how many transactions
/// committed.
async fn commit_batch(
    c: &ClientWrapper,
    mut jobs: Vec<Job>,
    creates: Vec<Create>,
    head: &watch::Sender<i64>,
    stats: &WriterStats,
) -> u64 {
    let appends = !creates.is_empty() || jobs.iter().any(|job| job.kind.appends());
    let started = std::time::Instant::now();
    let ran = run_together(c, &mut jobs, &creates, appends).await;
    add_elapsed(&stats.statement_micros, started);
    let outcome = match ran {
        Ok(Some(created)) => {
            let committing = std::time::Instant::now();
            let finished = finish(c, appends).await;
            add_elapsed(&stats.commit_micros, committing);
            finished.map(|sequence| (sequence, created))
        }
        Ok(None) => Err(None),
        Err(err) => Err(Some(err)),
    };
    match outcome {
        Ok((sequence, created)) => {
            publish(head, sequence);
            for job in jobs {
                (job.finish)(Ok(()));
            }
            for (create, result) in creates.into_iter().zip(created) {
                let _ = create.reply.send(result);
            }
            1
        }
        Err(err) => {
            if !c.is_closed() {
                let _ = c.batch_execute("ROLLBACK").await;
            }
            match err {
                // A statement failed: run every write alone, so only the
                // failing one fails. A lone job that failed already holds
                // its own error; creates are re-run to get theirs.
                None if !c.is_closed() => {
                    let alone = jobs.len() + creates.len() > 1;
                    let mut commits = 0;
                    for job in jobs {
                        if alone {
                            commits += commit_alone(c, job, head).await;
                        } else {
                            (job.finish)(Ok(()));
                        }
                    }
                    for create in creates {
                        commits += create_alone(c, create, head).await;
                    }
                    commits
                }
                other => {
                    let err = other.unwrap_or_else(|| {
                        StoreError::Unavailable("the connection was closed".into())
                    });
                    tracing::warn!(error = %err, "a write batch failed to commit");
                    for job in jobs {
                        (job.finish)(Err(err_copy(&err)));
                    }
                    for create in creates {
                        let _ = create.reply.send(Err(err_copy(&err)));
                    }
                    0
                }
            }
        }
    }
}

/// BEGIN, then every write: the creates as one statement and the other
/// single statements pipelined with it, then the rest one by one.
/// `Ok(None)` when a statement failed.
async fn run_together(
    c: &ClientWrapper,
    jobs: &mut [Job],
    creates: &[Create],
    appends: bool,
) -> Result<Created, StoreError> {
    let (statements, others): (Vec<&mut Job>, Vec<&mut Job>) = jobs
        .iter_mut()
        .partition(|job| matches!(job.kind, Kind::Statement | Kind::Pipelined));
    let writes: Vec<&RecordWrite> = creates.iter().map(|create| &create.write).collect();
    // BEGIN goes out first, in the same flight as the statements.
    let (begun, mut ran, created) = futures_util::future::join3(
        begin(c, appends),
        join_all(statements.into_iter().map(|job| (job.attempt)(c))),
        async {
            if writes.is_empty() {
                Ok(Vec::new())
            } else {
                records::create_many(c, &writes).await
            }
        },
    )
    .await;
    begun?;
    for job in others {
        ran.push((job.attempt)(c).await);
    }
    let created = created.ok();
    Ok(created.filter(|_| ran.iter().all(|r| *r != Ran::Failed)))
}

/// One create in a transaction of its own.
async fn create_alone(c: &ClientWrapper, create: Create, head: &watch::Sender<i64>) -> u64 {
    let outcome = async {
        begin(c, true).await?;
        let mut created = records::create_many(c, &[&create.write]).await?;
        let result = created
            .pop()
            .unwrap_or_else(|| Err(StoreError::Backend("a create lost its row".into())));
        let sequence = finish(c, true).await.map_err(|err| {
            err.unwrap_or_else(|| StoreError::Unavailable("the connection was closed".into()))
        })?;
        Ok::<_, StoreError>((sequence, result))
    }
    .await;
    match outcome {
        Ok((sequence, result)) => {
            publish(head, sequence);
            let _ = create.reply.send(result);
            1
        }
        Err(err) => {
            if !c.is_closed() {
                let _ = c.batch_execute("ROLLBACK").await;
            }
            let _ = create.reply.send(Err(err));
            0
        }
    }
}

async fn commit_alone(c: &ClientWrapper, mut job: Job, head: &watch::Sender<i64>) -> u64 {
    let appends = job.kind.appends();
    let outcome = match begin(c, appends).await {
        Err(err) => Err(Some(err)),
        Ok(()) => match (job.attempt)(c).await {
            Ran::Failed => Err(None),
            _ => finish(c, appends).await,
        },
    };
    match outcome {
        Ok(sequence) => {
            publish(head, sequence);
            (job.finish)(Ok(()));
            1
        }
        Err(err) => {
            if !c.is_closed() {
                let _ = c.batch_execute("ROLLBACK").await;
            }
            // Without an error of the batch's own, the write's error stands.
            (job.finish)(err.map_or(Ok(()), |err| Err(err_copy(&err))));
            0
        }
    }
}

async fn begin(c: &ClientWrapper, appends: bool) -> Result<(), StoreError> {
    let begin = if appends {
        format!("BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK})")
    } else {
        "BEGIN".to_owned()
    };
    Ok(c.batch_execute(&begin).await?)
}

/// Publish the head (when the batch appended) and commit, in one round trip.
async fn finish(c: &ClientWrapper, appends: bool) -> Result<Option<i64>, Option<StoreError>> {
    if !appends {
        c.batch_execute("COMMIT")
            .await
            .map_err(|err| Some(err.into()))?;
        return Ok(None);
    }
    let sql = format!(
        "WITH u AS (UPDATE store_meta SET value = GREATEST(value,
                        (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM event_sequences))
                    WHERE name = 'events_head' RETURNING value)
         SELECT value, pg_notify('{CHANNEL}', 'h:' || value) FROM u;
         COMMIT"
    );
    let messages = c.simple_query(&sql).await.map_err(|err| Some(err.into()))?;
    Ok(messages.iter().find_map(|message| match message {
        SimpleQueryMessage::Row(row) => row.get(0).and_then(|v| v.parse::<i64>().ok()),
        _ => None,
    }))
}

fn publish(head: &watch::Sender<i64>, sequence: Option<i64>) {
    if let Some(sequence) = sequence {
        head.send_if_modified(|current| {
            let moved = sequence > *current;
            if moved {
                *current = sequence;
            }
            moved
        });
    }
}
