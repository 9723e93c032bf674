//! `chartwire bench writes`: start a server on a fresh SQLite database, drive
//! record creates through the HTTP API at a fixed concurrency, and print
//! throughput, latency percentiles, the mean batch size of the group commit,
//! and this disk's single-fsync rate measured in the same run.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::app::{self, ServeConfig};
use crate::auth::{KeyService, Role};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Durable record creates (each with its event) through the HTTP API.
    Writes(WritesArgs),
}

#[derive(Debug, Args)]
pub struct WritesArgs {
    /// How many creates in all.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// How many requests in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Where to put the throw-away database (a fresh temporary directory by default).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Writes(args) => writes(args).await,
    }
}

/// fsyncs per second of a small file in `dir`, over `rounds` rounds.
fn fsync_rate(dir: &std::path::Path, rounds: usize) -> anyhow::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let started = Instant::now();
    for i in 0..rounds {
        file.write_all(&[i as u8; 512])?;
        file.sync_data()?;
    }
    let rate = rounds as f64 / started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(path)?;
    Ok(rate)
}

async fn writes(args: WritesArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.count < args.concurrency {
        bail!("--count must be at least --concurrency, which must be positive");
    }
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("chartwire-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).context("creating the benchmark directory")?;
    let server = app::start(ServeConfig::new(
        format!("sqlite://{}", dir.join("bench.db").display()),
        "127.0.0.1:0".parse()?,
        dir.clone(),
    ))
    .await?;
    let (_, key) = KeyService::new(server.store.clone())
        .create("bench", Role::Staff)
        .await?;
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let fsync_before = fsync_rate(&dir, 200)?;
    let before = server.store.diagnostics().await?;

    let per_worker = args.count / args.concurrency;
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker);
            for i in 0..per_worker {
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
    let mut latencies = Vec::with_capacity(args.count);
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed();
    let after = server.store.diagnostics().await?;
    let fsync_after = fsync_rate(&dir, 200)?;
    server.shutdown().await?;
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }

    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let writes = latencies.len();
    let commits = after.commits - before.commits;
    let batch = (after.writes - before.writes) as f64 / commits.max(1) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "chartwire bench writes: {writes} creates, concurrency {}",
        args.concurrency
    );
    println!(
        "  durability        SQLite WAL, synchronous={}",
        after.synchronous
    );
    println!(
        "  throughput        {:.0} writes/s ({:.2} s)",
        writes as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  latency           p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(pct(1.0))
    );
    println!("  group commit      {commits} commits, mean batch {batch:.1} writes/commit");
    println!(
        "  events appended   {}",
        after.head_sequence - before.head_sequence
    );
    println!(
        "  single fsync      {fsync_before:.0}/s before, {fsync_after:.0}/s after (this disk, same run)"
    );
    Ok(())
}
