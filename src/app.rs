//! Assembling and running a server: open the store, build the services and
//! the router, listen, prune old events, and shut down gracefully. Used by
//! `chartwire serve`, the benchmark and the tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, AppState, Metrics};
use crate::audit::Auditor;
use crate::auth::KeyService;
use crate::auth::sessions::{SessionService, SessionSettings};
use crate::feed::FeedService;
use crate::records::RecordService;
use crate::secrets::MasterKey;
use crate::store::{self, OpenMode, Store};
use crate::webhooks::address::{AddressPolicy, Resolver, SystemResolver};
use crate::webhooks::deliveries::DeliveryService;
use crate::webhooks::dispatch::{self, DeliveryMetrics, DispatchConfig};
use crate::webhooks::endpoint::EndpointService;
use crate::webhooks::schedule::RetrySchedule;

/// Requests per second per API key unless configured otherwise.
pub const DEFAULT_API_RATE_LIMIT: u32 = 2000;

#[derive(Clone)]
pub struct ServeConfig {
    pub database_url: String,
    pub listen: SocketAddr,
    /// Where `master.key` lives when `master_key` is not given.
    pub data_dir: PathBuf,
    /// Base64 of the 32-byte master key (`CHARTWIRE_MASTER_KEY`).
    pub master_key: Option<String>,
    /// Events older than this are pruned.
    pub event_retention: Duration,
    /// Audit entries older than this are pruned (six years by default).
    pub audit_retention: Duration,
    /// Requests per second per API key (bursts of twice that); `None`: unlimited.
    pub api_rate_limit: Option<u32>,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// PostgreSQL: the most connections this process's pool opens.
    pub database_pool: Option<usize>,
    /// How long admin page sessions last.
    pub admin_sessions: SessionSettings,
    pub webhooks: WebhookOptions,
}

impl ServeConfig {
    /// Defaults for everything but where the data lives and where to listen.
    pub fn new(database_url: String, listen: SocketAddr, data_dir: PathBuf) -> ServeConfig {
        ServeConfig {
            database_url,
            listen,
            data_dir,
            master_key: None,
            event_retention: Duration::from_secs(90 * 86_400),
            audit_retention: Duration::from_secs(6 * 366 * 86_400),
            api_rate_limit: Some(DEFAULT_API_RATE_LIMIT),
            tls: None,
            database_pool: None,
            admin_sessions: SessionSettings::default(),
            webhooks: WebhookOptions::default(),
        }
    }
}

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Settings of the webhook engine.
#[derive(Clone)]
pub struct WebhookOptions {
    /// Networks endpoints may point into (and reach over plain http).
    pub endpoint_allow: Vec<ipnet::IpNet>,
    pub retry_schedule: RetrySchedule,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// An endpoint whose deliveries all failed this long is disabled.
    pub auto_disable_after: Duration,
    /// How long the previous signing secret keeps signing after a rotation.
    pub secret_rotation_overlap: Duration,
    /// Finished deliveries and their attempts are kept this long.
    pub delivery_retention: Duration,
    /// Resolves endpoint host names; the system resolver when `None`.
    pub resolver: Option<Arc<dyn Resolver>>,
    /// The source address of webhook connections (a static egress IP).
    pub egress_bind: Option<std::net::IpAddr>,
    /// At most this many endpoints in the deployment.
    pub max_endpoints: usize,
    /// Extra trusted roots (PEM) for endpoints on a private PKI.
    pub ca_bundle: Option<PathBuf>,
    /// How long an endpoint's lease lasts without renewal (PostgreSQL).
    pub lease_ttl: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            endpoint_allow: Vec::new(),
            retry_schedule: RetrySchedule::default(),
            timeout: Duration::from_secs(15),
            auto_disable_after: Duration::from_secs(5 * 86_400),
            secret_rotation_overlap: Duration::from_secs(86_400),
            delivery_retention: Duration::from_secs(30 * 86_400),
            resolver: None,
            egress_bind: None,
            max_endpoints: 1000,
            ca_bundle: None,
            lease_ttl: Duration::from_secs(10),
        }
    }
}

/// A server that is accepting connections.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stop accepting, end long-polls, finish in-flight requests, then return.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let store = self.store.clone();
        let RunningServer {
            task, store: own, ..
        } = self;
        drop(own);
        let served = task.await.context("the server task failed")?;
        // Background tasks (dispatcher, pruner) let go of the store as they
        // notice the shutdown; wait for them, so the database (and its lock)
        // is closed when this returns.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&store) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        served.context("the server stopped with an error")
    }

    /// Run until shut down by [`RunningServer::shutdown`] or a signal handler.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task
            .await
            .context("the server task failed")?
            .context("the server stopped with an error")
    }

    /// A handle that stops the server when sent `true`.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

