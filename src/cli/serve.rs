//! `chartwire serve`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ipnet::IpNet;

use super::DatabaseArgs;
use crate::app::{self, ServeConfig, WebhookOptions};
use crate::webhooks::address::{StaticResolver, SystemResolver};
use crate::webhooks::schedule::{self, RetrySchedule};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Address to listen on.
    #[arg(long, env = "CHARTWIRE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// PostgreSQL: the most connections this process opens (plus one for LISTEN).
    #[arg(long, env = "CHARTWIRE_DATABASE_POOL", default_value_t = crate::store::postgres::SERVER_POOL as u16,
          value_parser = clap::value_parser!(u16).range(2..=1000))]
    database_pool: u16,
    /// How long events are kept for the change feed (e.g. 90d, 12h).
    #[arg(long, env = "CHARTWIRE_EVENT_RETENTION", default_value = "90d", value_parser = app::parse_duration)]
    event_retention: Duration,
    /// How long audit entries are kept (HIPAA asks for six years of documentation).
    #[arg(long, env = "CHARTWIRE_AUDIT_RETENTION", default_value = "2196d", value_parser = app::parse_duration)]
    audit_retention: Duration,
    /// Allow webhook endpoints in this network (and plain http to it). Repeatable.
    #[arg(
        long = "endpoint-allow",
        env = "CHARTWIRE_ENDPOINT_ALLOW",
        value_delimiter = ','
    )]
    endpoint_allow: Vec<IpNet>,
    /// Delays between webhook attempts after the first, e.g. 5s,5m,30m,2h.
    #[arg(long, env = "CHARTWIRE_RETRY_SCHEDULE", default_value = schedule::DEFAULT, value_parser = RetrySchedule::parse)]
    retry_schedule: RetrySchedule,
    /// How long one webhook attempt may take.
    #[arg(long, env = "CHARTWIRE_WEBHOOK_TIMEOUT", default_value = "15s", value_parser = app::parse_duration)]
    webhook_timeout: Duration,
    /// Disable an endpoint whose deliveries have all failed for this long.
    #[arg(long, env = "CHARTWIRE_AUTO_DISABLE_AFTER", default_value = "5d", value_parser = app::parse_duration)]
    auto_disable_after: Duration,
    /// How long the previous signing secret keeps signing after a rotation.
    #[arg(long, env = "CHARTWIRE_SECRET_ROTATION_OVERLAP", default_value = "24h", value_parser = app::parse_duration)]
    secret_rotation_overlap: Duration,
    /// How long finished deliveries and their attempts are kept.
    #[arg(long, env = "CHARTWIRE_DELIVERY_RETENTION", default_value = "30d", value_parser = app::parse_duration)]
    delivery_retention: Duration,
    /// Requests per second per API key (bursts of twice that); 0 turns the limit off.
    #[arg(long, env = "CHARTWIRE_API_RATE_LIMIT", default_value_t = app::DEFAULT_API_RATE_LIMIT)]
    api_rate_limit: u32,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "CHARTWIRE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) for --tls-cert.
    #[arg(long, env = "CHARTWIRE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Extra trusted roots (PEM) for webhook endpoints on a private PKI.
    #[arg(long, env = "CHARTWIRE_CA_BUNDLE")]
    ca_bundle: Option<std::path::PathBuf>,
    /// At most this many webhook endpoints.
    #[arg(long, env = "CHARTWIRE_MAX_ENDPOINTS", default_value_t = 1000)]
    max_endpoints: usize,
    /// Source address for webhook connections (a static egress IP to give integrators).
    #[arg(long, env = "CHARTWIRE_EGRESS_BIND")]
    egress_bind: Option<IpAddr>,
    /// PostgreSQL with several processes: how long an endpoint stays with a
    /// process that stopped renewing its lease (crashed, or cut off from the database).
    #[arg(long, env = "CHARTWIRE_LEASE_TTL", default_value = "10s", value_parser = app::parse_duration)]
    lease_ttl: Duration,
    /// An admin page session ends after this long without a request.
    #[arg(long, env = "CHARTWIRE_ADMIN_IDLE_TIMEOUT", default_value = "30m", value_parser = app::parse_duration)]
    admin_idle_timeout: Duration,
    /// Resolve HOST to IP for webhook endpoints instead of asking DNS (like curl's --resolve). Repeatable.
    #[arg(long, env = "CHARTWIRE_RESOLVE", value_delimiter = ',', value_parser = parse_resolve)]
    resolve: Vec<(String, IpAddr)>,
}

fn parse_resolve(text: &str) -> Result<(String, IpAddr), String> {
    let (host, ip) = text
        .split_once('=')
        .ok_or_else(|| "expected HOST=IP".to_owned())?;
    let ip = ip
        .parse()
        .map_err(|_| format!("`{ip}` is not an IP address"))?;
    Ok((host.trim().to_ascii_lowercase(), ip))
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let resolver = (!args.resolve.is_empty()).then(|| {
        let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (host, ip) in &args.resolve {
            names.entry(host.clone()).or_default().push(*ip);
        }
        Arc::new(StaticResolver {
            names,
            fallback: Some(Arc::new(SystemResolver)),
        }) as Arc<dyn crate::webhooks::address::Resolver>
    });
    let config = ServeConfig {
        database_url: args.database.url(),
        listen: args.listen,
        data_dir: args.database.data_dir.clone(),
        master_key: std::env::var("CHARTWIRE_MASTER_KEY").ok(),
        event_retention: args.event_retention,
        audit_retention: args.audit_retention,
        api_rate_limit: (args.api_rate_limit > 0).then_some(args.api_rate_limit),
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(crate::app::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        database_pool: Some(usize::from(args.database_pool)),
        admin_sessions: crate::auth::sessions::SessionSettings {
            idle: args.admin_idle_timeout,
            ..Default::default()
        },
        webhooks: WebhookOptions {
            endpoint_allow: args.endpoint_allow.clone(),
            retry_schedule: args.retry_schedule.clone(),
            timeout: args.webhook_timeout,
            auto_disable_after: args.auto_disable_after,
            secret_rotation_overlap: args.secret_rotation_overlap,
            delivery_retention: args.delivery_retention,
            resolver,
            egress_bind: args.egress_bind,
            max_endpoints: args.max_endpoints,
            ca_bundle: args.ca_bundle.clone(),
            lease_ttl: args.lease_ttl,
        },
    };
    let server = app::start(config).await?;
    let data_hint = match &args.database.database {
        Some(_) => "--database <same URL>".to_owned(),
        None => format!("--data-dir {}", args.database.data_dir.display()),
    };
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    println!(
        "chartwire {} listening on {scheme}://{}",
        env!("CARGO_PKG_VERSION"),
        server.addr
    );
    println!(
        "  API: {scheme}://{}/api/v1   docs: {scheme}://{}/docs   admin: {scheme}://{}/admin",
        server.addr, server.addr, server.addr
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
