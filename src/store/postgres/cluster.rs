//! SQL for sharing the dispatch work between processes: a heartbeat row per
//! process and a lease per endpoint. Lease times use the database's clock,
//! so processes on hosts whose clocks disagree still agree on expiry.

use std::time::Duration;

use deadpool_postgres::ClientWrapper;

use super::conn::{execute, query};
use crate::store::StoreError;

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// Renew this process's row; returns the processes seen within `ttl`.
pub async fn heartbeat(
    c: &ClientWrapper,
    process: &str,
    ttl: Duration,
) -> Result<Vec<String>, StoreError> {
    execute(
        c,
        "INSERT INTO dispatch_processes (id, seen_at) VALUES ($1, now())
         ON CONFLICT (id) DO UPDATE SET seen_at = now()",
        &[&process],
    )
    .await?;
    // Rows of processes gone for a long time are only clutter.
    execute(
        c,
        "DELETE FROM dispatch_processes WHERE seen_at < now() - interval '1 day'",
        &[],
    )
    .await?;
    let rows = query(
        c,
        "SELECT id FROM dispatch_processes
         WHERE seen_at >= now() - $1::BIGINT * interval '1 millisecond' ORDER BY id",
        &[&millis(ttl)],
    )
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Hold exactly `wanted`: take or renew each lease that is free, expired or
/// already ours, and release every other lease of ours. Returns the
/// endpoints now held.
pub async fn hold(
    c: &ClientWrapper,
    process: &str,
    wanted: Vec<String>,
    ttl: Duration,
) -> Result<Vec<String>, StoreError> {
    execute(
        c,
        "DELETE FROM endpoint_leases WHERE owner = $1 AND endpoint_id <> ALL($2)",
        &[&process, &wanted],
    )
    .await?;
    let rows = query(
        c,
        "INSERT INTO endpoint_leases (endpoint_id, owner, expires_at)
         SELECT w, $1, now() + $3::BIGINT * interval '1 millisecond' FROM unnest($2::TEXT[]) AS w
         ORDER BY w
         ON CONFLICT (endpoint_id) DO UPDATE
             SET owner = excluded.owner, expires_at = excluded.expires_at
             WHERE endpoint_leases.owner = excluded.owner
                OR endpoint_leases.expires_at < now()
         RETURNING endpoint_id",
        &[&process, &wanted, &millis(ttl)],
    )
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Give up every lease of this process (it is shutting down).
pub async fn release_all(c: &ClientWrapper, process: &str) -> Result<(), StoreError> {
    execute(
        c,
        "DELETE FROM endpoint_leases WHERE owner = $1",
        &[&process],
    )
    .await?;
    execute(
        c,
        "DELETE FROM dispatch_processes WHERE id = $1",
        &[&process],
    )
    .await?;
    Ok(())
}

/// Endpoints that may be sent to.
pub async fn enabled_endpoints(c: &ClientWrapper) -> Result<Vec<String>, StoreError> {
    let rows = query(
        c,
        "SELECT id FROM webhook_endpoints WHERE deleted_at IS NULL AND status = 'enabled'
         ORDER BY id",
        &[],
    )
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
