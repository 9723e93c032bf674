//! `chartwire keys create|list|revoke`: straight on the database, so they
//! work whether or not the server is running.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::DatabaseArgs;
use crate::auth::{KeyService, Role};
use crate::events::Actor;
use crate::store::{self, OpenMode};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it, alone, on stdout.
    Create(CreateArgs),
    /// List keys (never their secrets).
    List(DatabaseArgs),
    /// Revoke a key by id.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// superadmin, staff or integration.
    #[arg(long)]
    role: String,
    /// A name to recognise the key by.
    #[arg(long)]
    name: String,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The key's id (`key_…`).
    id: String,
    #[command(flatten)]
    database: DatabaseArgs,
}

async fn service(database: &DatabaseArgs) -> anyhow::Result<KeyService> {
    let store = store::open(&database.url(), OpenMode::Tool)
        .await
        .context("opening the database")?;
    Ok(KeyService::new(store))
}

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create(args) => {
            let Some(role) = Role::parse(&args.role) else {
                bail!("--role must be superadmin, staff or integration");
            };
            let (_, secret) = service(&args.database)
                .await?
                .create(&args.name, role, &Actor::command_line())
                .await?;
            println!("{secret}");
        }
        KeysCommand::List(database) => {
            let keys = service(&database).await?;
            let mut after = None;
            println!(
                "{:<30}  {:<11}  {:<27}  {:<27}  name",
                "id", "role", "created", "last used"
            );
            loop {
                let page = keys.list(after.clone(), 200).await?;
                for key in &page {
                    let state = if key.revoked_at.is_some() {
                        " (revoked)"
                    } else {
                        ""
                    };
                    println!(
                        "{:<30}  {:<11}  {:<27}  {:<27}  {}{state}",
                        key.id,
                        key.role.as_str(),
                        key.created_at,
                        key.last_used_at.as_deref().unwrap_or("never"),
                        key.name
                    );
                }
                match page.last() {
                    Some(last) if page.len() == 200 => after = Some(last.id.clone()),
                    _ => break,
                }
            }
        }
        KeysCommand::Revoke(args) => {
            service(&args.database)
                .await?
                .revoke(&args.id, false, &Actor::command_line())
                .await?;
            eprintln!("revoked {}", args.id);
        }
    }
    Ok(())
}
