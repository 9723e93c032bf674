//! The dispatcher: turns pending deliveries into HTTP requests.
//!
//! The *intake* task follows the deliveries table by id. It wakes when the
//! commit path publishes a new event sequence (no polling interval), when an
//! endpoint changes, and when deliveries are re-queued; it loads the new
//! pending deliveries with their events, renders each event body once, and
//! hands every delivery to its endpoint's *worker* ([`worker`]). At start it
//! loads everything still pending, so whatever was in flight when the
//! process died is sent again (same `webhook-id`).
//!
//! On SQLite one process sends everything, so claims live in memory: no
//! second fsync stands between the commit and the send. On PostgreSQL
//! several processes share the work by endpoint ([`leases`]): the intake
//! hands a process's workers only the deliveries of endpoints whose lease it
//! holds, loads an endpoint's pending deliveries when it takes the lease
//! over, and learns of other processes' changes from the store's signals.

mod leases;
mod metrics;
mod recorder;
mod sender;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, Semaphore, broadcast, mpsc, watch};

use super::address::AddressPolicy;
use super::endpoint::EndpointService;
use super::schedule::RetrySchedule;
use crate::events;
use crate::store::Signal;
use crate::store::webhooks::PendingDelivery;
use crate::store::{Store, StoredEvent};
pub use leases::{LeaseSettings, preferred};
pub use metrics::DeliveryMetrics;
use worker::{Job, WorkerHandle};

const INTAKE_BATCH: usize = 1000;

enum Command {
    EndpointChanged(String),
    Enqueue(Vec<i64>),
    Wake,
    /// This process now holds these endpoints' leases.
    Acquired(Vec<String>),
    /// This process no longer holds these endpoints' leases.
    Lost(Vec<String>),
}

/// How the rest of chartwire talks to the dispatcher. Cheap to clone; when
/// no dispatcher runs (tools), messages are dropped.
#[derive(Clone)]
pub struct DispatcherHandle {
    tx: mpsc::UnboundedSender<Command>,
}

pub struct Inbox(mpsc::UnboundedReceiver<Command>);

pub fn channel() -> (DispatcherHandle, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    (DispatcherHandle { tx }, Inbox(rx))
}

impl DispatcherHandle {
    pub fn endpoint_changed(&self, id: &str) {
        let _ = self.tx.send(Command::EndpointChanged(id.to_owned()));
    }

    pub fn enqueue(&self, ids: Vec<i64>) {
        let _ = self.tx.send(Command::Enqueue(ids));
    }

    pub fn wake(&self) {
        let _ = self.tx.send(Command::Wake);
    }
}

/// Settings of the delivery engine.
#[derive(Clone)]
pub struct DispatchConfig {
    pub schedule: RetrySchedule,
    pub timeout: Duration,
    pub auto_disable_after: Duration,
    pub policy: AddressPolicy,
    /// The source address of outgoing connections, when fixed.
    pub egress_bind: Option<std::net::IpAddr>,
    /// Trusted roots for endpoint certificates.
    pub roots: Arc<rustls::RootCertStore>,
    /// Endpoint leases, when several processes share the database.
    pub leases: LeaseSettings,
}

/// What every worker shares.
pub(crate) struct Shared {
    store: Arc<dyn Store>,
    endpoints: EndpointService,
    config: DispatchConfig,
    clients: sender::Clients,
    /// Clients of endpoints that present a client certificate, by endpoint
    /// id, with the `updated_at` they were built for.
    identity_clients: std::sync::Mutex<HashMap<String, (String, Arc<sender::Clients>)>>,
    metrics: Arc<DeliveryMetrics>,
    recorder: recorder::Recorder,
    /// Successful attempts answered before their record commits, at most
    /// [`UNRECORDED`] at a time.
    unrecorded: Arc<Semaphore>,
}

const UNRECORDED: usize = 4096;

