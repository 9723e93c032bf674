//! One worker per endpoint: its queue, retries, `max_in_flight`, rate limit
//! and per-record ordering. Workers are independent, so a slow or dead
//! endpoint never delays another.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::Shared;
use super::sender::{self, Sent};
use crate::events;
use crate::ids;
use crate::store::webhooks::{AttemptOutcome, AttemptRecord};
use crate::webhooks::endpoint::{OpenedEndpoint, Stop};

/// One delivery waiting to be sent.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub delivery_id: i64,
    pub event_id: String,
    pub record_key: Option<String>,
    /// Attempts already made.
    pub attempts: i64,
    pub due_ms: i64,
    pub body: Bytes,
}

enum Msg {
    Job(Job),
    Expired(i64),
    Configure,
    Stop,
}

type Config = Arc<RwLock<Option<Arc<OpenedEndpoint>>>>;

pub(crate) struct WorkerHandle {
    tx: mpsc::UnboundedSender<Msg>,
    config: Config,
}

impl WorkerHandle {
    pub fn push(&self, job: Job) {
        let _ = self.tx.send(Msg::Job(job));
    }

    pub fn expired(&self, delivery_id: i64) {
        let _ = self.tx.send(Msg::Expired(delivery_id));
    }

    pub fn configure(&self, endpoint: Arc<OpenedEndpoint>) {
        *self.config.write().expect("worker config lock") = Some(endpoint);
        let _ = self.tx.send(Msg::Configure);
    }

    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }

    pub fn ids_only(&self) -> bool {
        self.config
            .read()
            .expect("worker config lock")
            .as_ref()
            .is_some_and(|c| c.stored.content == "ids")
    }
}

/// What an attempt task reports back.
struct Done {
    job: Job,
    /// When to try again; `None` when the delivery is finished.
    retry_at: Option<i64>,
}

pub(crate) fn spawn(
    id: String,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> WorkerHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let config: Config = Arc::new(RwLock::new(None));
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let worker = Worker {
        id,
        shared,
        config: config.clone(),
        done_tx,
        ready: VecDeque::new(),
        delayed: BinaryHeap::new(),
        delayed_jobs: HashMap::new(),
        known: HashSet::new(),
        busy_records: HashSet::new(),
        blocked: HashMap::new(),
        in_flight: 0,
        running: JoinSet::new(),
        next_send: Instant::now(),
    };
    tokio::spawn(worker.run(rx, done_rx, shutdown));
    WorkerHandle { tx, config }
}

