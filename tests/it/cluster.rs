//! Several `chartwire serve` processes on one PostgreSQL database: the
//! guarantees that must hold across processes. These tests always run on
//! PostgreSQL (the suite's server, or one of their own when they stop it),
//! whichever backend the rest of the suite is using.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::db::{Backend, PgServer, TestDb};
use crate::durability::{Served, new_key, serve_with};
use crate::listener::{Behaviour, Listener};

const FLAGS: &[&str] = &[
    "--endpoint-allow",
    "127.0.0.0/8",
    "--retry-schedule",
    "1s,1s,1s,1s,1s,1s,1s,1s",
    "--lease-ttl",
    "3s",
];

/// `n` processes on one fresh PostgreSQL database.
struct Cluster {
    db: TestDb,
    processes: Vec<Option<Served>>,
    key: String,
    client: Client,
}

impl Cluster {
    async fn start(n: usize, extra: &[&str]) -> Cluster {
        let db = TestDb::on(Backend::Postgres).await;
        Cluster::start_on(db, n, extra)
    }

    fn start_on(db: TestDb, n: usize, extra: &[&str]) -> Cluster {
        let key = new_key(&db, "superadmin");
        let flags: Vec<&str> = FLAGS.iter().chain(extra).copied().collect();
        let processes = (0..n)
            .map(|i| {
                Some(serve_with(
                    &db,
                    &db.path().join(format!("p{i}.log")),
                    &flags,
                ))
            })
            .collect();
        Cluster {
            db,
            processes,
            key,
            client: crate::helpers::client(),
        }
    }

    fn base(&self, i: usize) -> &str {
        &self.processes[i].as_ref().expect("process running").base
    }

