//! `chartwire serve`.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;

use super::DatabaseArgs;
use crate::app::{self, ServeConfig};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Address to listen on.
    #[arg(long, env = "CHARTWIRE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How long events are kept for the change feed (e.g. 90d, 12h).
    #[arg(long, env = "CHARTWIRE_EVENT_RETENTION", default_value = "90d", value_parser = app::parse_duration)]
    event_retention: std::time::Duration,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServeConfig {
        database_url: args.database.url(),
        listen: args.listen,
        event_retention: args.event_retention,
    };
    let server = app::start(config).await?;
    let data_hint = match &args.database.database {
        Some(_) => "--database <same URL>".to_owned(),
        None => format!("--data-dir {}", args.database.data_dir.display()),
    };
    println!(
        "chartwire {} listening on http://{}",
        env!("CARGO_PKG_VERSION"),
        server.addr
    );
    println!(
        "  API: http://{}/api/v1   docs: http://{}/docs",
        server.addr, server.addr
    );
    println!(
        "  create an API key: chartwire keys create --role superadmin --name admin {data_hint}"
    );
    let stop = server.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    server.wait().await.context("serving")
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
