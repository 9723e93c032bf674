//! The chartwire deployment a benchmark drives: one server in this process
//! on a fresh SQLite file, or on a fresh PostgreSQL database — in this
//! process, or as N `chartwire serve` child processes sharing it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::app::{self, RunningServer, ServeConfig};
use crate::auth::{KeyService, Role};
use crate::store::{self, Backend, OpenMode, Store};

/// Where and how a benchmark runs chartwire.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// `postgres://…` of a server the benchmark may create (and drop) a
    /// database on; SQLite in a temporary directory when not given.
    #[arg(long)]
    pub database: Option<String>,
    /// `chartwire serve` processes sharing the database (PostgreSQL only);
    /// with 1 the server runs inside the benchmark process.
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// Where to put the SQLite database (a fresh temporary directory by default).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

enum Servers {
    InProcess(RunningServer),
    Children(Vec<Child>),
}

/// A running deployment with a Superadmin key.
pub struct BenchServer {
    servers: Servers,
    /// One base URL per process.
    pub bases: Vec<String>,
    pub key: String,
    pub client: reqwest::Client,
    pub dir: PathBuf,
    /// The store, opened by this process (in-process server, or as a tool).
    pub store: Arc<dyn Store>,
    remove_dir: bool,
    /// A PostgreSQL database created for this run: (admin URL, name).
    created: Option<(String, String)>,
}

impl BenchServer {
    pub async fn start(
        deploy: &DeployArgs,
        allow: Vec<ipnet::IpNet>,
    ) -> anyhow::Result<BenchServer> {
        let remove_dir = deploy.dir.is_none();
        let dir = deploy.dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "chartwire-bench-{}-{}",
                std::process::id(),
                crate::ids::sortable("run")
            ))
        });
        std::fs::create_dir_all(&dir).context("creating the benchmark directory")?;
        let (url, created) = match &deploy.database {
            Some(admin) if Backend::of(admin) == Some(Backend::Postgres) => {
                let (url, name) = create_database(admin).await?;
                (url, Some((admin.clone(), name)))
            }
            Some(_) => bail!("--database takes a postgres:// URL (SQLite is the default)"),
            None => (format!("sqlite://{}", dir.join("bench.db").display()), None),
        };
        if deploy.processes == 0 || (deploy.processes > 1 && created.is_none()) {
            bail!(
                "--processes above 1 needs --database postgres://… (one process per SQLite file)"
            );
        }
        let master_key = crate::secrets::MasterKey::generate_base64();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        let (servers, bases, store) = if deploy.processes == 1 {
            let mut config = ServeConfig::new(url.clone(), "127.0.0.1:0".parse()?, dir.clone());
            config.master_key = Some(master_key);
            config.webhooks.endpoint_allow = allow;
            // The benchmark drives the API from one key as fast as it can.
            config.api_rate_limit = None;
            config.webhooks.retry_schedule =
                crate::webhooks::schedule::RetrySchedule::parse("1s,2s,5s,10s,30s,60s")
                    .map_err(anyhow::Error::msg)?;
            config.webhooks.timeout = Duration::from_secs(120);
            let server = app::start(config).await?;
            let base = format!("http://{}", server.addr);
            let store = server.store.clone();
            (Servers::InProcess(server), vec![base], store)
        } else {
            let store = store::open(&url, OpenMode::Tool).await?;
            let mut children = Vec::new();
            let mut bases = Vec::new();
            for i in 0..deploy.processes {
                let (child, base) = spawn_serve(&url, &master_key, &allow, &dir, i)?;
                children.push(child);
                bases.push(base);
            }
            (Servers::Children(children), bases, store)
        };
        let (_, key) = KeyService::new(store.clone())
            .create(
                "bench",
                Role::Superadmin,
                &crate::events::Actor::command_line(),
            )
            .await?;
        Ok(BenchServer {
            servers,
            bases,
            key,
            client,
            dir,
            store,
            remove_dir,
            created,
        })
    }

    /// WAL flushes the PostgreSQL server has made so far, all sessions
    /// together (`pg_stat_wal`, PostgreSQL 14 and later); `None` on SQLite.
    pub async fn server_wal_syncs(&self) -> Option<u64> {
        let (admin, _) = self.created.as_ref()?;
        let client = admin_client(admin).await.ok()?;
        let row = client
            .query_one("SELECT wal_sync FROM pg_stat_wal", &[])
            .await
            .ok()?;
        row.get::<_, i64>(0).try_into().ok()
    }

    pub fn base(&self) -> &str {
        &self.bases[0]
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        drop(self.store);
        match self.servers {
            Servers::InProcess(server) => server.shutdown().await?,
            Servers::Children(children) => {
                for mut child in children {
                    let _ = Command::new("kill").arg(child.id().to_string()).status();
                    let _ = child.wait();
                }
            }
        }
        if let Some((admin, name)) = &self.created {
            drop_database(admin, name).await?;
        }
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        Ok(())
    }
}

/// Start `chartwire serve` on a free port; returns the child and its base URL.
fn spawn_serve(
    url: &str,
    master_key: &str,
    allow: &[ipnet::IpNet],
    dir: &std::path::Path,
    i: usize,
) -> anyhow::Result<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args([
            "serve",
            "--database",
            url,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--api-rate-limit", "0", "--webhook-timeout", "120s"])
        .args(["--retry-schedule", "1s,2s,5s,10s,30s,60s"])
        .arg("--data-dir")
        .arg(dir)
        .env("CHARTWIRE_MASTER_KEY", master_key)
        .env("CHARTWIRE_LOG", "warn")
        .env_remove("CHARTWIRE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("serve-{i}.log")))?);
    for network in allow {
        command.args(["--endpoint-allow", &network.to_string()]);
    }
    let child = command.spawn().context("starting chartwire serve")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("chartwire serve #{i} did not start (see {})", dir.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((child, format!("http://127.0.0.1:{port}")))
}

async fn admin_client(admin: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(connection);
    Ok(client)
}

/// A fresh database on the server of `admin`; returns its URL and name.
async fn create_database(admin: &str) -> anyhow::Result<(String, String)> {
    let name = format!(
        "chartwire_bench_{}",
        crate::ids::sortable("db").to_lowercase()
    );
    let name = name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
    admin_client(admin)
        .await?
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .context("creating the benchmark database")?;
    let mut config: url::Url = admin.parse().context("parsing --database")?;
    config.set_path(&format!("/{name}"));
    Ok((config.to_string(), name))
}

async fn drop_database(admin: &str, name: &str) -> anyhow::Result<()> {
    admin_client(admin)
        .await?
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .context("dropping the benchmark database")
}
