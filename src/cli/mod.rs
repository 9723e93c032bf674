//! The command line: `serve`, `keys`, `migrate` and `bench`. Every flag has a
//! `CHARTWIRE_*` environment variable. This is an edge: errors are `anyhow`.

mod bench;
mod keys;
mod secrets;
mod serve;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::store::{self, OpenMode};

#[derive(Debug, Parser)]
#[command(
    name = "chartwire",
    version,
    about = "Health records whose every change reaches the applications that care about it"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<serve::ServeArgs>),
    /// Create, list and revoke API keys (works with the server stopped or running).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage the master key that seals secrets.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Data directory (SQLite database and keys).
    #[arg(long, env = "CHARTWIRE_DATA_DIR", default_value = "./chartwire-data")]
    pub data_dir: PathBuf,
    /// Database URL: sqlite://PATH. Defaults to a SQLite file in the data directory.
    #[arg(long, env = "CHARTWIRE_DATABASE_URL")]
    pub database: Option<String>,
}

impl DatabaseArgs {
    pub fn url(&self) -> String {
        match &self.database {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("chartwire.db").display()),
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Keys(command) => keys::run(command).await,
        Command::Secrets(command) => secrets::run(command).await,
        Command::Migrate(args) => {
            store::open(&args.url(), OpenMode::Tool).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Bench(command) => bench::run(command).await,
    }
}
