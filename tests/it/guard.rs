//! The address guard: unsafe URLs refused when saved, resolved addresses
//! checked at every attempt (and connected to only once checked), redirects
//! never followed. No test resolves a real name: literals and the injected
//! resolver only.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chartwire::webhooks::address::StaticResolver;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::listener::{Behaviour, Listener};

/// Each URL is refused at create by a server with no allowed networks.
const UNSAFE: &[(&str, &str)] = &[
    ("http://hooks.example.com/x", "scheme"),
    ("ftp://hooks.example.com/x", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://hooks.example.com/", "scheme"),
    ("javascript:alert(1)", "scheme"),
    ("ws://hooks.example.com/x", "scheme"),
    ("https://127.0.0.1/x", "ip_literal"),
    ("https://127.1/x", "ip_literal"),
    ("https://2130706433/x", "ip_literal"),
    ("https://0x7f000001/x", "ip_literal"),
    ("https://0177.0.0.1/x", "ip_literal"),
    ("https://0x7f.0.0.1/x", "ip_literal"),
    ("https://017700000001/x", "ip_literal"),
    ("https://0.0.0.0/x", "ip_literal"),
    ("https://10.0.0.1/x", "ip_literal"),
    ("https://172.16.5.4/x", "ip_literal"),
    ("https://192.168.1.1/x", "ip_literal"),
    ("https://100.64.0.1/x", "ip_literal"),
    ("https://169.254.169.254/latest/meta-data/", "ip_literal"),
    ("https://255.255.255.255/x", "ip_literal"),
    ("https://224.0.0.1/x", "ip_literal"),
    ("https://8.8.8.8/x", "ip_literal"),
    ("https://[::1]/x", "ip_literal"),
    ("https://[::]/x", "ip_literal"),
    ("https://[::ffff:127.0.0.1]/x", "ip_literal"),
    ("https://[::ffff:7f00:1]/x", "ip_literal"),
    ("https://[0:0:0:0:0:ffff:127.0.0.1]/x", "ip_literal"),
    ("https://[fe80::1]/x", "ip_literal"),
    ("https://[fc00::1]/x", "ip_literal"),
    ("https://[fd00:ec2::254]/x", "ip_literal"),
    ("https://[64:ff9b::a9fe:a9fe]/x", "ip_literal"),
    ("https://[2002:7f00:1::]/x", "ip_literal"),
    ("https://[2606:4700:4700::1111]/x", "ip_literal"),
    ("https://user:pass@hooks.example.com/x", "userinfo"),
    ("https://user@hooks.example.com/x", "userinfo"),
    ("https://hooks.example.com:99999/x", "format"),
    ("https:///x", "host_name"),
    ("https://localhost/x", "host_name"),
    ("https://metadata/computeMetadata/v1/", "host_name"),
    ("not a url", "format"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_urls_and_every_ip_spelling_are_refused_at_create() {
    assert!(UNSAFE.len() >= 30);
    let app = TestApp::spawn_configured(|c| c.webhooks.endpoint_allow.clear()).await;
    for (url, rule) in UNSAFE {
        let reply = app
            .post(
                "/api/v1/webhooks/endpoints",
                json!({"url": url, "events": ["*"]}),
            )
            .await;
        assert_eq!(reply.status, 422, "{url}: {}", reply.body);
        assert_eq!(reply.body["field"], "url", "{url}");
        assert_eq!(
            reply.body["errors"][0]["code"], *rule,
            "{url}: {}",
            reply.body
        );
        assert!(
            !reply.body.to_string().contains(url),
            "the URL is not echoed back"
        );
    }
    assert_eq!(
        app.get("/api/v1/webhooks/endpoints").await.body["data"],
        json!([])
    );
    // A fragment is dropped; a plain https name is fine without resolving it.
    let saved = app
        .endpoint(json!({"url": "https://hooks.example.com/x#frag", "events": ["*"]}))
        .await;
    assert_eq!(saved["url"], "https://hooks.example.com/x");
}

/// Counts TCP connections accepted on a loopback port.
fn counting_port() -> (u16, Arc<AtomicUsize>) {
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in socket.incoming() {
            if stream.is_ok() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (port, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_looking_name_that_resolves_to_a_private_address_is_refused_at_delivery() {
    let (port, accepted) = counting_port();
    let mut names = HashMap::new();
    names.insert(
        "api.partner.example".to_owned(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    names.insert(
        "split.partner.example".to_owned(),
        vec![
            "127.0.0.1".parse().unwrap(),
            "93.184.216.34".parse().unwrap(),
        ],
    );
    let resolver = Arc::new(StaticResolver {
        names,
        fallback: None,
    });
    let app = TestApp::spawn_configured(|c| {
        c.webhooks.endpoint_allow.clear();
        c.webhooks.resolver = Some(resolver);
    })
    .await;
    let rebinding = app.endpoint(json!({"url": format!("https://api.partner.example:{port}/hook"), "events": ["patient.created"]})).await;
    let split = app.endpoint(json!({"url": format!("https://split.partner.example:{port}/hook"), "events": ["patient.created"]})).await;
    app.create(
        "patients",
        json!({"first_name": "G", "last_name": "H", "date_of_birth": "1980-01-01"}),
    )
    .await;
    for endpoint in [&rebinding, &split] {
        let delivery = app.first_attempt(endpoint["id"].as_str().unwrap()).await;
        assert_eq!(
            delivery["attempts_log"][0]["error_kind"], "address_not_allowed",
            "{delivery}"
        );
        assert_eq!(delivery["status"], "pending", "retried later, not dropped");
    }
    let shown = app
        .get(&format!(
            "/api/v1/webhooks/endpoints/{}",
            rebinding["id"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(
        shown["health"]["last_error"], "address_not_allowed",
        "the endpoint's health says why: {shown}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "no connection to a refused address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_failed_attempts_and_never_followed() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    listener.set(
        "moved",
        Behaviour {
            status: Some(302),
            location: Some(listener.url("target")),
            ..Behaviour::default()
        },
    );
    let endpoint = app
        .endpoint(json!({"url": listener.url("moved"), "events": ["patient.created"]}))
        .await;
    app.create(
        "patients",
        json!({"first_name": "G", "last_name": "H", "date_of_birth": "1980-01-01"}),
    )
    .await;
    let delivery = app.first_attempt(endpoint["id"].as_str().unwrap()).await;
    assert_eq!(delivery["attempts_log"][0]["http_status"], 302);
    assert_eq!(delivery["status"], "pending");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        listener.received("target").is_empty(),
        "the Location was followed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_leave_from_the_configured_egress_address() {
    let app =
        TestApp::spawn_configured(|c| c.webhooks.egress_bind = Some("127.0.0.2".parse().unwrap()))
            .await;
    let listener = Listener::start().await;
    app.endpoint(json!({"url": listener.url("egress"), "events": ["patient.created"]}))
        .await;
    app.create(
        "patients",
        json!({"first_name": "E", "last_name": "G", "date_of_birth": "1980-01-01"}),
    )
    .await;
    let got = listener
        .wait_for("egress", 1, Duration::from_secs(10))
        .await;
    assert_eq!(got[0].peer.ip().to_string(), "127.0.0.2");
    let shown = app
        .call(
            reqwest::Method::GET,
            "/api/v1/webhooks/egress",
            Some(&app.integration),
            None,
        )
        .await;
    assert_eq!(shown.body["fixed"], true);
    assert_eq!(shown.body["addresses"], json!(["127.0.0.2"]));
    let plain = TestApp::spawn().await;
    let shown = plain.get("/api/v1/webhooks/egress").await.body;
    assert_eq!(shown["fixed"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_given_the_wrong_master_key_refuses_to_start() {
    use base64::Engine;
    let db = crate::helpers::TestDb::new().await;
    let (url, dir) = (db.url.clone(), db.path());
    let config = |key: u8| {
        let mut config = chartwire::app::ServeConfig::new(
            url.clone(),
            "127.0.0.1:0".parse().unwrap(),
            dir.to_owned(),
        );
        config.master_key = Some(base64::engine::general_purpose::STANDARD.encode([key; 32]));
        config
    };
    let first = chartwire::app::start(config(1))
        .await
        .expect("the first start sets the key");
    first.shutdown().await.unwrap();
    let again = chartwire::app::start(config(1))
        .await
        .expect("the same key starts");
    again.shutdown().await.unwrap();
    let wrong = chartwire::app::start(config(2)).await;
    let message = format!(
        "{:#}",
        wrong.err().expect("a different key must be refused")
    );
    assert!(message.contains("master key does not match"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_master_key_reseals_every_secret_and_the_old_key_alone_no_longer_opens_them() {
    const BIN: &str = env!("CARGO_BIN_EXE_chartwire");
    let db = crate::helpers::TestDb::new().await;
    let (url, dir) = (db.url.clone(), db.path());
    if let Some(key) = &db.master_key {
        // PostgreSQL never generates a key: the operator's key file is there.
        chartwire::secrets::write_private(&dir.join("master.key"), key).unwrap();
    }
    let config = || {
        chartwire::app::ServeConfig::new(
            url.clone(),
            "127.0.0.1:0".parse().unwrap(),
            dir.to_owned(),
        )
    };
    // A server with an endpoint that has every kind of secret.
    let server = chartwire::app::start(config()).await.unwrap();
    let key = chartwire::auth::KeyService::new(server.store.clone())
        .create(
            "rotate",
            chartwire::auth::Role::Superadmin,
            &chartwire::events::Actor::command_line(),
        )
        .await
        .unwrap()
        .1;
    let client = crate::helpers::client();
    let base = format!("http://{}", server.addr);
    let created: Value = client
        .post(format!("{base}/api/v1/webhooks/endpoints"))
        .bearer_auth(&key)
        .json(&json!({"url": "https://hooks.example.com/x", "events": ["*"], "headers": {"X-Api-Key": "k-1234567890"}}))
        .send().await.unwrap().json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret_of = |base: String| {
        let client = client.clone();
        let (key, id) = (key.clone(), id.clone());
        async move {
            client
                .get(format!("{base}/api/v1/webhooks/endpoints/{id}/secret"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()["secret"]
                .clone()
        }
    };
    let before = secret_of(base.clone()).await;
    server.shutdown().await.unwrap();
    let old_key = std::fs::read_to_string(dir.join("master.key")).unwrap();
    // A rotation that was interrupted after writing its new key resumes with that key.
    use base64::Engine;
    let planned = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    std::fs::write(dir.join("master.key.next"), &planned).unwrap();

    let out = std::process::Command::new(BIN)
        .args(["secrets", "rotate-master-key"])
        .args(db.args())
        .env_remove("CHARTWIRE_MASTER_KEY")
        .env_remove("CHARTWIRE_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_key = std::fs::read_to_string(dir.join("master.key")).unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(new_key, planned, "the interrupted rotation's key was kept");
    assert_eq!(
        std::fs::read_to_string(dir.join("master.key.previous")).unwrap(),
        old_key
    );
    assert!(!dir.join("master.key.next").exists());

    // The server starts with the new key and reads the same secrets.
    let server = chartwire::app::start(config()).await.unwrap();
    let base = format!("http://{}", server.addr);
    assert_eq!(secret_of(base.clone()).await, before);
    let shown: Value = client
        .get(format!("{base}/api/v1/webhooks/endpoints/{id}"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["headers"]["X-Api-Key"], "k-1…");
    let audit: Value = client
        .get(format!("{base}/api/v1/audit?action=master_key.rotated"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["data"][0]["detail"]["resealed"], 1);
    server.shutdown().await.unwrap();

    // The old key alone is refused.
    let mut old_only = config();
    old_only.master_key = Some(old_key.trim().to_owned());
    let refused = chartwire::app::start(old_only).await;
    assert!(refused.is_err(), "the old key must no longer match");
}
