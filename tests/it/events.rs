//! Events: one per change, the right names, `changed_fields`, semantic
//! events, the documented body, and no event without a committed write.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, plurals, sample, singular};

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_appends_one_event_with_the_documented_body() {
    let app = TestApp::spawn().await;
    let fixtures = app.fixtures().await;
    let start = app.all_events().await.len();
    for plural in plurals() {
        let (body, change) = sample(plural, fixtures);
        let created = app.create(plural, body).await;
        let id = created["id"].as_i64().unwrap();
        let patched = app
            .patch(&format!("/api/v1/{plural}/{id}"), change.clone())
            .await
            .body;
        app.call(
            Method::DELETE,
            &format!("/api/v1/{plural}/{id}"),
            Some(&app.admin),
            None,
        )
        .await;

        let all = app.all_events().await;
        let mine: Vec<Value> = all[start..]
            .iter()
            .filter(|e| e["data"]["object"] == singular(plural) && e["data"]["id"] == id)
            .cloned()
            .collect();
        let name = singular(plural);
        assert_eq!(
            types(&mine),
            vec![
                format!("{name}.created"),
                format!("{name}.modified"),
                format!("{name}.deleted")
            ],
            "{plural}"
        );
        let created_event = &mine[0];
        assert!(created_event["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(created_event["id"].as_str().unwrap().len(), 30);
        assert_eq!(created_event["version"], 1);
        assert!(created_event["sequence"].as_i64().unwrap() > 0);
        assert_eq!(
            created_event["actor"],
            json!({"type": "api_key", "id": created_event["actor"]["id"]})
        );
        assert!(
            created_event["actor"]["id"]
                .as_str()
                .unwrap()
                .starts_with("key_")
        );
        assert_eq!(created_event["data"], created);
        assert_eq!(created_event["occurred_at"], created["created_at"]);
        let modified = &mine[1];
        let changed: Vec<&str> = change
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(modified["data"]["changed_fields"], json!(changed));
        let mut without = modified["data"].clone();
        without.as_object_mut().unwrap().remove("changed_fields");
        assert_eq!(without, patched);
        // The deleted event carries the last state.
        assert_eq!(mine[2]["data"], patched);
        let keys: Vec<&str> = created_event
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "type",
                "version",
                "sequence",
                "occurred_at",
                "actor",
                "data"
            ]
        );
    }
    let all = app.all_events().await;
    assert!(
        all.windows(2)
            .all(|w| w[0]["sequence"].as_i64() < w[1]["sequence"].as_i64())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entering_a_meaningful_status_adds_a_semantic_event() {
    let app = TestApp::spawn().await;
    let f = app.fixtures().await;
    let skip = app.all_events().await.len();
    let appt = app
        .patch(
            &format!("/api/v1/appointments/{}", f.appointment),
            json!({"status": "checked_in"}),
        )
        .await;
    assert_eq!(appt.status, 200);
    // Changing something else while checked in is not a second check-in.
    app.patch(
        &format!("/api/v1/appointments/{}", f.appointment),
        json!({"location": "2"}),
    )
    .await;
    app.patch(
        &format!("/api/v1/appointments/{}", f.appointment),
        json!({"status": "cancelled"}),
    )
    .await;
    let enc = app
        .create(
            "encounters",
            json!({"patient_id": f.patient, "provider_id": f.provider,
        "occurred_on": "2026-12-01", "status": "signed"}),
        )
        .await;
    assert!(enc["signed_at"].is_string(), "signing sets signed_at");
    let lab = app
        .create(
            "lab_results",
            json!({"patient_id": f.patient, "test_name": "K"}),
        )
        .await;
    app.patch(
        &format!("/api/v1/lab_results/{}", lab["id"]),
        json!({"status": "final"}),
    )
    .await;
    app.patch(
        &format!("/api/v1/lab_results/{}", lab["id"]),
        json!({"status": "corrected"}),
    )
    .await;
    let rx = app
        .create(
            "prescriptions",
            json!({"patient_id": f.patient, "prescriber_id": f.provider, "medication": "m"}),
        )
        .await;
    app.patch(
        &format!("/api/v1/prescriptions/{}", rx["id"]),
        json!({"status": "discontinued"}),
    )
    .await;

    let events = app.all_events().await;
    assert_eq!(
        types(&events[skip..]),
        [
            "appointment.modified",
            "appointment.checked_in",
            "appointment.modified",
            "appointment.modified",
            "appointment.cancelled",
            "encounter.created",
            "encounter.signed",
            "lab_result.created",
            "lab_result.modified",
            "lab_result.finalized",
            "lab_result.modified",
            "prescription.created",
            "prescription.modified",
            "prescription.discontinued",
        ]
    );
    // The semantic event carries the same record state as its companion.
    assert_eq!(events[skip]["data"], events[skip + 1]["data"]);
    assert_ne!(events[skip]["id"], events[skip + 1]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_fails_leaves_no_event() {
    let app = TestApp::spawn().await;
    let f = app.fixtures().await;
    let before = app.all_events().await;
    // Fails inside the transaction (the referenced record is missing).
    let reply = app
        .post(
            "/api/v1/encounters",
            json!({"patient_id": f.patient, "provider_id": f.provider,
        "appointment_id": 777777, "occurred_on": "2026-12-01", "status": "signed"}),
        )
        .await;
    assert_eq!(reply.status, 422);
    // Fails on a stale version.
    let stale = app
        .client
        .patch(format!("{}/api/v1/patients/{}", app.base, f.patient))
        .bearer_auth(&app.admin)
        .header("if-match", "\"9\"")
        .json(&json!({"sex": "male"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    assert_eq!(app.all_events().await, before);
    // A batch in which one write fails still commits the others.
    let mut writes = Vec::new();
    for i in 0..20 {
        let patient = if i % 4 == 0 { 555_555 } else { f.patient };
        let body = json!({"patient_id": patient, "allergen": format!("x{i}")});
        let client = app.client.clone();
        let url = format!("{}/api/v1/allergies", app.base);
        let key = app.admin.clone();
        writes.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for w in writes {
        statuses.push(w.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 15);
    assert_eq!(statuses.iter().filter(|s| **s == 422).count(), 5);
    assert_eq!(app.all_events().await.len(), before.len() + 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_lists_every_event_type() {
    let app = TestApp::spawn().await;
    let reply = app
        .call(
            Method::GET,
            "/api/v1/webhooks/event-types",
            Some(&app.integration),
            None,
        )
        .await;
    assert_eq!(reply.status, 200);
    let names: Vec<&str> = reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 11 * 3 + 5 + 5 + 1);
    for expected in [
        "patient.created",
        "lab_result.modified",
        "task.deleted",
        "appointment.checked_in",
        "appointment.cancelled",
        "encounter.signed",
        "lab_result.finalized",
        "prescription.discontinued",
    ] {
        assert!(names.contains(&expected), "{expected}");
    }
    assert!(
        reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| !t["description"].as_str().unwrap().is_empty())
    );
}

/// Every example of the catalogue, and one real event of every type, is
/// valid against the published schema (checked by jsonschema_rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_has_a_schema_its_example_and_real_events_satisfy() {
    use crate::listener::{Behaviour, Listener};
    use std::time::Duration;
    let app =
        TestApp::spawn_configured(|c| c.webhooks.auto_disable_after = Duration::from_secs(1)).await;
    let listener = Listener::start().await;
    let catalogue = app
        .call(
            Method::GET,
            "/api/v1/webhooks/event-types",
            Some(&app.integration),
            None,
        )
        .await
        .body;
    let catalogue = catalogue["data"].as_array().unwrap().clone();

    // Real events of every type, delivered to an endpoint that takes them all.
    app.endpoint(json!({"url": listener.url("every"), "events": ["*", "endpoint.*"]}))
        .await;
    let f = app.fixtures().await;
    for plural in plurals() {
        let (body, change) = sample(plural, f);
        let id = app.create(plural, body).await["id"].clone();
        app.patch(&format!("/api/v1/{plural}/{id}"), change).await;
        app.call(
            Method::DELETE,
            &format!("/api/v1/{plural}/{id}"),
            Some(&app.admin),
            None,
        )
        .await;
    }
    app.patch(
        &format!("/api/v1/appointments/{}", f.appointment),
        json!({"status": "checked_in"}),
    )
    .await;
    app.patch(
        &format!("/api/v1/appointments/{}", f.appointment),
        json!({"status": "cancelled"}),
    )
    .await;
    app.create("encounters", json!({"patient_id": f.patient, "provider_id": f.provider, "occurred_on": "2026-12-01", "status": "signed"})).await;
    app.create(
        "lab_results",
        json!({"patient_id": f.patient, "test_name": "K", "status": "final"}),
    )
    .await;
    app.create("prescriptions", json!({"patient_id": f.patient, "prescriber_id": f.provider, "medication": "m", "status": "discontinued"})).await;
    let watcher = app
        .endpoint(json!({"url": listener.url("all"), "events": ["endpoint.*"]}))
        .await;
    let watcher_id = watcher["id"].as_str().unwrap();
    app.patch(
        &format!("/api/v1/webhooks/endpoints/{watcher_id}"),
        json!({"description": "x"}),
    )
    .await;
    let other = app
        .endpoint(json!({"url": listener.url("other"), "events": ["task.*"]}))
        .await;
    let other_id = other["id"].as_str().unwrap();
    app.patch(
        &format!("/api/v1/webhooks/endpoints/{other_id}"),
        json!({"enabled": false}),
    )
    .await;
    app.call(
        Method::DELETE,
        &format!("/api/v1/webhooks/endpoints/{other_id}"),
        Some(&app.admin),
        None,
    )
    .await;
    listener.set("dead", Behaviour::answer(500));
    let dead = app
        .endpoint(json!({"url": listener.url("dead"), "events": ["patient.created"]}))
        .await;
    app.create(
        "patients",
        json!({"first_name": "A", "last_name": "B", "date_of_birth": "1990-01-01"}),
    )
    .await;
    app.action(&format!("/api/v1/webhooks/endpoints/{watcher_id}/test"))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while app
        .get(&format!(
            "/api/v1/webhooks/endpoints/{}",
            dead["id"].as_str().unwrap()
        ))
        .await
        .body["status"]
        != "auto_disabled"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the failing endpoint was not auto-disabled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut real = app.all_events().await;
    real.extend(
        listener
            .wait_for("all", 1, Duration::from_secs(10))
            .await
            .iter()
            .map(|r| r.json()),
    );

    let mut cases = Vec::new();
    for entry in &catalogue {
        let name = entry["name"].as_str().unwrap();
        let schema = &entry["schema"];
        assert!(schema.is_object() && entry["example"].is_object(), "{name}");
        cases.push(json!({"name": format!("{name} example"), "schema": schema, "instance": entry["example"]}));
        let emitted = real
            .iter()
            .find(|e| e["type"] == name)
            .unwrap_or_else(|| panic!("no real {name} event"));
        cases.push(
            json!({"name": format!("{name} emitted"), "schema": schema, "instance": emitted}),
        );
    }
    // The schemas are strict enough to reject a wrong body.
    let patient_created = catalogue
        .iter()
        .find(|e| e["name"] == "patient.created")
        .unwrap();
    let mut wrong = patient_created["example"].clone();
    wrong["data"]["date_of_birth"] = json!(19900101);
    crate::helpers::python_check("schemas", &json!(cases));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrong.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&json!([{"schema": patient_created["schema"], "instance": wrong}]))
            .unwrap(),
    )
    .unwrap();
    let python = std::env::var("CHARTWIRE_TEST_PYTHON")
        .unwrap_or_else(|_| format!("{}/target/test-venv/bin/python", env!("CARGO_MANIFEST_DIR")));
    let status = std::process::Command::new(python)
        .arg(format!("{}/tests/py/check.py", env!("CARGO_MANIFEST_DIR")))
        .args(["schemas", file.to_str().unwrap()])
        .output()
        .unwrap()
        .status;
    assert!(!status.success(), "a wrong body must fail its schema");
}
