//! The single writer with group commit.
//!
//! SQLite allows one writer at a time, and one durable commit costs an fsync.
//! Every write is sent to one thread that owns the only writing connection.
//! While a commit is being flushed, new writes queue up; the thread then takes
//! everything queued (up to [`MAX_BATCH`]) into one `BEGIN IMMEDIATE`
//! transaction, runs each write inside its own savepoint so that a failing
//! write is rolled back alone, commits once, and only then answers every
//! caller. Many writes, one fsync, nobody answered before their data is on disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, watch};

use crate::store::StoreError;

/// The most writes committed together.
pub const MAX_BATCH: usize = 512;
const QUEUE_DEPTH: usize = 8192;

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;

/// Counters the writer keeps, read by diagnostics and metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
}

/// Handle to the writer thread. Cloning shares the same thread.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
    pub stats: Arc<WriterStats>,
}

impl Writer {
    /// Start the writer thread on `conn`; `head` is published after each
    /// commit with the highest event sequence.
    pub fn start(conn: Connection, head: watch::Sender<i64>) -> Writer {
        let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(WriterStats::default());
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("chartwire-sqlite-writer".into())
            .spawn(move || run(conn, jobs, head, thread_stats))
            .expect("spawning the SQLite writer thread");
        Writer { queue, stats }
    }

    /// Run `work` inside the next batch; resolves once the batch is durable.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let outcome = in_savepoint(conn, work);
            Box::new(move |commit: Result<(), StoreError>| {
                let result = match (commit, outcome) {
                    (_, Err(err)) => Err(err),
                    (Err(err), Ok(_)) => Err(err),
                    (Ok(()), Ok(value)) => Ok(value),
                };
                let _ = reply.send(result);
            })
        });
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the writer stopped before answering".into()))?
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Cached statements: these run for every write, so they are parsed once.
    conn.prepare_cached("SAVEPOINT write")?.execute([])?;
    match work(conn) {
        Ok(value) => {
            conn.prepare_cached("RELEASE write")?.execute([])?;
            Ok(value)
        }
        Err(err) => {
            conn.prepare_cached("ROLLBACK TO write")?.execute([])?;
            conn.prepare_cached("RELEASE write")?.execute([])?;
            Err(err)
        }
    }
}

fn run(
    conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    head: watch::Sender<i64>,
    stats: Arc<WriterStats>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let count = batch.len() as u64;
        let (completions, commit) = commit_batch(&conn, batch.drain(..));
        match &commit {
            Ok(sequence) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.writes.fetch_add(count, Ordering::Relaxed);
                head.send_if_modified(|current| {
                    let moved = *sequence > *current;
                    if moved {
                        *current = *sequence;
                    }
                    moved
                });
            }
            Err(err) => tracing::error!(error = %err, "a write batch failed to commit"),
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

/// Run one batch; returns each job's completion and, on success, the highest
/// event sequence after the commit.
fn commit_batch(
    conn: &Connection,
    batch: impl Iterator<Item = Job>,
) -> (Vec<Completion>, Result<i64, StoreError>) {
    let jobs: Vec<Job> = batch.collect();
    if let Err(err) = conn.execute_batch("BEGIN IMMEDIATE") {
        // The jobs never ran; dropping them drops their reply channels, so
        // every caller is told the store is unavailable.
        drop(jobs);
        return (Vec::new(), Err(err.into()));
    }
    let completions: Vec<Completion> = jobs.into_iter().map(|job| job(conn)).collect();
    let sequence = conn
        .query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map_err(StoreError::from);
    let committed = sequence.and_then(|seq| {
        conn.execute_batch("COMMIT")
            .map(|_| seq)
            .map_err(StoreError::from)
    });
    if committed.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    (completions, committed)
}
