//! Records: CRUD of every type, merge patch, If-Match, tombstones,
//! pagination, relations and validation (which writes nothing).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, plurals, sample, singular};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_type_supports_create_read_patch_list_delete() {
    let app = TestApp::spawn().await;
    let fixtures = app.fixtures().await;
    for plural in plurals() {
        let (body, change) = sample(plural, fixtures);
        let created = app.post(&format!("/api/v1/{plural}"), body.clone()).await;
        assert_eq!(created.status, 201, "{plural}: {}", created.body);
        let id = created.id();
        assert_eq!(
            created.header("location"),
            Some(format!("/api/v1/{plural}/{id}").as_str())
        );
        assert_eq!(created.header("etag"), Some("\"1\""));
        assert_eq!(created.body["object"], singular(plural));
        assert_eq!(created.body["version"], 1);
        assert!(
            created.body["created_at"].is_string()
                && created.body["updated_at"] == created.body["created_at"]
        );
        for (field, value) in body.as_object().unwrap() {
            if !value.is_object() {
                assert_eq!(&created.body[field], value, "{plural}.{field}");
            }
        }

        let read = app.get(&format!("/api/v1/{plural}/{id}")).await;
        assert_eq!(read.status, 200);
        assert_eq!(read.body, created.body);

        let patched = app
            .patch(&format!("/api/v1/{plural}/{id}"), change.clone())
            .await;
        assert_eq!(patched.status, 200, "{plural}: {}", patched.body);
        assert_eq!(patched.body["version"], 2);
        assert_eq!(patched.header("etag"), Some("\"2\""));
        let (field, value) = change.as_object().unwrap().iter().next().unwrap();
        assert_eq!(&patched.body[field], value);
        assert_eq!(patched.body["created_at"], created.body["created_at"]);

        let list = app.get(&format!("/api/v1/{plural}")).await;
        assert_eq!(list.status, 200);
        assert!(
            list.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == id)
        );
        assert_eq!(list.body["has_more"], false);
        assert_eq!(list.body["next_cursor"], Value::Null);

        let deleted = app
            .call(
                Method::DELETE,
                &format!("/api/v1/{plural}/{id}"),
                Some(&app.staff),
                None,
            )
            .await;
        assert_eq!(deleted.status, 204);
        assert_eq!(app.get(&format!("/api/v1/{plural}/{id}")).await.status, 404);
        assert_eq!(
            app.patch(&format!("/api/v1/{plural}/{id}"), change)
                .await
                .status,
            404
        );
        let again = app
            .call(
                Method::DELETE,
                &format!("/api/v1/{plural}/{id}"),
                Some(&app.staff),
                None,
            )
            .await;
        assert_eq!(again.status, 404);
        let list = app.get(&format!("/api/v1/{plural}")).await;
        assert!(
            !list.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == id)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_patch_removes_with_null_and_merges_nested_objects() {
    let app = TestApp::spawn().await;
    let fixtures = app.fixtures().await;
    let (body, _) = sample("patients", fixtures);
    let patient = app.create("patients", body).await;
    let path = format!("/api/v1/patients/{}", patient["id"]);
    let reply = app
        .patch(
            &path,
            json!({"sex": null, "address": {"city": null, "postal_code": "12345"}}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["sex"], Value::Null);
    assert_eq!(
        reply.body["address"],
        json!({"line1": "1 Main St", "postal_code": "12345", "country": "US"})
    );
    // Sending back read-only fields unchanged is allowed; changing them is not.
    let same = app
        .patch(
            &path,
            json!({"id": patient["id"], "version": 2, "phone": "1"}),
        )
        .await;
    assert_eq!(same.status, 200, "{}", same.body);
    let wrong = app.patch(&path, json!({"id": 999})).await;
    assert_eq!(wrong.status, 422);
    assert_eq!(wrong.body["field"], "id");
    // A patch that changes nothing makes no new version.
    let noop = app.patch(&path, json!({"phone": "1"})).await;
    assert_eq!(noop.body["version"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_guards_patch_and_delete() {
    let app = TestApp::spawn().await;
    let fixtures = app.fixtures().await;
    let path = format!("/api/v1/providers/{}", fixtures.provider);
    let stale = app
        .client
        .patch(format!("{}{path}", app.base))
        .bearer_auth(&app.admin)
        .header("if-match", "\"7\"")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"specialty":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    assert_eq!(stale.headers()["content-type"], "application/problem+json");
    let fresh = app
        .client
        .patch(format!("{}{path}", app.base))
        .bearer_auth(&app.admin)
        .header("if-match", "\"1\"")
        .json(&json!({"specialty": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);
    let delete_stale = app
        .client
        .delete(format!("{}{path}", app.base))
        .bearer_auth(&app.admin)
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(delete_stale.status(), 412);
    assert_eq!(app.get(&path).await.body["version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_paginate_with_cursors_and_filter_by_patient() {
    let app = TestApp::spawn().await;
    let fixtures = app.fixtures().await;
    let other = app
        .create(
            "patients",
            json!({"first_name": "E", "last_name": "F", "date_of_birth": "2001-01-01"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let mut mine = Vec::new();
    for i in 0..7 {
        let patient = if i % 3 == 0 { other } else { fixtures.patient };
        let created = app
            .create(
                "allergies",
                json!({"patient_id": patient, "allergen": format!("a{i}")}),
            )
            .await;
        if patient == fixtures.patient {
            mine.push(created["id"].as_i64().unwrap());
        }
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/allergies?limit=2".to_owned();
    loop {
        let page = app.get(&path).await;
        assert_eq!(page.status, 200);
        assert!(page.body["data"].as_array().unwrap().len() <= 2);
        seen.extend(
            page.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        match page.body["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(page.body["has_more"], true);
                path = format!("/api/v1/allergies?limit=2&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    let filtered = app
        .get(&format!(
            "/api/v1/allergies?patient_id={}&limit=200",
            fixtures.patient
        ))
        .await;
    let ids: Vec<i64> = filtered.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, mine);
    for bad in [
        "limit=0",
        "limit=201",
        "limit=x",
        "cursor=nope",
        "patient_id=-1",
    ] {
        let reply = app.get(&format!("/api/v1/allergies?{bad}")).await;
        assert_eq!(reply.status, 400, "{bad}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
    }
    assert_eq!(app.get("/api/v1/providers?patient_id=1").await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relations_must_point_at_live_records_of_the_right_type() {
    let app = TestApp::spawn().await;
    let fixtures = app.fixtures().await;
    // A provider's id is not a patient.
    let wrong_type = app
        .post(
            "/api/v1/allergies",
            json!({"patient_id": fixtures.provider, "allergen": "dust"}),
        )
        .await;
    assert_eq!(wrong_type.status, 422);
    assert_eq!(wrong_type.body["field"], "patient_id");
    let missing = app
        .post(
            "/api/v1/problems",
            json!({"patient_id": 987654, "description": "x"}),
        )
        .await;
    assert_eq!(missing.status, 422);
    let doomed = app
        .create(
            "patients",
            json!({"first_name": "G", "last_name": "H", "date_of_birth": "1999-09-09"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/api/v1/patients/{doomed}"),
            Some(&app.admin),
            None
        )
        .await
        .status,
        204
    );
    let to_deleted = app
        .post(
            "/api/v1/vitals",
            json!({"patient_id": doomed, "measured_at": "2026-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(to_deleted.status, 422);
    assert_eq!(to_deleted.body["errors"][0]["code"], "not_found");
    let patch_to_missing = app
        .patch(
            &format!("/api/v1/appointments/{}", fixtures.appointment),
            json!({"provider_id": 424242}),
        )
        .await;
    assert_eq!(patch_to_missing.status, 422);
    assert_eq!(
        app.get(&format!("/api/v1/appointments/{}", fixtures.appointment))
            .await
            .body["version"],
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_is_a_problem_naming_the_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let fixtures = app.fixtures().await;
    let before = app.all_events().await.len();
    let marker = "Zebulon-Marker-7731";
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "patients",
            json!({"first_name": marker, "last_name": "X"}),
            "date_of_birth",
        ),
        (
            "patients",
            json!({"first_name": marker, "last_name": "X", "date_of_birth": "31/12/1990"}),
            "date_of_birth",
        ),
        (
            "patients",
            json!({"first_name": marker, "last_name": "X", "date_of_birth": "1990-01-01", "sex": "robot"}),
            "sex",
        ),
        (
            "patients",
            json!({"first_name": marker, "last_name": "X", "date_of_birth": "1990-01-01", "email": "not-an-email"}),
            "email",
        ),
        (
            "patients",
            json!({"first_name": marker, "last_name": "X", "date_of_birth": "1990-01-01", "ssn": marker}),
            "ssn",
        ),
        (
            "patients",
            json!({"first_name": marker, "last_name": "X", "date_of_birth": "1990-01-01", "address": {"planet": "Mars"}}),
            "address.planet",
        ),
        (
            "patients",
            json!({"first_name": 5, "last_name": "X", "date_of_birth": "1990-01-01"}),
            "first_name",
        ),
        (
            "patients",
            json!({"first_name": "   ", "last_name": "X", "date_of_birth": "1990-01-01"}),
            "first_name",
        ),
        (
            "appointments",
            json!({"patient_id": fixtures.patient, "provider_id": fixtures.provider,
            "start_at": "2026-12-02T10:00:00Z", "end_at": "2026-12-02T09:00:00Z", "reason": marker}),
            "end_at",
        ),
        (
            "appointments",
            json!({"patient_id": fixtures.patient, "provider_id": fixtures.provider,
            "start_at": "tomorrow", "end_at": "2026-12-02T09:00:00Z"}),
            "start_at",
        ),
        (
            "vitals",
            json!({"patient_id": fixtures.patient, "measured_at": "2026-12-02T10:00:00Z", "systolic_mmhg": 1.5}),
            "systolic_mmhg",
        ),
        (
            "vitals",
            json!({"patient_id": fixtures.patient, "measured_at": "2026-12-02T10:00:00Z", "spo2_percent": 140}),
            "spo2_percent",
        ),
        (
            "tasks",
            json!({"title": marker, "priority": "urgent"}),
            "priority",
        ),
        (
            "providers",
            json!({"first_name": "A", "last_name": "B", "email": "a@b.example", "id": 5}),
            "id",
        ),
        ("providers", json!([1, 2]), ""),
    ];
    for (plural, body, field) in cases {
        let reply = app.post(&format!("/api/v1/{plural}"), body).await;
        assert_eq!(reply.status, 422, "{plural} {field}: {}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
        assert!(
            reply.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{field}: {}",
            reply.body
        );
        assert!(
            !reply.body.to_string().contains(marker),
            "a value was echoed: {}",
            reply.body
        );
        assert!(!reply.body.to_string().contains("31/12/1990"));
    }
    // Malformed JSON, wrong media type, too large, bad ids.
    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(format!("{}/api/v1/patients", app.base))
            .bearer_auth(&app.admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_eq!(
        raw("{\"first_name\": ", "application/json")
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        raw("first_name=x", "application/x-www-form-urlencoded")
            .await
            .unwrap()
            .status(),
        415
    );
    let huge = format!("{{\"first_name\": \"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let too_large = app
        .client
        .post(format!("{}/api/v1/patients", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    assert_eq!(app.get("/api/v1/patients/abc").await.status, 404);
    assert_eq!(app.get("/api/v1/patients/0").await.status, 404);
    assert_eq!(
        app.get("/api/v1/patients/99999999999999999999")
            .await
            .status,
        404
    );
    assert_eq!(app.get("/api/v1/nothing-here").await.status, 404);
    let wrong_method = app
        .call(
            Method::PUT,
            "/api/v1/patients",
            Some(&app.admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(wrong_method.status, 405);
    // Nothing was written.
    assert_eq!(app.all_events().await.len(), before);
    let patients = app.get("/api/v1/patients?limit=200").await;
    assert_eq!(patients.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_count_changes_and_timestamps_are_the_servers() {
    let app = TestApp::spawn().await;
    let fixtures = app.fixtures().await;
    let path = format!("/api/v1/tasks/{}", {
        let (body, _) = sample("tasks", fixtures);
        app.create("tasks", body).await["id"].clone()
    });
    let mut last = app.get(&path).await.body;
    for (i, status) in ["done", "open", "done"].iter().enumerate() {
        let next = app.patch(&path, json!({"status": status})).await.body;
        assert_eq!(next["version"], i as i64 + 2);
        assert!(next["updated_at"].as_str() > last["updated_at"].as_str());
        assert_eq!(next["created_at"], last["created_at"]);
        last = next;
    }
    let forged = app
        .patch(&path, json!({"updated_at": "2000-01-01T00:00:00Z"}))
        .await;
    assert_eq!(forged.status, 422);
}
