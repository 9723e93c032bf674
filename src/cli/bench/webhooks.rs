//! `chartwire bench webhooks`: delivery throughput with one endpoint and
//! with ten (fan-out), commit-to-listener latency at a fixed event rate, the
//! drain rate of a backlog once a held listener lets go, the listener's own
//! ceiling under plain HTTP load, and peak memory.

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use serde_json::json;

use super::listener::BenchListener;
use super::{BenchServer, DeployArgs, drive_creates, peak_rss_mib, percentile};

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    /// Creates in the steady-burst runs.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Events of the backlog that builds while the listener holds requests.
    #[arg(long, default_value_t = 100_000)]
    backlog: usize,
    /// Event rate of the latency run, and how long it lasts.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Writers in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[command(flatten)]
    deploy: DeployArgs,
}

fn per_second(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

async fn bench_server(args: &WebhooksArgs) -> anyhow::Result<BenchServer> {
    BenchServer::start(&args.deploy, vec!["127.0.0.0/8".parse()?]).await
}

async fn add_endpoint(bench: &BenchServer, url: &str) -> anyhow::Result<()> {
    let reply = bench
        .client
        .post(format!("{}/api/v1/webhooks/endpoints", bench.base()))
        .bearer_auth(&bench.key)
        .json(&json!({"url": url, "events": ["patient.created"], "max_in_flight": 64}))
        .send()
        .await?;
    if reply.status() != reqwest::StatusCode::CREATED {
        bail!("creating an endpoint answered {}", reply.status());
    }
    Ok(())
}

/// Write `count` events to `endpoints` endpoints; report write and delivery rates.
async fn burst(
    args: &WebhooksArgs,
    listener: &BenchListener,
    endpoints: usize,
    count: usize,
) -> anyhow::Result<()> {
    let bench = bench_server(args).await?;
    let names: Vec<String> = (0..endpoints)
        .map(|i| format!("burst{endpoints}-{i}"))
        .collect();
    for name in &names {
        add_endpoint(&bench, &listener.url("count", name)).await?;
    }
    let started = Instant::now();
    let latencies = drive_creates(&bench, count, args.concurrency, None).await?;
    let wrote = started.elapsed();
    let written = latencies.len() as u64;
    for name in &names {
        if !listener
            .wait_for(name, written, Duration::from_secs(300))
            .await
        {
            bail!(
                "{name} got {} of {written} deliveries",
                listener.count(name)
            );
        }
    }
    let delivered = started.elapsed();
    let total = written * endpoints as u64;
    let write_rate = per_second(written, wrote);
    let delivery_rate = per_second(total, delivered);
    println!(
        "  {endpoints:>2} endpoint(s)     {written} writes in {:.2} s ({write_rate:.0}/s); {total} deliveries in {:.2} s ({delivery_rate:.0}/s{})",
        wrote.as_secs_f64(),
        delivered.as_secs_f64(),
        if endpoints == 1 {
            format!(
                ", {:.0} % of the write rate",
                100.0 * delivery_rate / write_rate
            )
        } else {
            String::new()
        },
    );
    bench.stop().await
}

async fn latency(args: &WebhooksArgs, listener: &BenchListener) -> anyhow::Result<()> {
    let bench = bench_server(args).await?;
    add_endpoint(&bench, &listener.url("timed", "latency")).await?;
    // Steady state only: the first delivery also waits for a process to
    // take the new endpoint's lease (PostgreSQL), which is not what this
    // run measures.
    drive_creates(&bench, 1, 1, None).await?;
    if !listener
        .wait_for("latency", 1, Duration::from_secs(30))
        .await
    {
        bail!("the first delivery of the latency run never arrived");
    }
    listener.take_latencies();
    let count = (args.rate * args.seconds as f64) as usize;
    drive_creates(
        &bench,
        count,
        args.concurrency.min(count.max(1)),
        Some(args.rate),
    )
    .await?;
    listener
        .wait_for("latency", count as u64 + 1, Duration::from_secs(60))
        .await;
    let mut latencies = listener.take_latencies();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  latency           commit → listener at {:.0} events/s: p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms ({} events)",
        args.rate,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0)),
        latencies.len()
    );
    bench.stop().await
}

async fn backlog(args: &WebhooksArgs, listener: &BenchListener) -> anyhow::Result<()> {
    let bench = bench_server(args).await?;
    add_endpoint(&bench, &listener.url("count", "backlog")).await?;
    listener.hold();
    let started = Instant::now();
    let written = drive_creates(&bench, args.backlog, args.concurrency, None)
        .await?
        .len() as u64;
    let wrote = started.elapsed();
    let released = Instant::now();
    listener.release();
    if !listener
        .wait_for("backlog", written, Duration::from_secs(600))
        .await
    {
        bail!(
            "the backlog did not drain: {} of {written}",
            listener.count("backlog")
        );
    }
    let drained = released.elapsed();
    println!(
        "  backlog           {written} events written in {:.1} s while the listener held requests; drained in {:.2} s ({:.0} deliveries/s)",
        wrote.as_secs_f64(),
        drained.as_secs_f64(),
        per_second(written, drained)
    );
    bench.stop().await
}

/// The listener alone, loaded by a plain HTTP client: the ceiling the
/// delivery figures can be read against.
async fn ceiling(listener: &BenchListener) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let body = serde_json::to_vec(
        &json!({"id": "evt_01JDXK3V7Q6M2N8R4T5W9YB0CE", "type": "patient.created",
        "data": {"object": "patient", "id": 1, "first_name": "Bench", "last_name": "Load"}}),
    )?;
    let url = listener.url("count", "ceiling");
    let per_worker = 1000;
    let workers = 64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_worker {
                client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
            }
            Ok::<_, reqwest::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    println!(
        "  listener ceiling  {:.0} requests/s (plain HTTP client, 64 connections, same process)",
        per_second((per_worker * workers) as u64, started.elapsed())
    );
    Ok(())
}

pub async fn run(args: WebhooksArgs) -> anyhow::Result<()> {
    let listener = BenchListener::start().await?;
    let backend = match (&args.deploy.database, args.deploy.processes) {
        (None, _) => "SQLite".to_owned(),
        (Some(_), 1) => "PostgreSQL, 1 process".to_owned(),
        (Some(_), n) => format!("PostgreSQL, {n} processes"),
    };
    println!(
        "chartwire bench webhooks ({backend}, loopback listener, writers in flight: {})",
        args.concurrency
    );
    ceiling(&listener).await?;
    burst(&args, &listener, 1, args.count).await?;
    burst(&args, &listener, 10, args.count / 2).await?;
    latency(&args, &listener).await?;
    backlog(&args, &listener).await?;
    if let (Some(rss), 1) = (peak_rss_mib(), args.deploy.processes) {
        println!("  peak RSS          {rss:.0} MiB (whole process: server, writers and listener)");
    }
    Ok(())
}