pub fn start(
    inbox: Inbox,
    store: Arc<dyn Store>,
    endpoints: EndpointService,
    config: DispatchConfig,
    metrics: Arc<DeliveryMetrics>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let clients = sender::clients(&config, None)?;
    let shared = Arc::new(Shared {
        recorder: recorder::Recorder::start(store.clone()),
        store,
        endpoints,
        config,
        clients,
        identity_clients: std::sync::Mutex::new(HashMap::new()),
        metrics,
        unrecorded: Arc::new(Semaphore::new(UNRECORDED)),
    });
    let (keeper_tx, keeper_rx) = mpsc::unbounded_channel();
    let poke = Arc::new(Notify::new());
    let owned = if shared.store.shared() {
        let keeper = leases::Keeper {
            store: shared.store.clone(),
            process: crate::ids::sortable("proc"),
            settings: shared.config.leases,
            intake: keeper_tx.clone(),
            poke: poke.clone(),
        };
        tokio::spawn(keeper.run(shutdown.clone()));
        Some(HashSet::new())
    } else {
        None
    };
    let signals = shared.store.signals();
    let state = Intake {
        shared,
        workers: HashMap::new(),
        last_id: 0,
        shutdown: shutdown.clone(),
        owned,
        poke,
        later: keeper_tx,
    };
    tokio::spawn(intake(state, inbox, keeper_rx, signals, shutdown));
    Ok(())
}

struct Intake {
    shared: Arc<Shared>,
    workers: HashMap<String, WorkerHandle>,
    last_id: i64,
    shutdown: watch::Receiver<bool>,
    /// The endpoints this process sends to; `None`: all of them.
    owned: Option<HashSet<String>>,
    /// Asks the lease keeper for an early round (an endpoint changed).
    poke: Arc<Notify>,
    /// Commands the intake sends itself after a delay.
    later: mpsc::UnboundedSender<Command>,
}

async fn intake(
    mut state: Intake,
    Inbox(mut inbox): Inbox,
    mut keeper: mpsc::UnboundedReceiver<Command>,
    mut signals: broadcast::Receiver<Signal>,
    mut stop: watch::Receiver<bool>,
) {
    let mut head = state.shared.store.head();
    loop {
        head.borrow_and_update();
        if let Err(err) = state.take_new().await {
            tracing::warn!(error = %err, "loading pending deliveries failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                _ = stopped(&mut stop) => return,
            }
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() { return },
            command = inbox.recv() => match command {
                Some(command) => state.handle(command).await,
                None => return,
            },
            Some(command) = keeper.recv() => state.handle(command).await,
            signal = signals.recv() => match signal {
                Ok(signal) => state.signal(signal).await,
                Err(broadcast::error::RecvError::Lagged(_)) => state.signal(Signal::Resync).await,
                Err(broadcast::error::RecvError::Closed) => {}
            },
            _ = stopped(&mut stop) => return,
        }
    }
}

impl Shared {
    /// The clients that present `identity`, built once per endpoint version.
    fn identity_clients(
        &self,
        endpoint_id: &str,
        version: &str,
        identity: &crate::webhooks::endpoint::input::ClientIdentity,
    ) -> anyhow::Result<Arc<sender::Clients>> {
        let mut cache = self.identity_clients.lock().expect("client cache lock");
        if let Some((built_for, clients)) = cache.get(endpoint_id)
            && built_for == version
        {
            return Ok(clients.clone());
        }
        let clients = Arc::new(sender::clients(&self.config, Some(identity))?);
        cache.insert(
            endpoint_id.to_owned(),
            (version.to_owned(), clients.clone()),
        );
        Ok(clients)
    }
}

/// Resolves once the server is shutting down.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

impl Intake {
    /// Load pending deliveries created since the last look.
    async fn take_new(&mut self) -> Result<(), crate::store::StoreError> {
        loop {
            let batch = self
                .shared
                .store
                .pending_deliveries(self.last_id, INTAKE_BATCH)
                .await?;
            let full = batch.len() == INTAKE_BATCH;
            if let Some(last) = batch.last() {
                self.last_id = last.id;
            }
            self.route(batch).await;
            if !full {
                return Ok(());
            }
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Wake => {}
            Command::EndpointChanged(id) => self.endpoint_changed(&id).await,
            Command::Enqueue(ids) => self.requeued(ids).await,
            Command::Acquired(ids) => {
                for id in ids {
                    self.take_over(id).await;
                }
            }
            Command::Lost(ids) => {
                for id in ids {
                    if let Some(owned) = &mut self.owned {
                        owned.remove(&id);
                    }
                    if let Some(worker) = self.workers.remove(&id) {
                        worker.stop();
                    }
                }
            }
        }
    }

