//! The change feed: order, filters, long-poll, gap-free reading under
//! concurrent writers, and retention.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;

async fn head_cursor(app: &TestApp) -> String {
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/changes?limit=1000&after={c}"),
            None => "/api/v1/changes?limit=1000".into(),
        };
        let page = app.get(&path).await.body;
        cursor = Some(page["next_cursor"].as_str().unwrap().to_owned());
        if page["has_more"] == false {
            return cursor.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_filters_by_type_and_pattern_and_pages_in_order() {
    let app = TestApp::spawn().await;
    let f = app.fixtures().await;
    app.create("tasks", json!({"title": "t"})).await;
    app.patch(
        &format!("/api/v1/appointments/{}", f.appointment),
        json!({"status": "checked_in"}),
    )
    .await;
    let only = |events: &Value| -> Vec<String> {
        events["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect()
    };
    let reply = app
        .call(
            Method::GET,
            "/api/v1/changes?types=appointment.*",
            Some(&app.integration),
            None,
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        only(&reply.body),
        [
            "appointment.created",
            "appointment.modified",
            "appointment.checked_in"
        ]
    );
    let reply = app
        .get("/api/v1/changes?types=patient.created,task.created")
        .await;
    assert_eq!(only(&reply.body), ["patient.created", "task.created"]);
    let everything = app.get("/api/v1/changes?types=*").await;
    assert_eq!(only(&everything.body).len(), 6);
    // The cursor after a filtered read skips what did not match, and picks up what comes next.
    let cursor = reply.body["next_cursor"].as_str().unwrap();
    app.create("tasks", json!({"title": "u"})).await;
    let next = app
        .get(&format!(
            "/api/v1/changes?types=patient.created,task.created&after={cursor}"
        ))
        .await;
    assert_eq!(only(&next.body), ["task.created"]);
    // Paging one at a time yields the same sequence as one read.
    let mut paged = Vec::new();
    let mut path = "/api/v1/changes?limit=1".to_owned();
    loop {
        let page = app.get(&path).await.body;
        paged.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["sequence"].as_i64().unwrap()),
        );
        path = format!(
            "/api/v1/changes?limit=1&after={}",
            page["next_cursor"].as_str().unwrap()
        );
        if page["has_more"] == false {
            break;
        }
    }
    let all: Vec<i64> = app
        .all_events()
        .await
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(paged, all);
    for bad in [
        "types=patient.exploded",
        "types=nonsense.*",
        "types=",
        "limit=0",
        "limit=1001",
        "wait=31",
        "wait=-1",
        "after=%%%",
        "after=bm9wZQ",
    ] {
        let reply = app.get(&format!("/api/v1/changes?{bad}")).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_answers_as_soon_as_a_matching_event_commits() {
    let app = TestApp::spawn().await;
    let cursor = head_cursor(&app).await;
    let client = app.client.clone();
    let url = format!("{}/api/v1/changes?wait=30&after={cursor}", app.base);
    let key = app.integration.clone();
    let poll = tokio::spawn(async move {
        let body: Value = client
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (Instant::now(), body)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !poll.is_finished(),
        "the long-poll returned before any event"
    );
    app.create(
        "patients",
        json!({"first_name": "L", "last_name": "P", "date_of_birth": "1960-06-06"}),
    )
    .await;
    let written = Instant::now();
    let (answered, body) = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("woken")
        .unwrap();
    assert!(answered.duration_since(written) < Duration::from_secs(1));
    assert_eq!(body["data"][0]["type"], "patient.created");

    // A long-poll for other types is not answered by a non-matching event,
    // but its cursor moves past it.
    let cursor = head_cursor(&app).await;
    let client = app.client.clone();
    let url = format!(
        "{}/api/v1/changes?wait=2&types=task.*&after={cursor}",
        app.base
    );
    let key = app.admin.clone();
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        client
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.create(
        "patients",
        json!({"first_name": "M", "last_name": "P", "date_of_birth": "1960-06-06"}),
    )
    .await;
    let body = poll.await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(body["data"], json!([]));
    assert_ne!(body["next_cursor"].as_str().unwrap(), cursor);
    let after = app
        .get(&format!(
            "/api/v1/changes?types=task.*&after={}",
            body["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(after.body["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_following_the_cursor_sees_every_concurrent_write_once_in_order() {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 150;
    let app = TestApp::spawn().await;
    let start = head_cursor(&app).await;
    let reader = {
        let client = app.client.clone();
        let base = app.base.clone();
        let key = app.integration.clone();
        tokio::spawn(async move {
            let mut cursor = start;
            let mut seen: Vec<(i64, i64)> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            while seen.len() < WRITERS * PER_WRITER && Instant::now() < deadline {
                let page: Value = client
                    .get(format!(
                        "{base}/api/v1/changes?limit=37&wait=2&after={cursor}"
                    ))
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
                        event["data"]["id"].as_i64().unwrap(),
                    ));
                }
                cursor = page["next_cursor"].as_str().unwrap().to_owned();
            }
            seen
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = app.client.clone();
        let base = app.base.clone();
        let key = app.staff.clone();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..PER_WRITER {
                let reply = client
                    .post(format!("{base}/api/v1/patients"))
                    .bearer_auth(&key)
                    .json(&json!({"first_name": format!("W{w}"), "last_name": format!("N{i}"), "date_of_birth": "1999-01-01"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(reply.status(), 201);
                ids.push(reply.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
            }
            ids
        }));
    }
    let mut committed = BTreeSet::new();
    for w in writers {
        committed.extend(w.await.unwrap());
    }
    let seen = reader.await.unwrap();
    assert_eq!(committed.len(), WRITERS * PER_WRITER);
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "sequences must strictly increase"
    );
    let seen_ids: Vec<i64> = seen.iter().map(|(_, id)| *id).collect();
    let unique: BTreeSet<i64> = seen_ids.iter().copied().collect();
    assert_eq!(unique.len(), seen_ids.len(), "an event was seen twice");
    assert_eq!(
        unique, committed,
        "the reader must see exactly the committed set"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_the_retention_period_gets_410() {
    let app = TestApp::spawn_with(Duration::from_secs(2)).await;
    let empty_cursor = head_cursor(&app).await;
    app.create(
        "patients",
        json!({"first_name": "O", "last_name": "P", "date_of_birth": "1950-05-05"}),
    )
    .await;
    let after_first = head_cursor(&app).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // Everything is pruned now: a reader starting afresh and following its
    // cursor is not told it fell behind.
    let fresh = app.get("/api/v1/changes").await.body;
    assert_eq!(fresh["data"], json!([]));
    let follow = app
        .get(&format!(
            "/api/v1/changes?after={}",
            fresh["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(follow.status, 200, "{}", follow.body);
    app.create(
        "patients",
        json!({"first_name": "Q", "last_name": "R", "date_of_birth": "1950-05-05"}),
    )
    .await;
    let expired = app
        .get(&format!("/api/v1/changes?after={empty_cursor}"))
        .await;
    assert_eq!(expired.status, 410, "{}", expired.body);
    assert_eq!(
        expired.header("content-type"),
        Some("application/problem+json")
    );
    assert!(
        expired.body["detail"]
            .as_str()
            .unwrap()
            .contains("resynchronise")
    );
    let current = app
        .get(&format!("/api/v1/changes?after={after_first}"))
        .await;
    assert_eq!(current.status, 200);
    assert_eq!(current.body["data"].as_array().unwrap().len(), 1);
    let fresh = app.get("/api/v1/changes").await;
    assert_eq!(fresh.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(fresh.body["data"][0]["data"]["first_name"], "Q");
}
