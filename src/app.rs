//! Assembling and running a server: open the store, build the services and
//! the router, listen, prune old events, and shut down gracefully. Used by
//! `chartwire serve`, the benchmark and the tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, AppState, Metrics};
use crate::auth::KeyService;
use crate::feed::FeedService;
use crate::records::RecordService;
use crate::store::{self, OpenMode, Store};

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub database_url: String,
    pub listen: SocketAddr,
    /// Events older than this are pruned.
    pub event_retention: Duration,
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
        self.wait().await
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
    let store = store::open(&config.database_url, OpenMode::Server)
        .await
        .context("opening the database")?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let state = AppState {
        records: RecordService::new(store.clone()),
        feed: FeedService::new(store.clone(), shutdown_rx.clone()),
        keys: KeyService::new(store.clone()),
        store: store.clone(),
        metrics: Arc::new(Metrics::default()),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    spawn_pruner(store.clone(), config.event_retention, shutdown_rx.clone());
    let app = api::router(state);
    let mut stop = shutdown_rx;
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            })
            .await
    });
    Ok(RunningServer {
        addr,
        store,
        shutdown,
        task,
    })
}

/// Delete events past the retention period, checking a few times per period
/// (at least every second, at most every ten minutes).
fn spawn_pruner(store: Arc<dyn Store>, retention: Duration, mut shutdown: watch::Receiver<bool>) {
    let every = (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let Ok(age) = chrono::Duration::from_std(retention) else {
                return;
            };
            let before =
                (chrono::Utc::now() - age).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            match store.prune_events(&before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "pruned events past retention"),
                Err(err) => tracing::warn!(error = %err, "pruning events failed"),
            }
        }
    });
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
