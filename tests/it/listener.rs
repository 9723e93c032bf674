//! A real HTTP listener on 127.0.0.1 that records every webhook it gets.
//! Each endpoint of a test posts to its own path (`/hook/<name>`), whose
//! behaviour (status, delay, Retry-After, failures to come) the test sets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Received {
    /// Who connected (the sender's source address).
    pub peer: SocketAddr,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Answer with this status (200 when unset).
    pub status: Option<u16>,
    /// Fail this many requests with 500 first.
    pub fail_first: usize,
    pub delay: Option<Duration>,
    pub retry_after: Option<u64>,
    /// A `Location` header to send (with a 3xx status).
    pub location: Option<String>,
}

impl Behaviour {
    /// Always answer `status`.
    pub fn answer(status: u16) -> Behaviour {
        Behaviour {
            status: Some(status),
            ..Behaviour::default()
        }
    }
}

#[derive(Default)]
struct Inner {
    received: HashMap<String, Vec<Received>>,
    behaviour: HashMap<String, Behaviour>,
    in_flight: HashMap<String, usize>,
    max_in_flight: HashMap<String, usize>,
}

#[derive(Clone)]
pub struct Listener {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
}

impl Listener {
    pub async fn start() -> Listener {
        Listener::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Listener {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("listener binds");
        let addr = listener.local_addr().unwrap();
        let state = Listener {
            addr,
            inner: Arc::new(Mutex::new(Inner::default())),
            notify: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/hook/{name}", axum::routing::post(receive))
            .with_state(state.clone());
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        state
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://{}/hook/{name}", self.addr)
    }

    pub fn set(&self, name: &str, behaviour: Behaviour) {
        self.inner
            .lock()
            .unwrap()
            .behaviour
            .insert(name.to_owned(), behaviour);
    }

    /// Wait until every record id in `acked` has arrived at `name` (as
    /// `data.id` of a webhook body), or fail naming a few that did not.
    pub async fn wait_for_records(
        &self,
        name: &str,
        acked: &std::collections::BTreeSet<i64>,
        within: Duration,
    ) {
        let deadline = Instant::now() + within;
        loop {
            let delivered: std::collections::BTreeSet<i64> = self
                .received(name)
                .iter()
                .map(|r| r.json()["data"]["id"].as_i64().unwrap())
                .collect();
            let missing: Vec<_> = acked.difference(&delivered).take(5).collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: acknowledged events never delivered, e.g. {missing:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn received(&self, name: &str) -> Vec<Received> {
        self.inner
            .lock()
            .unwrap()
            .received
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    pub fn max_in_flight(&self, name: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .max_in_flight
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Wait until `name` has received at least `count` requests.
    pub async fn wait_for(&self, name: &str, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.notify.notified();
            let got = self.received(name);
            if got.len() >= count {
                return got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{name}: expected {count} requests, got {}",
                got.len()
            );
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

async fn receive(
    State(state): State<Listener>,
    Path(name): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let behaviour = {
        let mut inner = state.inner.lock().unwrap();
        let now = {
            let n = inner.in_flight.entry(name.clone()).or_default();
            *n += 1;
            *n
        };
        let max = inner.max_in_flight.entry(name.clone()).or_default();
        *max = (*max).max(now);
        let behaviour = inner.behaviour.entry(name.clone()).or_default();
        let current = behaviour.clone();
        if behaviour.fail_first > 0 {
            behaviour.fail_first -= 1;
        }
        current
    };
    if let Some(delay) = behaviour.delay {
        tokio::time::sleep(delay).await;
    }
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    {
        let mut inner = state.inner.lock().unwrap();
        *inner.in_flight.entry(name.clone()).or_default() -= 1;
        inner.received.entry(name).or_default().push(Received {
            peer,
            headers,
            body: body.to_vec(),
            at,
        });
    }
    state.notify.notify_waiters();
    let status = if behaviour.fail_first > 0 {
        500
    } else {
        behaviour.status.unwrap_or(200)
    };
    let mut response = (StatusCode::from_u16(status).unwrap(), "thanks").into_response();
    if let Some(seconds) = behaviour.retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.to_string().parse().unwrap());
    }
    if let Some(location) = behaviour.location {
        response
            .headers_mut()
            .insert("location", location.parse().unwrap());
    }
    response
}
