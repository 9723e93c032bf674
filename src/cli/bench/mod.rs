//! `chartwire bench …`: benchmarks that start their own server on a fresh
//! database, drive it through the HTTP API and print figures.

mod listener;
mod webhooks;
mod writes;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use crate::app::{self, RunningServer, ServeConfig};
use crate::auth::{KeyService, Role};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Durable record creates (each with its event) through the HTTP API.
    Writes(writes::WritesArgs),
    /// Webhook delivery: throughput, fan-out, latency and backlog drain.
    Webhooks(webhooks::WebhooksArgs),
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Writes(args) => writes::run(args).await,
        BenchCommand::Webhooks(args) => webhooks::run(args).await,
    }
}

/// A server on a throw-away database with a Superadmin key.
pub(super) struct BenchServer {
    pub server: RunningServer,
    pub base: String,
    pub key: String,
    pub client: reqwest::Client,
    pub dir: PathBuf,
    remove_dir: bool,
}

impl BenchServer {
    pub async fn start(
        dir: Option<PathBuf>,
        allow: Vec<ipnet::IpNet>,
    ) -> anyhow::Result<BenchServer> {
        let remove_dir = dir.is_none();
        let dir = dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "chartwire-bench-{}-{}",
                std::process::id(),
                crate::ids::sortable("run")
            ))
        });
        std::fs::create_dir_all(&dir).context("creating the benchmark directory")?;
        let mut config = ServeConfig::new(
            format!("sqlite://{}", dir.join("bench.db").display()),
            "127.0.0.1:0".parse()?,
            dir.clone(),
        );
        config.webhooks.endpoint_allow = allow;
        // The benchmark drives the API from one key as fast as it can.
        config.api_rate_limit = None;
        config.webhooks.retry_schedule =
            crate::webhooks::schedule::RetrySchedule::parse("1s,2s,5s,10s,30s,60s")
                .map_err(anyhow::Error::msg)?;
        config.webhooks.timeout = Duration::from_secs(120);
        let server = app::start(config).await?;
        let (_, key) = KeyService::new(server.store.clone())
            .create(
                "bench",
                Role::Superadmin,
                &crate::events::Actor::command_line(),
            )
            .await?;
        let base = format!("http://{}", server.addr);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(BenchServer {
            server,
            base,
            key,
            client,
            dir,
            remove_dir,
        })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.server.shutdown().await?;
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        Ok(())
    }
}

/// Create `count` patients from `concurrency` workers, optionally paced to
/// `rate` creates per second in all; returns each request's latency.
pub(super) async fn drive_creates(
    bench: &BenchServer,
    count: usize,
    concurrency: usize,
    rate: Option<f64>,
) -> anyhow::Result<Vec<Duration>> {
    let per_worker = count / concurrency.max(1);
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (client, base, key) = (bench.client.clone(), bench.base.clone(), bench.key.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker);
            for i in 0..per_worker {
                if let Some(rate) = rate {
                    // Worker `worker` sends its i-th request at its slot in the global pace.
                    let slot = (i * concurrency + worker) as f64 / rate;
                    tokio::time::sleep_until((started + Duration::from_secs_f64(slot)).into()).await;
                }
                let body = json!({"first_name": format!("Bench{worker}"), "last_name": format!("Load{i}"),
                    "date_of_birth": "1980-05-17", "sex": "unknown"});
                let sent = Instant::now();
                let response = client
                    .post(format!("{base}/api/v1/patients"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await?;
                if response.status() != reqwest::StatusCode::CREATED {
                    bail!("a create answered {}", response.status());
                }
                latencies.push(sent.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Ok(latencies)
}

/// The `p` quantile of sorted durations.
pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Peak resident memory of this process, from /proc.
pub(super) fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