struct Worker {
    id: String,
    shared: Arc<Shared>,
    config: Config,
    done_tx: mpsc::UnboundedSender<Done>,
    ready: VecDeque<Job>,
    delayed: BinaryHeap<Reverse<(i64, i64)>>,
    delayed_jobs: HashMap<i64, Job>,
    /// Every delivery this worker holds, in any state (including in flight).
    known: HashSet<i64>,
    busy_records: HashSet<String>,
    blocked: HashMap<String, VecDeque<Job>>,
    in_flight: usize,
    /// The attempts in flight: aborted when the worker is told to stop (its
    /// lease is lost or the endpoint deleted), so no attempt outlives the
    /// lease and overlaps another process's attempt of the same delivery.
    running: JoinSet<()>,
    next_send: Instant,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Worker {
    fn endpoint(&self) -> Option<Arc<OpenedEndpoint>> {
        self.config.read().expect("worker config lock").clone()
    }

    fn active(&self) -> bool {
        self.endpoint()
            .is_some_and(|e| e.stored.status == "enabled")
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        mut done_rx: mpsc::UnboundedReceiver<Done>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            self.promote_due();
            let rate_wait = self.launch();
            let wake = self.next_wake(rate_wait);
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Job(job)) => self.accept(job),
                    Some(Msg::Expired(id)) => self.expire(id),
                    Some(Msg::Configure) => self.reconfigured(),
                    Some(Msg::Stop) | None => {
                        // Cut short: the deliveries stay pending in the store.
                        self.running.abort_all();
                        return;
                    }
                },
                Some(done) = done_rx.recv() => self.finish(done),
                _ = tokio::time::sleep_until(wake.into()) => {}
                _ = super::stopped(&mut shutdown) => {
                    // Shutting down: attempts in flight finish and are recorded.
                    self.running.detach_all();
                    return;
                }
            }
        }
    }

    fn next_wake(&self, rate_wait: Option<Instant>) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let retry = self.delayed.peek().map(|Reverse((due, _))| {
            let wait = (*due - now_ms()).max(0) as u64;
            Instant::now() + Duration::from_millis(wait)
        });
        [rate_wait, retry]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(far)
    }

    fn accept(&mut self, mut job: Job) {
        if self.known.contains(&job.delivery_id) {
            // Asked again (a manual retry): a waiting retry goes now.
            if let Some(mut waiting) = self.delayed_jobs.remove(&job.delivery_id) {
                waiting.due_ms = now_ms();
                self.ready.push_back(waiting);
            }
            return;
        }
        if !self.active() {
            return;
        }
        self.known.insert(job.delivery_id);
        let per_record = self
            .endpoint()
            .is_some_and(|e| e.stored.ordering == "per_record");
        if per_record && let Some(key) = job.record_key.clone() {
            if self.busy_records.contains(&key) {
                self.blocked.entry(key).or_default().push_back(job);
                return;
            }
            self.busy_records.insert(key);
        }
        job.due_ms = job.due_ms.max(0);
        self.schedule(job);
    }

    fn schedule(&mut self, job: Job) {
        if job.due_ms <= now_ms() {
            self.ready.push_back(job);
        } else {
            self.delayed.push(Reverse((job.due_ms, job.delivery_id)));
            self.delayed_jobs.insert(job.delivery_id, job);
        }
    }

    fn promote_due(&mut self) {
        let now = now_ms();
        while let Some(Reverse((due, id))) = self.delayed.peek().copied() {
            if due > now {
                break;
            }
            self.delayed.pop();
            if let Some(job) = self.delayed_jobs.remove(&id) {
                self.ready.push_back(job);
            }
        }
    }

    /// Start attempts while limits allow; returns when the rate limit next
    /// lets one go, if it is what holds the queue back.
    fn launch(&mut self) -> Option<Instant> {
        let endpoint = self.endpoint()?;
        if endpoint.stored.status != "enabled" {
            return None;
        }
        let max = endpoint.stored.max_in_flight.max(1) as usize;
        let interval = endpoint
            .stored
            .rate_limit_per_second
            .map(|r| Duration::from_secs_f64(1.0 / r.max(1) as f64));
        while self.in_flight < max && !self.ready.is_empty() {
            let now = Instant::now();
            if let Some(interval) = interval {
                if self.next_send > now {
                    return Some(self.next_send);
                }
                self.next_send = self.next_send.max(now) + interval;
            }
            let job = self.ready.pop_front().expect("not empty");
            self.in_flight += 1;
            self.shared.metrics.in_flight(&self.id, 1);
            self.running.spawn(attempt(
                self.shared.clone(),
                endpoint.clone(),
                job,
                self.done_tx.clone(),
            ));
        }
        None
    }

    fn finish(&mut self, done: Done) {
        // Reap finished attempt tasks so the set holds only running ones.
        while self.running.try_join_next().is_some() {}
        self.in_flight -= 1;
        self.shared.metrics.in_flight(&self.id, -1);
        let mut job = done.job;
        if let Some(at) = done.retry_at
            && self.active()
        {
            job.attempts += 1;
            job.due_ms = at;
            self.schedule(job);
            return;
        }
        self.known.remove(&job.delivery_id);
        if let Some(key) = job.record_key {
            let next = self.blocked.get_mut(&key).and_then(VecDeque::pop_front);
            match next {
                Some(next) => self.schedule(next),
                None => {
                    self.blocked.remove(&key);
                    self.busy_records.remove(&key);
                }
            }
        }
    }

    /// The endpoint was disabled: drop everything queued (the store already
    /// marked those deliveries failed); attempts in flight finish.
    fn reconfigured(&mut self) {
        if self.active() {
            return;
        }
        for job in self.ready.drain(..) {
            self.known.remove(&job.delivery_id);
        }
        for (id, _) in self.delayed_jobs.drain() {
            self.known.remove(&id);
        }
        self.delayed.clear();
        for (_, jobs) in self.blocked.drain() {
            for job in jobs {
                self.known.remove(&job.delivery_id);
            }
        }
        self.busy_records.clear();
    }

    fn expire(&mut self, delivery_id: i64) {
        let shared = self.shared.clone();
        let endpoint_id = self.id.clone();
        tokio::spawn(async move {
            let record = AttemptRecord {
                delivery_id,
                endpoint_id,
                attempted_at: ids::now_text(),
                duration_ms: 0.0,
                http_status: None,
                error_kind: Some("event_expired".into()),
                response_snippet: None,
                outcome: AttemptOutcome::Failed {
                    reason: "event_expired".into(),
                },
            };
            shared.recorder.record(record).await;
        });
    }
}

