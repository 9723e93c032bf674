//! Abuse limits: per-key request rate, endpoints per deployment.

use reqwest::Method;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_others_are_unaffected() {
    let app = TestApp::spawn_configured(|c| c.api_rate_limit = Some(5)).await;
    let mut limited = None;
    for _ in 0..30 {
        let reply = app
            .call(Method::GET, "/api/v1/patients", Some(&app.staff), None)
            .await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, 200);
    }
    let limited = limited.expect("the limit was never reached");
    assert_eq!(
        limited.header("content-type"),
        Some("application/problem+json")
    );
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait));
    assert_eq!(
        app.call(
            Method::GET,
            "/api/v1/patients",
            Some(&app.integration),
            None
        )
        .await
        .status,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        app.call(Method::GET, "/api/v1/patients", Some(&app.staff), None)
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_number_of_endpoints_is_capped() {
    let app = TestApp::spawn_configured(|c| c.webhooks.max_endpoints = 2).await;
    for _ in 0..2 {
        app.endpoint(json!({"url": "https://hooks.example.com/x", "events": ["*"]}))
            .await;
    }
    let third = app
        .post(
            "/api/v1/webhooks/endpoints",
            json!({"url": "https://hooks.example.com/x", "events": ["*"]}),
        )
        .await;
    assert_eq!(third.status, 409);
    assert_eq!(third.body["type"], "/problems/too_many_endpoints");
}
