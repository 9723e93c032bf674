//! `chartwire bench …`: benchmarks that start their own deployment on a
//! fresh database (SQLite, or PostgreSQL with one or more processes), drive
//! it through the HTTP API and print figures.

mod deploy;
mod listener;
mod webhooks;
mod writes;

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Subcommand;
use serde_json::json;

pub(super) use deploy::{BenchServer, DeployArgs};

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
        // Writers are spread over the processes.
        let base = bench.bases[worker % bench.bases.len()].clone();
        let (client, key) = (bench.client.clone(), bench.key.clone());
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
