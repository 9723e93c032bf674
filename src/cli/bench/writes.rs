//! `chartwire bench writes`: start a server on a fresh database, drive
//! record creates through the HTTP API at a fixed concurrency, and print
//! throughput, latency percentiles, the mean batch size of the group commit,
//! and this disk's single-fsync rate measured in the same run.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;

use super::{BenchServer, DeployArgs, drive_creates, percentile};

#[derive(Debug, Args)]
pub struct WritesArgs {
    /// How many creates in all.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// How many requests in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[command(flatten)]
    deploy: DeployArgs,
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

pub async fn run(args: WritesArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.count < args.concurrency {
        bail!("--count must be at least --concurrency, which must be positive");
    }
    if args.deploy.processes != 1 {
        bail!("bench writes runs one process; use bench webhooks --processes N");
    }
    let bench = BenchServer::start(&args.deploy, Vec::new()).await?;
    let fsync_before = fsync_rate(&bench.dir, 200)?;
    let before = bench.store.diagnostics().await?;
    let wal_before = bench.server_wal_syncs().await;
    let started = Instant::now();
    let mut latencies = drive_creates(&bench, args.count, args.concurrency, None).await?;
    let elapsed = started.elapsed();
    let after = bench.store.diagnostics().await?;
    let wal_after = bench.server_wal_syncs().await;
    let fsync_after = fsync_rate(&bench.dir, 200)?;
    bench.stop().await?;

    latencies.sort();
    let writes = latencies.len();
    let commits = after.commits - before.commits;
    let batch = (after.writes - before.writes) as f64 / commits.max(1) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "chartwire bench writes: {writes} creates, concurrency {}",
        args.concurrency
    );
    let durability = match after.backend {
        "sqlite" => format!("SQLite WAL, synchronous={}", after.synchronous),
        _ => format!(
            "PostgreSQL, synchronous_commit={}, {}",
            after.synchronous, after.journal_mode
        ),
    };
    println!("  durability        {durability}");
    println!(
        "  throughput        {:.0} writes/s ({:.2} s)",
        writes as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  latency           p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0))
    );
    println!("  group commit      {commits} commits, mean batch {batch:.1} writes/commit");
    println!(
        "  events appended   {}",
        after.head_sequence - before.head_sequence
    );
    if let (Some(b), Some(a)) = (before.writer_time, after.writer_time) {
        let per_commit = |d: Duration| ms(d) / commits.max(1) as f64;
        println!(
            "  per commit        {:.2} ms BEGIN + append lock + statements (one flight), {:.2} ms head + COMMIT (WAL flush)",
            per_commit(a.statements.saturating_sub(b.statements)),
            per_commit(a.commit.saturating_sub(b.commit)),
        );
    }
    if let (Some(b), Some(a)) = (wal_before, wal_after) {
        println!(
            "  server fsyncs     {} WAL flushes, {:.2} per commit, {:.3} per write",
            a - b,
            (a - b) as f64 / commits.max(1) as f64,
            (a - b) as f64 / writes.max(1) as f64
        );
    }
    println!(
        "  single fsync      {fsync_before:.0}/s before, {fsync_after:.0}/s after (this disk, same run)"
    );
    Ok(())
}
