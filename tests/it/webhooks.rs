//! Webhooks end to end: endpoints, delivery to real listeners, signatures,
//! retries, disable/recover, isolation, ordering and limits.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::listener::{Behaviour, Listener, Received};

const SOON: Duration = Duration::from_secs(10);

fn types(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn patient(app: &TestApp) -> i64 {
    app.create(
        "patients",
        json!({"first_name": "W", "last_name": "H", "date_of_birth": "1977-07-07"}),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

async fn delivery_log(app: &TestApp, endpoint: &str) -> Vec<Value> {
    let reply = app
        .get(&format!(
            "/api/v1/webhooks/endpoints/{endpoint}/deliveries?limit=200"
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["data"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_events_are_delivered_signed_with_custom_headers() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    let endpoint = app
        .endpoint(
            json!({"url": listener.url("a"), "events": ["patient.*", "appointment.checked_in"],
            "headers": {"Authorization": "Bearer integration-token-1"}, "description": "EHR sync"}),
        )
        .await;
    assert_eq!(endpoint["status"], "enabled");
    assert_eq!(
        endpoint["headers"]["Authorization"], "Bea…",
        "header values are masked"
    );
    let other = app
        .endpoint(json!({"url": listener.url("b"), "events": ["task.*"]}))
        .await;
    let secret = app
        .get(&format!(
            "/api/v1/webhooks/endpoints/{}/secret",
            endpoint["id"].as_str().unwrap()
        ))
        .await
        .body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("whsec_"));

    let f = app.fixtures().await;
    app.patch(
        &format!("/api/v1/patients/{}", f.patient),
        json!({"sex": "male"}),
    )
    .await;
    app.patch(
        &format!("/api/v1/appointments/{}", f.appointment),
        json!({"status": "checked_in"}),
    )
    .await;
    listener.wait_for("a", 3, SOON).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut received = listener.received("a");
    // With `ordering: none` concurrent attempts may arrive in any order.
    received.sort_by_key(|r| r.json()["sequence"].as_i64());
    let names = types(&received);
    assert_eq!(
        names,
        [
            "patient.created",
            "patient.modified",
            "appointment.checked_in"
        ]
    );
    assert!(
        listener.received("b").is_empty(),
        "no task events were written"
    );

    let feed = app.all_events().await;
    for request in listener.received("a") {
        let body = request.json();
        assert_eq!(
            request.header("authorization"),
            "Bearer integration-token-1"
        );
        assert_eq!(request.header("content-type"), "application/json");
        assert!(request.header("user-agent").starts_with("chartwire/"));
        assert_eq!(request.header("webhook-id"), body["id"].as_str().unwrap());
        let timestamp: i64 = request.header("webhook-timestamp").parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 30);
        let key = chartwire::webhooks::signing::secret_bytes(&secret).unwrap();
        let expected = chartwire::webhooks::signing::sign(
            &key,
            request.header("webhook-id"),
            timestamp,
            &request.body,
        );
        assert_eq!(request.header("webhook-signature"), expected);
        // Same identity as the feed's copy of the event.
        let in_feed = feed
            .iter()
            .find(|e| e["id"] == body["id"])
            .expect("the event is in the feed");
        assert_eq!(in_feed, &body);
    }
    let log = delivery_log(&app, endpoint["id"].as_str().unwrap()).await;
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|d| d["status"] == "succeeded" && d["attempts"] == 1)
    );
    assert!(
        delivery_log(&app, other["id"].as_str().unwrap())
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_rules_are_enforced_and_secrets_never_shown_in_full() {
    let app = TestApp::spawn_configured(|c| c.webhooks.endpoint_allow.clear()).await;
    let cases = [
        (
            json!({"url": "http://hooks.example/x", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "https://127.0.0.1/x", "events": ["*"]}),
            "url",
        ),
        (json!({"url": "https://[::1]/x", "events": ["*"]}), "url"),
        (
            json!({"url": "ftp://hooks.example/x", "events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "https://hooks.example/x", "events": ["patient.exploded"]}),
            "events",
        ),
        (
            json!({"url": "https://hooks.example/x", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://hooks.example/x", "events": ["webhook.test"]}),
            "events",
        ),
        (
            json!({"url": "https://hooks.example/x", "events": ["*"], "headers": {"Content-Type": "text/plain"}}),
            "headers.Content-Type",
        ),
        (
            json!({"url": "https://hooks.example/x", "events": ["*"], "headers": {"webhook-signature": "x"}}),
            "headers.webhook-signature",
        ),
        (
            json!({"url": "https://hooks.example/x", "events": ["*"], "ordering": "fifo"}),
            "ordering",
        ),
        (
            json!({"url": "https://hooks.example/x", "events": ["*"], "payload_version": 2}),
            "payload_version",
        ),
        (
            json!({"url": "https://hooks.example/x", "events": ["*"], "surprise": 1}),
            "surprise",
        ),
        (json!({"events": ["*"]}), "url"),
    ];
    for (body, field) in cases {
        let reply = app.post("/api/v1/webhooks/endpoints", body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.body);
        assert!(
            reply.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{field}: {}",
            reply.body
        );
    }
    let created = app
        .endpoint(
            json!({"url": "https://hooks.example/x", "events": ["*", "endpoint.*"],
            "headers": {"X-Api-Key": "k-1234567890"}}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    assert!(!created.to_string().contains("k-1234567890"));
    let shown = app
        .get(&format!("/api/v1/webhooks/endpoints/{id}"))
        .await
        .body;
    assert_eq!(shown["headers"]["X-Api-Key"], "k-1…");
    assert!(!shown.to_string().contains("whsec_"));
    // Sending the masked value back keeps the stored one; the list never shows secrets.
    let patched = app
        .patch(
            &format!("/api/v1/webhooks/endpoints/{id}"),
            json!({"headers": {"X-Api-Key": "k-1…"}, "description": "d"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let list = app.get("/api/v1/webhooks/endpoints").await.body;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("k-1234567890"));
    // The secret is readable only through its route; rotation shows the new one.
    let first = app
        .get(&format!("/api/v1/webhooks/endpoints/{id}/secret"))
        .await
        .body["secret"]
        .clone();
    let rotated = app
        .action(&format!("/api/v1/webhooks/endpoints/{id}/rotate-secret"))
        .await;
    assert_eq!(rotated.status, 200);
    assert_ne!(rotated.body["secret"], first);
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/endpoints/{id}/secret"))
            .await
            .body["secret"],
        rotated.body["secret"]
    );
    // The database holds no secret or header value in clear.
    let needles = [
        "k-1234567890",
        first.as_str().unwrap(),
        rotated.body["secret"].as_str().unwrap(),
    ];
    for haystack in crate::db::database_contents(&app.db).await {
        for needle in needles {
            assert!(
                !haystack
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes()),
                "a secret is stored in clear"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operational_events_are_for_superadmins_and_only_when_named() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    let watcher = app
        .endpoint(json!({"url": listener.url("ops"), "events": ["endpoint.*"]}))
        .await;
    let everything = app
        .endpoint(json!({"url": listener.url("all"), "events": ["*"]}))
        .await;
    let id = everything["id"].as_str().unwrap();
    app.patch(
        &format!("/api/v1/webhooks/endpoints/{id}"),
        json!({"enabled": false}),
    )
    .await;
    app.call(
        Method::DELETE,
        &format!("/api/v1/webhooks/endpoints/{id}"),
        Some(&app.admin),
        None,
    )
    .await;
    let mut got = listener.wait_for("ops", 4, SOON).await;
    // With `ordering: none` concurrent attempts may arrive in any order.
    got.sort_by_key(|r| r.json()["sequence"].as_i64());
    // The watcher is subscribed when its own creation commits, so it hears of itself.
    assert_eq!(
        types(&got),
        [
            "endpoint.created",
            "endpoint.created",
            "endpoint.disabled",
            "endpoint.deleted"
        ]
    );
    assert_eq!(got[0].json()["data"]["id"], watcher["id"]);
    for request in &got[1..] {
        let data = &request.json()["data"];
        assert_eq!(data["id"], id);
        assert!(
            !request.json().to_string().contains(&listener.url("all")),
            "no URLs in operational events"
        );
    }
    assert!(listener.received("all").is_empty());
    let admin_feed = app.get("/api/v1/changes?types=endpoint.*").await.body;
    assert_eq!(
        admin_feed["data"].as_array().unwrap().len(),
        4,
        "{admin_feed}"
    );
    let staff_feed = app
        .call(
            Method::GET,
            "/api/v1/changes?types=endpoint.*",
            Some(&app.staff),
            None,
        )
        .await
        .body;
    assert_eq!(staff_feed["data"], json!([]));
    let star = app.get("/api/v1/changes?types=*").await.body;
    assert_eq!(star["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_are_retried_with_the_same_webhook_id_until_success() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    listener.set(
        "r",
        Behaviour {
            fail_first: 2,
            ..Behaviour::default()
        },
    );
    let endpoint = app
        .endpoint(json!({"url": listener.url("r"), "events": ["patient.created"]}))
        .await;
    patient(&app).await;
    let got = listener.wait_for("r", 3, SOON).await;
    let ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert!(
        got[1].at.duration_since(got[0].at) >= Duration::from_millis(700),
        "the schedule's delay"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = delivery_log(&app, endpoint["id"].as_str().unwrap()).await;
    assert_eq!(log[0]["status"], "succeeded");
    assert_eq!(log[0]["attempts"], 3);
    let detail = app
        .get(&format!(
            "/api/v1/webhooks/deliveries/{}",
            log[0]["id"].as_str().unwrap()
        ))
        .await
        .body;
    let attempts = detail["attempts_log"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["http_status"], 500);
    assert_eq!(attempts[0]["response_snippet"], "thanks");
    assert_eq!(attempts[2]["http_status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_410_disables_the_endpoint() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    listener.set(
        "slow",
        Behaviour {
            status: Some(503),
            retry_after: Some(3),
            ..Behaviour::default()
        },
    );
    app.endpoint(json!({"url": listener.url("slow"), "events": ["patient.created"]}))
        .await;
    let gone = app
        .endpoint(json!({"url": listener.url("gone"), "events": ["patient.created"]}))
        .await;
    listener.set("gone", Behaviour::answer(410));
    patient(&app).await;
    let first = listener.wait_for("slow", 1, SOON).await;
    listener.set("slow", Behaviour::default());
    let second = listener.wait_for("slow", 2, SOON).await;
    assert!(
        second[1].at.duration_since(first[0].at) >= Duration::from_millis(2800),
        "Retry-After: 3 was not honoured"
    );

    listener.wait_for("gone", 1, SOON).await;
    let id = gone["id"].as_str().unwrap();
    let deadline = Instant::now() + SOON;
    loop {
        let shown = app
            .get(&format!("/api/v1/webhooks/endpoints/{id}"))
            .await
            .body;
        if shown["status"] == "disabled" {
            assert_eq!(shown["disabled_reason"], "gone");
            assert_eq!(shown["enabled"], false);
            break;
        }
        assert!(Instant::now() < deadline, "410 did not disable: {shown}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    patient(&app).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        listener.received("gone").len(),
        1,
        "nothing is sent to a disabled endpoint"
    );
    let log = delivery_log(&app, id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_deliveries_fail_visibly_and_can_be_retried() {
    let app = TestApp::spawn_configured(|c| {
        c.webhooks.retry_schedule =
            chartwire::webhooks::schedule::RetrySchedule::parse("1s,1s").unwrap();
    })
    .await;
    let listener = Listener::start().await;
    listener.set("x", Behaviour::answer(500));
    let endpoint = app
        .endpoint(json!({"url": listener.url("x"), "events": ["patient.created"]}))
        .await;
    let id = endpoint["id"].as_str().unwrap();
    patient(&app).await;
    listener.wait_for("x", 3, SOON).await;
    let deadline = Instant::now() + SOON;
    let failed = loop {
        let log = delivery_log(&app, id).await;
        if log[0]["status"] == "failed" {
            break log[0].clone();
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed["failure_reason"], "retries_exhausted");
    assert_eq!(failed["attempts"], 3);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(listener.received("x").len(), 3, "no fourth attempt");
    let filtered = app
        .get(&format!(
            "/api/v1/webhooks/endpoints/{id}/deliveries?status=failed"
        ))
        .await
        .body;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);

    listener.set("x", Behaviour::default());
    let retried = app
        .action(&format!(
            "/api/v1/webhooks/deliveries/{}/retry",
            failed["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(retried.status, 202, "{}", retried.body);
    let got = listener.wait_for("x", 4, SOON).await;
    assert_eq!(got[3].header("webhook-id"), got[0].header("webhook-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_get_events_committed_after_they_exist_and_recover_what_they_missed() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    let before = patient(&app).await;
    let endpoint = app
        .endpoint(json!({"url": listener.url("late"), "events": ["patient.*"]}))
        .await;
    let id = endpoint["id"].as_str().unwrap();
    let after = patient(&app).await;
    let got = listener.wait_for("late", 1, SOON).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(listener.received("late").len(), 1);
    assert_eq!(got[0].json()["data"]["id"], after);
    assert_ne!(after, before);

    // Disabled: nothing is sent and nothing is queued; recover replays exactly the gap.
    let disabled_at = chrono::Utc::now().to_rfc3339();
    assert_eq!(
        app.patch(
            &format!("/api/v1/webhooks/endpoints/{id}"),
            json!({"enabled": false})
        )
        .await
        .body["status"],
        "disabled"
    );
    let mut missed = Vec::new();
    for _ in 0..5 {
        missed.push(patient(&app).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(listener.received("late").len(), 1);
    let refused = app
        .post(
            &format!("/api/v1/webhooks/endpoints/{id}/recover"),
            json!({"since": disabled_at}),
        )
        .await;
    assert_eq!(
        refused.status, 409,
        "recover needs the endpoint enabled first"
    );
    let enabled = app
        .patch(
            &format!("/api/v1/webhooks/endpoints/{id}"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(enabled.body["status"], "enabled");
    let bad = app
        .post(
            &format!("/api/v1/webhooks/endpoints/{id}/recover"),
            json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(bad.status, 422);
    let recovered = app
        .post(
            &format!("/api/v1/webhooks/endpoints/{id}/recover"),
            json!({"since": disabled_at}),
        )
        .await;
    assert_eq!(recovered.status, 200, "{}", recovered.body);
    assert_eq!(recovered.body["created"], 5);
    let got = listener.wait_for("late", 6, SOON).await;
    let mut ids: Vec<i64> = got[1..]
        .iter()
        .map(|r| r.json()["data"]["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, missed, "exactly the missed events");
    // The recovered deliveries were created in sequence order (the log lists newest first).
    let log = delivery_log(&app, id).await;
    let sequences: Vec<i64> = log
        .iter()
        .map(|d| d["sequence"].as_i64().unwrap())
        .collect();
    assert!(sequences.windows(2).all(|w| w[0] > w[1]), "{sequences:?}");
    let again = app
        .post(
            &format!("/api/v1/webhooks/endpoints/{id}/recover"),
            json!({"since": disabled_at}),
        )
        .await;
    assert_eq!(again.body["created"], 0, "recover is idempotent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(listener.received("late").len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_was_down_gets_all_100_events_when_it_comes_back() {
    let app = TestApp::spawn().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook/down");
    app.endpoint(json!({"url": url, "events": ["patient.created"]}))
        .await;
    let mut written = Vec::new();
    for _ in 0..100 {
        written.push(patient(&app).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let listener = Listener::start_on(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let got = listener
        .wait_for("down", 100, Duration::from_secs(20))
        .await;
    let mut ids: Vec<i64> = got
        .iter()
        .map(|r| r.json()["data"]["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids, written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_does_not_delay_another() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    listener.set(
        "slow",
        Behaviour {
            delay: Some(Duration::from_secs(10)),
            ..Behaviour::default()
        },
    );
    app.endpoint(
        json!({"url": listener.url("slow"), "events": ["patient.created"], "max_in_flight": 2}),
    )
    .await;
    app.endpoint(json!({"url": listener.url("fast"), "events": ["patient.created"]}))
        .await;
    let started = Instant::now();
    for _ in 0..20 {
        patient(&app).await;
    }
    listener.wait_for("fast", 20, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the fast endpoint waited for the slow one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_record_ordering_holds_under_retries() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    listener.set(
        "ordered",
        Behaviour {
            fail_first: 1,
            ..Behaviour::default()
        },
    );
    app.endpoint(
        json!({"url": listener.url("ordered"), "events": ["patient.*"], "ordering": "per_record"}),
    )
    .await;
    let id = patient(&app).await;
    for phone in ["1", "2", "3"] {
        app.patch(&format!("/api/v1/patients/{id}"), json!({"phone": phone}))
            .await;
    }
    let got = listener.wait_for("ordered", 5, SOON).await;
    let sequences: Vec<i64> = got
        .iter()
        .map(|r| r.json()["sequence"].as_i64().unwrap())
        .collect();
    // The first attempt failed and was retried before anything later went out.
    assert_eq!(sequences[0], sequences[1], "{sequences:?}");
    assert!(
        sequences[1..].windows(2).all(|w| w[0] < w[1]),
        "{sequences:?}"
    );
    assert_eq!(
        types(&got[1..]),
        [
            "patient.created",
            "patient.modified",
            "patient.modified",
            "patient.modified"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_max_in_flight_hold() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    app.endpoint(json!({"url": listener.url("rated"), "events": ["patient.created"], "rate_limit_per_second": 5})).await;
    listener.set(
        "narrow",
        Behaviour {
            delay: Some(Duration::from_millis(200)),
            ..Behaviour::default()
        },
    );
    app.endpoint(
        json!({"url": listener.url("narrow"), "events": ["patient.created"], "max_in_flight": 2}),
    )
    .await;
    for _ in 0..10 {
        patient(&app).await;
    }
    let got = listener.wait_for("rated", 10, SOON).await;
    let span = got[9].at.duration_since(got[0].at);
    assert!(
        span >= Duration::from_millis(1700),
        "10 requests at 5/s took only {span:?}"
    );
    listener.wait_for("narrow", 10, SOON).await;
    assert_eq!(listener.max_in_flight("narrow"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_content_and_test_events() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    let endpoint = app
        .endpoint(
            json!({"url": listener.url("ids"), "events": ["patient.created"], "content": "ids"}),
        )
        .await;
    let id = patient(&app).await;
    let got = listener.wait_for("ids", 1, SOON).await;
    assert_eq!(
        got[0].json()["data"],
        json!({"object": "patient", "id": id, "version": 1})
    );
    let sent = app
        .action(&format!(
            "/api/v1/webhooks/endpoints/{}/test",
            endpoint["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    let got = listener.wait_for("ids", 2, SOON).await;
    assert_eq!(got[1].json()["type"], "webhook.test");
    assert_eq!(
        got[1].header("webhook-id"),
        sent.body["event_id"].as_str().unwrap()
    );
    let feed = app.get("/api/v1/changes").await.body;
    assert!(
        !feed.to_string().contains("webhook.test"),
        "test events stay out of the feed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_too_long_is_auto_disabled() {
    let app =
        TestApp::spawn_configured(|c| c.webhooks.auto_disable_after = Duration::from_secs(2)).await;
    let listener = Listener::start().await;
    listener.set("dead", Behaviour::answer(502));
    let endpoint = app
        .endpoint(json!({"url": listener.url("dead"), "events": ["patient.created"]}))
        .await;
    let id = endpoint["id"].as_str().unwrap();
    patient(&app).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let shown = app
            .get(&format!("/api/v1/webhooks/endpoints/{id}"))
            .await
            .body;
        if shown["status"] == "auto_disabled" {
            assert_eq!(shown["enabled"], true, "the admin's switch is untouched");
            break;
        }
        assert!(Instant::now() < deadline, "not auto-disabled: {shown}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = app
        .get("/api/v1/changes?types=endpoint.auto_disabled")
        .await
        .body;
    assert_eq!(events["data"][0]["data"]["id"], id);
    let log = delivery_log(&app, id).await;
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["failure_reason"], "endpoint_disabled");
    // Switching it on again clears the auto-disable.
    let on = app
        .patch(
            &format!("/api/v1/webhooks/endpoints/{id}"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(on.body["status"], "enabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_standard_webhooks_library_verifies_our_signatures_through_a_rotation() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    let endpoint = app
        .endpoint(json!({"url": listener.url("sig"), "events": ["patient.created"]}))
        .await;
    let id = endpoint["id"].as_str().unwrap();
    let old = app
        .get(&format!("/api/v1/webhooks/endpoints/{id}/secret"))
        .await
        .body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    patient(&app).await;
    listener.wait_for("sig", 1, SOON).await;
    let rotated = app
        .action(&format!("/api/v1/webhooks/endpoints/{id}/rotate-secret"))
        .await;
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    patient(&app).await;
    let got = listener.wait_for("sig", 2, SOON).await;
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 1);
    assert_eq!(
        got[1].header("webhook-signature").split(' ').count(),
        2,
        "both secrets sign during the overlap"
    );
    let case = |secret: &str, request: &Received, expect: bool| {
        json!({"secret": secret, "body": String::from_utf8(request.body.clone()).unwrap(),
            "headers": request.headers, "expect": expect})
    };
    let mut tampered = got[0].clone();
    tampered.body = tampered
        .body
        .iter()
        .map(|b| if *b == b'W' { b'X' } else { *b })
        .collect();
    let cases = json!([
        case(&old, &got[0], true),
        case(&new, &got[0], false),
        case(&old, &got[1], true),
        case(&new, &got[1], true),
        case(&old, &tampered, false),
    ]);
    crate::helpers::python_check("signatures", &cases);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_metrics_are_exported_without_phi() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    let endpoint = app
        .endpoint(json!({"url": listener.url("m"), "events": ["patient.created"]}))
        .await;
    app.create(
        "patients",
        json!({"first_name": "Metricmarker", "last_name": "Q", "date_of_birth": "1966-06-16"}),
    )
    .await;
    listener.wait_for("m", 1, SOON).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = app
        .call(Method::GET, "/metrics", None, None)
        .await
        .body
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains("chartwire_deliveries_total{outcome=\"succeeded\"} 1"),
        "{text}"
    );
    assert!(text.contains("chartwire_delivery_attempt_seconds_count 1"));
    assert!(text.contains("chartwire_deliveries_pending 0"));
    assert!(text.contains(&format!(
        "chartwire_deliveries_in_flight{{endpoint=\"{}\"}} 0",
        endpoint["id"].as_str().unwrap()
    )));
    assert!(!text.contains("127.0.0.1"), "no URLs in metrics");
    assert!(
        !text.contains("Metricmarker") && !text.contains("1966"),
        "no record values in metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolve_through_the_injected_resolver_and_must_stay_inside_allowed_networks() {
    use chartwire::webhooks::address::StaticResolver;
    use std::collections::HashMap;
    use std::sync::Arc;
    let mut names = HashMap::new();
    names.insert(
        "hooks.clinic.test".to_owned(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    names.insert(
        "split.clinic.test".to_owned(),
        vec!["127.0.0.1".parse().unwrap(), "192.0.2.10".parse().unwrap()],
    );
    let resolver = Arc::new(StaticResolver {
        names,
        fallback: None,
    });
    let app = TestApp::spawn_configured(|c| c.webhooks.resolver = Some(resolver)).await;
    let listener = Listener::start().await;
    let port = listener.addr.port();
    app.endpoint(json!({"url": format!("http://hooks.clinic.test:{port}/hook/named"), "events": ["patient.created"]})).await;
    let split = app
        .post(
            "/api/v1/webhooks/endpoints",
            json!({"url": format!("http://split.clinic.test:{port}/hook/x"), "events": ["*"]}),
        )
        .await;
    assert_eq!(
        split.status, 422,
        "a name with an address outside the allowed networks: {}",
        split.body
    );
    let unknown = app
        .post(
            "/api/v1/webhooks/endpoints",
            json!({"url": format!("http://nowhere.clinic.test:{port}/hook/x"), "events": ["*"]}),
        )
        .await;
    assert_eq!(unknown.status, 422);
    patient(&app).await;
    let got = listener.wait_for("named", 1, SOON).await;
    assert_eq!(got[0].header("host"), format!("hooks.clinic.test:{port}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_endpoints_sign_with_v1a_verifiable_with_the_public_key_through_a_rotation() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    let endpoint = app
        .endpoint(json!({"url": listener.url("ed"), "events": ["patient.created"], "signature": "ed25519"}))
        .await;
    assert_eq!(endpoint["signature"], "ed25519");
    let id = endpoint["id"].as_str().unwrap();
    let shown = app
        .get(&format!("/api/v1/webhooks/endpoints/{id}/secret"))
        .await
        .body;
    assert!(
        shown.get("secret").is_none(),
        "the signing key never leaves chartwire: {shown}"
    );
    let old_key = shown["public_key"].as_str().unwrap().to_owned();
    patient(&app).await;
    listener.wait_for("ed", 1, SOON).await;
    let rotated = app
        .action(&format!("/api/v1/webhooks/endpoints/{id}/rotate-secret"))
        .await
        .body;
    let new_key = rotated["public_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, old_key);
    patient(&app).await;
    let got = listener.wait_for("ed", 2, SOON).await;
    let verifies = |public: &str, request: &Received| -> bool {
        let bytes: [u8; 32] = STANDARD
            .decode(public.strip_prefix("whpk_").unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let key = VerifyingKey::from_bytes(&bytes).unwrap();
        let message = [
            request.header("webhook-id").as_bytes(),
            b".",
            request.header("webhook-timestamp").as_bytes(),
            b".",
            &request.body,
        ]
        .concat();
        request.header("webhook-signature").split(' ').any(|sig| {
            let raw = STANDARD.decode(sig.strip_prefix("v1a,").unwrap()).unwrap();
            key.verify(&message, &Signature::from_slice(&raw).unwrap())
                .is_ok()
        })
    };
    assert!(got[0].header("webhook-signature").starts_with("v1a,"));
    assert!(verifies(&old_key, &got[0]));
    assert!(!verifies(&new_key, &got[0]));
    assert!(
        verifies(&old_key, &got[1]) && verifies(&new_key, &got[1]),
        "both keys sign during the overlap"
    );
    let changed = app
        .patch(
            &format!("/api/v1/webhooks/endpoints/{id}"),
            json!({"signature": "hmac"}),
        )
        .await;
    assert_eq!(changed.status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_deliveries_are_purged_after_their_retention() {
    let app =
        TestApp::spawn_configured(|c| c.webhooks.delivery_retention = Duration::from_secs(1)).await;
    let listener = Listener::start().await;
    let endpoint = app
        .endpoint(json!({"url": listener.url("p"), "events": ["patient.created"]}))
        .await;
    let id = endpoint["id"].as_str().unwrap();
    patient(&app).await;
    listener.wait_for("p", 1, SOON).await;
    let deadline = Instant::now() + SOON;
    while delivery_log(&app, id)
        .await
        .first()
        .is_none_or(|d| d["status"] != "succeeded")
    {
        assert!(Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while !delivery_log(&app, id).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the finished delivery was never purged"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The event itself stays in the feed (its own retention is longer).
    assert_eq!(
        app.get("/api/v1/changes?types=patient.created").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