pub async fn start(config: ServeConfig) -> anyhow::Result<RunningServer> {
    install_crypto_provider();
    let store = store::open_with(&config.database_url, OpenMode::Server, config.database_pool)
        .await
        .context("opening the database")?;
    let key = match store::Backend::of(&config.database_url) {
        Some(store::Backend::Postgres) => {
            MasterKey::load_existing(config.master_key.as_deref(), &config.data_dir)
        }
        _ => MasterKey::load_or_create(config.master_key.as_deref(), &config.data_dir),
    }
    .context("loading the master key")?;
    let check = store
        .meta_blob_or_insert(crate::secrets::CHECK_NAME, key.check_value())
        .await
        .context("reading the master key check value")?;
    if !key.verifies(&check) {
        anyhow::bail!(
            "the master key does not match this database: its secrets were sealed with another key \
             (check CHARTWIRE_MASTER_KEY or <data-dir>/master.key)"
        );
    }
    let (shutdown, shutdown_rx) = watch::channel(false);
    let options = &config.webhooks;
    let policy = AddressPolicy {
        allowed: options.endpoint_allow.clone(),
        resolver: options
            .resolver
            .clone()
            .unwrap_or_else(|| Arc::new(SystemResolver)),
    };
    let (dispatcher, inbox) = dispatch::channel();
    let endpoints = EndpointService::new(
        store.clone(),
        key,
        policy.clone(),
        options.secret_rotation_overlap,
        dispatcher.clone(),
    )
    .with_max_endpoints(options.max_endpoints);
    let delivery_metrics = Arc::new(DeliveryMetrics::default());
    dispatch::start(
        inbox,
        store.clone(),
        endpoints.clone(),
        DispatchConfig {
            schedule: options.retry_schedule.clone(),
            timeout: options.timeout,
            auto_disable_after: options.auto_disable_after,
            egress_bind: options.egress_bind,
            leases: dispatch::LeaseSettings {
                ttl: options.lease_ttl,
            },
            roots: crate::tls::root_store(options.ca_bundle.as_deref())
                .context("loading --ca-bundle")?,
            policy,
        },
        delivery_metrics.clone(),
        shutdown_rx.clone(),
    )?;
    let audit = Auditor::new(store.clone());
    spawn_audit_flusher(audit.clone(), shutdown_rx.clone());
    let keys = KeyService::new(store.clone());
    let sessions = SessionService::new(
        store.clone(),
        keys.clone(),
        audit.clone(),
        config.admin_sessions,
    );
    let state = AppState {
        records: RecordService::new(store.clone()),
        feed: FeedService::new(store.clone(), shutdown_rx.clone()),
        keys,
        sessions: sessions.clone(),
        secure_cookies: config.tls.is_some(),
        deliveries: DeliveryService::new(store.clone(), endpoints.clone(), dispatcher),
        endpoints,
        store: store.clone(),
        metrics: Arc::new(Metrics::default()),
        delivery_metrics,
        audit: audit.clone(),
        egress: options.egress_bind,
        rate_limiter: Arc::new(crate::api::limits::RateLimiter::new(config.api_rate_limit)),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    spawn_pruner(
        store.clone(),
        Retention {
            events: config.event_retention,
            deliveries: options.delivery_retention,
            audit: config.audit_retention,
        },
        sessions,
        shutdown_rx.clone(),
    );
    let app = api::router(state.clone(), crate::admin::router(&state));
    let mut stop = shutdown_rx;
    let task = match &config.tls {
        Some(files) => {
            let server = crate::tls::server_config(&files.cert, &files.key)?;
            tokio::spawn(crate::tls::serve(listener, server, app, stop))
        }
        None => tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            })
            .await
        }),
    };
    Ok(RunningServer {
        addr,
        store,
        shutdown,
        task,
    })
}

/// How long each kind of history is kept.
struct Retention {
    events: Duration,
    deliveries: Duration,
    audit: Duration,
}

/// RFC 3339 text of now minus `age`.
fn cutoff(age: Duration) -> Option<String> {
    let age = chrono::Duration::from_std(age).ok()?;
    let at = chrono::Utc::now().checked_sub_signed(age)?;
    Some(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// Delete events, finished deliveries and audit entries past their
/// retention periods, checking a few times per period (at least every
/// second, at most every ten minutes).
fn spawn_pruner(
    store: Arc<dyn Store>,
    retention: Retention,
    sessions: SessionService,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = (retention.events.min(retention.deliveries) / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(600));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = crate::webhooks::dispatch::stopped(&mut shutdown) => return,
            }
            if let Some(before) = cutoff(retention.events) {
                match store.prune_events(&before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(pruned = n, "pruned events past retention"),
                    Err(err) => tracing::warn!(error = %err, "pruning events failed"),
                }
            }
            if let Some(before) = cutoff(retention.deliveries) {
                match store.purge_deliveries(&before).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(purged = n, "purged finished deliveries past retention")
                    }
                    Err(err) => tracing::warn!(error = %err, "purging deliveries failed"),
                }
            }
            if let Err(err) = sessions.prune().await {
                tracing::warn!(error = %err, "pruning ended admin sessions failed");
            }
            if let Some(before) = cutoff(retention.audit)
                && let Err(err) = store.prune_audit(&before).await
            {
                tracing::warn!(error = %err, "pruning the audit log failed");
            }
        }
    });
}

/// Write failed-authentication summaries as their windows close.
fn spawn_audit_flusher(audit: Auditor, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => audit.flush_failures().await,
                _ = crate::webhooks::dispatch::stopped(&mut shutdown) => return,
            }
        }
    });
}

/// Outbound TLS uses ring. Installing it again (tests start many servers)
/// is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Parse `90d`, `12h`, `30m`, `45s` or `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` needs a unit: ms, s, m, h or d"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("unknown unit `{unit}`: use ms, s, m, h or d")),
    };
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_parse() {
        assert_eq!(super::parse_duration("90d").unwrap().as_secs(), 90 * 86_400);
        assert_eq!(super::parse_duration("250ms").unwrap().as_millis(), 250);
        assert!(super::parse_duration("5").is_err());
        assert!(super::parse_duration("5y").is_err());
    }
}
