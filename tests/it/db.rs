//! The database each test runs against, on the backend the suite was asked
//! for (`CHARTWIRE_TEST_BACKEND`): a fresh SQLite file in a temporary
//! directory, or a fresh database on the PostgreSQL server named by
//! `CHARTWIRE_TEST_DATABASE_URL` (created per test, never shared).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tempfile::TempDir;

/// Which database the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_env() -> Backend {
        match std::env::var("CHARTWIRE_TEST_BACKEND").as_deref() {
            Ok("sqlite") | Err(_) => Backend::Sqlite,
            Ok("postgres") => Backend::Postgres,
            Ok(other) => panic!("unknown CHARTWIRE_TEST_BACKEND {other}"),
        }
    }
}

/// The PostgreSQL server the suite uses; the test fails (never skips) when
/// the postgres backend is asked for without one.
pub fn postgres_admin_url() -> String {
    std::env::var("CHARTWIRE_TEST_DATABASE_URL").expect(
        "CHARTWIRE_TEST_BACKEND=postgres needs CHARTWIRE_TEST_DATABASE_URL \
         (./scripts/test.sh starts a server and sets it)",
    )
}

/// Create an empty database on the server of `admin_url`; returns its URL.
pub async fn create_postgres_database(admin_url: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "cw_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand_suffix()
    );
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL server answers");
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("creating a test database");
    drop(client);
    let _ = driver.await;
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("a database URL ends with /NAME");
    format!("{base}/{name}")
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos % 1_000_000
}

/// A fresh database and data directory for one test.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// With PostgreSQL the master key is given, never generated.
    pub master_key: Option<String>,
    dir: TempDir,
}

impl TestDb {
    pub async fn new() -> TestDb {
        TestDb::on(Backend::from_env()).await
    }

    pub async fn on(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => TestDb {
                backend,
                url: format!("sqlite://{}", dir.path().join("chartwire.db").display()),
                master_key: None,
                dir,
            },
            Backend::Postgres => TestDb {
                backend,
                url: create_postgres_database(&postgres_admin_url()).await,
                master_key: Some(new_master_key()),
                dir,
            },
        }
    }

    /// The data directory (logs, the master key file on SQLite).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_buf(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Arguments that point a `chartwire` command at this database.
    pub fn args(&self) -> Vec<String> {
        let dir = self.dir.path().display().to_string();
        match self.backend {
            Backend::Sqlite => vec!["--data-dir".into(), dir],
            Backend::Postgres => vec![
                "--database".into(),
                self.url.clone(),
                "--data-dir".into(),
                dir,
            ],
        }
    }

    /// Apply this database's environment to a command.
    pub fn command(&self, command: &mut std::process::Command) {
        command.env_remove("CHARTWIRE_DATABASE_URL");
        match &self.master_key {
            Some(key) => command.env("CHARTWIRE_MASTER_KEY", key),
            None => command.env_remove("CHARTWIRE_MASTER_KEY"),
        };
    }
}

/// A random master key (base64 of 32 bytes).
pub fn new_master_key() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Everything the database holds, as bytes to search: the SQLite file and
/// its WAL, or every row of every chartwire table on PostgreSQL (binary
/// columns both as hex text and decoded).
pub async fn database_contents(db: &TestDb) -> Vec<Vec<u8>> {
    match db.backend {
        Backend::Sqlite => {
            let path = db.url.strip_prefix("sqlite://").unwrap();
            vec![
                std::fs::read(path).unwrap(),
                std::fs::read(format!("{path}-wal")).unwrap_or_default(),
            ]
        }
        Backend::Postgres => {
            let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let tables = client
                .query(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
                    &[],
                )
                .await
                .unwrap();
            let mut contents = Vec::new();
            for table in tables {
                let name: String = table.get(0);
                let rows = client
                    .query(&format!("SELECT t::TEXT FROM {name} t"), &[])
                    .await
                    .unwrap();
                for row in rows {
                    let text: String = row.get(0);
                    contents.push(text.clone().into_bytes());
                    // bytea columns print as \x<hex>: search their bytes too.
                    for part in text.split("\\\\x").skip(1) {
                        let hex: String =
                            part.chars().take_while(char::is_ascii_hexdigit).collect();
                        let bytes: Vec<u8> = (0..hex.len() / 2)
                            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                            .collect();
                        contents.push(bytes);
                    }
                }
            }
            contents
        }
    }
}

/// A PostgreSQL server of a test's own (for tests that stop and start it),
/// in a temporary directory; stopped and removed when dropped.
pub struct PgServer {
    pub port: u16,
    bin: PathBuf,
    root: TempDir,
}

impl PgServer {
    pub fn start() -> PgServer {
        let bin = postgres_bin();
        let root = tempfile::Builder::new()
            .prefix("chartwire-pg-own")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let as_root = is_root();
        if as_root {
            run(std::process::Command::new("chown")
                .arg("postgres:")
                .arg(root.path()));
        }
        let data = root.path().join("data");
        run(pg_command(&bin, "initdb", as_root)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]));
        let server = PgServer { port, bin, root };
        server.resume();
        let created = pg_command(&server.bin, "createdb", as_root)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "chartwire",
            ])
            .status()
            .unwrap();
        assert!(created.success(), "createdb failed");
        server
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/chartwire", self.port)
    }

    /// Stop the server at once (`immediate`: like a crash of the database).
    pub fn stop(&self) {
        run(pg_command(&self.bin, "pg_ctl", is_root())
            .arg("-D")
            .arg(self.root.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"]));
    }

    /// Start it again.
    pub fn resume(&self) {
        run(pg_command(&self.bin, "pg_ctl", is_root())
            .arg("-D")
            .arg(self.root.path().join("data"))
            .arg("-l")
            .arg(self.root.path().join("server.log"))
            .args(["-w", "start", "-o"])
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=200",
                self.port,
                self.root.path().display()
            )));
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = pg_command(&self.bin, "pg_ctl", is_root())
            .arg("-D")
            .arg(self.root.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// PostgreSQL's programs: `CHARTWIRE_TEST_PGBIN`, or the newest installed.
fn postgres_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("CHARTWIRE_TEST_PGBIN") {
        return PathBuf::from(bin);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (./scripts/test.sh installs it)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("PostgreSQL's initdb is installed")
}

/// initdb refuses to run as root: run PostgreSQL's programs as `postgres` then.
fn pg_command(bin: &Path, program: &str, as_root: bool) -> std::process::Command {
    let path = bin.join(program);
    if as_root {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        std::process::Command::new(path)
    }
}

fn run(command: &mut std::process::Command) {
    let out = command.output().expect("a PostgreSQL program runs");
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
