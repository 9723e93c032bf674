//! `chartwire secrets rotate-master-key`: re-seal every secret under a new
//! master key. Safe to interrupt and run again: the new key is written
//! first (`master.key.next`, or `CHARTWIRE_NEW_MASTER_KEY`), rows already
//! under it are skipped, and the old key stays in the ring until the end.
//! Run it with the server stopped, or restart the server afterwards.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Subcommand;
use serde_json::json;

use super::DatabaseArgs;
use crate::audit::Auditor;
use crate::events::Actor;
use crate::ids;
use crate::secrets::{self, MasterKey};
use crate::store::{self, OpenMode, SealedRow};

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Re-seal every secret under a new master key.
    RotateMasterKey(DatabaseArgs),
}

pub async fn run(command: SecretsCommand) -> anyhow::Result<()> {
    match command {
        SecretsCommand::RotateMasterKey(database) => rotate(database).await,
    }
}

fn reseal_all(ring: &MasterKey, row: &SealedRow) -> anyhow::Result<Option<SealedRow>> {
    let current = |sealed: &Option<Vec<u8>>| sealed.as_ref().is_none_or(|s| ring.is_current(s));
    if ring.is_current(&row.secret)
        && current(&row.headers)
        && current(&row.previous_secret)
        && current(&row.client_identity)
    {
        return Ok(None);
    }
    let reseal = |sealed: &Option<Vec<u8>>| sealed.as_ref().map(|s| ring.reseal(s)).transpose();
    Ok(Some(SealedRow {
        id: row.id.clone(),
        updated_at: row.updated_at.clone(),
        headers: reseal(&row.headers)?,
        secret: ring.reseal(&row.secret)?,
        previous_secret: reseal(&row.previous_secret)?,
        client_identity: reseal(&row.client_identity)?,
    }))
}

async fn rotate(database: DatabaseArgs) -> anyhow::Result<()> {
    let from_env = std::env::var("CHARTWIRE_MASTER_KEY").ok();
    let data_dir = database.data_dir.clone();
    if from_env.is_some() && std::env::var("CHARTWIRE_NEW_MASTER_KEY").is_err() {
        bail!(
            "with CHARTWIRE_MASTER_KEY set, give the new key in CHARTWIRE_NEW_MASTER_KEY (base64 of 32 bytes)"
        );
    }
    if from_env.is_none() {
        let next = data_dir.join(secrets::NEXT_KEY_FILE);
        secrets::write_private(&next, &STANDARD.encode(ids::random_bytes(32)))
            .with_context(|| format!("writing {}", next.display()))?;
    }
    let ring = MasterKey::load_or_create(from_env.as_deref(), &data_dir)?;
    let store = store::open(&database.url(), OpenMode::Tool).await?;
    let check = store
        .meta_blob_or_insert(secrets::CHECK_NAME, ring.check_value())
        .await?;
    if !ring.verifies(&check) {
        bail!("neither the current nor the new master key matches this database");
    }
    let mut resealed = 0u64;
    let mut changed = 0u64;
    let mut after = None;
    loop {
        let page = store.sealed_rows(after.clone(), 200).await?;
        for row in &page {
            let Some(updated) = reseal_all(&ring, row)
                .with_context(|| format!("opening the secrets of {}", row.id))?
            else {
                continue;
            };
            // A row a running server changed meanwhile is left for the next run.
            if store.reseal_row(updated).await? {
                resealed += 1;
            } else {
                changed += 1;
            }
        }
        match page.last() {
            Some(last) if page.len() == 200 => after = Some(last.id.clone()),
            _ => break,
        }
    }
    if changed > 0 {
        bail!(
            "{changed} endpoint(s) changed while being re-sealed; run the command again to finish"
        );
    }
    store
        .set_meta_blob(secrets::CHECK_NAME, ring.check_value())
        .await?;
    Auditor::new(store.clone())
        .record(
            &Actor::command_line(),
            "master_key.rotated",
            None,
            Some(json!({"resealed": resealed})),
        )
        .await;
    if from_env.is_none() {
        // Keep the old key beside the new one, then make the new one current
        // (a rename replaces atomically: there is always a usable master.key).
        let old = std::fs::read_to_string(data_dir.join(secrets::KEY_FILE))?;
        let previous = data_dir.join("master.key.previous");
        let _ = std::fs::remove_file(&previous);
        secrets::write_private(&previous, &old)?;
        std::fs::rename(
            data_dir.join(secrets::NEXT_KEY_FILE),
            data_dir.join(secrets::KEY_FILE),
        )?;
        eprintln!(
            "re-sealed {resealed} endpoint(s) under the new master key; the old key is kept in master.key.previous"
        );
    } else {
        eprintln!(
            "re-sealed {resealed} endpoint(s); now set CHARTWIRE_MASTER_KEY to the new key and unset CHARTWIRE_NEW_MASTER_KEY"
        );
    }
    Ok(())
}