    /// A change committed by any process (PostgreSQL).
    async fn signal(&mut self, signal: Signal) {
        match signal {
            Signal::EndpointChanged(id) => self.endpoint_changed(&id).await,
            Signal::Requeued(ids) => self.requeued(ids).await,
            Signal::Resync => {
                let ids: Vec<String> = self.workers.keys().cloned().collect();
                for id in ids {
                    self.refresh(&id).await;
                }
                self.poke.notify_one();
            }
        }
    }

    async fn endpoint_changed(&mut self, id: &str) {
        if self.owns(id) {
            self.refresh(id).await;
        }
        // A new or re-enabled endpoint needs a holder; a disabled one frees its lease.
        self.poke.notify_one();
    }

    async fn requeued(&mut self, ids: Vec<i64>) {
        match self.shared.store.pending_by_ids(ids).await {
            Ok(found) => self.route(found).await,
            Err(err) => tracing::warn!(error = %err, "loading re-queued deliveries failed"),
        }
    }

    fn owns(&self, endpoint_id: &str) -> bool {
        self.owned
            .as_ref()
            .is_none_or(|owned| owned.contains(endpoint_id))
    }

    /// This process now holds the endpoint's lease: start its worker and
    /// hand it every pending delivery the intake has already passed over
    /// (later ones arrive through the intake as usual).
    async fn take_over(&mut self, id: String) {
        if let Some(owned) = &mut self.owned {
            owned.insert(id.clone());
        }
        self.refresh(&id).await;
        let mut after = 0;
        loop {
            let page = match self
                .shared
                .store
                .pending_for_endpoint(&id, after, self.last_id, INTAKE_BATCH)
                .await
            {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(endpoint_id = %id, error = %err, "loading a taken-over endpoint's deliveries failed; retrying");
                    // Start over shortly: a delivery the worker already holds is
                    // not queued twice (a waiting retry may go a little early).
                    let later = self.later.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        let _ = later.send(Command::Acquired(vec![id]));
                    });
                    return;
                }
            };
            let full = page.len() == INTAKE_BATCH;
            if let Some(last) = page.last() {
                after = last.id;
            }
            self.route(page).await;
            if !full {
                return;
            }
        }
    }

    /// Reload an endpoint's settings into its worker (or stop the worker).
    async fn refresh(&mut self, id: &str) {
        match self.shared.endpoints.open(id).await {
            Ok(Some(opened)) => {
                let worker = self.worker_for(id);
                worker.configure(Arc::new(opened));
            }
            Ok(None) => {
                if let Some(worker) = self.workers.remove(id) {
                    worker.stop();
                }
            }
            Err(err) => {
                tracing::error!(endpoint_id = id, error = %err, "could not open an endpoint")
            }
        }
    }

    fn worker_for(&mut self, id: &str) -> &WorkerHandle {
        let shared = self.shared.clone();
        let shutdown = self.shutdown.clone();
        self.workers
            .entry(id.to_owned())
            .or_insert_with(|| worker::spawn(id.to_owned(), shared, shutdown))
    }

    async fn route(&mut self, batch: Vec<PendingDelivery>) {
        let mut bodies: HashMap<(i64, bool), Bytes> = HashMap::new();
        for delivery in batch {
            if !self.owns(&delivery.endpoint_id) {
                continue;
            }
            if !self.workers.contains_key(&delivery.endpoint_id) {
                self.refresh(&delivery.endpoint_id).await;
            }
            let Some(worker) = self.workers.get(&delivery.endpoint_id) else {
                continue;
            };
            let Some(mut event) = delivery.event else {
                worker.expired(delivery.id);
                continue;
            };
            let event_id = event.id.clone();
            let key = (delivery.sequence, worker.ids_only());
            let body = match bodies.get(&key) {
                Some(body) => body.clone(),
                None => {
                    event.data = delivery
                        .event_data
                        .as_deref()
                        .and_then(|text| serde_json::from_str(text).ok())
                        .unwrap_or_default();
                    let stored = StoredEvent {
                        sequence: delivery.sequence,
                        event,
                    };
                    let rendered = if key.1 {
                        events::render_ids_only(&stored)
                    } else {
                        events::render(&stored)
                    };
                    let body = Bytes::from(serde_json::to_vec(&rendered).unwrap_or_default());
                    bodies.insert(key, body.clone());
                    body
                }
            };
            worker.push(Job {
                delivery_id: delivery.id,
                event_id,
                record_key: delivery.record_key,
                attempts: delivery.attempts,
                due_ms: delivery.next_attempt_at,
                body,
            });
        }
    }
}
