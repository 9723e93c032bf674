//! The admin pages over plain HTTP: escaping, URL rules, and that every
//! action goes through the domain (events, audit) like the API. Sessions
//! and forgery are in `admin_auth`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::admin_client::AdminClient;
use crate::helpers::TestApp;
use crate::listener::Listener;

pub const PAGES: &[&str] = &[
    "/admin",
    "/admin/",
    "/admin/integrations",
    "/admin/integrations/new",
    "/admin/event-types",
    "/admin/egress",
    "/admin/keys",
    "/admin/audit",
];

pub async fn key_id_of(app: &TestApp, name: &str) -> String {
    let keys = app.get("/api/v1/keys").await.body;
    keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == name)
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .expect("the key")
}

pub async fn audit_actions(app: &TestApp) -> Vec<Value> {
    app.get("/api/v1/audit?limit=500").await.body["data"]
        .as_array()
        .unwrap()
        .clone()
}

pub async fn endpoint_count(app: &TestApp) -> usize {
    app.get("/api/v1/webhooks/endpoints").await.body["data"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_admins_type_is_shown_as_text() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    let (mut browser, csrf) = AdminClient::signed_in(&app, &app.admin).await;
    let script = "<script>alert(1)</script>";
    let url = listener.url("escape");
    let created = browser
        .post(
            "/admin/integrations",
            &[
                ("csrf", &csrf),
                ("url", &url),
                ("description", &format!("Front desk {script}")),
                ("events", "patient.created"),
                ("ordering", "none"),
                ("content", "record"),
                ("signature", "hmac"),
                ("enabled", "on"),
                ("header_name", "X-Clinic"),
                ("header_value", "secret-value-123"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let detail_path = created.location.clone().unwrap();
    for path in ["/admin/integrations", detail_path.as_str()] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200);
        assert!(!page.body.contains(script), "{path} shows raw markup");
        assert!(
            page.body
                .contains("Front desk &#60;script&#62;alert(1)&#60;/script&#62;")
        );
        assert!(
            !page.body.contains("secret-value-123"),
            "header values are never shown"
        );
    }
    let refused = browser
        .post(
            "/admin/integrations",
            &[
                ("csrf", &csrf),
                ("url", &url),
                ("events", "patient.created"),
                ("header_name", script),
                ("header_value", "x"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(!refused.body.contains(script));
    assert!(
        refused
            .body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;: is not a valid header name")
    );
    assert_eq!(endpoint_count(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_urls_are_explained_next_to_the_field() {
    let app = TestApp::spawn().await;
    let (mut browser, csrf) = AdminClient::signed_in(&app, &app.admin).await;
    for (url, rule) in [
        ("https://localhost/in", "fully qualified"),
        ("http://hooks.example.com/in", "https"),
        ("https://10.1.2.3/in", "IP"),
    ] {
        let page = browser
            .post(
                "/admin/integrations",
                &[("csrf", &csrf), ("url", url), ("events", "patient.created")],
            )
            .await;
        assert_eq!(page.status, 422, "{url}");
        assert!(
            page.body.contains("This URL was refused"),
            "{url}: {}",
            page.body
        );
        assert!(page.body.contains("URL rules"), "{url}");
        assert!(page.body.contains(rule), "{url}: {rule}");
        assert!(page.body.contains("aria-invalid=\"true\""));
    }
    let no_events = browser
        .post(
            "/admin/integrations",
            &[("csrf", &csrf), ("url", "https://hooks.example.com/in")],
        )
        .await;
    assert_eq!(no_events.status, 422);
    assert!(no_events.body.contains("tick at least one event"));
    assert_eq!(endpoint_count(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_use_the_domain_and_land_in_the_audit_log() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    let (mut browser, csrf) = AdminClient::signed_in(&app, &app.admin).await;
    let admin_id = key_id_of(&app, "admin").await;
    let url = listener.url("domain");
    let created = browser
        .post(
            "/admin/integrations",
            &[
                ("csrf", &csrf),
                ("url", &url),
                ("description", "Billing"),
                ("events", "patient.created"),
                ("events", "appointment.*"),
                ("events", "appointment.created"),
                ("ordering", "per_record"),
                ("content", "ids"),
                ("signature", "hmac"),
                ("enabled", "on"),
                ("header_name", "Authorization"),
                ("header_value", "Bearer listener-token"),
                ("header_name", ""),
                ("header_value", ""),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let id = created.endpoint_id();
    let view = app
        .get(&format!("/api/v1/webhooks/endpoints/{id}"))
        .await
        .body;
    assert_eq!(view["events"], json!(["patient.created", "appointment.*"]));
    assert_eq!(view["ordering"], "per_record");
    assert_eq!(view["content"], "ids");
    assert_eq!(view["headers"]["Authorization"], "Bea…");

    // The detail page hides the secret until asked, and the reveal is audited.
    let detail = browser.get(&format!("/admin/integrations/{id}")).await;
    assert_eq!(detail.status, 200);
    assert!(!detail.body.contains("whsec_"));
    let revealed = browser
        .post(
            &format!("/admin/integrations/{id}/secret"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(revealed.status, 200);
    let api_secret = app
        .get(&format!("/api/v1/webhooks/endpoints/{id}/secret"))
        .await
        .body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(revealed.body.contains(&api_secret));

    // A test event is sent, and its outcome shown.
    let tested = browser
        .post(
            &format!("/admin/integrations/{id}/test"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(tested.status, 200);
    assert!(
        tested
            .body
            .contains("was delivered: the endpoint answered HTTP 200"),
        "{}",
        tested.body
    );
    let got = listener.wait_for("domain", 1, Duration::from_secs(5)).await;
    assert_eq!(got[0].json()["type"], "webhook.test");
    assert_eq!(got[0].header("authorization"), "Bearer listener-token");

    // Edit: keep the header by leaving its value empty, change the description.
    let edit = browser.get(&format!("/admin/integrations/{id}/edit")).await;
    assert_eq!(edit.status, 200);
    assert!(edit.body.contains("unchanged (Bea…)"));
    assert!(!edit.body.contains("listener-token"));
    let saved = browser
        .post(
            &format!("/admin/integrations/{id}/edit"),
            &[
                ("csrf", &csrf),
                ("enabled_was", "on"),
                ("enabled", "on"),
                ("url", &url),
                ("description", "Billing system"),
                ("events", "patient.created"),
                ("events", "appointment.*"),
                ("ordering", "per_record"),
                ("content", "ids"),
                ("header_name", "Authorization"),
                ("header_value", ""),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let view = app
        .get(&format!("/api/v1/webhooks/endpoints/{id}"))
        .await
        .body;
    assert_eq!(view["description"], "Billing system");
    assert_eq!(
        view["headers"]["Authorization"], "Bea…",
        "the stored value was kept"
    );

    // Disable, then delete after the confirmation page.
    let off = browser
        .post(
            &format!("/admin/integrations/{id}/enabled"),
            &[("csrf", &csrf), ("enabled", "false")],
        )
        .await;
    assert_eq!(off.status, 303);
    let view = app
        .get(&format!("/api/v1/webhooks/endpoints/{id}"))
        .await
        .body;
    assert_eq!(view["status"], "disabled");
    let confirm = browser
        .get(&format!("/admin/integrations/{id}/delete"))
        .await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("This cannot be undone"));
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/endpoints/{id}"))
            .await
            .status,
        200
    );
    let deleted = browser
        .post(
            &format!("/admin/integrations/{id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(deleted.status, 303);
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/endpoints/{id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        browser
            .get(&format!("/admin/integrations/{id}"))
            .await
            .status,
        404
    );

    // The same operational events as the API, made by the session's key.
    let events = app.all_events().await;
    for kind in [
        "endpoint.created",
        "endpoint.modified",
        "endpoint.disabled",
        "endpoint.deleted",
    ] {
        let event = events.iter().find(|e| e["type"] == kind).expect(kind);
        assert_eq!(event["actor"]["id"], admin_id.as_str(), "{kind}");
    }
    let audit = audit_actions(&app).await;
    for action in [
        "endpoint.created",
        "endpoint.secret_revealed",
        "endpoint.test_sent",
        "endpoint.modified",
        "endpoint.disabled",
        "endpoint.deleted",
    ] {
        let entry = audit.iter().find(|a| a["action"] == action).expect(action);
        assert_eq!(entry["actor"]["id"], admin_id.as_str(), "{action}");
        assert_eq!(entry["source_ip"], "127.0.0.1", "{action}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_shown_once_and_revoked_from_the_keys_page() {
    let app = TestApp::spawn().await;
    let (mut browser, csrf) = AdminClient::signed_in(&app, &app.admin).await;
    let created = browser
        .post(
            "/admin/keys",
            &[
                ("csrf", &csrf),
                ("name", "Lab <b>feed</b>"),
                ("role", "integration"),
            ],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key = &created.between("<code id=\"new-key\">", '<');
    assert!(key.starts_with("cwk_"));
    assert!(created.body.contains("Lab &#60;b&#62;feed&#60;/b&#62;"));
    assert_eq!(
        app.call(reqwest::Method::GET, "/api/v1/patients", Some(key), None)
            .await
            .status,
        200,
        "the shown key works"
    );
    let listed = browser.get("/admin/keys").await;
    assert!(!listed.body.contains(key), "shown only once");
    let id = key_id_of(&app, "Lab <b>feed</b>").await;
    let confirm = browser.get(&format!("/admin/keys/{id}/revoke")).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("This cannot be undone"));
    assert!(confirm.body.contains("Lab &#60;b&#62;feed&#60;/b&#62;"));
    let revoked = browser
        .post(&format!("/admin/keys/{id}/revoke"), &[("csrf", &csrf)])
        .await;
    assert_eq!(revoked.status, 303);
    assert_eq!(
        browser
            .get(&format!("/admin/keys/{id}/revoke"))
            .await
            .status,
        404,
        "a revoked key has nothing left to revoke"
    );
    tokio::time::sleep(chartwire::auth::AUTH_CACHE_TTL).await;
    assert_eq!(
        app.call(reqwest::Method::GET, "/api/v1/patients", Some(key), None)
            .await
            .status,
        401
    );
    let own = key_id_of(&app, "admin").await;
    let last = browser
        .post(&format!("/admin/keys/{own}/revoke"), &[("csrf", &csrf)])
        .await;
    assert_eq!(last.status, 409, "the last Superadmin key stays");
    let audit = browser.get("/admin/audit?action=key.revoked").await;
    assert_eq!(audit.status, 200);
    assert!(audit.body.contains(&id));
    assert!(audit.body.contains("data-action=\"key.revoked\""));
    assert!(
        !audit.body.contains("data-action=\"key.created\""),
        "filtered by action"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_lists_every_event_type_with_schema_and_example() {
    let app = TestApp::spawn().await;
    let (mut browser, _) = AdminClient::signed_in(&app, &app.admin).await;
    let page = browser.get("/admin/event-types").await;
    assert_eq!(page.status, 200);
    let catalogue = app.get("/api/v1/webhooks/event-types").await.body;
    let types = catalogue["data"].as_array().unwrap();
    assert!(types.len() > 30);
    for event in types {
        let name = event["name"].as_str().unwrap();
        assert!(page.body.contains(&format!("id=\"{name}\"")), "{name}");
    }
    assert_eq!(
        page.body.matches("JSON Schema</summary>").count(),
        types.len()
    );
    assert_eq!(
        page.body.matches("Example body</summary>").count(),
        types.len()
    );
    let egress = browser.get("/admin/egress").await;
    assert!(egress.body.contains("--egress-bind"));
    let styles = browser.get("/admin/assets/admin.css").await;
    assert_eq!(styles.status, 200);
    assert!(
        !styles.body.contains("http://") && !styles.body.contains("https://"),
        "no outside assets"
    );
}

fn rows(page: &str) -> usize {
    page.matches("<tr class=\"delivery\"").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_log_filters_pages_and_recovers_what_was_missed() {
    let app = TestApp::spawn().await;
    let listener = Listener::start().await;
    let endpoint = app
        .endpoint(
            json!({"url": listener.url("log"), "events": ["patient.created", "task.created"]}),
        )
        .await;
    let id = endpoint["id"].as_str().unwrap().to_owned();
    for n in 0..27 {
        app.create(
            "patients",
            json!({"first_name": format!("P{n}"), "last_name": "Log", "date_of_birth": "1990-01-01"}),
        )
        .await;
    }
    for title in ["Call back", "Refill"] {
        app.create("tasks", json!({"title": title})).await;
    }
    listener.wait_for("log", 29, Duration::from_secs(20)).await;
    let (mut browser, csrf) = AdminClient::signed_in(&app, &app.admin).await;
    let path = format!("/admin/integrations/{id}");
    // Succeeded deliveries may still be recording; wait for the log to say so.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let first = loop {
        let page = browser.get(&format!("{path}?status=succeeded")).await;
        if rows(&page.body) == 25 && page.body.contains("Older deliveries") {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "the log fills up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let marker = "href=\"/admin/integrations/";
    let older_at = first.body.find("Older deliveries").unwrap();
    let href_at = first.body[..older_at].rfind(marker).unwrap() + "href=\"".len();
    let href = &first.body[href_at..href_at + first.body[href_at..].find('"').unwrap()];
    let older = browser.get(&href.replace("&amp;", "&")).await;
    assert_eq!(rows(&older.body), 4, "the second page has the rest");
    assert!(!older.body.contains("Older deliveries"));
    let tasks = browser
        .get(&format!("{path}?event_type=task.created"))
        .await;
    assert_eq!(rows(&tasks.body), 2);
    assert_eq!(
        tasks
            .body
            .matches("data-event-type=\"task.created\"")
            .count(),
        2
    );
    let failed = browser.get(&format!("{path}?status=failed")).await;
    assert_eq!(rows(&failed.body), 0);
    assert!(failed.body.contains("No deliveries match these filters"));
    // Each delivery shows its attempts.
    assert!(first.body.contains("Attempts of dlv_"));
    assert!(
        first
            .body
            .contains("<span class=\"outcome ok\">HTTP 200</span>")
    );

    // Missed while disabled, then recovered from the page.
    let off = browser
        .post(
            &format!("{path}/enabled"),
            &[("csrf", &csrf), ("enabled", "false")],
        )
        .await;
    assert_eq!(off.status, 303);
    for n in 0..3 {
        app.create(
            "patients",
            json!({"first_name": format!("Missed{n}"), "last_name": "Log", "date_of_birth": "1990-01-01"}),
        )
        .await;
    }
    let refused = browser
        .post(
            &format!("{path}/recover"),
            &[("csrf", &csrf), ("since", "2026-01-01T00:00")],
        )
        .await;
    assert_eq!(refused.status, 409, "a disabled endpoint cannot recover");
    let on = browser
        .post(
            &format!("{path}/enabled"),
            &[("csrf", &csrf), ("enabled", "true")],
        )
        .await;
    assert_eq!(on.status, 303);
    let since = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let recovered = browser
        .post(
            &format!("{path}/recover"),
            &[("csrf", &csrf), ("since", &since)],
        )
        .await;
    assert_eq!(recovered.status, 303, "{}", recovered.body);
    let notice = browser.get(recovered.location.as_deref().unwrap()).await;
    assert!(
        notice
            .body
            .contains("0 failed deliveries re-queued, 3 missed events queued"),
        "{}",
        notice.body
    );
    let got = listener.wait_for("log", 32, Duration::from_secs(20)).await;
    let names: Vec<String> = got
        .iter()
        .filter_map(|r| r.json()["data"]["first_name"].as_str().map(str::to_owned))
        .collect();
    for n in 0..3 {
        assert!(names.contains(&format!("Missed{n}")));
    }
    let bad = browser
        .post(
            &format!("{path}/recover"),
            &[("csrf", &csrf), ("since", "yesterday")],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("YYYY-MM-DD HH:MM"));
}
