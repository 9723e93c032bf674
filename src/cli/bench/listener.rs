//! A fast local webhook listener for the benchmark: answers 204, counts
//! requests per path, can hold requests (a listener that is "down" without
//! refusing connections) and can record commit-to-arrival latency.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tokio::sync::watch;

#[derive(Clone)]
pub(super) struct BenchListener {
    pub addr: SocketAddr,
    counts: Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>,
    latencies: Arc<Mutex<Vec<Duration>>>,
    open: watch::Sender<bool>,
}

impl BenchListener {
    pub async fn start() -> anyhow::Result<BenchListener> {
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let (open, _) = watch::channel(true);
        let listener = BenchListener {
            addr: socket.local_addr()?,
            counts: Arc::default(),
            latencies: Arc::default(),
            open,
        };
        let app = Router::new()
            .route("/count/{name}", axum::routing::post(count))
            .route("/timed/{name}", axum::routing::post(timed))
            .with_state(listener.clone());
        tokio::spawn(async move { axum::serve(socket, app).await });
        Ok(listener)
    }

    pub fn url(&self, kind: &str, name: &str) -> String {
        format!("http://{}/{kind}/{name}", self.addr)
    }

    fn counter(&self, name: &str) -> Arc<AtomicU64> {
        self.counts
            .lock()
            .expect("counts lock")
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    pub fn count(&self, name: &str) -> u64 {
        self.counter(name).load(Ordering::Relaxed)
    }

    /// Hold every request until [`BenchListener::release`].
    pub fn hold(&self) {
        self.open.send_replace(false);
    }

    pub fn release(&self) {
        self.open.send_replace(true);
    }

    pub fn take_latencies(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.latencies.lock().expect("latency lock"))
    }

    /// Wait until `name` has `target` requests, or `limit` passes.
    pub async fn wait_for(&self, name: &str, target: u64, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.count(name) < target {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }
}

async fn count(State(listener): State<BenchListener>, Path(name): Path<String>) -> StatusCode {
    let mut open = listener.open.subscribe();
    let _ = open.wait_for(|o| *o).await;
    listener.counter(&name).fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

/// Records the time from the event's `occurred_at` (set just before its
/// commit) to its arrival here.
async fn timed(
    State(listener): State<BenchListener>,
    Path(name): Path<String>,
    body: Bytes,
) -> StatusCode {
    let arrived = chrono::Utc::now();
    if let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(at) = event["occurred_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        && let Ok(latency) = (arrived - at.with_timezone(&chrono::Utc)).to_std()
    {
        listener
            .latencies
            .lock()
            .expect("latency lock")
            .push(latency);
    }
    listener.counter(&name).fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}
