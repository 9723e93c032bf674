//! Authentication and the role matrix: every route × every role × no key,
//! and the guard that every registered route has an access rule and an
//! entry in the OpenAPI document.

use base64::Engine;
use chartwire::api::access::{self, Access};
use chartwire::auth::Role;
use reqwest::Method;
use serde_json::json;

use crate::helpers::TestApp;

fn concrete(path: &str) -> String {
    path.replace("{id}", "424242")
        .replace("{*file}", "index.html")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_as_the_table_says() {
    let app = TestApp::spawn().await;
    let keys = [
        (Some(Role::Superadmin), Some(app.admin.as_str())),
        (Some(Role::Staff), Some(app.staff.as_str())),
        (Some(Role::Integration), Some(app.integration.as_str())),
        (None, None),
    ];
    let mut checked = 0;
    for rule in access::table() {
        let path = concrete(&rule.path);
        for (role, key) in keys {
            let body = matches!(rule.method, Method::POST | Method::PATCH).then(|| json!({}));
            let reply = app.call(rule.method.clone(), &path, key, body).await;
            let expected_denial = match (rule.access, role) {
                (Access::Public, _) => None,
                (Access::Roles(_), None) => Some(401),
                (Access::Roles(roles), Some(role)) if !roles.contains(&role) => Some(403),
                _ => None,
            };
            match expected_denial {
                Some(status) => {
                    assert_eq!(
                        reply.status, status,
                        "{} {} as {role:?}",
                        rule.method, rule.path
                    );
                    assert_eq!(
                        reply.header("content-type"),
                        Some("application/problem+json")
                    );
                }
                None => assert!(
                    reply.status != 401 && reply.status != 403 && reply.status < 500,
                    "{} {} as {role:?} answered {}",
                    rule.method,
                    rule.path,
                    reply.status
                ),
            }
            checked += 1;
        }
    }
    assert!(checked >= 4 * 60, "the matrix covered only {checked} cases");
}

#[tokio::test]
async fn every_registered_route_has_an_access_rule_and_is_documented() {
    let registered = chartwire::api::registered_routes();
    let document = chartwire::api::openapi::document();
    for (method, path) in &registered {
        assert!(
            access::lookup(method, path).is_some(),
            "{method} {path} has no access rule"
        );
        let documented = path.replace("{*", "{");
        let operation = &document["paths"][&documented][method.as_str().to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {path} is missing from /openapi.json"
        );
    }
    for rule in access::table() {
        assert!(
            registered
                .iter()
                .any(|(m, p)| *m == rule.method && *p == rule.path),
            "the access table names {} {} which the router does not serve",
            rule.method,
            rule.path
        );
    }
    assert_eq!(registered.len(), access::table().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_authenticate_by_bearer_or_basic_and_stop_when_revoked() {
    let app = TestApp::spawn().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("anyone:{}", app.staff));
    let reply = app
        .client
        .get(format!("{}/api/v1/patients", app.base))
        .header("authorization", format!("Basic {basic}"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    for bad in [
        "Bearer cwk_nope",
        "Bearer ",
        "Token abc",
        "Basic !!!",
        "Bearer cwk_",
    ] {
        let reply = app
            .client
            .get(format!("{}/api/v1/patients", app.base))
            .header("authorization", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 401, "{bad}");
        assert!(reply.headers().contains_key("www-authenticate"));
    }

    // Keys over the API: created (shown once), listed without secrets, revoked.
    let created = app
        .post(
            "/api/v1/keys",
            json!({"name": "lab feed", "role": "integration"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = created.body["key"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.call(Method::GET, "/api/v1/patients", Some(&secret), None)
            .await
            .status,
        200
    );
    let list = app.get("/api/v1/keys").await;
    assert_eq!(list.status, 200);
    assert!(!list.body.to_string().contains(&secret));
    let listed = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["role"], "integration");
    assert_eq!(listed["name"], "lab feed");
    // The last use is recorded in the background, shortly after the request.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let keys = app.get("/api/v1/keys").await.body;
        let key = keys["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id.as_str())
            .unwrap()
            .clone();
        if key["last_used_at"].is_string() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "last use never recorded: {key}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/api/v1/keys/{id}"),
            Some(&app.admin),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        app.call(Method::GET, "/api/v1/patients", Some(&secret), None)
            .await
            .status,
        401
    );
    assert_eq!(
        app.call(
            Method::DELETE,
            &format!("/api/v1/keys/{id}"),
            Some(&app.admin),
            None
        )
        .await
        .status,
        404
    );
    let invalid = app
        .post("/api/v1/keys", json!({"name": "x", "role": "god"}))
        .await;
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.body["field"], "role");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_superadmin_key_cannot_be_revoked_over_the_api() {
    let app = TestApp::spawn().await;
    let list = app.get("/api/v1/keys").await;
    let admin_id = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "superadmin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = app
        .call(
            Method::DELETE,
            &format!("/api/v1/keys/{admin_id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(reply.status, 409);
    assert_eq!(app.get("/api/v1/keys").await.status, 200);
}
