//! The built binary under real conditions: `kill -9` during concurrent
//! writes, durability settings of the live database, group commit, one
//! server per data directory, graceful shutdown, the keys command, and no
//! record values in the log.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_chartwire");

pub struct Served {
    pub child: Child,
    pub base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `chartwire serve` on a free port with its logs in `log`.
pub fn serve(db: &TestDb, log: &Path) -> Served {
    serve_with(db, log, &[])
}

pub fn serve_with(db: &TestDb, log: &Path, extra: &[&str]) -> Served {
    serve_logged(db, log, extra, "info")
}

pub fn serve_logged(db: &TestDb, log: &Path, extra: &[&str], level: &str) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(BIN);
    db.command(&mut command);
    let child = command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .args(db.args())
        .env("CHARTWIRE_LOG", level)
        .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("chartwire starts");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the server did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Served { child, base }
}

fn keys_cli(db: &TestDb, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(BIN);
    db.command(&mut command);
    command
        .arg("keys")
        .args(args)
        .args(db.args())
        .env("CHARTWIRE_LOG", "warn")
        .output()
        .expect("chartwire keys runs")
}

pub fn new_key(db: &TestDb, role: &str) -> String {
    let out = keys_cli(db, &["create", "--role", role, "--name", "test"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the key alone on stdout: {stdout:?}");
    assert!(lines[0].starts_with("cwk_"));
    lines[0].to_owned()
}

/// `count` writers creating patients until `stop` (or the server dies);
/// each returns the ids whose create was acknowledged.
fn spawn_writers(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    count: usize,
    prefix: &str,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<i64>>> {
    (0..count)
        .map(|w| {
            let (client, base, key, stop) = (client.clone(), base.to_owned(), key.to_owned(), stop.clone());
            let first_name = format!("{prefix}{w}");
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..5_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let sent = client
                        .post(format!("{base}/api/v1/patients"))
                        .bearer_auth(&key)
                        .json(&json!({"first_name": first_name, "last_name": format!("N{i}"), "date_of_birth": "1970-01-01"}))
                        .send()
                        .await;
                    match sent {
                        Ok(reply) if reply.status() == 201 => {
                            if let Ok(body) = reply.json::<Value>().await {
                                acked.push(body["id"].as_i64().unwrap());
                            }
                        }
                        Ok(reply) => panic!("unexpected status {}", reply.status()),
                        Err(_) => break, // the server died mid-request
                    }
                }
                acked
            })
        })
        .collect()
}

