//! The audit log: every administrative action lands in it with actor,
//! target and source address, never a secret; failed authentications are
//! summarised; only Superadmins read it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::listener::Listener;

fn actions(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrative_actions_are_audited_without_secrets() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    let endpoint = app
        .endpoint(
            json!({"url": listener.url("a"), "events": ["patient.created"],
            "headers": {"Authorization": "Bearer Auditmarker-value"}}),
        )
        .await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/webhooks/endpoints/{id}");
    let secret = app.get(&format!("{path}/secret")).await.body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated = app.action(&format!("{path}/rotate-secret")).await.body;
    app.patch(&path, json!({"description": "audited"})).await;
    app.patch(&path, json!({"enabled": false})).await;
    app.patch(&path, json!({"enabled": true})).await;
    app.action(&format!("{path}/test")).await;
    listener
        .wait_for("a", 1, std::time::Duration::from_secs(10))
        .await;
    app.post(
        &format!("{path}/recover"),
        json!({"since": "2026-01-01T00:00:00Z"}),
    )
    .await;
    let delivery = app.get(&format!("{path}/deliveries")).await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.action(&format!("/api/v1/webhooks/deliveries/{delivery}/retry"))
        .await;
    let key = app
        .post("/api/v1/keys", json!({"name": "audited", "role": "staff"}))
        .await
        .body;
    app.call(
        Method::DELETE,
        &format!("/api/v1/keys/{}", key["id"].as_str().unwrap()),
        Some(&app.admin),
        None,
    )
    .await;
    app.call(Method::DELETE, &path, Some(&app.admin), None)
        .await;
    for _ in 0..3 {
        assert_eq!(
            app.call(Method::GET, "/api/v1/patients", Some("cwk_wrong"), None)
                .await
                .status,
            401
        );
    }

    let page = app.get("/api/v1/audit?limit=500").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let mut seen = actions(&page.body);
    seen.reverse();
    let expected = [
        "endpoint.created",
        "endpoint.secret_revealed",
        "endpoint.secret_rotated",
        "endpoint.modified",
        "endpoint.disabled",
        "endpoint.enabled",
        "endpoint.test_sent",
        "endpoint.recovered",
        "delivery.retried",
        "key.created",
        "key.revoked",
        "endpoint.deleted",
        "auth.failed",
    ];
    let relevant: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .filter(|a| expected.contains(a))
        .collect();
    // The three test keys made at start are created from the command line, not here.
    assert_eq!(
        &relevant[relevant.len() - expected.len()..],
        expected,
        "{seen:?}"
    );

    let text = page.body.to_string();
    for secret in [
        "Auditmarker",
        secret.as_str(),
        rotated["secret"].as_str().unwrap(),
        app.admin.as_str(),
        "cwk_wrong",
    ] {
        assert!(!text.contains(secret), "`{secret}` is in the audit log");
    }
    let entries = page.body["data"].as_array().unwrap();
    let revealed = entries
        .iter()
        .find(|e| e["action"] == "endpoint.secret_revealed")
        .unwrap();
    assert_eq!(revealed["target"], json!({"type": "endpoint", "id": id}));
    assert_eq!(revealed["source_ip"], "127.0.0.1");
    assert_eq!(revealed["actor"]["type"], "api_key");
    assert!(
        revealed["actor"]["id"]
            .as_str()
            .unwrap()
            .starts_with("key_")
    );
    // Three failures from one address in a minute: one entry now, the rest summarised later.
    let failures: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "auth.failed")
        .collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["detail"]["count"], 1);

    // Filters and pagination.
    let only = app
        .get("/api/v1/audit?action=endpoint.secret_revealed")
        .await
        .body;
    assert_eq!(actions(&only), ["endpoint.secret_revealed"]);
    let first = app.get("/api/v1/audit?limit=2").await.body;
    assert_eq!(first["has_more"], true);
    let next = app
        .get(&format!(
            "/api/v1/audit?limit=2&cursor={}",
            first["next_cursor"].as_str().unwrap()
        ))
        .await
        .body;
    assert_ne!(first["data"][0]["id"], next["data"][0]["id"]);
    let future = app
        .get("/api/v1/audit?since=2999-01-01T00:00:00Z")
        .await
        .body;
    assert_eq!(future["data"], json!([]));
    assert_eq!(app.get("/api/v1/audit?since=yesterday").await.status, 400);
    assert_eq!(
        app.call(Method::GET, "/api/v1/audit", Some(&app.staff), None)
            .await
            .status,
        403
    );
}