    /// The dispatch id process `i` logged at start.
    fn process_id(&self, i: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(self.db.path().join(format!("p{i}.log")))
                .unwrap_or_default();
            if let Some(at) = log.find("process=") {
                return log[at + 8..].split_whitespace().next().unwrap().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "process {i} never logged its dispatch id"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Endpoint id → the process holding its lease, read from the database.
    async fn leases(&self) -> HashMap<String, String> {
        let (client, connection) = tokio_postgres::connect(&self.db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .query(
                "SELECT endpoint_id, owner FROM endpoint_leases WHERE expires_at > now()",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    fn kill(&mut self, i: usize) {
        let mut served = self.processes[i].take().expect("process running");
        served.child.kill().expect("SIGKILL");
        served.child.wait().unwrap();
    }

    async fn post(&self, i: usize, path: &str, body: Value) -> (StatusCode, Value) {
        let reply = self
            .client
            .post(format!("{}{path}", self.base(i)))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = reply.status();
        (status, reply.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, i: usize, path: &str) -> (StatusCode, Value) {
        let reply = self
            .client
            .get(format!("{}{path}", self.base(i)))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("request sent");
        let status = reply.status();
        (status, reply.json().await.unwrap_or(Value::Null))
    }

    async fn endpoint(&self, i: usize, body: Value) -> String {
        let (status, created) = self.post(i, "/api/v1/webhooks/endpoints", body).await;
        assert_eq!(status, 201, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    async fn patient(&self, i: usize, name: &str) -> i64 {
        let (status, body) = self
            .post(
                i,
                "/api/v1/patients",
                json!({"first_name": name, "last_name": "Cluster", "date_of_birth": "1980-02-03"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
    }
}

/// Writers spread over the processes, each creating `per_writer` patients;
/// returns the acknowledged ids.
async fn write_everywhere(
    cluster: &Cluster,
    writers: usize,
    per_writer: usize,
    to: &[usize],
) -> BTreeSet<i64> {
    let bases: Vec<String> = to.iter().map(|i| cluster.base(*i).to_owned()).collect();
    spawn_writes(cluster, bases, writers, per_writer)
        .await
        .unwrap()
}

/// The same, as a task that does not borrow the cluster.
fn spawn_writes(
    cluster: &Cluster,
    bases: Vec<String>,
    writers: usize,
    per_writer: usize,
) -> tokio::task::JoinHandle<BTreeSet<i64>> {
    let (client, key) = (cluster.client.clone(), cluster.key.clone());
    tokio::spawn(write_to(client, key, bases, writers, per_writer))
}

async fn write_to(
    client: Client,
    key: String,
    bases: Vec<String>,
    writers: usize,
    per_writer: usize,
) -> BTreeSet<i64> {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let base = bases[w % bases.len()].clone();
        let (client, key) = (client.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..per_writer {
                let reply = client
                    .post(format!("{base}/api/v1/patients"))
                    .bearer_auth(&key)
                    .json(&json!({"first_name": format!("W{w}"), "last_name": format!("N{i}"), "date_of_birth": "1970-01-01"}))
                    .send()
                    .await
                    .expect("request sent");
                assert_eq!(reply.status(), 201);
                acked.push(reply.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
            }
            acked
        }));
    }
    let mut acked = BTreeSet::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_has_no_gaps_with_writers_on_three_processes() {
    const WRITERS: usize = 9;
    const PER_WRITER: usize = 334;
    // Processes 0..3 take the writes; a reader follows the feed on process 3.
    let cluster = Cluster::start(4, &[]).await;
    let reader = {
        let base = cluster.base(3).to_owned();
        let (client, key) = (cluster.client.clone(), cluster.key.clone());
        tokio::spawn(async move {
            let mut seen: Vec<(i64, String, i64)> = Vec::new();
            let mut cursor: Option<String> = None;
            let deadline = Instant::now() + Duration::from_secs(120);
            while seen.len() < WRITERS * PER_WRITER && Instant::now() < deadline {
                let mut url =
                    format!("{base}/api/v1/changes?limit=1000&wait=5&types=patient.created");
                if let Some(c) = &cursor {
                    url.push_str(&format!("&after={c}"));
                }
                let page: Value = client
                    .get(url)
                    .bearer_auth(&key)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                for event in page["data"].as_array().unwrap() {
                    seen.push((
                        event["sequence"].as_i64().unwrap(),
                        event["id"].as_str().unwrap().to_owned(),
                        event["data"]["id"].as_i64().unwrap(),
                    ));
                }
                cursor = page["next_cursor"].as_str().map(str::to_owned);
            }
            seen
        })
    };
    let acked = write_everywhere(&cluster, WRITERS, PER_WRITER, &[0, 1, 2]).await;
    assert_eq!(acked.len(), WRITERS * PER_WRITER);
    let seen = reader.await.unwrap();
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "the feed went backwards or repeated a sequence"
    );
    let ids: HashSet<&String> = seen.iter().map(|s| &s.1).collect();
    assert_eq!(ids.len(), seen.len(), "an event was served twice");
    let records: BTreeSet<i64> = seen.iter().map(|s| s.2).collect();
    let missed: Vec<_> = acked.difference(&records).take(5).collect();
    let extra: Vec<_> = records.difference(&acked).take(5).collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "the reader saw a different set than was committed: missed {missed:?}, extra {extra:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_deliveries_over_three_processes_arrive_once_each() {
    let cluster = Cluster::start(3, &[]).await;
    let listener = Listener::start().await;
    let paths: Vec<String> = (0..5).map(|i| format!("once{i}")).collect();
    for (i, path) in paths.iter().enumerate() {
        cluster
            .endpoint(
                i % 3,
                json!({"url": listener.url(path), "events": ["patient.created"]}),
            )
            .await;
    }
    let acked = write_everywhere(&cluster, 6, 167, &[0, 1, 2]).await;
    assert_eq!(acked.len(), 1_002);
    for path in &paths {
        listener
            .wait_for(path, acked.len(), Duration::from_secs(90))
            .await;
    }
    // Anything sent twice would arrive within this pause.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for path in &paths {
        let got = listener.received(path);
        let ids: HashSet<String> = got
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        assert_eq!(
            got.len(),
            acked.len(),
            "{path}: {} requests for {} events",
            got.len(),
            acked.len()
        );
        assert_eq!(ids.len(), acked.len(), "{path}: a webhook-id arrived twice");
        let records: BTreeSet<i64> = got
            .iter()
            .map(|r| r.json()["data"]["id"].as_i64().unwrap())
            .collect();
        assert!(
            records == acked,
            "{path}: the events delivered are not the events written"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_process_wakes_readers_and_senders_on_the_others() {
    let cluster = Cluster::start(2, &[]).await;
    let listener = Listener::start().await;
    cluster
        .endpoint(
            0,
            json!({"url": listener.url("rt"), "events": ["patient.created"]}),
        )
        .await;
    // Let the endpoint find its process, then time writes made on each side.
    cluster.patient(0, "Warm").await;
    listener.wait_for("rt", 1, Duration::from_secs(10)).await;
    for round in 0..4 {
        let (writer, reader) = if round % 2 == 0 { (0, 1) } else { (1, 0) };
        let (_, head) = cluster.get(reader, "/api/v1/changes?limit=1000").await;
        let cursor = head["next_cursor"].as_str().unwrap().to_owned();
        let poll = {
            let url = format!(
                "{}/api/v1/changes?after={cursor}&wait=10",
                cluster.base(reader)
            );
            let (client, key) = (cluster.client.clone(), cluster.key.clone());
            tokio::spawn(async move {
                let page: Value = client
                    .get(url)
                    .bearer_auth(&key)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (Instant::now(), page)
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = listener.received("rt").len();
        let written = Instant::now();
        cluster.patient(writer, &format!("R{round}")).await;
        let (woke, page) = poll.await.unwrap();
        assert_eq!(page["data"].as_array().unwrap().len(), 1);
        let waited = woke - written;
        assert!(
            waited < Duration::from_secs(1),
            "the long-poll on process {reader} woke after {waited:?}"
        );
        let got = listener
            .wait_for("rt", before + 1, Duration::from_secs(1))
            .await;
        let delivered = got.last().unwrap().at - written;
        assert!(
            delivered < Duration::from_secs(1),
            "delivered after {delivered:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_must_be_given_the_same_master_key() {
    let db = TestDb::on(Backend::Postgres).await;
    let first = serve_with(&db, &db.path().join("first.log"), FLAGS);
    drop(first);
    let start = |key: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_chartwire"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(db.args());
        command
            .env_remove("CHARTWIRE_DATABASE_URL")
            .env("CHARTWIRE_LOG", "warn");
        match key {
            Some(key) => command.env("CHARTWIRE_MASTER_KEY", key),
            None => command.env_remove("CHARTWIRE_MASTER_KEY"),
        };
        command.output().unwrap()
    };
    let other = crate::db::new_master_key();
    let refused = start(Some(&other));
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("master key does not match"), "{message}");
    let missing = start(None);
    assert!(!missing.status.success());
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(message.contains("never generated"), "{message}");
    assert!(
        !db.path().join("master.key").exists(),
        "a process generated a key of its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_s_endpoints_are_taken_over_and_nothing_acknowledged_is_lost() {
    let mut cluster = Cluster::start(3, &[]).await;
    let listener = Listener::start().await;
    let paths: Vec<String> = (0..6).map(|i| format!("fail{i}")).collect();
    for path in &paths {
        cluster
            .endpoint(
                0,
                json!({"url": listener.url(path), "events": ["patient.created"]}),
            )
            .await;
    }
    // Wait until every endpoint has its process, then pick the process
    // holding the most endpoints as the one to kill.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut leases = cluster.leases().await;
    while leases.len() < paths.len() {
        assert!(
            Instant::now() < deadline,
            "endpoints without a process: {leases:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        leases = cluster.leases().await;
    }
    let ids: Vec<String> = (0..3).map(|i| cluster.process_id(i)).collect();
    let victim = (0..3)
        .max_by_key(|i| leases.values().filter(|owner| **owner == ids[*i]).count())
        .unwrap();
    let orphaned: Vec<String> = leases
        .iter()
        .filter(|(_, owner)| **owner == ids[victim])
        .map(|(endpoint, _)| endpoint.clone())
        .collect();
    assert!(!orphaned.is_empty());
    let others: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    // Writers on the other two processes all along; the victim is killed
    // mid-load with whatever its endpoints had in flight or queued.
    let survivors = spawn_writes(
        &cluster,
        others.iter().map(|i| cluster.base(*i).to_owned()).collect(),
        4,
        60,
    );
    let early = write_everywhere(&cluster, 2, 40, &[victim]).await;
    cluster.kill(victim);
    let late = survivors.await.unwrap();
    // More events after the kill, so the orphaned endpoints certainly have
    // deliveries only a new holder can send.
    let after = write_everywhere(&cluster, 2, 20, &others).await;
    let acked: BTreeSet<i64> = early.union(&late).chain(&after).copied().collect();
    // The victim's leases expire (ttl 3 s) and the survivors take them over.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = cluster.leases().await;
        let stuck: Vec<&String> = orphaned
            .iter()
            .filter(|endpoint| now.get(*endpoint).is_none_or(|owner| *owner == ids[victim]))
            .collect();
        if stuck.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "endpoints never taken over from the killed process: {stuck:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // At least once: what the killed process had in flight may arrive twice.
    for path in &paths {
        listener
            .wait_for_records(path, &acked, Duration::from_secs(60))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processes_ride_out_a_database_restart() {
    let server = PgServer::start();
    let mut db = TestDb::on(Backend::Sqlite).await;
    db.backend = Backend::Postgres;
    db.url = server.url();
    db.master_key = Some(crate::db::new_master_key());
    let cluster = Cluster::start_on(db, 2, &[]);
    let listener = Listener::start().await;
    cluster
        .endpoint(
            0,
            json!({"url": listener.url("restart"), "events": ["patient.created"]}),
        )
        .await;
    let mut acked = BTreeSet::new();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let write = |i: usize, n: usize| {
        let cluster = &cluster;
        async move {
            let reply = cluster
                .client
                .post(format!("{}/api/v1/patients", cluster.base(i)))
                .bearer_auth(&cluster.key)
                .json(&json!({"first_name": "Db", "last_name": format!("R{n}"), "date_of_birth": "1990-09-09"}))
                .send()
                .await
                .expect("the process answers");
            let status = reply.status().as_u16();
            let body: Value = reply.json().await.unwrap_or(Value::Null);
            (status, body["id"].as_i64())
        }
    };
    for n in 0..40 {
        let (status, id) = write(n % 2, n).await;
        assert_eq!(status, 201);
        acked.insert(id.unwrap());
    }
    server.stop();
    let outage = Instant::now();
    let mut n = 100;
    while outage.elapsed() < Duration::from_secs(10) {
        let (status, id) = write(n % 2, n).await;
        *statuses.entry(status).or_default() += 1;
        if status == 201 {
            acked.insert(id.unwrap());
        }
        for i in 0..2 {
            let ready = cluster
                .client
                .get(format!("{}/readyz", cluster.base(i)))
                .send()
                .await
                .unwrap();
            assert_eq!(
                ready.status(),
                503,
                "process {i} reported ready without its database"
            );
        }
        n += 1;
    }
    assert!(
        statuses.get(&503).copied().unwrap_or(0) > 0,
        "no write was refused: {statuses:?}"
    );
    assert_eq!(
        statuses.keys().filter(|s| **s != 503).count(),
        0,
        "writes during the outage: {statuses:?}"
    );
    server.resume();
    // Both processes come back by themselves.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..2 {
        loop {
            let ready = cluster
                .client
                .get(format!("{}/readyz", cluster.base(i)))
                .send()
                .await
                .unwrap();
            if ready.status() == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "process {i} never became ready again"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = 0;
    while after < 40 {
        let (status, id) = write(after % 2, 1000 + after).await;
        if status == 201 {
            acked.insert(id.unwrap());
            after += 1;
        } else {
            assert_eq!(status, 503);
            assert!(Instant::now() < deadline, "writes never succeeded again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    listener
        .wait_for_records("restart", &acked, Duration::from_secs(60))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_rate_limits_and_auto_disable_hold_across_processes() {
    let cluster = Cluster::start(3, &["--auto-disable-after", "3s"]).await;
    let listener = Listener::start().await;
    // per_record: the first attempt of every request fails, and the same
    // patient is changed through all three processes.
    listener.set(
        "ordered",
        Behaviour {
            fail_first: 3,
            ..Behaviour::answer(200)
        },
    );
    cluster
        .endpoint(0, json!({"url": listener.url("ordered"), "events": ["patient.*"], "ordering": "per_record"}))
        .await;
    let limited = cluster
        .endpoint(1, json!({"url": listener.url("limited"), "events": ["patient.created"], "rate_limit_per_second": 5}))
        .await;
    listener.set("dead", Behaviour::answer(500));
    let dead = cluster
        .endpoint(
            2,
            json!({"url": listener.url("dead"), "events": ["patient.created"]}),
        )
        .await;
    let patient = cluster.patient(0, "Order").await;
    for version in 1..6 {
        let process = version % 3;
        let reply = cluster
            .client
            .patch(format!(
                "{}/api/v1/patients/{patient}",
                cluster.base(process)
            ))
            .bearer_auth(&cluster.key)
            .json(&json!({"last_name": format!("V{version}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
    }
    for i in 0..14 {
        cluster.patient(i % 3, "Rate").await;
    }
    // per_record: the patient's versions are attempted in order, the next
    // only once the previous one succeeded (20 events, 3 failed attempts).
    let got = listener
        .wait_for("ordered", 23, Duration::from_secs(60))
        .await;
    let versions: Vec<i64> = got
        .iter()
        .filter(|r| r.json()["data"]["id"] == patient)
        .map(|r| r.json()["data"]["version"].as_i64().unwrap())
        .collect();
    let mut sorted = versions.clone();
    sorted.sort();
    assert_eq!(
        versions, sorted,
        "per_record ordering broke across processes"
    );
    // The rate limit is the endpoint's, not each process's.
    let limited_got = listener
        .wait_for("limited", 15, Duration::from_secs(30))
        .await;
    let span = limited_got.last().unwrap().at - limited_got.first().unwrap().at;
    assert!(
        span >= Duration::from_millis(2_500),
        "15 requests at 5/s took only {span:?}"
    );
    // Failing past --auto-disable-after disables the endpoint, whoever sends.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, shown) = cluster
            .get(0, &format!("/api/v1/webhooks/endpoints/{dead}"))
            .await;
        if shown["status"] == "auto_disabled" {
            break;
        }
        assert!(Instant::now() < deadline, "never auto-disabled: {shown}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = limited;
}