/// Write from `writers` tasks for 1.5 s, then `kill -9` the server;
/// returns the ids of the acknowledged creates.
async fn write_then_kill(
    server: &mut Served,
    client: &reqwest::Client,
    key: &str,
    writers: usize,
    prefix: &str,
) -> BTreeSet<i64> {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = spawn_writers(client, &server.base, key, writers, prefix, &stop);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut acked = BTreeSet::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    assert!(
        acked.len() > 50,
        "too few writes before the kill: {}",
        acked.len()
    );
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_after_kill_9() {
    let db = TestDb::new().await;
    let log = db.path().join("server.log");
    let key = new_key(&db, "staff");
    let mut server = serve(&db, &log);
    let client = crate::helpers::client();
    let acked = write_then_kill(&mut server, &client, &key, 8, "K").await;

    let server = serve(&db, &log);
    for id in &acked {
        let reply = client
            .get(format!("{}/api/v1/patients/{id}", server.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200, "acknowledged patient {id} was lost");
    }
    let mut in_feed = BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let page: Value = client
            .get(format!(
                "{}/api/v1/changes?limit=1000&types=patient.created{cursor}",
                server.base
            ))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        in_feed.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["data"]["id"].as_i64().unwrap()),
        );
        cursor = format!("&after={}", page["next_cursor"].as_str().unwrap());
        if page["has_more"] == false {
            break;
        }
    }
    let missing: Vec<_> = acked.difference(&in_feed).collect();
    assert!(
        missing.is_empty(),
        "acknowledged writes without their event: {missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_database_runs_wal_with_full_synchronous_commits() {
    let app = TestApp::spawn().await;
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 200);
    if app.db.backend == Backend::Postgres {
        // Every commit waits for its WAL record to be flushed to disk.
        assert_eq!(ready.body["store"]["backend"], "postgres");
        assert_eq!(ready.body["store"]["journal_mode"], "wal");
        assert_eq!(ready.body["store"]["synchronous"], "on");
        return;
    }
    assert_eq!(ready.body["store"]["backend"], "sqlite");
    assert_eq!(ready.body["store"]["journal_mode"], "wal");
    assert_eq!(ready.body["store"]["synchronous"], "full");
    // WAL is a property of the file: another connection sees it too.
    let path = app.database_url.strip_prefix("sqlite://").unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_share_commits() {
    let app = TestApp::spawn().await;
    // Warm up the connection pool and the key's last-use write.
    app.get("/api/v1/patients").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = app.server().store.diagnostics().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let client = app.client.clone();
        let url = format!("{}/api/v1/patients", app.base);
        let key = app.admin.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"first_name": "G", "last_name": format!("C{i}"), "date_of_birth": "1980-01-01"}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let after = app.server().store.diagnostics().await.unwrap();
    let writes = after.writes - before.writes;
    let commits = after.commits - before.commits;
    assert!(writes >= 32, "{writes} writes");
    assert!(
        commits < 32,
        "32 creates took {commits} commits: no group commit"
    );
    let metrics = app.call(Method::GET, "/metrics", None, None).await;
    assert!(
        metrics
            .body
            .as_str()
            .unwrap()
            .contains("chartwire_store_commits_total")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_refuses_to_start() {
    // SQLite only: on PostgreSQL several servers sharing a database is the point.
    let db = TestDb::on(Backend::Sqlite).await;
    let dir = db.path();
    let _first = serve(&db, &dir.join("first.log"));
    let second = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env_remove("CHARTWIRE_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!second.status.success());
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(
        message.contains("in use by another `chartwire serve`"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_command_works_beside_a_running_server_and_sigterm_stops_it() {
    let db = TestDb::new().await;
    let first = new_key(&db, "superadmin");
    let mut server = serve(&db, &db.path().join("server.log"));
    let second = new_key(&db, "integration");
    let client = crate::helpers::client();
    for key in [&first, &second] {
        let reply = client
            .get(format!("{}/api/v1/patients", server.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
    }
    let listed = String::from_utf8(keys_cli(&db, &["list"]).stdout).unwrap();
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("key_")).count(),
        2,
        "{listed}"
    );
    assert!(!listed.contains(&first));
    let id = listed
        .lines()
        .find(|l| l.contains("integration"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(keys_cli(&db, &["revoke", &id]).status.success());
    // A revocation made outside the server takes effect within the
    // authentication cache's lifetime.
    let revoked_at = Instant::now();
    loop {
        let reply = client
            .get(format!("{}/api/v1/patients", server.base))
            .bearer_auth(&second)
            .send()
            .await
            .unwrap();
        if reply.status() == 401 {
            break;
        }
        assert_eq!(reply.status(), 200);
        assert!(
            revoked_at.elapsed() < chartwire::auth::AUTH_CACHE_TTL + Duration::from_millis(500),
            "the revoked key still works"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bad_role = keys_cli(&db, &["create", "--role", "root", "--name", "x"]);
    assert!(!bad_role.status.success());

    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(
                status.success(),
                "SIGTERM should end the server cleanly: {status}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_values_never_reach_the_log() {
    let db = TestDb::new().await;
    let log = db.path().join("server.log");
    let key = new_key(&db, "superadmin");
    let server = serve_with(
        &db,
        &log,
        &["--endpoint-allow", "127.0.0.0/8", "--retry-schedule", "1s"],
    );
    let client = crate::helpers::client();
    let marker = "Phimarker-Quintessa";
    let dob = "1911-11-11";
    // A webhook whose listener refuses connections, with a secret header.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hook = client
        .post(format!("{}/api/v1/webhooks/endpoints", server.base))
        .bearer_auth(&key)
        .json(&json!({"url": format!("http://127.0.0.1:{closed}/Hookpathmarker"), "events": ["patient.*"],
            "headers": {"Authorization": "Bearer Headermarker-secret"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 201);
    let hook: Value = hook.json().await.unwrap();
    let secret: Value = client
        .get(format!(
            "{}/api/v1/webhooks/endpoints/{}/secret",
            server.base,
            hook["id"].as_str().unwrap()
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let created: Value = client
        .post(format!("{}/api/v1/patients", server.base))
        .bearer_auth(&key)
        .json(&json!({"first_name": marker, "last_name": marker, "date_of_birth": dob, "email": "phimarker@clinic.example"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    let url = format!("{}/api/v1/patients/{id}", server.base);
    client
        .patch(&url)
        .bearer_auth(&key)
        .json(&json!({"phone": marker}))
        .send()
        .await
        .unwrap();
    client
        .patch(&url)
        .bearer_auth(&key)
        .json(&json!({"sex": marker}))
        .send()
        .await
        .unwrap();
    client
        .post(format!("{}/api/v1/patients", server.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(format!("{{\"first_name\": \"{marker}"))
        .send()
        .await
        .unwrap();
    client.get(&url).bearer_auth(&key).send().await.unwrap();
    client
        .get(format!("{}/api/v1/changes?types={marker}", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    client
        .get(format!("{}/api/v1/changes", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    client.delete(&url).bearer_auth(&key).send().await.unwrap();
    // Let the webhook attempts fail (and be retried) before reading the log.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(server);
    let logged = std::fs::read_to_string(&log).unwrap();
    for secret in [
        "Hookpathmarker",
        "Headermarker",
        secret["secret"].as_str().unwrap(),
    ] {
        assert!(!logged.contains(secret), "`{secret}` reached the log");
    }
    assert!(
        logged.contains("key_id=key_"),
        "requests are logged with the key id"
    );
    assert!(
        logged.contains("/api/v1/patients/{id}"),
        "requests are logged by route template: {logged}"
    );
    for secret in [marker, dob, "phimarker@", key.as_str()] {
        assert!(!logged.contains(secret), "`{secret}` reached the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_and_the_keys_command_can_open_a_new_database_together() {
    for _ in 0..5 {
        let db = Arc::new(TestDb::new().await);
        let keys = {
            let db = db.clone();
            std::thread::spawn(move || new_key(&db, "staff"))
        };
        let server = serve(&db, &db.path().join("server.log"));
        let key = keys.join().expect("keys create succeeded");
        let reply = crate::helpers::client()
            .get(format!("{}/api/v1/patients", server.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_arguments_creates_its_data_dir_and_says_how_to_get_a_key() {
    let cwd = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(cwd.path())
        .env_remove("CHARTWIRE_DATABASE_URL")
        .env_remove("CHARTWIRE_DATA_DIR")
        .env("CHARTWIRE_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(cwd.path().join("chartwire-data/chartwire.db").exists());
    let migrate = Command::new(BIN)
        .arg("migrate")
        .current_dir(cwd.path())
        .env_remove("CHARTWIRE_DATABASE_URL")
        .output()
        .unwrap();
    assert!(migrate.status.success(), "migrate beside a running server");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success());
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut printed).unwrap();
    assert!(
        printed.contains(&format!("listening on http://127.0.0.1:{port}")),
        "{printed}"
    );
    assert!(
        printed.contains("chartwire keys create --role superadmin"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_reaches_the_listener_across_kill_9() {
    let db = TestDb::new().await;
    let log = db.path().join("server.log");
    let flags = [
        "--endpoint-allow",
        "127.0.0.0/8",
        "--retry-schedule",
        "1s,1s,1s,1s,1s,1s",
    ];
    let key = new_key(&db, "superadmin");
    let listener = crate::listener::Listener::start().await;
    let mut server = serve_with(&db, &log, &flags);
    let client = crate::helpers::client();
    let created = client
        .post(format!("{}/api/v1/webhooks/endpoints", server.base))
        .bearer_auth(&key)
        .json(&json!({"url": listener.url("crash"), "events": ["patient.created"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let acked = write_then_kill(&mut server, &client, &key, 6, "D").await;
    let _server = serve_with(&db, &log, &flags);
    listener
        .wait_for_records("crash", &acked, Duration::from_secs(60))
        .await;
}

/// A whole scenario at debug log level: records with marker values,
/// endpoints with marker headers and paths, failing and succeeding
/// deliveries, validation errors. No marker may appear in the server's
/// output, in `/metrics`, or in any problem+json body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_phi_or_secret_reaches_logs_metrics_or_problems_at_debug_level() {
    let db = TestDb::new().await;
    let log = db.path().join("server.log");
    let key = new_key(&db, "superadmin");
    let listener = crate::listener::Listener::start().await;
    listener.set("Urlmarker-fail", crate::listener::Behaviour::answer(500));
    let server = serve_logged(
        &db,
        &log,
        &[
            "--endpoint-allow",
            "127.0.0.0/8",
            "--retry-schedule",
            "1s,1s",
        ],
        "debug",
    );
    let client = crate::helpers::client();
    let base = server.base.clone();
    let markers = [
        "Zyxmarker",
        "1913-03-14",
        "zyx.marker@clinic.example",
        "Hdrmarker-1234567",
        "Urlmarker",
        "+1 555 0199",
    ];
    let mut problems: Vec<String> = Vec::new();
    let send = |method: reqwest::Method, path: &str, body: Option<String>| {
        let mut request = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(&key);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        request.send()
    };
    for name in ["Urlmarker-ok", "Urlmarker-fail"] {
        let body = json!({"url": listener.url(name), "events": ["patient.*", "appointment.*"],
            "headers": {"X-Token": "Hdrmarker-1234567"}});
        let reply = send(
            reqwest::Method::POST,
            "/api/v1/webhooks/endpoints",
            Some(body.to_string()),
        )
        .await
        .unwrap();
        assert_eq!(reply.status(), 201);
    }
    let provider: Value = send(reqwest::Method::POST, "/api/v1/providers",
        Some(json!({"first_name": "Zyxmarker", "last_name": "Doc", "email": "zyx.marker@clinic.example"}).to_string()))
        .await.unwrap().json().await.unwrap();
    let patient: Value = send(reqwest::Method::POST, "/api/v1/patients",
        Some(json!({"first_name": "Zyxmarker", "last_name": "Zyxmarker", "date_of_birth": "1913-03-14",
            "email": "zyx.marker@clinic.example", "phone": "+1 555 0199"}).to_string()))
        .await.unwrap().json().await.unwrap();
    let patient_path = format!("/api/v1/patients/{}", patient["id"]);
    send(reqwest::Method::POST, "/api/v1/appointments", Some(json!({"patient_id": patient["id"], "provider_id": provider["id"],
        "start_at": "2026-12-01T09:00:00Z", "end_at": "2026-12-01T09:30:00Z", "reason": "Zyxmarker"}).to_string())).await.unwrap();
    let bad_requests = vec![
        (reqwest::Method::POST, "/api/v1/patients".to_owned(), Some(json!({"first_name": "Zyxmarker", "date_of_birth": "Zyxmarker", "sex": "Zyxmarker"}).to_string())),
        (reqwest::Method::POST, "/api/v1/patients".to_owned(), Some("{\"first_name\": \"Zyxmarker".to_owned())),
        (reqwest::Method::PATCH, patient_path.clone(), Some(json!({"email": "Zyxmarker", "nickname": 1}).to_string())),
        (reqwest::Method::GET, "/api/v1/changes?types=Zyxmarker".to_owned(), None),
        (reqwest::Method::GET, "/api/v1/changes?after=Zyxmarker".to_owned(), None),
        (reqwest::Method::POST, "/api/v1/webhooks/endpoints".to_owned(), Some(json!({"url": "http://Urlmarker.example/x", "events": ["*"], "headers": {"Host": "Hdrmarker-1234567"}}).to_string())),
        (reqwest::Method::GET, "/api/v1/patients/Zyxmarker".to_owned(), None),
    ];
    for (method, path, body) in bad_requests {
        let reply = send(method, &path, body).await.unwrap();
        assert!(
            reply.status().is_client_error(),
            "{path}: {}",
            reply.status()
        );
        problems.push(reply.text().await.unwrap());
    }
    send(
        reqwest::Method::PATCH,
        &patient_path,
        Some(json!({"phone": "+1 555 0100"}).to_string()),
    )
    .await
    .unwrap();
    // The admin pages: sign in, add an endpoint through the form, reveal
    // its secret, have a form refused.
    let mut admin = crate::admin_client::AdminClient::at(&base);
    assert_eq!(admin.sign_in(&key).await.status, 303);
    let session = admin.cookies["cw_session"].clone();
    let csrf = admin.get("/admin/integrations").await.csrf();
    let added = admin
        .post(
            "/admin/integrations",
            &[
                ("csrf", &csrf),
                ("url", &listener.url("Urlmarker-admin")),
                ("description", "Zyxmarker"),
                ("events", "patient.*"),
                ("header_name", "X-Token"),
                ("header_value", "Hdrmarker-1234567"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let endpoint = added.endpoint_id();
    let revealed = admin
        .post(
            &format!("/admin/integrations/{endpoint}/secret"),
            &[("csrf", &csrf)],
        )
        .await;
    let secret = format!("whsec_{}", revealed.between("whsec_", '<'));
    let refused = admin
        .post(
            "/admin/integrations",
            &[
                ("csrf", &csrf),
                ("url", "http://Urlmarker.example/x"),
                ("events", "patient.*"),
                ("description", "Zyxmarker"),
                ("header_name", "Host"),
                ("header_value", "Hdrmarker-1234567"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        !refused.body.contains("Hdrmarker-1234567"),
        "a refused form does not show header values"
    );
    listener
        .wait_for("Urlmarker-ok", 3, Duration::from_secs(10))
        .await;
    listener
        .wait_for("Urlmarker-fail", 4, Duration::from_secs(15))
        .await;
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    drop(server);
    let mut output = std::fs::read_to_string(&log).unwrap();
    output.push_str(&std::fs::read_to_string(log.with_extension("out")).unwrap_or_default());
    assert!(
        output.contains("DEBUG") || output.contains("request"),
        "the log is not empty"
    );
    assert!(
        output
            .lines()
            .any(|l| l.contains("route=/admin/integrations/{id}/secret")
                && l.contains("key_id=key_")),
        "admin requests are logged by route template with the session's key id"
    );
    for marker in markers.iter().copied().chain([
        key.as_str(),
        session.as_str(),
        csrf.as_str(),
        secret.as_str(),
    ]) {
        assert!(
            !output.contains(marker),
            "`{marker}` reached the server's output"
        );
        assert!(!metrics.contains(marker), "`{marker}` reached /metrics");
        for problem in &problems {
            assert!(
                !problem.contains(marker),
                "`{marker}` is in a problem: {problem}"
            );
        }
    }
}

/// A create of `record_type` `id` with its one `.created` event, written
/// straight to the store.
fn store_create(
    record_type: &str,
    id: i64,
    event_id: String,
    references: Vec<chartwire::store::Reference>,
) -> chartwire::store::RecordWrite {
    use chartwire::store::{NewEvent, RecordChange, RecordWrite};
    RecordWrite {
        record_type: record_type.into(),
        change: RecordChange::Create {
            id,
            patient_id: None,
            body: json!({"object": record_type, "id": id}),
            at: "2026-12-03T10:00:00.000000Z".into(),
        },
        references,
        events: vec![NewEvent {
            id: event_id,
            event_type: format!("{record_type}.created"),
            category: "record".into(),
            payload_version: 1,
            occurred_at: "2026-12-03T10:00:00.000000Z".into(),
            actor_type: "system".into(),
            actor_id: None,
            record_type: Some(record_type.into()),
            record_id: Some(id),
            data: json!({"object": record_type, "id": id}),
        }],
    }
}

/// A write the database itself rejects (here: an event id already taken)
/// fails alone; the writes committed with it in the same batch succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_database_rejects_fails_alone_in_its_batch() {
    let app = TestApp::spawn().await;
    let store = app.server().store.clone();
    let write = |id: i64, event_id: String| store_create("task", id, event_id, Vec::new());
    let taken = "evt_01M8Z0000000000000000TAKEN".to_owned();
    let first = store.allocate_record_id().await.unwrap();
    store
        .write_record(write(first, taken.clone()))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let id = store.allocate_record_id().await.unwrap();
        let event_id = if i == 7 {
            taken.clone()
        } else {
            format!("evt_01M8Z00000000000000BATCH{i:02}")
        };
        let w = write(id, event_id);
        tasks.push(tokio::spawn(
            async move { (i, id, store.write_record(w).await) },
        ));
    }
    for task in tasks {
        let (i, id, result) = task.await.unwrap();
        let stored = store.get_record("task", id).await.unwrap();
        if i == 7 {
            assert!(result.is_err(), "the duplicate event id was accepted");
            assert!(
                stored.is_none(),
                "the rejected write left its record behind"
            );
        } else {
            assert!(
                result.is_ok(),
                "write {i} failed with its batch: {result:?}"
            );
            assert!(stored.is_some());
        }
    }
}

/// Creates committed together (one statement on PostgreSQL) keep their own
/// reference checks: a create whose patient does not exist is refused with
/// the field at fault and leaves nothing behind; the others in its batch
/// commit, each with its own event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_in_one_batch_are_refused_or_kept_one_by_one() {
    use chartwire::store::{Reference, StoreError};
    let app = TestApp::spawn().await;
    let store = app.server().store.clone();
    let patient = store.allocate_record_id().await.unwrap();
    let create = |id: i64, record_type: &str, references: Vec<Reference>| {
        store_create(
            record_type,
            id,
            format!("evt_01M9A000000000000000000{id:03}"),
            references,
        )
    };
    store
        .write_record(create(patient, "patient", Vec::new()))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        let id = store.allocate_record_id().await.unwrap();
        // Every third task points at a patient that does not exist.
        let target = if i % 3 == 0 {
            patient + 10_000
        } else {
            patient
        };
        let write = create(
            id,
            "task",
            vec![Reference {
                field: "patient_id".into(),
                record_type: "patient".into(),
                id: target,
            }],
        );
        tasks.push(tokio::spawn(async move {
            (i, id, store.write_record(write).await)
        }));
    }
    let mut sequences = Vec::new();
    for task in tasks {
        let (i, id, result) = task.await.unwrap();
        let stored = store.get_record("task", id).await.unwrap();
        if i % 3 == 0 {
            match result {
                Err(StoreError::MissingReference { field }) => assert_eq!(field, "patient_id"),
                other => panic!("create {i} with a missing patient answered {other:?}"),
            }
            assert!(stored.is_none(), "a refused create left its record behind");
        } else {
            let created = result.unwrap_or_else(|err| panic!("create {i} failed: {err:?}"));
            assert_eq!(created.len(), 1, "create {i} got {created:?}");
            assert!(stored.is_some());
            sequences.extend(created);
        }
    }
    sequences.sort();
    sequences.dedup();
    assert_eq!(sequences.len(), 16, "two creates shared an event sequence");
}