/// Send once, record the outcome, apply 410 and auto-disable, report back
/// (a success is reported back before its record commits).
async fn attempt(
    shared: Arc<Shared>,
    endpoint: Arc<OpenedEndpoint>,
    job: Job,
    done: mpsc::UnboundedSender<Done>,
) {
    let attempted_at = ids::now_text();
    let started = Instant::now();
    let sent = sender::send(&shared, &endpoint, &job).await;
    let elapsed = started.elapsed();
    let succeeded = sent.succeeded();
    shared.metrics.attempt(elapsed, succeeded);
    let made = (job.attempts + 1) as usize;
    let gone = sent.http_status == Some(410);
    let outcome = if succeeded {
        AttemptOutcome::Succeeded
    } else if gone {
        AttemptOutcome::Failed {
            reason: "gone".into(),
        }
    } else {
        match shared.config.schedule.next_delay(made) {
            Some(delay) => {
                let delay = retry_delay(delay, &sent);
                AttemptOutcome::Retry {
                    at: now_ms() + delay.as_millis() as i64,
                }
            }
            None => AttemptOutcome::Failed {
                reason: "retries_exhausted".into(),
            },
        }
    };
    let retry_at = match &outcome {
        AttemptOutcome::Retry { at } => Some(*at),
        _ => None,
    };
    if let AttemptOutcome::Failed { .. } = outcome {
        shared.metrics.finished(false);
    } else if succeeded {
        shared.metrics.finished(true);
    }
    let record = AttemptRecord {
        delivery_id: job.delivery_id,
        endpoint_id: endpoint.stored.id.clone(),
        attempted_at,
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        http_status: sent.http_status.map(i64::from),
        error_kind: sent.error_kind.map(str::to_owned),
        response_snippet: sent.snippet.clone(),
        outcome,
    };
    // Nothing below depends on the record once the endpoint said yes: free
    // the slot now instead of after the commit, so a database with slower
    // commits does not throttle sending (up to a bound of unrecorded
    // successes per process). Until the record commits the delivery stays
    // pending in the store; after a crash, or a lease moving, it is sent
    // again, never lost.
    let unrecorded = succeeded
        .then(|| shared.unrecorded.clone().try_acquire_owned().ok())
        .flatten();
    if let Some(_permit) = unrecorded {
        let _ = done.send(Done {
            job,
            retry_at: None,
        });
        shared.recorder.record(record).await;
        return;
    }
    let failing_since = shared.recorder.record(record).await;
    if gone {
        stop(&shared, &endpoint.stored.id, Stop::Gone).await;
    } else if !succeeded && failing_too_long(&shared, failing_since.as_deref()) {
        stop(&shared, &endpoint.stored.id, Stop::Automatic).await;
    }
    let _ = done.send(Done { job, retry_at });
}

/// The schedule's delay, or the listener's `Retry-After` (at most an hour)
/// when it asked for longer.
fn retry_delay(scheduled: Duration, sent: &Sent) -> Duration {
    match sent.retry_after {
        Some(asked) => scheduled.max(asked.min(Duration::from_secs(3600))),
        None => scheduled,
    }
}

fn failing_too_long(shared: &Shared, since: Option<&str>) -> bool {
    let Some(since) = since.and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()) else {
        return false;
    };
    let failing_for = chrono::Utc::now().signed_duration_since(since);
    failing_for
        .to_std()
        .is_ok_and(|d| d >= shared.config.auto_disable_after)
}

async fn stop(shared: &Shared, endpoint_id: &str, why: Stop) {
    if let Err(err) = shared
        .endpoints
        .stop(endpoint_id, why, &events::system_actor())
        .await
    {
        tracing::warn!(endpoint_id, error = %err, "could not disable an endpoint");
    }
}
