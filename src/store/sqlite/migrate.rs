//! Schema migrations for SQLite: numbered SQL files applied once, in order,
//! each in its own `BEGIN IMMEDIATE` transaction so that processes starting
//! together apply each one exactly once.

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::StoreError;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../migrations/sqlite/0001_foundation.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/sqlite/0002_webhooks.sql"),
    ),
    (3, include_str!("../../../migrations/sqlite/0003_audit.sql")),
    (
        4,
        include_str!("../../../migrations/sqlite/0004_signature_scheme.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/sqlite/0005_secret_meta.sql"),
    ),
    (
        6,
        include_str!("../../../migrations/sqlite/0006_client_identity.sql"),
    ),
    (
        7,
        include_str!("../../../migrations/sqlite/0007_admin_sessions.sql"),
    ),
];

pub fn apply(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
         )",
    )?;
    for (version, sql) in MIGRATIONS {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = apply_one(conn, *version, sql);
        match result {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(err) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(err);
            }
        }
    }
    Ok(())
}

fn apply_one(conn: &Connection, version: i64, sql: &str) -> Result<(), StoreError> {
    let done = conn
        .query_row(
            "SELECT version FROM schema_migrations WHERE version = ?1",
            params![version],
            |r| r.get::<_, i64>(0),
        )
        .optional()?;
    if done.is_none() {
        conn.execute_batch(sql)?;
        conn.execute(
            "INSERT INTO schema_migrations (version) VALUES (?1)",
            params![version],
        )?;
    }
    Ok(())
}
