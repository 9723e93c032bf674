//! Schema migrations for PostgreSQL: numbered SQL files applied once, in
//! order, under a session advisory lock, so processes starting together
//! wait for each other instead of racing.

use tokio_postgres::Client;

use crate::store::StoreError;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../migrations/postgres/0001_schema.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/postgres/0002_admin_sessions.sql"),
    ),
];

/// The advisory lock key that serializes migrations (any fixed number).
const MIGRATION_LOCK: i64 = 0x6377_6d69_6772;

pub async fn apply(c: &Client) -> Result<(), StoreError> {
    c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let applied = apply_locked(c).await;
    let unlocked = c
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    applied?;
    unlocked?;
    Ok(())
}

async fn apply_locked(c: &Client) -> Result<(), StoreError> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await?;
    for (version, sql) in MIGRATIONS {
        let done = c
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if done {
            continue;
        }
        let script = format!(
            "BEGIN;\n{sql}\nINSERT INTO schema_migrations (version) VALUES ({version});\nCOMMIT;"
        );
        if let Err(err) = c.batch_execute(&script).await {
            let _ = c.batch_execute("ROLLBACK").await;
            return Err(StoreError::Config(format!(
                "migration {version} failed: {}",
                StoreError::from(err)
            )));
        }
    }
    Ok(())
}
